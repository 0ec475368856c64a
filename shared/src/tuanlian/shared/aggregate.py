"""Event-sourced aggregates and the repository that loads and saves them through the event store.

An aggregate decides: its command methods check the rules against current state and ``_record``
new events; state changes only by applying events (``when_<EventType>`` methods), so replaying
the stream rebuilds exactly the state the decision was made on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Generic, Self, TypeVar

import asyncpg
from tuanlian.shared.errors import NotFound
from tuanlian.shared.events import DomainEvent, Envelope
from tuanlian.shared.eventstore import UNKNOWN, EventStore, HeadUnknown, Metadata


class Aggregate:
    stream_type: ClassVar[str]
    label: ClassVar[str] = "record"

    def __init__(self, id: str) -> None:
        self.id = id
        self.version = 0
        self.pending: list[DomainEvent] = []
        # Hash of the stream's last stored event, when known (set by the repository that loaded
        # or saved it): lets the append skip reading the head again.
        self.head_hash: str | None = None

    @property
    def stream_id(self) -> str:
        return f"{self.stream_type}-{self.id}"

    def _record(self, event: DomainEvent) -> None:
        self._apply(event)
        self.pending.append(event)

    def _apply(self, event: DomainEvent) -> None:
        handler = getattr(self, f"when_{event.event_type}", None)
        if handler is not None:
            handler(event)
        self.version += 1

    @classmethod
    def rehydrate(cls, id: str, events: Sequence[DomainEvent]) -> Self:
        agg = cls(id)
        for e in events:
            agg._apply(e)
        return agg


A = TypeVar("A", bound=Aggregate)


class Repository(Generic[A]):
    def __init__(self, store: EventStore, cls: type[A]) -> None:
        self.store = store
        self.cls = cls

    async def find(self, conn: asyncpg.Connection, id: str) -> A | None:
        stream_id = f"{self.cls.stream_type}-{id}"
        envelopes = await self.store.read_stream(conn, stream_id)
        if not envelopes:
            return None
        agg = self.cls.rehydrate(id, [self.store.contracts.decode(e) for e in envelopes])
        agg.head_hash = envelopes[-1].hash
        return agg

    async def get(self, conn: asyncpg.Connection, id: str) -> A:
        agg = await self.find(conn, id)
        if agg is None:
            raise NotFound(f"{self.cls.label} {id} not found")
        return agg

    async def save(
        self,
        conn: asyncpg.Connection,
        agg: A,
        meta: Metadata,
        also: tuple[str, Sequence[Any]] | None = None,
    ) -> list[Envelope]:
        """Append the aggregate's new events (``also``: see :meth:`EventStore.append`)."""
        pending, agg.pending = agg.pending, []
        expected = agg.version - len(pending)
        head: str | HeadUnknown | None = agg.head_hash if agg.head_hash is not None else UNKNOWN
        envelopes = await self.store.append(
            conn, agg.stream_id, expected, pending, meta, head_hash=head, also=also
        )
        if envelopes:
            agg.head_hash = envelopes[-1].hash
        return envelopes
