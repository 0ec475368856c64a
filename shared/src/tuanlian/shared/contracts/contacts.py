"""Event contracts published by the contacts service on the ``CONTACTS`` stream.

They carry ids and non-identifying attributes (field, grade, org path) only: names and phone
numbers never leave the contacts service (PIPL), so erasing a youth there erases them everywhere.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

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
    occurred_at: datetime
    summary_length: int
    summary_hash: str
