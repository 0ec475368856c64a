"""Campaigns (集中活动): named windows with deadlines, and selections (评选) taking nominations:
最美青春故事, and whatever an org opens as one (001: 五四评选表彰, 暑期三下乡评选先进).

Presets follow the seeds: the May-4th open day week (000), 最美青春故事 from July to December with
nominations due by the end of October (000), the service month around New Year and the Spring
Festival (000, "元旦、春节前后"), and concentrated activity at National Day and December 9th (004).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING

from tuanlian.shared.aggregate import Aggregate
from tuanlian.shared.auth import path_covers
from tuanlian.shared.contracts.contacts import CadreNominated, CampaignOpened
from tuanlian.shared.errors import IllegalTransition, RuleViolation

if TYPE_CHECKING:
    from tuanlian.contacts.domain.model import Cadre, Org

NOMINATING_KEYS = frozenset({"most_beautiful_story"})  # selections by default, when not said

# 春节 (lunar new year) dates; the service month spans New Year's Day to a week after it.
SPRING_FESTIVAL = {
    2025: date(2025, 1, 29),
    2026: date(2026, 2, 17),
    2027: date(2027, 2, 6),
    2028: date(2028, 1, 26),
    2029: date(2029, 2, 13),
    2030: date(2030, 2, 3),
    2031: date(2031, 1, 23),
    2032: date(2032, 2, 11),
    2033: date(2033, 1, 31),
    2034: date(2034, 2, 19),
    2035: date(2035, 2, 8),
}


@dataclass(frozen=True)
class CampaignPreset:
    key: str
    name: str
    starts_on: date
    ends_on: date
    deadline: date | None = None


def presets_for(year: int) -> list[CampaignPreset]:
    """The seeds' campaigns of one year (the service month is the one that starts in December)."""
    if year + 1 not in SPRING_FESTIVAL:
        raise RuleViolation(
            f"presets are known for {min(SPRING_FESTIVAL)}–{max(SPRING_FESTIVAL) - 1}", field="year"
        )
    may4 = date(year, 5, 4)
    monday = may4 - timedelta(days=may4.weekday())
    return [
        CampaignPreset("may4_open_day", "五四团的领导机关集中开放日", monday, monday + timedelta(days=6)),
        CampaignPreset(
            "most_beautiful_story", "最美青春故事", date(year, 7, 1), date(year, 12, 31), date(year, 10, 31)
        ),
        CampaignPreset("national_day", "国庆集中活动", date(year, 10, 1), date(year, 10, 7)),
        CampaignPreset("dec9", "一二·九集中活动", date(year, 12, 1), date(year, 12, 9)),
        CampaignPreset(
            "spring_service_month",
            "1+100团干部集中服务青年月 (元旦、春节前后)",
            date(year, 12, 20),
            SPRING_FESTIVAL[year + 1] + timedelta(days=7),
        ),
    ]


class Campaign(Aggregate):
    """集中活动 / 评选."""

    stream_type = "campaign"
    label = "campaign"

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.org_path = ""
        self.key = ""
        self.starts_on = date.min
        self.ends_on = date.max
        self.deadline: date | None = None
        self.nominations = False
        self.nominees: set[str] = set()

    @classmethod
    def open(
        cls,
        campaign_id: str,
        org: Org,
        key: str,
        name: str,
        starts_on: date,
        ends_on: date,
        deadline: date | None,
        nominations: bool | None = None,
    ) -> Campaign:
        if ends_on < starts_on:
            raise RuleViolation("the campaign ends before it starts", field="ends_on")
        if deadline is not None and not (starts_on <= deadline <= ends_on):
            raise RuleViolation("the deadline falls outside the campaign", field="deadline")
        if not name.strip():
            raise RuleViolation("a campaign needs a name", field="name")
        campaign = cls(campaign_id)
        campaign._record(
            CampaignOpened(
                campaign_id=campaign_id,
                org_id=org.id,
                org_path=org.path,
                key=key,
                name=name.strip(),
                starts_on=starts_on,
                ends_on=ends_on,
                deadline=deadline,
                nominations=key in NOMINATING_KEYS if nominations is None else nominations,
            )
        )
        return campaign

    def applies_to(self, org_path: str) -> bool:
        """A campaign runs for its org's whole subtree."""
        return path_covers(self.org_path, org_path)

    def nominate(self, nomination_id: str, cadre: Cadre, by_org_id: str, today: date) -> None:
        """推荐 a cadre: inside the window, by the deadline, once."""
        if not self.nominations:
            raise RuleViolation(f"campaign {self.key} is not a selection: it takes no nominations",
                                field="campaign_id")
        last = self.deadline or self.ends_on
        if today < self.starts_on:
            raise IllegalTransition(f"nominations open on {self.starts_on}", current="not_open")
        if today > last:
            raise IllegalTransition(f"nominations closed on {last}", current="closed")
        if not self.applies_to(cadre.org_path):
            raise RuleViolation("the cadre is outside this campaign's organisation", field="cadre_id")
        if not cadre.active:
            raise RuleViolation("the cadre is not active", field="cadre_id")
        if cadre.id in self.nominees:
            raise IllegalTransition("this cadre is already nominated", current="nominated")
        self._record(
            CadreNominated(
                campaign_id=self.id,
                nomination_id=nomination_id,
                cadre_id=cadre.id,
                org_path=cadre.org_path,
                nominated_by_org_id=by_org_id,
            )
        )

    def when_CampaignOpened(self, e: CampaignOpened) -> None:
        self.org_path, self.key, self.starts_on, self.ends_on, self.deadline = (
            e.org_path,
            e.key,
            e.starts_on,
            e.ends_on,
            e.deadline,
        )
        self.nominations = e.key in NOMINATING_KEYS if e.nominations is None else e.nominations

    def when_CadreNominated(self, e: CadreNominated) -> None:
        self.nominees.add(e.cadre_id)
