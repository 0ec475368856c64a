"""Activities (活动): the five ones (五个一) of cadres, collective activities of leadership organs,
一学一做 education practice, "8+4" postings, "4+1" grassroots days and open days (开放日).

Collective activities belong to leadership organs (团的领导机关) only; a cadre's activity names
linked youths or a headcount, so every counted activity has people behind it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

from tuanlian.shared.aggregate import Aggregate
from tuanlian.shared.contracts.contacts import ActivityCorrected, ActivityKind, ActivityRecorded
from tuanlian.shared.errors import RuleViolation

if TYPE_CHECKING:
    from tuanlian.contacts.domain.campaigns import Campaign
    from tuanlian.contacts.domain.model import Cadre

MIN_DESCRIPTION_CHARS = 10


@dataclass(frozen=True)
class Organiser:
    """Who organised it: a cadre, or (collective kinds) a leadership organ."""

    org_id: str
    org_path: str
    cadre_id: str | None = None
    is_leadership_organ: bool = False

    @classmethod
    def of_cadre(cls, cadre: Cadre) -> Organiser:
        return cls(org_id=cadre.org_id, org_path=cadre.org_path, cadre_id=cadre.id)


@dataclass(frozen=True)
class ActivityFacts:
    kind: ActivityKind
    occurred_on: date
    youth_ids: list[str]
    headcount: int
    description: str
    campaign: Campaign | None


def check_activity(organiser: Organiser, facts: ActivityFacts, linked: set[str], today: date) -> str:
    """The League's rules for a recorded or corrected activity; returns the trimmed description."""
    collective = facts.kind.collective_five_ones
    if collective and organiser.cadre_id is not None:
        raise RuleViolation(
            f"{facts.kind.value} is a collective activity of a leadership organ; record it for the org",
            field="kind",
        )
    if collective and not organiser.is_leadership_organ:
        raise RuleViolation(
            "collective activities are for leadership organs (团的领导机关) only", field="organiser_org_id"
        )
    if not collective and organiser.cadre_id is None:
        raise RuleViolation(f"{facts.kind.value} is organised by a cadre", field="organiser_cadre_id")
    if facts.occurred_on > today:
        raise RuleViolation("an activity cannot be in the future", field="occurred_on")
    if facts.headcount < 0:
        raise RuleViolation("the headcount cannot be negative", field="headcount")
    if facts.kind is ActivityKind.open_day and facts.headcount == 0:
        raise RuleViolation("an open day reports how many youths came", field="headcount")
    if not facts.youth_ids and facts.headcount == 0:
        raise RuleViolation("name the participating youths or give a headcount", field="youth_ids")
    if not collective:
        strangers = sorted(set(facts.youth_ids) - linked)
        if strangers:
            raise RuleViolation(
                f"youths {', '.join(strangers)} are not linked to the organising cadre", field="youth_ids"
            )
    c = facts.campaign
    if c is not None:
        if not c.applies_to(organiser.org_path):
            raise RuleViolation("this campaign is not run for your organisation", field="campaign_id")
        if not (c.starts_on <= facts.occurred_on <= c.ends_on):
            raise RuleViolation(
                f"the campaign runs {c.starts_on}–{c.ends_on}; the activity is outside it",
                field="campaign_id",
            )
    text = facts.description.strip()
    if len(text) < MIN_DESCRIPTION_CHARS:
        raise RuleViolation(
            f"the description needs at least {MIN_DESCRIPTION_CHARS} characters", field="description"
        )
    return text


class Activity(Aggregate):
    """活动."""

    stream_type = "activity"
    label = "activity"

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.organiser: Organiser | None = None
        self.kind: ActivityKind | None = None
        self.youth_ids: list[str] = []
        self.occurred_on: date | None = None

    @classmethod
    def record(
        cls, activity_id: str, organiser: Organiser, facts: ActivityFacts, linked: set[str], today: date
    ) -> Activity:
        text = check_activity(organiser, facts, linked, today)
        activity = cls(activity_id)
        activity._record(
            ActivityRecorded(
                activity_id=activity_id,
                kind=facts.kind,
                organiser_cadre_id=organiser.cadre_id,
                organiser_org_id=organiser.org_id,
                org_path=organiser.org_path,
                collective=facts.kind.collective_five_ones,
                occurred_on=facts.occurred_on,
                youth_ids=sorted(set(facts.youth_ids)),
                headcount=facts.headcount,
                campaign_id=facts.campaign.id if facts.campaign else None,
                description_length=len(text),
            )
        )
        activity.organiser = organiser
        return activity

    def correct(self, facts: ActivityFacts, linked: set[str], reason: str, today: date) -> None:
        """更正: a new event beside the original."""
        assert self.organiser is not None
        if len(reason.strip()) < 2:
            raise RuleViolation("say why the record is corrected", field="reason")
        check_activity(self.organiser, facts, linked, today)
        self._record(
            ActivityCorrected(
                activity_id=self.id,
                kind=facts.kind,
                organiser_cadre_id=self.organiser.cadre_id,
                organiser_org_id=self.organiser.org_id,
                org_path=self.organiser.org_path,
                collective=facts.kind.collective_five_ones,
                occurred_on=facts.occurred_on,
                youth_ids=sorted(set(facts.youth_ids)),
                headcount=facts.headcount,
                campaign_id=facts.campaign.id if facts.campaign else None,
                reason=reason.strip(),
            )
        )

    def when_ActivityRecorded(self, e: ActivityRecorded) -> None:
        self.organiser = Organiser(
            org_id=e.organiser_org_id,
            org_path=e.org_path,
            cadre_id=e.organiser_cadre_id,
            is_leadership_organ=e.collective,
        )
        self.kind, self.youth_ids, self.occurred_on = e.kind, e.youth_ids, e.occurred_on

    def when_ActivityCorrected(self, e: ActivityCorrected) -> None:
        self.kind, self.youth_ids, self.occurred_on = e.kind, e.youth_ids, e.occurred_on
