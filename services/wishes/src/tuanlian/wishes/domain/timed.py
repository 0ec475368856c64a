"""Aggregates that know when each of their events happened.

Deadlines (untouched days, claim deadlines, expiry, answer limits) are decided inside the
aggregate, so it needs the time of every past event; the repository hands it each envelope's
``occurred_at`` before applying it, and commands stamp new events with the caller's clock.
"""

from __future__ import annotations

from datetime import UTC, datetime

from tuanlian.shared.aggregate import Aggregate
from tuanlian.shared.events import DomainEvent

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class TimedAggregate(Aggregate):
    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.at = EPOCH  # time of the event being applied

    def _emit(self, now: datetime, event: DomainEvent) -> None:
        self.at = now
        self._record(event)
