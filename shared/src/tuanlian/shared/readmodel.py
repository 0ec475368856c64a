"""Rebuilding a service's read model of other services' events from their streams alone, and
swapping it in under the running service (重建读模型): wishes' of contacts, notify's of contacts
and wishes. (Scoring's projection is rebuilt into versions instead: ``scoring.adapters.rebuild``.)

A consumer's bug, an event dead-lettered and since fixed, a table damaged by hand are mended by
replaying the streams into fresh tables. The service's own state is not touched: it is not a
projection of those streams (wishes' wishes, notify's messages), and what the handlers also do to
it (paths rewritten by org moves, a youth's erasure) was done when the live consumers applied them.

* The handlers are the live consumers', built by the service for a scratch schema. What they
  write to the service's own tables (notify's messages, wishes' path rewrites) lands in empty
  twins there, dropped after; what they do beyond their transaction (wishes' reactions to a
  cadre's transfer, which append wishes' own events) the service leaves out of the handlers it
  builds for a rebuild. Either happened when the live consumers first applied the event. The streams
  are read through ephemeral consumers filtered to what the feeds take, merged by the instant each
  message reached the bus (as the live consumers, side by side, saw them).
* What the live consumers applied is read from their per-aggregate positions: every event of an
  aggregate up to its position was applied, or dead-lettered and passed over (which a rebuild
  after the fix applies). The replay applies an event whose version is within its aggregate's
  position when read; once one of an aggregate is not (the live consumer has not reached it), the
  aggregate's later events wait too, in order, so each aggregate is applied in order.
* The swap is one transaction: ``consumer_positions`` in EXCLUSIVE mode (the live consumers of
  such a read model take ROW SHARE before anything else, ``consumer.one_version``: none is half
  way, none begins), the waiting events and the streams' tails applied as far as the positions
  now say, then each table moved out and its rebuilt twin in under the same name (indexes and
  owned sequences go with it). The live consumers go on from their positions on the rebuilt
  tables; what they had not reached is theirs to apply.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

import asyncpg
import structlog
from nats.js import JetStreamContext
from tuanlian.shared.consumer import Handler, ProjectionTx
from tuanlian.shared.events import ContractRegistry, DomainEvent, Envelope, UnknownEvent
from tuanlian.shared.replay import by_arrival, read_range
from tuanlian.shared.streams import event_stream_name

log = structlog.get_logger("tuanlian.shared.readmodel")


class RebuildError(RuntimeError):
    """A rebuild that cannot go on (one line for the CLI); the live read model is as it was."""


@dataclass(frozen=True)
class Feed:
    """A live durable consumer feeding the read model: what it takes (a producer's events, of
    one aggregate type or all), its durable name (its positions' key) and its handlers."""

    contracts: ContractRegistry
    stream_type: str | None
    durable: str
    handlers: dict[str, Handler]


@dataclass
class Progress:
    total: int
    read: int = 0
    applied: int = 0
    waiting: int = 0
    phase: str = "replay"


@dataclass(frozen=True)
class RebuildResult:
    read: int  # messages of the streams up to the swap
    applied: int  # events that changed the read model (not those no handler takes)
    left_to_live: int  # beyond the live consumers' positions at the swap: theirs to apply
    rows: dict[str, int]
    seconds: float
    held: float  # how long the live consumers were held for the swap


# One message read: its producer, stream sequence, the instant it reached the bus, its bytes.
_Message = tuple[str, int, datetime, bytes]
_INDEXES = ("SELECT i.relname AS name, pg_get_indexdef(i.oid) AS def FROM pg_index x "
            "JOIN pg_class i ON i.oid = x.indexrelid WHERE x.indrelid = $1::regclass")


_Event = tuple[Envelope, DomainEvent]


def _shape(indexdef: str) -> str:
    """An index's definition without its name and its table's schema (a twin's is the live one's)."""
    return re.sub(r"INDEX \S+ ON \S+", "INDEX ON", indexdef, count=1)


class ReadModelRebuild:
    """Rebuild ``tables`` of ``schema`` from the feeds ``feeds(scratch schema)`` builds; ``scratch``
    names the service's own tables the handlers also write (empty twins take those writes)."""

    def __init__(self, conn: asyncpg.Connection, js: JetStreamContext, schema: str, *,
                 feeds: Callable[[str], list[Feed]], tables: tuple[str, ...], scratch: tuple[str, ...] = (),
                 batch: int = 2000, on_progress: Callable[[Progress], None] | None = None,
                 max_waiting: int = 200_000) -> None:
        self.conn, self.js, self.schema = conn, js, schema
        # Events held in memory for the swap while the live consumers have not reached them: a
        # service stopped or far behind would have the whole stream wait.
        self.max_waiting = max_waiting
        self.tables, self.scratch, self.batch, self.on_progress = tables, scratch, batch, on_progress
        self.target, self.retired = f"{schema}_rebuild", f"{schema}_retired"
        self.feeds = {(f.contracts.producer, f.stream_type): f for f in feeds(self.target)}
        self.producers = {f.contracts.producer: f.contracts for f in self.feeds.values()}

    async def run(self) -> RebuildResult:
        started = time.monotonic()
        if not await self.conn.fetchval("SELECT pg_try_advisory_lock(hashtextextended($1, 0))",
                                        f"{self.schema}.rebuild"):
            raise RebuildError(f"another rebuild of {self.schema}'s read model is running")
        try:
            await self._prepare()
            try:
                return await self._replay_and_swap(started)
            finally:
                await self.conn.execute(f"DROP SCHEMA IF EXISTS {self.target} CASCADE; "
                                        f"DROP SCHEMA IF EXISTS {self.retired} CASCADE")
        finally:
            await self.conn.execute("SELECT pg_advisory_unlock(hashtextextended($1, 0))", f"{self.schema}.rebuild")

    async def _prepare(self) -> None:
        """Empty twins of the tables in a scratch schema, their indexes named as the live ones (a
        later migration names them); a serial column gets a sequence of its own there (LIKE would
        share the live table's, dropped with it after the swap)."""
        s, t = self.schema, self.target
        await self.conn.execute(f"DROP SCHEMA IF EXISTS {t} CASCADE; DROP SCHEMA IF EXISTS {self.retired} CASCADE; "
                                f"CREATE SCHEMA {t}; CREATE SCHEMA {self.retired}")
        for table in (*self.tables, *self.scratch):
            await self.conn.execute(f"CREATE TABLE {t}.{table} (LIKE {s}.{table} INCLUDING ALL)")
            live = {_shape(r["def"]): r["name"] for r in await self.conn.fetch(_INDEXES, f"{s}.{table}")}
            for r in await self.conn.fetch(_INDEXES, f"{t}.{table}"):
                name = live.get(_shape(r["def"]))
                if name is not None and name != r["name"]:
                    await self.conn.execute(f'ALTER INDEX {t}."{r["name"]}" RENAME TO "{name}"')
        serials = await self.conn.fetch(
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = $1 "
            "AND column_default LIKE 'nextval(%'", t)
        for r in serials:
            seq = f"{t}.{r['table_name']}_{r['column_name']}_seq"
            await self.conn.execute(
                f"CREATE SEQUENCE {seq} OWNED BY {t}.{r['table_name']}.{r['column_name']}; "
                f"ALTER TABLE {t}.{r['table_name']} ALTER COLUMN {r['column_name']} SET DEFAULT nextval('{seq}')")

    async def _lasts(self) -> dict[str, int]:
        return {p: (await self.js.stream_info(event_stream_name(p))).state.last_seq for p in self.producers}

    async def _replay_and_swap(self, started: float) -> RebuildResult:
        last = await self._lasts()
        progress = Progress(total=sum(last.values()))
        at: dict[str, int] = dict.fromkeys(last, 0)
        waiting: list[_Event] = []
        late: set[tuple[str, str]] = set()  # aggregates with an event waiting: their later ones wait too
        async for chunk in self._read({p: (1, n) for p, n in last.items()}):
            events = self._decode(chunk)
            for p, seq, _t, _d in chunk:
                at[p] = seq
            progress.read = sum(at.values())
            async with self.conn.transaction():
                waiting += await self._apply_reached(events, late, progress)
            if len(waiting) > self.max_waiting:
                raise RebuildError(f"{self.schema}'s live consumers are more than {self.max_waiting:,} "
                                   "events behind the streams: rebuild once they have caught up")
            progress.waiting = len(waiting)
            self._report(progress)

        progress.phase = "swap"
        self._report(progress)
        async with self.conn.transaction():
            await self.conn.execute(f"LOCK TABLE {self.schema}.consumer_positions IN EXCLUSIVE MODE")
            held_from = time.monotonic()
            end = await self._lasts()
            tail = waiting + [ev async for chunk in self._read({p: (last[p] + 1, end[p]) for p in end})
                              for ev in self._decode(chunk)]
            left = len(await self._apply_reached(tail, set(), progress))
            for table in self.tables:
                await self.conn.execute(f"ALTER TABLE {self.schema}.{table} SET SCHEMA {self.retired}; "
                                        f"ALTER TABLE {self.target}.{table} SET SCHEMA {self.schema}")
            held = time.monotonic() - held_from
        rows = {t: await self.conn.fetchval(f"SELECT count(*) FROM {self.schema}.{t}") for t in self.tables}
        progress.read, progress.phase = sum(end.values()), "done"
        self._report(progress)
        result = RebuildResult(read=progress.read, applied=progress.applied, left_to_live=left, rows=rows,
                               seconds=time.monotonic() - started, held=held)
        log.info("read model rebuilt", schema=self.schema, read=result.read, applied=result.applied,
                 left_to_live=left, held_ms=round(held * 1000, 1))
        return result

    async def _apply_reached(self, events: list[_Event], late: set[tuple[str, str]],
                             progress: Progress) -> list[_Event]:
        """Apply, in the caller's transaction, the events the live consumers' positions say they
        have reached; return the others, in order. Once one of an aggregate waits (it is in
        ``late``, which this extends), its later events wait too."""
        tx = ProjectionTx(self.conn)
        now = await self._positions(events)
        waiting: list[_Event] = []
        for env, e in events:
            key = (self._feed(env).durable, env.stream_id)
            if key in late or env.stream_version > now.get(key, 0):
                late.add(key)
                waiting.append((env, e))
                continue
            progress.applied += await self._apply(tx, env, e)
        await tx.flush()
        return waiting

    def _read(self, ranges: dict[str, tuple[int, int]]) -> AsyncIterator[list[_Message]]:
        async def one(producer: str, first: int, last: int) -> AsyncIterator[list[_Message]]:
            types = [t for p, t in self.feeds if p == producer]
            subjects = [] if None in types else [f"{producer}.events.{t}.>" for t in types]
            async for chunk in read_range(self.js, producer, first, last, subjects=subjects, batch=self.batch,
                                          description=f"{self.schema} rebuild (ephemeral)"):
                yield [(producer, seq, t, data) for seq, t, data in chunk]

        return by_arrival({p: one(p, a, b) for p, (a, b) in ranges.items()}, lambda m: m[2])

    def _decode(self, chunk: Iterable[_Message]) -> list[_Event]:
        out = []
        for producer, seq, _at, data in chunk:
            try:
                env = Envelope.model_validate_json(data)
                out.append((env, self.producers[producer].decode(env)))
            except (ValueError, UnknownEvent) as exc:
                # The live consumer dead-lettered it too; nothing can apply it.
                log.warning("unreadable event skipped", producer=producer, seq=seq, error=str(exc)[:200])
        return out

    def _feed(self, env: Envelope) -> Feed:
        return self.feeds.get((env.producer, env.stream_type)) or self.feeds[(env.producer, None)]

    async def _positions(self, events: list[_Event]) -> dict[tuple[str, str], int]:
        """The live consumers' position of each aggregate among ``events`` (0: never reached)."""
        wanted: dict[str, set[str]] = {}
        for env, _e in events:
            wanted.setdefault(self._feed(env).durable, set()).add(env.stream_id)
        out: dict[tuple[str, str], int] = {}
        for durable, ids in wanted.items():
            rows = await self.conn.fetch(
                f"SELECT stream_id, stream_version FROM {self.schema}.consumer_positions "
                "WHERE consumer = $1 AND stream_id = ANY($2::text[])", durable, list(ids))
            out.update(((durable, r["stream_id"]), r["stream_version"]) for r in rows)
        return out

    async def _apply(self, tx: ProjectionTx, env: Envelope, e: DomainEvent) -> bool:
        """Whether the event changed the read model (the live consumer acknowledges the events
        it has no handler for unapplied)."""
        handler = self._feed(env).handlers.get(env.event_type)
        if handler is None:
            return False
        try:
            await handler(tx, env, e)
        except Exception as exc:
            raise RebuildError(f"{env.event_type} {env.event_id} (aggregate {env.stream_id} "
                               f"v{env.stream_version}) failed: {exc}") from exc
        return True

    def _report(self, progress: Progress) -> None:
        if self.on_progress is not None:
            self.on_progress(progress)
