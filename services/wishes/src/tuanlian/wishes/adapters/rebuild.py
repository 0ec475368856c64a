"""Rebuilding wishes' read model of contacts from the CONTACTS stream alone (重建).

The pairs, organisations and their rules, youths, cadres and org moves wishes keeps of contacts
are a projection: a consumer's bug, an event dead-lettered and since fixed, a table damaged by
hand are mended by replaying the stream into fresh tables and swapping them in. Wishes' own state
(wishes, Youth Voice, ratings, ballots) is not touched: it is the projection of wishes' own events,
kept in their transaction, and the paths org moves rewrote there stay as they are.

* The handlers are the live consumers' (``contacts_feeds``), pointed at a scratch schema, without
  the application's reactions to a transfer or a deactivation: those happened when the live
  consumers first applied the event (wishes' own events) and must not happen twice.
* What the live consumers applied is read from their per-aggregate positions: every event of an
  aggregate up to its position was applied, or dead-lettered and passed over (which a rebuild
  after the fix applies). The replay applies an event whose version is within its aggregate's
  position when read; once one of an aggregate is not (the live consumer has not reached it), the
  aggregate's later events wait too, in stream order, so each aggregate is applied in order.
* The swap is one transaction: ``consumer_positions`` in EXCLUSIVE mode (a live batch takes ROW
  SHARE before anything else, ``one_version``: none is half way, none begins), the waiting events
  and the stream's tail applied as far as the positions now say, then each table moved out and its
  rebuilt twin in under the same name. The live consumers go on from their positions, on the
  rebuilt tables; what they had not reached is theirs to apply.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import structlog
from nats.js import JetStreamContext
from tuanlian.shared.consumer import Handler, ProjectionTx, durable_name
from tuanlian.shared.contracts.contacts import CONTACTS
from tuanlian.shared.events import DomainEvent, Envelope, UnknownEvent
from tuanlian.shared.replay import Read, read_range
from tuanlian.shared.streams import event_stream_name
from tuanlian.wishes.adapters.projections import PATH_TABLES, contacts_feeds

log = structlog.get_logger("tuanlian.wishes.rebuild")

SERVICE = "wishes"
READ_MODEL = ("pairs", "orgs", "org_rules", "youths", "cadres", "org_moves")
# Wishes' own tables the handlers also write (path rewrites, erasure): empty twins in the scratch
# schema take those writes and are dropped.
_SCRATCH = tuple(sorted((set(PATH_TABLES) | {"wish_photos"}) - set(READ_MODEL)))


class RebuildError(RuntimeError):
    """A rebuild that cannot go on (one line for the CLI); the live read model is as it was."""


class _NoReactions:
    """The application's reactions to cadre events, left out of a replay (see the module doc)."""

    async def transferred(self, conn: object, cadre_id: str, org_id: str, org_path: str, env: Envelope) -> None:
        return None

    async def deactivated(self, conn: object, cadre_id: str, org_id: str, org_path: str, env: Envelope) -> None:
        return None


@dataclass
class Progress:
    total: int
    read: int = 0
    applied: int = 0
    waiting: int = 0
    phase: str = "replay"


@dataclass(frozen=True)
class RebuildResult:
    read: int
    applied: int
    left_to_live: int  # beyond the live consumers' positions at the swap: theirs to apply
    rows: dict[str, int]
    seconds: float
    held: float  # how long the live consumers were held for the swap


_Event = tuple[Envelope, DomainEvent]


@dataclass
class ReadModelRebuild:
    conn: asyncpg.Connection
    js: JetStreamContext
    schema: str = SERVICE
    batch: int = 2000
    on_progress: Callable[[Progress], None] | None = None
    _feeds: dict[str, tuple[str, dict[str, Handler]]] = field(init=False)

    def __post_init__(self) -> None:
        self.target, self.retired = f"{self.schema}_rebuild", f"{self.schema}_retired"
        self._feeds = {stype: (durable_name(SERVICE, name, CONTACTS.producer, stype), handlers)
                       for name, (stype, handlers) in contacts_feeds(self.target, _NoReactions()).items()}

    async def run(self) -> RebuildResult:
        started = time.monotonic()
        if not await self.conn.fetchval("SELECT pg_try_advisory_lock(hashtextextended($1, 0))",
                                        f"{self.schema}.rebuild"):
            raise RebuildError("another rebuild of the wishes read model is running")
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
        """Empty twins of the read model's tables (and of the own tables the handlers write) in a
        scratch schema; a serial column gets a sequence of its own there (LIKE would share the
        live table's, dropped with it after the swap)."""
        s, t = self.schema, self.target
        await self.conn.execute(f"DROP SCHEMA IF EXISTS {t} CASCADE; DROP SCHEMA IF EXISTS {self.retired} CASCADE; "
                                f"CREATE SCHEMA {t}; CREATE SCHEMA {self.retired}")
        for table in (*READ_MODEL, *_SCRATCH):
            await self.conn.execute(f"CREATE TABLE {t}.{table} (LIKE {s}.{table} INCLUDING ALL)")
        serials = await self.conn.fetch(
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = $1 "
            "AND column_default LIKE 'nextval(%'", t)
        for r in serials:
            seq = f"{t}.{r['table_name']}_{r['column_name']}_seq"
            await self.conn.execute(
                f"CREATE SEQUENCE {seq} OWNED BY {t}.{r['table_name']}.{r['column_name']}; "
                f"ALTER TABLE {t}.{r['table_name']} ALTER COLUMN {r['column_name']} SET DEFAULT nextval('{seq}')")

    async def _replay_and_swap(self, started: float) -> RebuildResult:
        stream = event_stream_name(CONTACTS.producer)
        last = (await self.js.stream_info(stream)).state.last_seq
        progress = Progress(total=last)
        waiting: list[_Event] = []
        late: set[str] = set()  # aggregates with an event waiting: their later ones wait too
        async for chunk in self._read(1, last):
            events = self._decode(chunk)
            progress.read = chunk[-1][0]
            async with self.conn.transaction():
                tx = ProjectionTx(self.conn)
                now = await self._positions(events)
                for env, e in events:
                    if env.stream_id in late or env.stream_version > now.get((env.stream_type, env.stream_id), 0):
                        late.add(env.stream_id)
                        waiting.append((env, e))
                        continue
                    await self._apply(tx, env, e)
                    progress.applied += 1
                await tx.flush()
            progress.waiting = len(waiting)
            self._report(progress)

        progress.phase = "swap"
        self._report(progress)
        async with self.conn.transaction():
            await self.conn.execute(f"LOCK TABLE {self.schema}.consumer_positions IN EXCLUSIVE MODE")
            held_from = time.monotonic()
            end = (await self.js.stream_info(stream)).state.last_seq
            tail = waiting + [ev for chunk in [c async for c in self._read(last + 1, end)] for ev in self._decode(chunk)]
            tx = ProjectionTx(self.conn)
            now = await self._positions(tail)
            behind: set[str] = set()
            for env, e in tail:
                if env.stream_id in behind or env.stream_version > now.get((env.stream_type, env.stream_id), 0):
                    behind.add(env.stream_id)
                    continue
                await self._apply(tx, env, e)
                progress.applied += 1
            await tx.flush()
            for table in READ_MODEL:
                await self.conn.execute(f"ALTER TABLE {self.schema}.{table} SET SCHEMA {self.retired}; "
                                        f"ALTER TABLE {self.target}.{table} SET SCHEMA {self.schema}")
            held = time.monotonic() - held_from
        rows = {t: await self.conn.fetchval(f"SELECT count(*) FROM {self.schema}.{t}") for t in READ_MODEL}
        left = sum(1 for env, _e in tail if env.stream_id in behind)
        progress.read, progress.phase = end, "done"
        self._report(progress)
        result = RebuildResult(read=end, applied=progress.applied, left_to_live=left, rows=rows,
                               seconds=time.monotonic() - started, held=held)
        log.info("wishes read model rebuilt", read=result.read, applied=result.applied, left_to_live=left,
                 held_ms=round(held * 1000, 1))
        return result

    def _read(self, first: int, last: int) -> Any:
        subjects = [f"{CONTACTS.producer}.events.{stype}.>" for stype in self._feeds]
        return read_range(self.js, CONTACTS.producer, first, last, subjects=subjects, batch=self.batch,
                          description="wishes rebuild (ephemeral)")

    def _decode(self, chunk: Iterable[Read]) -> list[_Event]:
        out = []
        for seq, _at, data in chunk:
            try:
                env = Envelope.model_validate_json(data)
                out.append((env, CONTACTS.decode(env)))
            except (ValueError, UnknownEvent) as exc:
                # The live consumer dead-lettered it too; nothing can apply it.
                log.warning("unreadable event skipped", seq=seq, error=str(exc)[:200])
        return out

    async def _positions(self, events: list[_Event]) -> dict[tuple[str, str], int]:
        """The live consumers' position of each aggregate among ``events`` (0: never reached)."""
        wanted: dict[str, set[str]] = {}
        for env, _e in events:
            wanted.setdefault(env.stream_type, set()).add(env.stream_id)
        out: dict[tuple[str, str], int] = {}
        for stype, ids in wanted.items():
            rows = await self.conn.fetch(
                f"SELECT stream_id, stream_version FROM {self.schema}.consumer_positions "
                "WHERE consumer = $1 AND stream_id = ANY($2::text[])", self._feeds[stype][0], list(ids))
            out.update(((stype, r["stream_id"]), r["stream_version"]) for r in rows)
        return out

    async def _apply(self, tx: ProjectionTx, env: Envelope, e: DomainEvent) -> None:
        handler = self._feeds[env.stream_type][1].get(env.event_type)
        if handler is not None:  # the live consumer acknowledges the others unapplied
            try:
                await handler(tx, env, e)
            except Exception as exc:
                raise RebuildError(f"{env.event_type} {env.event_id} (aggregate {env.stream_id} "
                                   f"v{env.stream_version}) failed: {exc}") from exc

    def _report(self, progress: Progress) -> None:
        if self.on_progress is not None:
            self.on_progress(progress)
