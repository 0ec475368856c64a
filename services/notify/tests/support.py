"""Envelopes of the producers' contracts, and applying them through notify's handlers."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

from nats.js import JetStreamContext
from tuanlian.notify.adapters.projections import contacts_handlers, scoring_handlers, wishes_handlers
from tuanlian.shared.consumer import ProjectionTx
from tuanlian.shared.db import Database
from tuanlian.shared.events import DomainEvent, Envelope, new_id

SCHEMA = "notify"
_versions: dict[str, itertools.count[int]] = {}
_producer = {"contacts": contacts_handlers, "wishes": wishes_handlers, "scoring": scoring_handlers}


def producer_of(event: DomainEvent) -> str:
    module = type(event).__module__.rsplit(".", 1)[-1]
    return module


def envelope(event: DomainEvent, at: datetime | None = None, stream_id: str | None = None) -> Envelope:
    sid = stream_id or f"{event.stream_type}-{new_id()}"
    version = next(_versions.setdefault(sid, itertools.count(1)))
    return Envelope(
        event_id=new_id(), event_type=event.event_type, producer=producer_of(event),
        stream_type=event.stream_type, stream_id=sid, stream_version=version,
        occurred_at=at or datetime.now(UTC), payload=event.model_dump(mode="json"),
    )


async def apply(db: Database, *events: DomainEvent | tuple[DomainEvent, datetime],
                channels: tuple[str, ...] = ()) -> None:
    """Run events through the same handlers the consumers run, in one transaction."""
    async with db.transaction() as conn:
        tx = ProjectionTx(conn)
        for item in events:
            event, at = item if isinstance(item, tuple) else (item, None)
            env = envelope(event, at)
            factory: Any = _producer[env.producer]
            handlers = factory(SCHEMA, channels) if env.producer != "scoring" else factory(SCHEMA)
            await handlers[env.event_type](tx, env, event)
        await tx.flush()


async def publish(js: JetStreamContext, event: DomainEvent, at: datetime | None = None,
                  stream_id: str | None = None) -> Envelope:
    env = envelope(event, at, stream_id)
    await js.publish(env.subject, env.model_dump_json().encode(), headers={"Nats-Msg-Id": str(env.event_id)})
    return env


async def inbox(db: Database, recipient: str | None = None) -> list[dict[str, Any]]:
    async with db.connection() as conn:
        rows = await conn.fetch(
            f"SELECT * FROM {SCHEMA}.inbox WHERE $1::text IS NULL OR recipient_id = $1 ORDER BY seq", recipient)
    return [dict(r) for r in rows]
