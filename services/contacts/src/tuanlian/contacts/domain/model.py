"""Contacts' aggregates: contact links and interactions (orgs in ``orgs``, people in ``people``).

Pure: no I/O. Each command method checks the League's rules against the state rebuilt from
events and records new events; the application layer loads, calls and saves.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from tuanlian.contacts.domain.orgs import Org
from tuanlian.contacts.domain.people import Cadre, Youth
from tuanlian.shared.aggregate import Aggregate
from tuanlian.shared.contracts.contacts import (
    Channel,
    ContactLinkAccepted,
    ContactLinkDeclined,
    ContactLinkEnded,
    ContactLinkInvited,
    InteractionLogged,
)
from tuanlian.shared.errors import IllegalTransition, RuleViolation

MIN_SUMMARY_CHARS = 10

__all__ = ["Cadre", "ContactLink", "Interaction", "Org", "Youth"]


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
