"""Contracts, envelopes and a probe projection shared by the platform tests.

Imported by the tests in this directory (``conftest.py`` puts this directory on ``sys.path``).
The "demo" producer publishes things; the "probe" service consumes them into a projection that
records, per aggregate, every version it applied, in the order it applied them.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from nats.js import JetStreamContext
from tuanlian.shared.consumer import EventConsumer, Handler, ProjectionTx
from tuanlian.shared.db import Database
from tuanlian.shared.events import ContractRegistry, DomainEvent, Envelope, new_id

PRODUCER = "demo"
SERVICE = "probe"
SCHEMA = "probe"  # the consuming service's schema
STORE_SCHEMA = "demo"  # the producing service's schema

contracts = ContractRegistry(PRODUCER)


@contracts.register
class ThingCreated(DomainEvent):
    event_type = "thing.created"
    stream_type = "thing"
    name: str


@contracts.register
class ThingTicked(DomainEvent):
    event_type = "thing.ticked"
    stream_type = "thing"
    n: int


@contracts.register
class ThingRenamed(DomainEvent):
    """v2: v1 had only ``name``; v2 says what the new name is and why."""

    event_type = "thing.renamed"
    schema_version = 2
    stream_type = "thing"
    new_name: str
    reason: str


@contracts.upcaster("thing.renamed", 1)
def _renamed_v1_to_v2(p: dict[str, Any]) -> dict[str, Any]:
    return {"new_name": p["name"], "reason": "unspecified (v1)"}


@contracts.register
class ThingBroke(DomainEvent):
    event_type = "thing.broke"
    stream_type = "thing"
    why: str


# What the producer looked like before ThingRenamed v2 existed.
old_contracts = ContractRegistry(PRODUCER)
old_contracts.register(ThingCreated)
old_contracts.register(ThingTicked)


@old_contracts.register
class ThingRenamedV1(DomainEvent):
    event_type = "thing.renamed"
    schema_version = 1
    stream_type = "thing"
    name: str


def projection_ddl(schema: str = SCHEMA) -> str:
    return f"""
CREATE TABLE IF NOT EXISTS {schema}.applied (
    stream_id text PRIMARY KEY,
    versions int[] NOT NULL
);
CREATE TABLE IF NOT EXISTS {schema}.effects (
    event_id uuid NOT NULL,
    stream_id text NOT NULL,
    stream_version int NOT NULL,
    event_type text NOT NULL,
    decoded jsonb NOT NULL
);
"""


async def record(tx: ProjectionTx, env: Envelope, event: DomainEvent) -> None:
    """The probe projection: append the version to the aggregate's list, log the effect."""
    s = SCHEMA
    tx.execute(
        f"INSERT INTO {s}.applied (stream_id, versions) VALUES ($1, ARRAY[$2::int]) "
        f"ON CONFLICT (stream_id) DO UPDATE SET versions = {s}.applied.versions || $2::int",
        env.stream_id,
        env.stream_version,
    )
    tx.execute(
        f"INSERT INTO {s}.effects (event_id, stream_id, stream_version, event_type, decoded) "
        "VALUES ($1, $2, $3, $4, $5)",
        env.event_id,
        env.stream_id,
        env.stream_version,
        env.event_type,
        {"class": type(event).__name__, **event.model_dump(mode="json")},
    )


class HandlerBoom(RuntimeError):
    pass


async def always_fails(tx: ProjectionTx, env: Envelope, event: DomainEvent) -> None:
    raise HandlerBoom(f"cannot handle {env.event_type} of {env.stream_id}")


def make_consumer(
    db: Database, handlers: dict[str, Handler] | None = None, **overrides: Any
) -> EventConsumer:
    if handlers is None:
        handlers = {t.event_type: record for t in contracts.types()}
    options: dict[str, Any] = {
        "service": SERVICE,
        "name": "proj",
        "producer": PRODUCER,
        "contracts": contracts,
        "db": db,
        "schema": SCHEMA,
        "handlers": handlers,
        "max_deliveries": 3,
        "retry_base_delay": 0.05,
        "gap_delay": 0.05,
        "batch_size": 64,
    }
    options.update(overrides)
    return EventConsumer(**options)


def envelope(
    stream_id: str,
    version: int,
    event: DomainEvent | None = None,
    *,
    event_type: str | None = None,
    payload: dict[str, Any] | None = None,
    schema_version: int | None = None,
) -> Envelope:
    """An envelope as the relay would publish it (built by hand, to publish out of order)."""
    if event is None and payload is None:
        event = ThingTicked(n=version)
    return Envelope(
        event_id=new_id(),
        event_type=event_type or (event.event_type if event else "thing.ticked"),
        schema_version=schema_version or (event.schema_version if event else 1),
        producer=PRODUCER,
        stream_type="thing",
        stream_id=stream_id,
        stream_version=version,
        occurred_at=datetime.now(UTC),
        payload=payload if payload is not None else event.model_dump(mode="json"),  # type: ignore[union-attr]
    )


async def publish(
    js: JetStreamContext, env: Envelope | bytes, *, subject: str | None = None, msg_id: str | None = None
) -> int:
    """Publish to the producer's stream; ``msg_id`` defaults to the event id (as the relay does)."""
    if isinstance(env, Envelope):
        data = env.model_dump_json().encode()
        subject = subject or env.subject
        msg_id = msg_id or str(env.event_id)
    else:
        data = env
        assert subject is not None
    headers = {"Nats-Msg-Id": msg_id} if msg_id else None
    ack = await js.publish(subject, data, headers=headers)
    return ack.seq


async def applied_versions(db: Database) -> dict[str, list[int]]:
    async with db.connection() as conn:
        rows = await conn.fetch(f"SELECT stream_id, versions FROM {SCHEMA}.applied")
    return {r["stream_id"]: list(r["versions"]) for r in rows}


async def effects(db: Database) -> list[dict[str, Any]]:
    async with db.connection() as conn:
        rows = await conn.fetch(
            f"SELECT event_id, stream_id, stream_version, event_type, decoded FROM {SCHEMA}.effects"
        )
    return [dict(r) for r in rows]


def event_ids_of(messages: list[Any]) -> list[UUID]:
    return [UUID(json.loads(m.data)["event_id"]) for m in messages]
