"""Contact links (联系) between one cadre and one youth, and the cadre's join code (联系码).

A link counts toward the quota only once accepted, and consent always comes from the youth:
a cadre's invitation is answered by the youth; a youth's own request (through the join code) is
their consent already and is answered by the cadre, so nobody is ever counted without agreeing.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

from tuanlian.shared.aggregate import Aggregate
from tuanlian.shared.contracts.contacts import (
    ContactLinkAccepted,
    ContactLinkDeclined,
    ContactLinkEnded,
    ContactLinkInvited,
    JoinCodeIssued,
)
from tuanlian.shared.errors import IllegalTransition, RuleViolation

if TYPE_CHECKING:
    from tuanlian.contacts.domain.model import Cadre

# No 0/O/1/I/L: the code is read off a printed card.
JOIN_CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
JOIN_CODE_LENGTH = 8


def new_join_code() -> str:
    return "".join(secrets.choice(JOIN_CODE_ALPHABET) for _ in range(JOIN_CODE_LENGTH))


def issue_join_code(cadre: Cadre, code: str) -> JoinCodeIssued:
    """联系码: recorded on the cadre's stream (the cadre aggregate ignores it for its own state)."""
    if not cadre.active:
        raise IllegalTransition("the cadre is not active", current="inactive")
    event = JoinCodeIssued(cadre_id=cadre.id, org_path=cadre.org_path, join_code=code)
    cadre._record(event)
    return event


class ContactLink(Aggregate):
    """联系: one cadre ↔ one youth. Counts only once the youth has agreed (never forced)."""

    stream_type = "contact_link"
    label = "contact link"

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.state = "none"
        self.cadre_id = ""
        self.youth_id = ""
        self.org_path = ""
        self.initiated_by = "cadre"

    @staticmethod
    def id_for(cadre_id: str, youth_id: str) -> str:
        return f"{cadre_id}.{youth_id}"

    @property
    def answered_by(self) -> str:
        """Who answers a pending link: the side that did not ask."""
        return "cadre" if self.initiated_by == "youth" else "youth"

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
        self.initiated_by = e.initiated_by

    def when_ContactLinkAccepted(self, e: ContactLinkAccepted) -> None:
        self.state = "active"

    def when_ContactLinkDeclined(self, e: ContactLinkDeclined) -> None:
        self.state = "declined"

    def when_ContactLinkEnded(self, e: ContactLinkEnded) -> None:
        self.state = "ended"
