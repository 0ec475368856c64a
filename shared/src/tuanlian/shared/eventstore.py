"""Append-only Postgres event store, one ``events`` table per service schema.

Shape (after Marten and Message DB): a global position from an identity column, a per-stream
version with a unique constraint (optimistic concurrency), the writing transaction's id
(``xid8``), and a per-stream hash chain. Reading "everything, in commit order" uses the xid8
*commit horizon*: rows written by transactions older than the oldest still-running transaction
can no longer change, so ``(tx_id, global_position) > checkpoint AND tx_id < horizon`` never skips
a transaction that took its position early and committed late, and needs no global lock.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
from tuanlian.shared.events import ContractRegistry, DomainEvent, Envelope, new_id, utcnow


class HeadUnknown:
    """The caller does not know the stream's head hash (the store reads it)."""


UNKNOWN = HeadUnknown()


class ConcurrencyConflict(Exception):
    """The stream moved since it was read (HTTP 409: read again and retry)."""

    def __init__(self, stream_id: str, expected: int, actual: int | None) -> None:
        self.stream_id = stream_id
        self.expected = expected
        self.actual = actual
        moved = (f"was written past version {expected} by another request at the same moment" if actual is None
                 else f"is at version {actual}, not {expected}: it was changed concurrently")
        super().__init__(f"stream {stream_id} {moved}; reload and retry")


@dataclass(frozen=True)
class Metadata:
    """Who caused an append and why (carried into every envelope)."""

    actor: str | None = None
    org_path: str | None = None
    correlation_id: UUID | None = None
    causation_id: UUID | None = None
    occurred_at: datetime | None = None


@dataclass(frozen=True, order=True)
class Position:
    """A place in commit order: (writing transaction id, global position)."""

    tx_id: int = 0
    global_position: int = 0


_ENVELOPE_COLUMNS = (
    "event_id, event_type, schema_version, stream_type, stream_id, stream_version, occurred_at, "
    "recorded_at, actor, org_path, correlation_id, causation_id, payload, global_position, "
    "prev_hash, hash"
)


def platform_ddl(schema: str) -> str:
    """Tables every service schema has: its event log, relay checkpoint and consumer state."""
    s = schema
    return f"""
CREATE SCHEMA IF NOT EXISTS {s};
CREATE TABLE IF NOT EXISTS {s}.events (
    global_position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tx_id xid8 NOT NULL DEFAULT pg_current_xact_id(),
    event_id uuid NOT NULL UNIQUE,
    event_type text NOT NULL,
    schema_version int NOT NULL,
    stream_type text NOT NULL,
    stream_id text NOT NULL,
    stream_version int NOT NULL,
    occurred_at timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    actor text,
    org_path text,
    correlation_id uuid,
    causation_id uuid,
    payload jsonb NOT NULL,
    prev_hash text,
    hash text NOT NULL,
    UNIQUE (stream_id, stream_version)
);
CREATE INDEX IF NOT EXISTS events_commit_order ON {s}.events (tx_id, global_position);
CREATE OR REPLACE FUNCTION {s}.events_are_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'events are immutable: append a correcting event instead'; END $$;
DROP TRIGGER IF EXISTS events_immutable ON {s}.events;
CREATE TRIGGER events_immutable BEFORE UPDATE OR DELETE ON {s}.events
    FOR EACH ROW EXECUTE FUNCTION {s}.events_are_immutable();
CREATE TABLE IF NOT EXISTS {s}.relay_checkpoint (
    relay text PRIMARY KEY,
    tx_id xid8 NOT NULL,
    global_position bigint NOT NULL,
    published bigint NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS {s}.consumer_inbox (
    consumer text NOT NULL,
    event_id uuid NOT NULL,
    outcome text NOT NULL DEFAULT 'applied',
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);
CREATE TABLE IF NOT EXISTS {s}.consumer_positions (
    consumer text NOT NULL,
    stream_id text NOT NULL,
    stream_version int NOT NULL,
    PRIMARY KEY (consumer, stream_id)
);
CREATE TABLE IF NOT EXISTS {s}.consumer_checkpoint (
    consumer text PRIMARY KEY,
    stream_sequence bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS {s}.consumer_failures (
    consumer text NOT NULL,
    event_id uuid NOT NULL,
    attempts int NOT NULL,
    last_error text NOT NULL,
    dead_lettered boolean NOT NULL DEFAULT false,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);
"""


def _row_to_envelope(producer: str, row: asyncpg.Record) -> Envelope:
    payload = row["payload"]
    if isinstance(payload, str | bytes):  # a connection without the JSON codec
        payload = json.loads(payload)
    return Envelope(
        event_id=row["event_id"],
        event_type=row["event_type"],
        schema_version=row["schema_version"],
        producer=producer,
        stream_type=row["stream_type"],
        stream_id=row["stream_id"],
        stream_version=row["stream_version"],
        occurred_at=row["occurred_at"],
        recorded_at=row["recorded_at"],
        actor=row["actor"],
        org_path=row["org_path"],
        correlation_id=row["correlation_id"],
        causation_id=row["causation_id"],
        payload=payload,
        global_position=row["global_position"],
        prev_hash=row["prev_hash"],
        hash=row["hash"],
    )


class EventStore:
    """One producer's event log in its own schema."""

    def __init__(self, schema: str, producer: str, contracts: ContractRegistry) -> None:
        self.schema = schema
        self.producer = producer
        self.contracts = contracts
        s = schema
        self._sql_head = (
            f"SELECT stream_version, hash FROM {s}.events WHERE stream_id = $1 "
            "ORDER BY stream_version DESC LIMIT 1"
        )
        self._sql_insert = (
            f"INSERT INTO {s}.events (event_id, event_type, schema_version, stream_type, "
            "stream_id, stream_version, occurred_at, actor, org_path, correlation_id, "
            "causation_id, payload, prev_hash, hash) "
            "SELECT u.event_id, u.event_type, u.schema_version, u.stream_type, u.stream_id, "
            "u.stream_version, u.occurred_at, u.actor, u.org_path, u.correlation_id, "
            "u.causation_id, u.payload::jsonb, u.prev_hash, u.hash "
            "FROM unnest($1::uuid[], $2::text[], $3::int[], $4::text[], $5::text[], "
            "$6::int[], $7::timestamptz[], $8::text[], $9::text[], $10::uuid[], $11::uuid[], "
            "$12::text[], $13::text[], $14::text[]) AS u(event_id, event_type, schema_version, "
            "stream_type, stream_id, stream_version, occurred_at, actor, org_path, "
            "correlation_id, causation_id, payload, prev_hash, hash) "
            # The stream is still where the caller says (version and head hash), checked in the
            # same statement: one round trip per append. Two writers racing past this check
            # still collide on UNIQUE (stream_id, stream_version).
            f"WHERE (SELECT max(stream_version) FROM {s}.events WHERE stream_id = $15) "
            "IS NOT DISTINCT FROM nullif($16::int, 0) "
            f"AND (SELECT hash FROM {s}.events WHERE stream_id = $15 AND stream_version = $16::int) "
            "IS NOT DISTINCT FROM $17::text "
            "RETURNING global_position, recorded_at, stream_version"
        )

    async def append(
        self,
        conn: asyncpg.Connection,
        stream_id: str,
        expected_version: int,
        events: Sequence[DomainEvent],
        meta: Metadata | None = None,
        *,
        head_hash: str | HeadUnknown | None = UNKNOWN,
        also: tuple[str, Sequence[Any]] | None = None,
    ) -> list[Envelope]:
        """Append ``events`` to ``stream_id`` if it is still at ``expected_version``.

        Runs inside the caller's transaction, so the events commit together with any state the
        caller writes beside them (they *are* the outbox). Raises :class:`ConcurrencyConflict`.

        ``head_hash`` is the hash of the stream's event at ``expected_version`` when the caller
        already has it (it just read the stream): the append is then one statement, which checks
        version and hash in SQL. A new stream (``expected_version`` 0) needs none. Otherwise the
        head is read first (one more round trip).

        ``also`` is ``(sql, args)``: one more data-modifying statement (a read-model row) run in
        the *same statement* as the insert, as a CTE beside it. It may read the inserted events
        from ``appended(global_position, recorded_at, stream_version)``, and its parameters are
        numbered from ``$18``. Atomic with the events even outside an explicit transaction: a
        command that reads once and writes once then needs two round trips in all.
        """
        if not events:
            return []
        meta = meta or Metadata()
        prev_hash: str | None
        if expected_version == 0:
            prev_hash = None
        elif isinstance(head_hash, HeadUnknown):
            head = await conn.fetchrow(self._sql_head, stream_id)
            actual = head["stream_version"] if head else 0
            if actual != expected_version:
                raise ConcurrencyConflict(stream_id, expected_version, actual)
            prev_hash = head["hash"] if head else None
        else:
            prev_hash = head_hash
        occurred = meta.occurred_at or utcnow()
        envelopes: list[Envelope] = []
        for offset, event in enumerate(events, start=1):
            if event.event_type not in self.contracts:
                raise ValueError(f"{event.event_type} is not a registered {self.producer} event")
            draft = Envelope(
                event_id=new_id(),
                event_type=event.event_type,
                schema_version=event.schema_version,
                producer=self.producer,
                stream_type=event.stream_type,
                stream_id=stream_id,
                stream_version=expected_version + offset,
                occurred_at=occurred,
                actor=meta.actor,
                org_path=meta.org_path,
                correlation_id=meta.correlation_id,
                causation_id=meta.causation_id,
                payload=event.model_dump(mode="json"),
                prev_hash=prev_hash,
            )
            digest = draft.chain_hash(prev_hash)
            envelopes.append(draft.model_copy(update={"hash": digest}))
            prev_hash = digest
        columns: list[list[Any]] = [
            [e.event_id for e in envelopes],
            [e.event_type for e in envelopes],
            [e.schema_version for e in envelopes],
            [e.stream_type for e in envelopes],
            [e.stream_id for e in envelopes],
            [e.stream_version for e in envelopes],
            [e.occurred_at for e in envelopes],
            [e.actor for e in envelopes],
            [e.org_path for e in envelopes],
            [e.correlation_id for e in envelopes],
            [e.causation_id for e in envelopes],
            [json.dumps(e.payload) for e in envelopes],
            [e.prev_hash for e in envelopes],
            [e.hash for e in envelopes],
        ]
        sql, extra = self._sql_insert, ()
        if also is not None:
            sql = (
                f"WITH appended AS ({self._sql_insert}), also AS ({also[0]}) "
                "SELECT global_position, recorded_at FROM appended ORDER BY stream_version"
            )
            extra = tuple(also[1])
        try:
            rows = await conn.fetch(sql, *columns, stream_id, expected_version, envelopes[0].prev_hash, *extra)
        except asyncpg.UniqueViolationError as exc:
            raise ConcurrencyConflict(stream_id, expected_version, None) from exc
        if not rows:
            # The stream is not where the caller said: say where it is.
            head = await conn.fetchrow(self._sql_head, stream_id)
            raise ConcurrencyConflict(stream_id, expected_version, head["stream_version"] if head else 0)
        return [
            e.model_copy(update={"global_position": r["global_position"], "recorded_at": r["recorded_at"]})
            for e, r in zip(envelopes, rows, strict=True)
        ]

    async def read_stream(
        self, conn: asyncpg.Connection, stream_id: str, after_version: int = 0
    ) -> list[Envelope]:
        rows = await conn.fetch(
            f"SELECT {_ENVELOPE_COLUMNS} FROM {self.schema}.events "
            "WHERE stream_id = $1 AND stream_version > $2 ORDER BY stream_version",
            stream_id,
            after_version,
        )
        return [_row_to_envelope(self.producer, r) for r in rows]

    async def read_committed(
        self, conn: asyncpg.Connection, after: Position, limit: int = 1000
    ) -> list[tuple[Position, Envelope]]:
        """Events after ``after`` in commit order, up to the commit horizon."""
        rows = await conn.fetch(
            f"SELECT {_ENVELOPE_COLUMNS}, tx_id::text AS tx FROM {self.schema}.events "
            "WHERE (tx_id, global_position) > ($1::text::xid8, $2) "
            "AND tx_id < pg_snapshot_xmin(pg_current_snapshot()) "
            "ORDER BY tx_id, global_position LIMIT $3",
            str(after.tx_id),
            after.global_position,
            limit,
        )
        return [
            (Position(int(r["tx"]), r["global_position"]), _row_to_envelope(self.producer, r))
            for r in rows
        ]

    async def verify_chains(self, conn: asyncpg.Connection) -> list[str]:
        """Every broken link in every stream's hash chain (empty when the log is intact)."""
        if not conn.is_in_transaction():
            # A server-side cursor needs a transaction; one snapshot also keeps the check
            # consistent while writers append.
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                return await self.verify_chains(conn)
        problems: list[str] = []
        previous: dict[str, tuple[int, str]] = {}
        async for row in conn.cursor(
            f"SELECT {_ENVELOPE_COLUMNS} FROM {self.schema}.events ORDER BY stream_id, stream_version"
        ):
            env = _row_to_envelope(self.producer, row)
            last = previous.get(env.stream_id)
            expected_prev = last[1] if last else None
            expected_version = (last[0] if last else 0) + 1
            if env.stream_version != expected_version:
                problems.append(
                    f"{env.stream_id}: version {env.stream_version} follows {expected_version - 1}"
                )
            if env.prev_hash != expected_prev or env.chain_hash(expected_prev) != env.hash:
                problems.append(f"{env.stream_id} v{env.stream_version} ({env.event_id}): hash mismatch")
            previous[env.stream_id] = (env.stream_version, env.hash or "")
        return problems
