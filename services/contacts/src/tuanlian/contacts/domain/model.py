"""Contacts' aggregates: organisations, cadres, youths, contact links and interactions.

Pure: no I/O. Each command method checks the League's rules against the state rebuilt from
events and records new events; the application layer loads, calls and saves.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from tuanlian.shared.aggregate import Aggregate
from tuanlian.shared.contracts.contacts import (
    CadreKind,
    CadreRegistered,
    Channel,
    ContactLinkAccepted,
    ContactLinkDeclined,
    ContactLinkEnded,
    ContactLinkInvited,
    Field,
    InteractionLogged,
    OrgCreated,
    OrgType,
    YouthRegistered,
)
from tuanlian.shared.errors import IllegalTransition, RuleViolation

MIN_SUMMARY_CHARS = 10


class Org(Aggregate):
    """团组织."""

    stream_type = "org"
    label = "organisation"

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.path = ""
        self.depth = 0
        self.is_leadership_organ = False

    @classmethod
    def create(
        cls,
        org_id: str,
        name: str,
        org_type: OrgType,
        parent: Org | None,
        is_leadership_organ: bool,
    ) -> Org:
        if not name.strip():
            raise RuleViolation("an organisation needs a name", field="name")
        org = cls(org_id)
        path = f"{parent.path}/{org_id}" if parent else f"/{org_id}"
        org._record(
            OrgCreated(
                org_id=org_id,
                parent_id=parent.id if parent else None,
                name=name.strip(),
                org_type=org_type,
                depth=(parent.depth + 1) if parent else 0,
                is_leadership_organ=is_leadership_organ,
                org_path=path,
            )
        )
        return org

    def when_OrgCreated(self, e: OrgCreated) -> None:
        self.path = e.org_path
        self.depth = e.depth
        self.is_leadership_organ = e.is_leadership_organ


class Cadre(Aggregate):
    """团干部."""

    stream_type = "cadre"
    label = "cadre"

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.org_id = ""
        self.org_path = ""
        self.kind = CadreKind.part_time
        self.in_leadership_organ = False
        self.active = False

    @classmethod
    def register(cls, cadre_id: str, org: Org, kind: CadreKind, in_leadership_organ: bool) -> Cadre:
        cadre = cls(cadre_id)
        cadre._record(
            CadreRegistered(
                cadre_id=cadre_id,
                org_id=org.id,
                org_path=org.path,
                kind=kind,
                in_leadership_organ=in_leadership_organ,
            )
        )
        return cadre

    def when_CadreRegistered(self, e: CadreRegistered) -> None:
        self.org_id, self.org_path, self.kind, self.active = e.org_id, e.org_path, e.kind, True
        self.in_leadership_organ = e.in_leadership_organ


class Youth(Aggregate):
    """青年."""

    stream_type = "youth"
    label = "youth"

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.org_path: str | None = None

    @classmethod
    def register(
        cls,
        youth_id: str,
        org: Org | None,
        field: Field | None,
        grade: str | None = None,
        political_status: str | None = None,
        family_situation: str | None = None,
        special_care: list[str] | None = None,
    ) -> Youth:
        youth = cls(youth_id)
        youth._record(
            YouthRegistered(
                youth_id=youth_id,
                org_id=org.id if org else None,
                org_path=org.path if org else None,
                field=field,
                grade=grade,
                political_status=political_status,
                family_situation=family_situation,
                special_care=special_care or [],
            )
        )
        return youth

    def when_YouthRegistered(self, e: YouthRegistered) -> None:
        self.org_path = e.org_path


class ContactLink(Aggregate):
    """联系: one cadre ↔ one youth. Counts only once the youth has accepted (never forced)."""

    stream_type = "contact_link"
    label = "contact link"

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.state = "none"
        self.cadre_id = ""
        self.youth_id = ""
        self.org_path = ""
        self.accepted_at: datetime | None = None

    @staticmethod
    def id_for(cadre_id: str, youth_id: str) -> str:
        return f"{cadre_id}.{youth_id}"

    def invite(self, cadre: Cadre, youth_id: str, initiated_by: str) -> None:
        if self.state in ("invited", "active"):
            raise IllegalTransition(f"the link is already {self.state}", current=self.state)
        if not cadre.active:
            raise RuleViolation("the cadre is not active", field="cadre_id")
        self._record(
            ContactLinkInvited(
                link_id=self.id,
                cadre_id=cadre.id,
                youth_id=youth_id,
                org_path=cadre.org_path,
                initiated_by=initiated_by,
            )
        )

    def accept(self) -> None:
        if self.state != "invited":
            raise IllegalTransition(
                f"only an invitation can be accepted; the link is {self.state}", current=self.state
            )
        self._record(
            ContactLinkAccepted(
                link_id=self.id, cadre_id=self.cadre_id, youth_id=self.youth_id, org_path=self.org_path
            )
        )

    def decline(self) -> None:
        if self.state != "invited":
            raise IllegalTransition(
                f"only an invitation can be declined; the link is {self.state}", current=self.state
            )
        self._record(ContactLinkDeclined(link_id=self.id, cadre_id=self.cadre_id, youth_id=self.youth_id))

    def end(self, ended_by: str) -> None:
        if self.state not in ("invited", "active"):
            raise IllegalTransition(f"the link is {self.state}", current=self.state)
        self._record(
            ContactLinkEnded(
                link_id=self.id, cadre_id=self.cadre_id, youth_id=self.youth_id, ended_by=ended_by
            )
        )

    def when_ContactLinkInvited(self, e: ContactLinkInvited) -> None:
        self.state, self.cadre_id, self.youth_id, self.org_path = (
            "invited",
            e.cadre_id,
            e.youth_id,
            e.org_path,
        )

    def when_ContactLinkAccepted(self, e: ContactLinkAccepted) -> None:
        self.state = "active"

    def when_ContactLinkDeclined(self, e: ContactLinkDeclined) -> None:
        self.state = "declined"

    def when_ContactLinkEnded(self, e: ContactLinkEnded) -> None:
        self.state = "ended"


class Interaction(Aggregate):
    """联系记录. 'No data without process': a real summary, real youths, a real time."""

    stream_type = "interaction"
    label = "interaction"

    @classmethod
    def log(
        cls,
        interaction_id: str,
        cadre: Cadre,
        youth_ids: list[str],
        linked_since: dict[str, datetime],
        channel: Channel,
        occurred_at: datetime,
        summary: str,
        now: datetime,
    ) -> Interaction:
        if not youth_ids:
            raise RuleViolation("an interaction names at least one youth", field="youth_ids")
        if occurred_at > now + timedelta(minutes=5):
            raise RuleViolation("an interaction cannot be in the future", field="occurred_at")
        for y in youth_ids:
            since = linked_since.get(y)
            if since is None:
                raise RuleViolation(f"youth {y} is not linked to this cadre", field="youth_ids")
            if occurred_at < since:
                raise RuleViolation(
                    f"the link with youth {y} did not exist yet at that time", field="occurred_at"
                )
        text = summary.strip()
        if len(text) < MIN_SUMMARY_CHARS:
            raise RuleViolation(f"the summary needs at least {MIN_SUMMARY_CHARS} characters", field="summary")
        interaction = cls(interaction_id)
        interaction._record(
            InteractionLogged(
                interaction_id=interaction_id,
                cadre_id=cadre.id,
                org_path=cadre.org_path,
                youth_ids=sorted(set(youth_ids)),
                channel=channel,
                online=channel.online,
                occurred_at=occurred_at,
                summary_length=len(text),
                summary_hash=hashlib.sha256(text.encode()).hexdigest()[:16],
            )
        )
        return interaction
