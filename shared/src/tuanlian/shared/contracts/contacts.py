"""Event contracts published by the contacts service on the ``CONTACTS`` stream.

They carry ids and non-identifying attributes (field, grade, org path) only: names and phone
numbers never leave the contacts service (PIPL), so erasing a youth there erases them everywhere.
"""

from __future__ import annotations

from enum import StrEnum

import pydantic  # not ``from pydantic import Field``: ``Field`` is the youth's field (领域) here
from pydantic import BaseModel, ConfigDict
from tuanlian.shared.contracts.dates import CivilDate, CivilDateTime
from tuanlian.shared.events import ContractRegistry, DomainEvent

CONTACTS = ContractRegistry("contacts")


class OrgType(StrEnum):
    """团组织 types, top to bottom."""

    central = "central"  # 团中央
    provincial = "provincial"  # 省级团委
    city = "city"  # 市级团委
    county = "county"  # 县/区团委
    grassroots_committee = "grassroots_committee"  # 基层团委
    general_branch = "general_branch"  # 团总支
    university = "university"  # 校团委
    department = "department"  # 分团委/院团委
    branch = "branch"  # 团支部
    dorm_group = "dorm_group"  # 宿舍团小组


class CadreKind(StrEnum):
    """团干部: 专职 / 挂职 / 兼职."""

    full_time = "full_time"
    seconded = "seconded"
    part_time = "part_time"


class Field(StrEnum):
    """青年所在领域."""

    enterprise = "enterprise"  # 企业
    rural = "rural"  # 农村
    government = "government"  # 机关
    school = "school"  # 学校
    street = "street"  # 街道
    social_org = "social_org"  # 社会组织
    new_media = "new_media"  # 新媒体


class Channel(StrEnum):
    wechat = "wechat"
    qq = "qq"
    weibo = "weibo"
    phone = "phone"
    youth_voice = "youth_voice"
    visit = "visit"
    heart_to_heart = "heart_to_heart"  # 谈心谈话
    face_to_face = "face_to_face"

    @property
    def online(self) -> bool:
        return self in {Channel.wechat, Channel.qq, Channel.weibo, Channel.phone, Channel.youth_voice}


@CONTACTS.register
class OrgCreated(DomainEvent):
    """A League organisation (团组织) was created under its parent."""

    event_type = "OrgCreated"
    stream_type = "org"
    org_id: str
    parent_id: str | None
    name: str
    org_type: OrgType
    depth: int
    is_leadership_organ: bool
    org_path: str


@CONTACTS.register
class CadreRegistered(DomainEvent):
    """A League cadre (团干部) was registered in an organisation."""

    event_type = "CadreRegistered"
    stream_type = "cadre"
    cadre_id: str
    org_id: str
    org_path: str
    kind: CadreKind
    in_leadership_organ: bool


@CONTACTS.register
class YouthRegistered(DomainEvent):
    """A young person (青年) joined Tuanlian; attributes only, no name or phone."""

    event_type = "YouthRegistered"
    stream_type = "youth"
    youth_id: str
    org_id: str | None
    org_path: str | None
    field: Field | None = None
    grade: str | None = None
    political_status: str | None = None
    family_situation: str | None = None
    special_care: list[str] = []
    industry: str | None = None  # 行业 tag (000), editable in bulk


@CONTACTS.register
class ContactLinkInvited(DomainEvent):
    """A contact link (联系) was proposed: by the cadre, or asked for by the youth's join code."""

    event_type = "ContactLinkInvited"
    stream_type = "contact_link"
    link_id: str
    cadre_id: str
    youth_id: str
    org_path: str
    initiated_by: str  # "cadre" | "youth"


@CONTACTS.register
class ContactLinkAccepted(DomainEvent):
    """The youth consented: from now on the link counts toward the cadre's quota."""

    event_type = "ContactLinkAccepted"
    stream_type = "contact_link"
    link_id: str
    cadre_id: str
    youth_id: str
    org_path: str


@CONTACTS.register
class ContactLinkDeclined(DomainEvent):
    event_type = "ContactLinkDeclined"
    stream_type = "contact_link"
    link_id: str
    cadre_id: str
    youth_id: str


@CONTACTS.register
class ContactLinkEnded(DomainEvent):
    event_type = "ContactLinkEnded"
    stream_type = "contact_link"
    link_id: str
    cadre_id: str
    youth_id: str
    ended_by: str


@CONTACTS.register
class InteractionLogged(DomainEvent):
    """联系记录: a cadre logged contact with one or more linked youths."""

    event_type = "InteractionLogged"
    stream_type = "interaction"
    interaction_id: str
    cadre_id: str
    org_path: str
    youth_ids: list[str]
    channel: Channel
    online: bool
    occurred_at: CivilDateTime
    summary_length: int
    summary_hash: str


# --- Organisations: lifecycle --------------------------------------------------------------------
# Org paths are materialised ("/<root>/<child>/<grandchild>", ids joined by slashes; see
# ``auth.path_covers``). Moving or merging an org changes the path of a whole subtree: consumers
# rewrite every path equal to ``old_path`` or starting with ``old_path + "/"`` to start with the new
# path instead; the event names both so no consumer needs the tree.


@CONTACTS.register
class OrgDetailsCompleted(DomainEvent):
    """The child org's own admin completed what the parent left open (组织信息完善)."""

    event_type = "OrgDetailsCompleted"
    stream_type = "org"
    org_id: str
    org_path: str
    secretary_cadre_id: str | None = None
    member_count: int | None = None
    region_code: str | None = None


@CONTACTS.register
class OrgRenamed(DomainEvent):
    event_type = "OrgRenamed"
    stream_type = "org"
    org_id: str
    org_path: str
    old_name: str
    name: str


@CONTACTS.register
class OrgMoved(DomainEvent):
    """The org and its subtree moved under another parent; its id is kept, its path changes."""

    event_type = "OrgMoved"
    stream_type = "org"
    org_id: str
    old_parent_id: str | None
    new_parent_id: str
    old_path: str
    new_path: str
    depth: int


@CONTACTS.register
class OrgMerged(DomainEvent):
    """``org_id`` was merged into ``into_org_id``: its cadres, youths and children now belong there.

    Consumers rewrite paths under ``old_path`` to ``into_path`` (children keep their own id
    segment). The merged org is closed by the same command (an ``OrgClosed`` follows).
    """

    event_type = "OrgMerged"
    stream_type = "org"
    org_id: str
    into_org_id: str
    old_path: str
    into_path: str


@CONTACTS.register
class OrgClosed(DomainEvent):
    """The org was closed (撤销); its history stays, it takes no new members or links."""

    event_type = "OrgClosed"
    stream_type = "org"
    org_id: str
    org_path: str
    reason: str | None = None


# --- Organisations: rules (实施细则) ---------------------------------------------------------------


class ActivityKind(StrEnum):
    # 五个一 for cadres: which of them count is the org's rules' (``OrgRules.five_ones_kinds``)
    exchange = "exchange"  # 线上线下交流 (000)
    practical_service = "practical_service"  # 办一件实事 (000, 001)
    culture_sports = "culture_sports"  # 文体活动 (000, 001)
    league_lecture = "league_lecture"  # 团课 (000, 001)
    social_org = "social_org"  # 联系社会组织并参加活动 (000)
    heart_to_heart = "heart_to_heart"  # 谈心谈话 (001)
    volunteer_service = "volunteer_service"  # 志愿服务 (001)
    # collective activities of leadership organs
    open_day = "open_day"  # 开放日
    face_to_face_session = "face_to_face_session"  # 面对面
    collective_volunteering = "collective_volunteering"
    sharing_session = "sharing_session"  # 1+100 分享会
    self_designed = "self_designed"
    # other programmes
    education_practice = "education_practice"  # 一学一做
    posting_8_4 = "posting_8_4"  # "8+4" 下基层
    grassroots_day_4_1 = "grassroots_day_4_1"  # "4+1" 每周一天

    @property
    def collective_five_ones(self) -> bool:
        """One of the five kinds of a leadership organ's collective activities (000 二.1)."""
        return self in COLLECTIVE_FIVE_ONES_KINDS


# 000 二.1: a leadership organ's five: an open day, a face-to-face, collective volunteering, a 1+100
# sharing session and one of its own design.
COLLECTIVE_FIVE_ONES_KINDS = frozenset({
    ActivityKind.open_day, ActivityKind.face_to_face_session, ActivityKind.collective_volunteering,
    ActivityKind.sharing_session, ActivityKind.self_designed,
})
# 000 二.2: "开展一次线上或线下交流、办一件实事、搞一次文体活动、讲一次团课、联系一个社会组织并参加一次活动".
DEFAULT_FIVE_ONES_KINDS = (ActivityKind.exchange, ActivityKind.practical_service, ActivityKind.culture_sports,
                           ActivityKind.league_lecture, ActivityKind.social_org)


class FiveOnesPeriod(StrEnum):
    month = "month"
    two_months = "two_months"
    quarter = "quarter"


class FiveOnesRule(BaseModel):
    """How many five-ones activities, per how long (五个一频次)."""

    model_config = ConfigDict(frozen=True)
    count: int = pydantic.Field(ge=0)
    period: FiveOnesPeriod


class ContactQuotas(BaseModel):
    """Youths a cadre keeps direct contact with (联系青年数), by kind of cadre."""

    model_config = ConfigDict(frozen=True)
    full_time: int = pydantic.Field(default=100, ge=0)
    seconded: int = pydantic.Field(default=100, ge=0)
    part_time_leadership: int = pydantic.Field(default=100, ge=0)  # 领导机关兼职团干部
    part_time: int = pydantic.Field(default=10, ge=0)


class GroupCoverage(BaseModel):
    """Lüliang (004) coverage: sub-committees, branches and dorm groups a cadre covers."""

    model_config = ConfigDict(frozen=True)
    sub_committees: int = pydantic.Field(default=0, ge=0)  # 分团委
    branches: int = pydantic.Field(default=0, ge=0)  # 团支部
    dorm_groups: int = pydantic.Field(default=0, ge=0)  # 宿舍团小组


class Rhythm(BaseModel):
    """日常有声音、季度有活动、年度有见面."""

    model_config = ConfigDict(frozen=True)
    online_silence_days: int = pydantic.Field(default=7, ge=1)  # remind after this many days without an online contact
    activity_each_quarter: bool = True
    face_to_face_each_year: bool = True


class OrganDuties(BaseModel):
    """What a county committee's organ and its cadres owe besides 1+100 (002 二.2–4): off by
    default, on in 002's preset; asked of county-level leadership organs and their cadres."""

    model_config = ConfigDict(frozen=True)
    # 向基层服务对象报到 ("4+1"): each organ cadre at least one day a week among the grassroots
    # youths (a ``grassroots_day_4_1`` activity each week).
    grassroots_day_each_week: bool = False
    # 常态化下沉基层 ("8+4"): each year in four batches, each a quarter of the organ's cadres
    # posted to the grassroots (a ``posting_8_4`` activity): by each quarter's end, that share.
    postings_each_year: bool = False
    # 专题开放日: each quarter at least this many ordinary youths into the organ (``open_day``
    # activities of the org, their headcounts added up); 0 asks none.
    open_day_youths_each_quarter: int = pydantic.Field(default=0, ge=0)


class AccountsCounted(StrEnum):
    logged_in = "logged_in"  # 账号激活: the first login
    issued = "issued"  # 开通账号


class ReportDeadlines(BaseModel):
    """When reports upward are due (上报时间)."""

    model_config = ConfigDict(frozen=True)
    quarterly_five_ones_day: int | None = pydantic.Field(default=15, ge=1, le=28)  # day of the quarter's last month
    half_year: bool = False  # 002: half-yearly report
    annual_after_national_day_working_days: int | None = None  # 004: 5
    cadre_accounts_by: str | None = "04-10"  # MM-DD, 000: "团干部于4月上旬全部登录使用" (上旬: to the 10th)
    youth_accounts_by: str | None = "04-30"  # MM-DD, 000: their youths by end of April
    # What the rollout deadlines count: cadres and youths who have logged in (000/001: 登录使用),
    # or who have been given an account (002: the admins enter them, 录入系统).
    accounts_counted: AccountsCounted = AccountsCounted.logged_in


class ServiceLimits(BaseModel):
    """Org rules the wishes service applies (微心愿、青年之声、评价)."""

    model_config = ConfigDict(frozen=True)
    wish_max_value_yuan: int = pydantic.Field(default=500, ge=0)
    wish_untouched_days: int = pydantic.Field(default=7, ge=1)  # untouched this long → released to the pool
    wish_claim_days: int = pydantic.Field(default=14, ge=1)  # a pool claim not fulfilled by then returns to the pool
    wish_expiry_days: int = pydantic.Field(default=90, ge=1)
    # a fulfilled wish the youth neither confirms nor disputes closes, unconfirmed, after this long
    wish_unconfirmed_close_days: int = pydantic.Field(default=14, ge=1)
    voice_answer_hours: int = pydantic.Field(default=48, ge=1)
    rating_period: FiveOnesPeriod = FiveOnesPeriod.quarter
    rating_min_count: int = pydantic.Field(default=5, ge=1)  # a cadre sees aggregates only over this many ratings
    ballot_min_turnout: float = pydantic.Field(default=0.5, gt=0, le=1)


class CircularPeriod(StrEnum):
    """The periods an org may circulate (月度 / 季度 / 半年 / 年度通报)."""

    month = "month"
    quarter = "quarter"
    half_year = "half_year"
    year = "year"


class CircularPlan(BaseModel):
    """定期通报: the periods the org circulates its subtree for, issued when each has closed.

    The org's own act (a 团市委 circulates its 市属团组织): an org whose rules are inherited
    issues none, an org that sets its own names its own. Empty: circulars on demand only.
    """

    model_config = ConfigDict(frozen=True)
    periods: tuple[CircularPeriod, ...] = ()
    # full days after the close before it is issued: late logs and confirmations land first
    days_after_close: int = pydantic.Field(default=3, ge=0, le=28)


class AssessmentPeriod(StrEnum):
    """年中 / 年终考核."""

    half_year = "half_year"
    year = "year"


class AssessmentPlan(BaseModel):
    """年中、年底全面评估: the periods the org assesses its subtree's cadres for, when each has
    closed. The org's own act, as a circular plan is. Empty: assessments on demand only."""

    model_config = ConfigDict(frozen=True)
    periods: tuple[AssessmentPeriod, ...] = ()
    days_after_close: int = pydantic.Field(default=3, ge=0, le=28)


class OrgRules(BaseModel):
    """An org's rule set (实施细则). Lower orgs may keep or relax their parent's, never raise them.

    ``five_ones`` is keyed by cadre kind plus ``leadership_organ`` for collective activities.
    """

    model_config = ConfigDict(frozen=True)
    contact_quotas: ContactQuotas = ContactQuotas()
    group_coverage_school: GroupCoverage = GroupCoverage()
    group_coverage_department: GroupCoverage = GroupCoverage()
    five_ones: dict[str, FiveOnesRule] = {
        "full_time": FiveOnesRule(count=5, period=FiveOnesPeriod.two_months),
        "seconded": FiveOnesRule(count=5, period=FiveOnesPeriod.two_months),
        "part_time": FiveOnesRule(count=5, period=FiveOnesPeriod.quarter),
        "leadership_organ": FiveOnesRule(count=5, period=FiveOnesPeriod.quarter),
    }
    # The kinds of a cadre's activities that count as five-ones (五个一工作内容), all of them for
    # the all-kinds bonus: 000's five by default; 001 names 谈心谈话 and 志愿服务 among its own.
    five_ones_kinds: tuple[ActivityKind, ...] = DEFAULT_FIVE_ONES_KINDS
    rhythm: Rhythm = Rhythm()
    organ_duties: OrganDuties = OrganDuties()
    reports: ReportDeadlines = ReportDeadlines()
    limits: ServiceLimits = ServiceLimits()
    circulars: CircularPlan = CircularPlan()
    assessments: AssessmentPlan = AssessmentPlan()
    scoring_ruleset: str = "default-2026.1"

    @pydantic.field_validator("five_ones_kinds")
    @classmethod
    def _cadre_kinds(cls, kinds: tuple[ActivityKind, ...]) -> tuple[ActivityKind, ...]:
        if not kinds:
            raise ValueError("name at least one kind of activity that counts as five-ones")
        if len(set(kinds)) != len(kinds):
            raise ValueError("a kind is named twice")
        collective = sorted(k.value for k in kinds if k.collective_five_ones)
        if collective:
            raise ValueError(f"{', '.join(collective)}: a leadership organ's collective kinds, not a cadre's")
        return kinds

    def five_ones_required(self, collective: bool) -> frozenset[ActivityKind]:
        """The kinds that count toward five-ones, all of which earn the all-kinds bonus: a
        leadership organ's five collective kinds (000), or a cadre's by these rules."""
        return COLLECTIVE_FIVE_ONES_KINDS if collective else frozenset(self.five_ones_kinds)

    def counts_as_five_ones(self, kind: ActivityKind, collective: bool) -> bool:
        return kind in self.five_ones_required(collective)


@CONTACTS.register
class OrgRulesSet(DomainEvent):
    """The org's rule set from ``effective_from`` on; earlier periods keep the rules they had."""

    event_type = "OrgRulesSet"
    stream_type = "org"
    org_id: str
    org_path: str
    effective_from: CivilDate
    preset: str | None = None  # "000" Shanghai 2017, "001" Yangzhou, "002" Meizhou, "004" Lüliang
    rules: OrgRules


# --- Cadres and accounts --------------------------------------------------------------------------


@CONTACTS.register
class CadreTransferred(DomainEvent):
    event_type = "CadreTransferred"
    stream_type = "cadre"
    cadre_id: str
    from_org_id: str
    to_org_id: str
    old_path: str
    org_path: str
    in_leadership_organ: bool


@CONTACTS.register
class CadreDeactivated(DomainEvent):
    """The cadre left the programme; their links end (a ``ContactLinkEnded`` per link follows)."""

    event_type = "CadreDeactivated"
    stream_type = "cadre"
    cadre_id: str
    org_path: str
    reason: str | None = None


class AccountRole(StrEnum):
    youth = "youth"
    cadre = "cadre"
    org_admin = "org_admin"
    leader = "leader"
    partner = "partner"


@CONTACTS.register
class AccountIssued(DomainEvent):
    """An account was handed out (开通账号); notify tracks the April rollout deadlines with it."""

    event_type = "AccountIssued"
    stream_type = "account"
    account_id: str
    subject_id: str  # cadre, youth, partner or admin id
    role: AccountRole
    org_path: str | None


@CONTACTS.register
class AccountActivated(DomainEvent):
    """First successful login (账号激活)."""

    event_type = "AccountActivated"
    stream_type = "account"
    account_id: str
    subject_id: str
    role: AccountRole
    org_path: str | None


# --- Youths ---------------------------------------------------------------------------------------


@CONTACTS.register
class YouthProfileUpdated(DomainEvent):
    """Changed non-identifying attributes only (fields left ``None`` are unchanged)."""

    event_type = "YouthProfileUpdated"
    stream_type = "youth"
    youth_id: str
    org_id: str | None = None
    org_path: str | None = None
    field: Field | None = None
    industry: str | None = None
    grade: str | None = None
    political_status: str | None = None
    family_situation: str | None = None
    special_care: list[str] | None = None


@CONTACTS.register
class YouthContactDetailsChanged(DomainEvent):
    """The youth's name or phone changed (re-sealed under their key, phone hash replaced). Says
    only *which* of them changed: the values never leave the vault."""

    event_type = "YouthContactDetailsChanged"
    stream_type = "youth"
    youth_id: str
    changed: list[str]  # "name", "phone"


@CONTACTS.register
class YouthErased(DomainEvent):
    """The youth asked to be forgotten (PIPL). Their key is destroyed in contacts; consumers drop
    every attribute they hold of this youth and keep only counts. Their links end first."""

    event_type = "YouthErased"
    stream_type = "youth"
    youth_id: str


# --- Group links (Lüliang coverage) ---------------------------------------------------------------


@CONTACTS.register
class GroupLinkAdded(DomainEvent):
    """The cadre covers a sub-committee, branch or dorm group (联系团组织)."""

    event_type = "GroupLinkAdded"
    stream_type = "cadre"
    cadre_id: str
    group_org_id: str
    group_org_type: OrgType
    group_org_path: str
    org_path: str


@CONTACTS.register
class GroupLinkEnded(DomainEvent):
    event_type = "GroupLinkEnded"
    stream_type = "cadre"
    cadre_id: str
    group_org_id: str
    org_path: str


# --- Interactions: the youth's word, corrections, evidence ---------------------------------------


@CONTACTS.register
class InteractionConfirmed(DomainEvent):
    """The youth confirmed the interaction happened (青年确认)."""

    event_type = "InteractionConfirmed"
    stream_type = "interaction"
    interaction_id: str
    cadre_id: str
    youth_id: str
    org_path: str


@CONTACTS.register
class InteractionDisputed(DomainEvent):
    """The youth says it did not happen as logged; worth nothing until resolved."""

    event_type = "InteractionDisputed"
    stream_type = "interaction"
    interaction_id: str
    cadre_id: str
    youth_id: str
    org_path: str
    reason: str | None = None


@CONTACTS.register
class InteractionCorrected(DomainEvent):
    """A correction by the cadre; the new values replace the old in every projection."""

    event_type = "InteractionCorrected"
    stream_type = "interaction"
    interaction_id: str
    cadre_id: str
    org_path: str
    youth_ids: list[str]
    channel: Channel
    online: bool
    occurred_at: CivilDateTime
    summary_length: int
    summary_hash: str
    reason: str


@CONTACTS.register
class EvidenceAttached(DomainEvent):
    """A file backing an interaction or activity (佐证材料), kept in contacts."""

    event_type = "EvidenceAttached"
    stream_type = "evidence"
    evidence_id: str
    subject_type: str  # "interaction" | "activity"
    subject_id: str
    content_type: str
    size_bytes: int
    sha256: str


# --- Activities (五个一 and collective activities) ------------------------------------------------


@CONTACTS.register
class ActivityRecorded(DomainEvent):
    """An activity with its organiser (a cadre, or an org for collective activities)."""

    event_type = "ActivityRecorded"
    stream_type = "activity"
    activity_id: str
    kind: ActivityKind
    organiser_cadre_id: str | None
    organiser_org_id: str
    org_path: str
    collective: bool
    occurred_on: CivilDate
    youth_ids: list[str] = []
    headcount: int = pydantic.Field(default=0, ge=0)
    campaign_id: str | None = None
    description_length: int = 0


@CONTACTS.register
class ActivityCorrected(DomainEvent):
    event_type = "ActivityCorrected"
    stream_type = "activity"
    activity_id: str
    kind: ActivityKind
    organiser_cadre_id: str | None
    organiser_org_id: str
    org_path: str
    collective: bool
    occurred_on: CivilDate
    youth_ids: list[str] = []
    headcount: int = pydantic.Field(default=0, ge=0)
    campaign_id: str | None = None
    reason: str


# --- Campaigns and nominations --------------------------------------------------------------------


@CONTACTS.register
class CampaignOpened(DomainEvent):
    """A named window with a deadline (e.g. 五四开放日周, 最美青春故事征集)."""

    event_type = "CampaignOpened"
    stream_type = "campaign"
    campaign_id: str
    org_id: str
    org_path: str
    key: str  # "may4_open_day", "most_beautiful_story", "spring_service_month", "national_day", "dec9"
    name: str
    starts_on: CivilDate
    ends_on: CivilDate
    deadline: CivilDate | None = None
    # A selection (评选) that takes nominations: 最美青春故事, 五四评优, 三下乡先进…; None in the
    # events from before the field, when only most_beautiful_story took them.
    nominations: bool | None = None


@CONTACTS.register
class CadreNominated(DomainEvent):
    """A cadre nominated in a campaign (最美青春故事推荐)."""

    event_type = "CadreNominated"
    stream_type = "campaign"
    campaign_id: str
    nomination_id: str
    cadre_id: str
    org_path: str
    nominated_by_org_id: str


# --- Spot checks (真实度抽查) -----------------------------------------------------------------------


class SpotCheckOutcome(StrEnum):
    verified = "verified"
    unreachable = "unreachable"
    not_confirmed = "not_confirmed"
    fabricated = "fabricated"


@CONTACTS.register
class SpotCheckDrawn(DomainEvent):
    event_type = "SpotCheckDrawn"
    stream_type = "spot_check"
    spot_check_id: str
    cadre_id: str
    org_path: str
    items: list[str]  # "interaction:<id>" / "activity:<id>"


@CONTACTS.register
class SpotCheckItemRecorded(DomainEvent):
    event_type = "SpotCheckItemRecorded"
    stream_type = "spot_check"
    spot_check_id: str
    cadre_id: str
    org_path: str
    item: str
    outcome: SpotCheckOutcome


# --- Work reports upward (工作情况报送) ------------------------------------------------------------
# 000: "每季度最后一个月中旬, 将本系统“五个一”工作落实情况(包括做法、经验、存在问题、下步工作安排等)报团市委";
# 002: half-yearly; 004: within 5 working days after the National Day holiday. Which reports an org
# owes, and when, follow its rules (``ReportDeadlines``); the period key says which one it is.

REPORT_SECTION_MAX = 5000


@CONTACTS.register
class WorkReportSubmitted(DomainEvent):
    """An org submitted (or, after it was returned or before it was due, resubmitted) a work report:
    做法, 经验, 存在问题, 下步工作安排. ``late``: after the due date its rules gave."""

    event_type = "WorkReportSubmitted"
    stream_type = "work_report"
    report_id: str
    org_id: str
    org_path: str
    period: str  # 2026-Q4, 2026-H2, 2026-annual
    revision: int = pydantic.Field(ge=1)
    due_on: CivilDate
    late: bool
    practice: str = pydantic.Field(max_length=REPORT_SECTION_MAX)
    experience: str = pydantic.Field(max_length=REPORT_SECTION_MAX)
    problems: str = pydantic.Field(max_length=REPORT_SECTION_MAX)
    next_steps: str = pydantic.Field(max_length=REPORT_SECTION_MAX)


@CONTACTS.register
class WorkReportReturned(DomainEvent):
    """The receiving org sent a report back for rework (退回), with its reason."""

    event_type = "WorkReportReturned"
    stream_type = "work_report"
    report_id: str
    org_id: str
    org_path: str
    period: str
    revision: int = pydantic.Field(ge=1)
    reason: str = pydantic.Field(min_length=1, max_length=500)


# --- Cadre cards, join codes and PII access (contacts-work) ---------------------------------------


@CONTACTS.register
class CadreCardPublished(DomainEvent):
    """The cadre's public card (亮身份): which channels they answer on.

    The channel ids themselves (WeChat / QQ / Weibo accounts) identify a person: they stay in the
    contacts vault, sealed with the cadre's own key; the event names the channels only.
    """

    event_type = "CadreCardPublished"
    stream_type = "cadre"
    cadre_id: str
    org_path: str
    channels: list[Channel] = []


@CONTACTS.register
class JoinCodeIssued(DomainEvent):
    """A join code (联系码) printed on the cadre's card; youths use it to ask to be linked.

    The card is public by design, so the code is too; issuing a new one retires the old.
    """

    event_type = "JoinCodeIssued"
    stream_type = "cadre"
    cadre_id: str
    org_path: str
    join_code: str


@CONTACTS.register
class SpotCheckContactsRevealed(DomainEvent):
    """An administrator was shown the phone numbers of a spot check's youths (audit, no numbers)."""

    event_type = "SpotCheckContactsRevealed"
    stream_type = "spot_check"
    spot_check_id: str
    cadre_id: str
    org_path: str
    youth_ids: list[str]
    revealed_to: str
