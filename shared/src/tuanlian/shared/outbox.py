"""Transactional outbox relay: the ``events`` table, published to JetStream in commit order.

States, as in an integration-event log: an event at or before the checkpoint is *published*;
after it and below the commit horizon it is *pending*; the batch on the wire is *in progress*;
a batch whose publish failed stays pending and is tried again. The checkpoint moves only after
JetStream acknowledged every message of the batch, and every message carries
``Nats-Msg-Id = event_id``: a relay killed at any instruction re-publishes at most two batches,
which JetStream's duplicate window (and, beyond it, each consumer's inbox) makes harmless.
Several replicas may run a relay; a Postgres advisory lock lets exactly one publish.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import structlog
from nats.js import JetStreamContext
from tuanlian.shared.db import Database
from tuanlian.shared.eventstore import Position

log = structlog.get_logger("tuanlian.outbox")


@dataclass
class _Batch:
    """Rows on the wire, the acks JetStream owes for them, and where they end."""

    rows: list[Any]
    last: Position
    acks: list[asyncio.Future[Any]] = field(default_factory=list)

    def cancel(self) -> None:
        for ack in self.acks:
            ack.cancel()  # frees nats-py's in-flight slot; the batch is re-published later


@dataclass
class RelayStatus:
    published: int
    pending: int
    checkpoint: Position


class OutboxRelay:
    #: Seconds to wait for JetStream to acknowledge a whole batch before treating it as failed.
    ack_timeout: float = 30.0

    def __init__(
        self,
        db: Database,
        js: JetStreamContext,
        *,
        schema: str,
        producer: str,
        batch_size: int = 1000,
        idle_poll: float = 0.05,
        name: str = "jetstream",
    ) -> None:
        self.db = db
        self.js = js
        self.schema = schema
        self.producer = producer
        self.batch_size = batch_size
        self.idle_poll = idle_poll
        self.name = name
        self._checkpoint: Position | None = None
        s = schema
        # The envelope's JSON is built by Postgres: the relay moves bytes, it does not re-encode.
        self._sql_batch = f"""
SELECT tx_id::text AS tx, global_position, event_id::text AS event_id,
       '{producer}.events.' || stream_type || '.' || event_type AS subject,
       json_build_object(
         'event_id', event_id, 'event_type', event_type, 'schema_version', schema_version,
         'producer', '{producer}', 'stream_type', stream_type, 'stream_id', stream_id,
         'stream_version', stream_version, 'occurred_at', occurred_at,
         'recorded_at', recorded_at, 'actor', actor, 'org_path', org_path,
         'correlation_id', correlation_id, 'causation_id', causation_id, 'payload', payload,
         'global_position', global_position, 'prev_hash', prev_hash, 'hash', hash
       )::text AS body
FROM {s}.events
WHERE (tx_id, global_position) > ($1::text::xid8, $2)
  AND tx_id < pg_snapshot_xmin(pg_current_snapshot())
ORDER BY tx_id, global_position
LIMIT $3"""
        self._sql_save = (
            f"INSERT INTO {s}.relay_checkpoint (relay, tx_id, global_position, published) "
            "VALUES ($1, $2::text::xid8, $3, $4) ON CONFLICT (relay) DO UPDATE SET "
            "tx_id = EXCLUDED.tx_id, global_position = EXCLUDED.global_position, "
            f"published = {s}.relay_checkpoint.published + $4, updated_at = now()"
        )
        self._lock_key = f"tuanlian.relay.{schema}.{name}"

    async def load_checkpoint(self) -> Position:
        async with self.db.connection() as conn:
            row = await conn.fetchrow(
                f"SELECT tx_id::text AS tx, global_position FROM {self.schema}.relay_checkpoint "
                "WHERE relay = $1",
                self.name,
            )
        return Position(int(row["tx"]), row["global_position"]) if row else Position()

    async def relay_once(self) -> int:
        """Publish one batch and move the checkpoint; returns how many events went out."""
        if self._checkpoint is None:
            self._checkpoint = await self.load_checkpoint()
        batch = await self._read(self._checkpoint)
        if batch is None:
            return 0
        await self._confirm(batch)
        return len(batch.rows)

    async def pump(self, stop: asyncio.Event | None = None) -> int:
        """Publish until nothing is pending (or ``stop``); returns how many events went out.

        Pipelined two deep: the next batch is read and put on the wire while JetStream is still
        acknowledging the previous one, whose checkpoint is saved only once all its acks are in.
        A failure anywhere drops both batches and the checkpoint is re-read, so a batch is
        re-published at worst, never skipped.
        """
        if self._checkpoint is None:
            self._checkpoint = await self.load_checkpoint()
        cursor = self._checkpoint
        in_flight: _Batch | None = None
        batch: _Batch | None = None
        sent = 0
        try:
            while stop is None or not stop.is_set():
                batch = await self._read(cursor)
                if in_flight is not None:
                    await self._confirm(in_flight)
                    sent += len(in_flight.rows)
                in_flight, batch = batch, None
                if in_flight is None:
                    break
                cursor = in_flight.last
        except BaseException:
            for b in (in_flight, batch):
                if b is not None:
                    b.cancel()
            self._checkpoint = None
            raise
        if in_flight is not None:  # stopped with a batch on the wire: see it through
            await self._confirm(in_flight)
            sent += len(in_flight.rows)
        return sent

    async def _read(self, after: Position) -> _Batch | None:
        """Read the batch after ``after`` and put it on the wire (acks still outstanding)."""
        async with self.db.connection() as conn:
            rows = await conn.fetch(self._sql_batch, str(after.tx_id), after.global_position, self.batch_size)
        if not rows:
            return None
        batch = _Batch(rows, Position(int(rows[-1]["tx"]), rows[-1]["global_position"]))
        try:
            for r in rows:
                batch.acks.append(
                    await self.js.publish_async(
                        r["subject"], r["body"].encode(), headers={"Nats-Msg-Id": r["event_id"]}
                    )
                )
        except BaseException:
            batch.cancel()
            raise
        return batch

    async def _confirm(self, batch: _Batch) -> None:
        """Wait for every ack of ``batch``, then move the checkpoint past it."""
        try:
            # nats-py's publish futures have no deadline of their own: an ack lost in a
            # reconnect would otherwise stall the relay forever.
            await asyncio.wait_for(asyncio.gather(*batch.acks), timeout=self.ack_timeout)
        except BaseException:
            batch.cancel()
            raise
        async with self.db.connection() as conn:
            await conn.execute(
                self._sql_save, self.name, str(batch.last.tx_id), batch.last.global_position, len(batch.rows)
            )
        self._checkpoint = batch.last

    async def status(self) -> RelayStatus:
        cp = await self.load_checkpoint()
        async with self.db.connection() as conn:
            pending = await conn.fetchval(
                f"SELECT count(*) FROM {self.schema}.events "
                "WHERE (tx_id, global_position) > ($1::text::xid8, $2)",
                str(cp.tx_id),
                cp.global_position,
            )
            published = await conn.fetchval(
                f"SELECT coalesce(sum(published), 0) FROM {self.schema}.relay_checkpoint "
                "WHERE relay = $1",
                self.name,
            )
        return RelayStatus(published=int(published), pending=int(pending), checkpoint=cp)

    async def run(self, stop: asyncio.Event) -> None:
        """Relay until ``stop`` is set, as the single leader among replicas."""
        async with self.db.connection() as lock_conn:
            while not stop.is_set():
                leader = await lock_conn.fetchval(
                    "SELECT pg_try_advisory_lock(hashtextextended($1, 0))", self._lock_key
                )
                if leader:
                    break
                await sleep_or_stop(stop, 1.0)
            if stop.is_set():
                return
            log.info("relay started", schema=self.schema, producer=self.producer)
            self._checkpoint = None
            failures = 0
            try:
                while not stop.is_set():
                    try:
                        sent = await self.pump(stop)
                        failures = 0
                    except Exception as exc:
                        failures += 1
                        self._checkpoint = None  # re-read: the batch is re-published after a pause
                        delay = min(0.2 * 2**failures, 10.0)
                        log.warning("relay batch failed", error=str(exc), retry_in=delay)
                        await sleep_or_stop(stop, delay)
                        continue
                    if sent < self.batch_size:  # caught up: let commits accumulate
                        await sleep_or_stop(stop, self.idle_poll)
            finally:
                await lock_conn.execute(
                    "SELECT pg_advisory_unlock(hashtextextended($1, 0))", self._lock_key
                )


async def sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        pass
