"""联系记录: a logged interaction, the youth's word on it, and corrections.

"No data without process" (000): a real summary, youths linked at that time, a time not in the
future. Nothing is overwritten: a correction is a new event, and the youths' answers start over
because they confirmed what was logged before.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from tuanlian.shared.aggregate import Aggregate
from tuanlian.shared.contracts.contacts import (
    Channel,
    InteractionConfirmed,
    InteractionCorrected,
    InteractionDisputed,
    InteractionLogged,
)
from tuanlian.shared.errors import IllegalTransition, RuleViolation

if TYPE_CHECKING:
    from tuanlian.contacts.domain.model import Cadre

MIN_SUMMARY_CHARS = 10
CLOCK_SKEW = timedelta(minutes=5)


def check_record(
    youth_ids: list[str],
    linked_since: dict[str, datetime],
    occurred_at: datetime,
    summary: str,
    now: datetime,
) -> str:
    """The rules a logged or corrected interaction meets; returns the trimmed summary."""
    if not youth_ids:
        raise RuleViolation("an interaction names at least one youth", field="youth_ids")
    if occurred_at > now + CLOCK_SKEW:
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
    return text


def summary_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class Interaction(Aggregate):
    """联系记录."""

    stream_type = "interaction"
    label = "interaction"

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.cadre_id = ""
        self.org_path = ""
        self.youth_ids: list[str] = []
        self.occurred_at: datetime | None = None
        self.answers: dict[str, str] = {}  # youth id → "confirmed" | "disputed"

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
        text = check_record(youth_ids, linked_since, occurred_at, summary, now)
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
                summary_hash=summary_hash(text),
            )
        )
        return interaction

    def answer_of(self, youth_id: str) -> str:
        return self.answers.get(youth_id, "pending")

    def _youth_may_answer(self, youth_id: str) -> None:
        if youth_id not in self.youth_ids:
            raise RuleViolation("this interaction was not logged with you", field="youth_id")
        current = self.answer_of(youth_id)
        if current != "pending":
            raise IllegalTransition(f"you have already {current} this interaction", current=current)

    def confirm(self, youth_id: str) -> None:
        """青年确认."""
        self._youth_may_answer(youth_id)
        self._record(
            InteractionConfirmed(
                interaction_id=self.id, cadre_id=self.cadre_id, youth_id=youth_id, org_path=self.org_path
            )
        )

    def dispute(self, youth_id: str, reason: str | None) -> None:
        """青年异议: it did not happen as logged."""
        self._youth_may_answer(youth_id)
        self._record(
            InteractionDisputed(
                interaction_id=self.id,
                cadre_id=self.cadre_id,
                youth_id=youth_id,
                org_path=self.org_path,
                reason=reason,
            )
        )

    def correct(
        self,
        youth_ids: list[str],
        linked_since: dict[str, datetime],
        channel: Channel,
        occurred_at: datetime,
        summary: str,
        reason: str,
        now: datetime,
    ) -> None:
        """更正: recorded beside the original, never over it."""
        if len(reason.strip()) < 2:
            raise RuleViolation("say why the record is corrected", field="reason")
        text = check_record(youth_ids, linked_since, occurred_at, summary, now)
        self._record(
            InteractionCorrected(
                interaction_id=self.id,
                cadre_id=self.cadre_id,
                org_path=self.org_path,
                youth_ids=sorted(set(youth_ids)),
                channel=channel,
                online=channel.online,
                occurred_at=occurred_at,
                summary_length=len(text),
                summary_hash=summary_hash(text),
                reason=reason.strip(),
            )
        )

    def when_InteractionLogged(self, e: InteractionLogged) -> None:
        self.cadre_id, self.org_path, self.youth_ids, self.occurred_at = (
            e.cadre_id,
            e.org_path,
            e.youth_ids,
            e.occurred_at,
        )

    def when_InteractionCorrected(self, e: InteractionCorrected) -> None:
        self.youth_ids, self.occurred_at, self.answers = e.youth_ids, e.occurred_at, {}

    def when_InteractionConfirmed(self, e: InteractionConfirmed) -> None:
        self.answers[e.youth_id] = "confirmed"

    def when_InteractionDisputed(self, e: InteractionDisputed) -> None:
        self.answers[e.youth_id] = "disputed"
