"""Rebuild (重放): a new projection version from the JetStream streams alone, then an atomic swap.

1. A ``building`` row in ``projection_versions`` and a fresh schema ``<service>_proj_v<N>`` made
   from the projection part of the migrations.
2. The CONTACTS and WISHES streams are read with ephemeral pull consumers (no acks, in stream
   order) from sequence 1 up to each stream's last sequence at the start, merged by the instant
   each message reached the bus, and applied by the same projector the live consumers use, in
   transactions of a few thousand events. The old version keeps serving and keeps receiving the
   live consumers' writes meanwhile.
3. Catch-up rounds read what was published since, until little is left; then the rows kept in
   memory are written and the boards (``period_points``) computed from the credits kept in memory.
   Then the replay's per-aggregate positions are copied in under the new version's key
   (``positions_key``): each version keeps its own, beside the live durables' for the version
   serving.
4. The swap, in one transaction: ``LOCK consumer_positions IN EXCLUSIVE MODE`` waits for the live
   batches in flight and holds new ones back (and a lock on the old version's ledger, for the
   circulars being frozen there); the rest of the streams is applied and the
   positions it moved written; the live durables' checkpoints are moved on; the new version
   becomes ``current``, the old one ``retired``. Nothing is handed over: the lock is held for the
   last events, however many aggregates the streams hold. When it is released the live
   consumers find the new version (each batch asks ``projection_versions`` once it holds its
   lock), read its positions, write there, and acknowledge as duplicates the events the rebuild
   already applied: nothing is counted twice.
5. The old version's positions are deleted; its schema is kept (``retired``) for comparison, or
   dropped with ``drop_old``.

Per aggregate, an event applies only when its version is past the one applied (JetStream may
hold a duplicate the relay re-published after the duplicate window). Rows are stamped as the
version replaced stamped them (``applied_at``, from its ``applied_log``; see ``adapters/stamps.py``):
leaderboards and circulars asked as of any instant answer on the rebuilt version as on the live one.
While the live consumers keep up, a round reads only what they have applied (the rest is left to
the next round or the swap, which stamps it with its own instant).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import multiprocessing
import os
import pickle
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from importlib.resources import files
from multiprocessing.connection import Connection
from operator import attrgetter
from typing import Any, NamedTuple

import asyncpg
import structlog
from nats.js import JetStreamContext
from pydantic import ValidationError
from tuanlian.scoring.adapters.projection import (
    CONTACTS_EVENTS,
    WISHES_EVENTS,
    ProjectionFailed,
    Projector,
)
from tuanlian.scoring.adapters.stamps import Stamps
from tuanlian.scoring.adapters.state import State, accept_json_text
from tuanlian.scoring.domain.rules import ruleset
from tuanlian.shared.consumer import ProjectionTx, positions_key
from tuanlian.shared.contracts.contacts import CONTACTS
from tuanlian.shared.contracts.wishes import WISHES
from tuanlian.shared.db import connect_raw
from tuanlian.shared.events import ContractRegistry, Envelope, UnknownEvent
from tuanlian.shared.replay import by_arrival, read_range
from tuanlian.shared.streams import connect_nats, event_stream_name

log = structlog.get_logger("tuanlian.scoring.rebuild")

# Turns of the event loop while a chunk is decoded and applied ahead: the chunk before it is
# being written meanwhile, and its COPYs advance only then (every 32 events: ~1.5 ms apart).
_CHUNK_YIELD_EVERY = 32

MARKER = "-- >>> projection"
SOURCES: tuple[tuple[ContractRegistry, set[str]], ...] = ((CONTACTS, CONTACTS_EVENTS), (WISHES, WISHES_EVENTS))


class RebuildError(RuntimeError):
    """A rebuild that cannot go on (reported in one line by the CLI)."""


def projection_ddl(service_schema: str, target: str) -> str:
    """The projection part of the migrations (what follows the marker in each), for a fresh
    schema ``target``: 0002's tables, then every later migration's changes to them."""
    parts = []
    for name in sorted(f.name for f in files("tuanlian.scoring.migrations").iterdir() if f.name.endswith(".sql")):
        text = files("tuanlian.scoring.migrations").joinpath(name).read_text(encoding="utf-8")
        if MARKER in text:
            parts.append(text.split(MARKER, 1)[1].split("\n", 1)[1])
    return "\n".join(parts).replace("{schema}_proj", target).replace("{schema}", service_schema)


def durable(service_schema: str, producer: str) -> str:
    """The live durable consumer of ``producer`` (as ``Runtime.consumer('points', …)`` names it)."""
    return f"{service_schema}_points_{producer}"


@dataclass
class Progress:
    total: int
    done: int = 0
    applied: int = 0
    duplicates: int = 0
    skipped: int = 0
    phase: str = "replay"
    started: float = field(default_factory=time.perf_counter)

    @property
    def rate(self) -> float:
        return self.done / max(time.perf_counter() - self.started, 1e-9)


@dataclass
class RebuildResult:
    version: int
    schema: str
    previous: str
    events: int
    applied: int
    duplicates: int
    skipped: int
    seconds: float
    sequences: dict[str, int]
    dropped_old: bool
    held: float = 0.0  # seconds the swap held the live consumers back (its lock to its commit)
    # Seconds of each phase: replay (catch-up rounds included), write (rows and boards), swap,
    # and what follows it (the old version's positions forgotten, its schema dropped).
    phases: dict[str, float] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.events / max(self.seconds, 1e-9)


# One message: its producer, stream sequence, the instant it reached the bus, its bytes. A chunk
# from the reader process is a list of plain tuples (no object built per message here).
Message = tuple[str, int, datetime, bytes]


class _Msg(NamedTuple):
    producer: str
    seq: int
    at: datetime
    data: bytes


async def read_stream(js: JetStreamContext, producer: str, first: int, last: int,
                      batch: int = 1000, *, idle: float = 60.0,
                      stamps: Stamps | None = None, log_conn: Any = None) -> AsyncIterator[list[_Msg]]:
    """Messages ``first``..``last`` of a producer's stream, in order (``replay.read_range``).

    With ``stamps``, each message carries the instant it stamps (its log rows read through
    ``log_conn`` as the sequences advance; without, ``stamps`` holds them already)."""
    stamped = stamps if stamps is not None and stamps.knows(producer) else None  # none: nothing to ask
    async for chunk in read_range(js, producer, first, last, batch=batch, idle=idle,
                                  description="scoring rebuild (ephemeral)"):
        out = [_Msg(producer, seq, at, data) for seq, at, data in chunk]
        if stamped is not None:
            if log_conn is not None:
                await stamped.cover(log_conn, producer, out[0].seq, out[-1].seq)
            out = [m._replace(at=stamped.stamp(producer, m.seq, m.at)) for m in out]
        yield out


def merged(js: JetStreamContext, ranges: dict[str, tuple[int, int]],
           batch: int = 2000, stamps: Stamps | None = None,
           log_conn: Any = None) -> AsyncGenerator[list[_Msg], None]:
    """The streams' messages merged by the instant they reached the bus (as the live consumers,
    running side by side, saw them), in batches; with ``stamps``, by the instant the version
    replaced had them."""
    return by_arrival({p: read_stream(js, p, a, b, batch, stamps=stamps, log_conn=log_conn).__aiter__()
                       for p, (a, b) in ranges.items()}, attrgetter("at"))


def _read_in_child(nats_url: str, ranges: dict[str, tuple[int, int]], fetch: int, out: Connection,
                   stamps: Stamps | None = None, db_url: str | None = None) -> None:
    """A reader process: the merged streams, in pickled chunks through ``out`` (:func:`_send`);
    an empty chunk ends them, a pickled exception reports a failure. With ``db_url``, it reads
    the stamps' log rows itself, as it goes."""

    async def read() -> None:
        nc = await connect_nats(nats_url, name="tuanlian-scoring-rebuild-reader")
        log_conn = await connect_raw(db_url) if db_url and stamps is not None and stamps.sources else None
        try:
            async for msgs in merged(nc.jetstream(), ranges, fetch, stamps, log_conn):
                # Blocks while the applier is a few chunks behind: the pipe's buffer is the bound.
                _send(out, pickle.dumps([tuple(m) for m in msgs], protocol=5))
        finally:
            await nc.close()
            if log_conn is not None:
                await log_conn.close()

    try:
        with bulk_gc():  # its messages die young: as in the applier, no collection every 700
            asyncio.run(read())
        _send(out, b"")
    except BaseException as exc:  # the parent raises it as a RebuildError
        with contextlib.suppress(Exception):
            _send(out, pickle.dumps(RebuildError(f"reading the streams failed: {type(exc).__name__}: {exc}")))
    finally:
        out.close()


def _send(out: Connection, blob: bytes) -> None:
    """One frame on the pipe: its length (8 bytes), then the blob. Written to the pipe itself, not
    with ``Connection.send_bytes``: the parent reads the frames in its event loop (below)."""
    data = memoryview(len(blob).to_bytes(8, "big") + blob)
    while data:
        data = data[os.write(out.fileno(), data):]


async def read_in_process(nats_url: str, ranges: dict[str, tuple[int, int]], fetch: int = 2000,
                          stamps: Stamps | None = None, db_url: str | None = None
                          ) -> AsyncGenerator[list[Message], None]:
    """``merged``, read by a child process: nats-py's reading is about a third of a rebuild's
    Python time, and there it runs on the other core while this process applies.

    The frames are read by the event loop, whenever the applier yields. A thread reading them
    (``recv_bytes``) waited for the interpreter lock after every 64 KB the pipe gave it, up to
    5 ms each while the applier ran: the replay waited ~19 s of 65 for its chunks."""
    ctx = multiprocessing.get_context("spawn")  # no fork of a process with an event loop and sockets
    inbox, out = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_read_in_child, args=(nats_url, ranges, fetch, out, stamps, db_url), daemon=True,
                        name="tuanlian-rebuild-reader")
    child.start()
    out.close()  # the child's end: once the child exits, a read here ends instead of waiting
    frames = asyncio.StreamReader(limit=1 << 24)
    transport: asyncio.BaseTransport | None = None
    try:
        transport, _ = await asyncio.get_running_loop().connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(frames), inbox)
        while True:
            try:
                blob = await frames.readexactly(int.from_bytes(await frames.readexactly(8), "big"))
            except asyncio.IncompleteReadError:
                await asyncio.to_thread(child.join, 5)  # for its exit code
                raise RebuildError(f"the stream reader process died (exit code {child.exitcode})") from None
            if not blob:
                return
            chunk = pickle.loads(blob)
            if isinstance(chunk, BaseException):
                raise chunk
            yield chunk
    finally:
        if child.is_alive():
            child.terminate()
        await asyncio.to_thread(child.join, 10)
        if transport is not None:
            transport.close()  # and the pipe with it
        else:
            inbox.close()


class Rebuild:
    """One rebuild of the scoring projection into a new version.

    With ``reader_url`` (the NATS servers), a replay of ``reader_from`` messages or more is read
    by a child process (:func:`read_in_process`); a shorter one, where starting a process would
    cost more than it saves, is read here. With ``db_url`` (the database ``conn`` is connected
    to), the final write of the rows and boards is spread over two connections of its own
    (:meth:`_write_rows`).
    """

    def __init__(self, conn: asyncpg.Connection, js: JetStreamContext, *, service_schema: str = "scoring",
                 ruleset_override: str | None = None, batch: int = 10_000,
                 on_progress: Callable[[Progress], None] | None = None, max_rows: int = 4_000_000,
                 fetch: int = 2000, reader_url: str | None = None, reader_from: int = 50_000,
                 db_url: str | None = None) -> None:
        if ruleset_override:
            ruleset(ruleset_override)  # unknown → UnknownRuleSet before anything is created
        self.conn = conn
        self.js = js
        self.s = service_schema
        self.override = ruleset_override
        self.batch = batch
        self.fetch = fetch
        self.reader_url = reader_url
        self.reader_from = reader_from
        self.db_url = db_url
        self.on_progress = on_progress or (lambda _p: None)
        self.max_rows = max_rows
        self.positions: dict[str, dict[str, int]] = {reg.producer: {} for reg, _ in SOURCES}
        self.read_to: dict[str, int] = {reg.producer: 0 for reg, _ in SOURCES}
        # The aggregates whose positions moved since the positions were written to Postgres (None:
        # not yet written, all in memory). Past ``max_rows`` they are written out, like the rows,
        # and read back per chunk as needed: a national replay sees hundreds of millions.
        self.touched: dict[str, set[str]] | None = None
        self.partial = False  # some positions are only in Postgres
        self.target = ""  # the new version's schema
        self.previous = ""  # the schema of the version serving, which this one replaces
        # The new version's applied_log not yet written: each round's stamps, per producer, with
        # the sequences they stamped (written by Stamps.paged_entries).
        self.log: list[tuple[str, int, int, Stamps]] = []
        self.held = 0.0  # seconds the swap held the live consumers back
        self.registries = {reg.producer: reg for reg, _ in SOURCES}
        self.handlers: dict[str, Any] = {}
        self._writing: asyncio.Task[None] | None = None  # the chunk being written (_apply)

    async def _create(self) -> tuple[int, str, str]:
        async with self.conn.transaction():
            await self.conn.execute(f"LOCK TABLE {self.s}.projection_versions IN EXCLUSIVE MODE")
            current = await self.conn.fetchval(
                f"SELECT schema_name FROM {self.s}.projection_versions WHERE status = 'current'")
            if current is None:
                raise RebuildError(f"no current projection version in {self.s}: is the service migrated?")
            building = await self.conn.fetchval(
                f"SELECT version FROM {self.s}.projection_versions WHERE status = 'building'")
            if building is not None:
                raise RebuildError(f"version {building} is being built already (or its rebuild died: "
                                   f"mark it failed with `tuanlian scoring versions --fail {building}`)")
            version = int(await self.conn.fetchval(
                f"SELECT coalesce(max(version), 0) + 1 FROM {self.s}.projection_versions"))
            target = f"{self.s}_proj_v{version}"
            await self.conn.execute(f"DROP SCHEMA IF EXISTS {target} CASCADE")
            await forget_positions(self.conn, self.s, target)  # a dead build's, marked failed by hand
            await self.conn.execute(projection_ddl(self.s, target))
            await self.conn.execute(f"UPDATE {target}.meta SET value = $1 WHERE key = 'version'", version)
            await self.conn.execute(
                f"INSERT INTO {self.s}.projection_versions (version, schema_name, ruleset_override, status) "
                "VALUES ($1, $2, $3, 'building')", version, target, self.override)
        return version, target, str(current)

    async def _last_seqs(self) -> dict[str, int]:
        return {p: (await self.js.stream_info(event_stream_name(p))).state.last_seq for p in self.registries}

    async def _decode(self, msgs: Sequence[Message], progress: Progress) -> list[tuple[Envelope, Any, datetime]]:
        """The chunk's events to apply (envelope, event or None if the projector ignores its type,
        the instant it reached the bus), past the versions already applied."""
        decoded = []
        for n, (producer, seq, at, data) in enumerate(msgs, start=1):
            if n % _CHUNK_YIELD_EVERY == 0:
                await asyncio.sleep(0)  # the chunk before may be being written (_apply)
            progress.done += 1
            reg = self.registries[producer]
            self.read_to[producer] = max(self.read_to[producer], seq)
            try:
                env, event = reg.read_json(data, self.handlers)
            except (ValidationError, UnknownEvent) as exc:
                # The live consumer dead-letters it: so does the replay, by skipping it.
                log.warning("unreadable event skipped", producer=producer, seq=seq, error=str(exc)[:200])
                progress.skipped += 1
                continue
            decoded.append((producer, env, event, at))
        if self.partial:
            await self._read_positions(decoded)
        out = []
        for producer, env, event, at in decoded:
            pos = self.positions[producer]
            if env.stream_version <= pos.get(env.stream_id, 0):
                progress.duplicates += 1
                continue
            pos[env.stream_id] = env.stream_version
            if self.touched is not None:
                self.touched[producer].add(env.stream_id)
            progress.applied += 1
            out.append((env, event, at))
        return out

    async def _queue(self, tx: ProjectionTx, events: list[tuple[Envelope, Any, datetime]], state: State) -> None:
        for env, event, at in events:
            if event is not None:
                state.stamp = at
                await self.handlers[env.event_type](tx, env, event)  # queues it

    async def _apply(self, projector: Projector, msgs: Sequence[Message], progress: Progress) -> None:
        """Apply a chunk and write what it appended (ledger entries, facts…); changed rows and
        credits stay in memory for the end (:meth:`_write_rows`).

        While memory is authoritative (no handler reads or writes Postgres: a transfer or an
        org move is applied in memory too), a chunk is applied ahead of its transaction, while
        the chunk before is being written (its COPYs were a third of the replay's time), and
        written once that one has committed: the entries keep the order they were applied in.
        """
        state = projector.state
        events = await self._decode(msgs, progress)
        try:
            if state.authoritative:
                tx = ProjectionTx(self.conn)  # the handlers only queue: nothing goes through it
                await self._queue(tx, events, state)
                await projector.apply_pending(tx, yield_every=_CHUNK_YIELD_EVERY)
                taken = state.take_appended()
                await self._written()
                self._writing = asyncio.create_task(self._write(state, taken))
            else:
                await self._written()
                async with self.conn.transaction():
                    tx = ProjectionTx(self.conn)
                    await self._queue(tx, events, state)
                    await tx.flush()  # applies the queued events, then writes what they appended
        except ProjectionFailed as exc:
            raise RebuildError(str(exc)) from exc
        if state.size() > self.max_rows:
            # Too much to keep: write it all; from now on a miss reads Postgres, as a live consumer does.
            await self._written()
            async with self.conn.transaction():
                await state.write(ProjectionTx(self.conn))
            state.clear()
            state.authoritative = False
        if not state.authoritative:
            await self._written()
            await self._write_positions()
            if sum(map(len, self.positions.values())) > self.max_rows:
                for pos in self.positions.values():
                    pos.clear()  # all in Postgres: read back when their aggregates come again
                self.partial = True

    async def _read_positions(self, decoded: list[tuple[str, Envelope, Any, datetime]]) -> None:
        """Read into memory the positions of the chunk's aggregates that are only in Postgres."""
        await self._written()
        for producer, pos in self.positions.items():
            missing = list({env.stream_id for p, env, _e, _at in decoded if p == producer} - pos.keys())
            if missing:
                rows = await self.conn.fetch(
                    f"SELECT stream_id, stream_version FROM {self.s}.consumer_positions "
                    "WHERE consumer = $1 AND stream_id = ANY($2::text[])",
                    positions_key(durable(self.s, producer), self.target), missing)
                pos.update((r["stream_id"], r["stream_version"]) for r in rows)

    async def _write(self, state: State, taken: Any) -> None:
        async with self.conn.transaction():
            await state.send(self.conn, taken)

    async def _written(self) -> None:
        """Wait for the chunk being written (a failure of its transaction ends the rebuild here)."""
        writing, self._writing = self._writing, None
        if writing is not None:
            await writing

    async def _stamps(self, *, swap: bool = False) -> Stamps:
        """The serving version's log and the circulars, read again at every round (what the live
        consumers applied since, a circular published since, cover the events read from then on);
        in the swap, whose lock holds the live consumers, with the swap's instant for the rest."""
        stamps = await Stamps.load(self.conn, self.s, self.previous,
                                   {p: durable(self.s, p) for p in self.registries})
        if swap:
            stamps.beyond = await self.conn.fetchval("SELECT clock_timestamp()")
        return stamps

    def _round(self, last: dict[str, int], stamps: Stamps) -> dict[str, tuple[int, int]]:
        """What a round reads of each stream: up to its end, or, while the live consumers are
        within a chunk of it, only what they have applied. An event read past their log is stamped
        by the bus: were they to apply it before the swap, the versions would date it apart."""
        ranges = {}
        for p, n in last.items():
            logged = stamps.logged(p)
            end = logged if n - logged <= self.batch else n
            ranges[p] = (self.read_to[p] + 1, max(end, self.read_to[p]))
        return ranges

    async def _run(self, projector: Projector, ranges: dict[str, tuple[int, int]], progress: Progress,
                   stamps: Stamps) -> None:
        """Read and apply, overlapped: while a chunk's transaction waits for Postgres, the next
        chunk is read from JetStream."""
        queue: asyncio.Queue[list[Message] | None] = asyncio.Queue(maxsize=2)

        size = sum(b - a + 1 for a, b in ranges.values())
        self.log += [(p, a, b, stamps.reading_anew(p)) for p, (a, b) in ranges.items() if a <= b]
        reader_url = self.reader_url if size >= self.reader_from else None
        if not (reader_url and self.db_url):
            # A reader with no connection of its own: the round's log rows, read here now (a
            # round read here is small; a replay's is read by the reader process, as it goes).
            for p, (a, b) in ranges.items():
                await stamps.cover(self.conn, p, a, b)
        source = (read_in_process(reader_url, ranges, self.fetch, stamps, self.db_url) if reader_url
                  else merged(self.js, ranges, self.fetch, stamps))

        async def reader() -> None:
            chunk: list[Message] = []
            try:
                # Closed when this task ends, however it ends: the reader process is stopped and
                # the ephemeral consumers unsubscribed then, not whenever the collector gets to it.
                async with contextlib.aclosing(source):
                    async for msgs in source:
                        chunk.extend(msgs)
                        if len(chunk) >= self.batch:
                            await queue.put(chunk)
                            chunk = []
                if chunk:
                    await queue.put(chunk)
            except asyncio.CancelledError:
                raise  # the applier stopped: nobody waits for the end, and the queue may be full
            except BaseException:
                await queue.put(None)  # wake the applier: awaiting this task raises the error
                raise
            await queue.put(None)

        task = asyncio.create_task(reader())
        try:
            while (chunk := await queue.get()) is not None:
                await self._apply(projector, chunk, progress)
                # The rows kept in memory are long-lived and acyclic: out of the collector's
                # sight, or its full collections scan them over and over (half the CPU time).
                gc.freeze()
                self.on_progress(progress)
            await self._written()
        finally:
            writing, self._writing = self._writing, None
            if writing is not None and not writing.done():
                writing.cancel()
                with contextlib.suppress(BaseException):
                    await writing  # the rebuild fails with the error that ended it, not this one
            if not task.done():
                task.cancel()
            try:
                await task  # a reading error surfaces here
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise  # the rebuild itself is being cancelled, not only its reader

    async def _write_rows(self, projector: Projector) -> None:
        """The rows kept in memory, written at once (COPY into the tables still empty, an upsert
        into the others), and the boards: folded in memory and copied into the empty
        ``period_points`` (``State.take_boards``), or, if credits were written out on the way
        (rows outgrowing ``max_rows``), every credit written as deltas and folded by SQL
        (``State.write_spread``).

        These are seconds of Postgres's time on a large replay, and nothing reads the new schema
        before the swap: with ``db_url`` the tables are spread over two connections of their
        own, each in its own transaction (on both cores), that copy JSON documents as text, while
        the rebuild's connection copies the positions.
        """
        state = projector.state
        if self.db_url is None:
            await state.write_spread([self.conn])
            await self._write_positions()
            return
        conns = [await connect_raw(self.db_url) for _ in range(2)]
        try:
            for conn in conns:
                await conn.execute("SET synchronous_commit = off")
                await accept_json_text(conn)
            async with asyncio.TaskGroup() as lanes:  # one failing cancels the other
                lanes.create_task(state.write_spread(conns))
                lanes.create_task(self._write_positions())
        finally:
            for conn in conns:
                await conn.close()

    async def run(self, *, drop_old: bool = False, catch_up_rounds: int = 3) -> RebuildResult:
        with bulk_gc():
            return await self._run_all(drop_old, catch_up_rounds)

    async def _run_all(self, drop_old: bool, catch_up_rounds: int) -> RebuildResult:
        started = time.perf_counter()
        phases: dict[str, float] = {}
        mark = started

        def phase_ends(name: str) -> None:
            nonlocal mark
            now = time.perf_counter()
            phases[name], mark = now - mark, now

        version, target, previous = await self._create()
        self.target, self.previous = target, previous
        state = State(target, f"rebuild-v{version}", authoritative=True, stamped=True, max_rows=self.max_rows,
                      bulk=True)
        projector = Projector(state, ruleset_override=self.override)
        self.handlers = {**projector.handlers(CONTACTS_EVENTS), **projector.handlers(WISHES_EVENTS)}
        try:
            # Nothing reads the new schema before the swap, and a crash fails the rebuild anyway:
            # its commits need not wait for the disk (the swap's does).
            await self.conn.execute("SET synchronous_commit = off")
            stamps = await self._stamps()
            ranges = self._round(await self._last_seqs(), stamps)
            progress = Progress(total=sum(b for _a, b in ranges.values()))
            self.on_progress(progress)
            await self._run(projector, ranges, progress, stamps)
            progress.phase = "catch-up"
            for _ in range(catch_up_rounds):
                stamps = await self._stamps()
                ranges = self._round(await self._last_seqs(), stamps)
                behind = sum(b - a + 1 for a, b in ranges.values())
                if behind <= 0:
                    break
                progress.total += behind
                await self._run(projector, ranges, progress, stamps)
                if behind < self.batch:
                    break
            phase_ends("replay")
            progress.phase = "write"
            self.on_progress(progress)
            # Rows and boards are in Postgres after this, and memory no longer authoritative: the
            # swap's last events read misses there and move what a transfer or an org move moves
            # there, as a live consumer's do (applied in memory only, the boards just written
            # stayed at the old places).
            await self._write_rows(projector)
            phase_ends("write")
            await self.conn.execute("RESET synchronous_commit")
            progress.phase = "swap"
            self.on_progress(progress)
            await self._swap(projector, version, target, previous, progress)
            phase_ends("swap")
        except BaseException:
            await self.conn.execute("RESET synchronous_commit")
            await self._fail(version, target)
            raise
        finally:
            # The rows kept in memory (millions on a large replay) go now: projector and state
            # refer to each other, and a cycle waits for a full collection to be freed.
            state.clear()
        await forget_positions(self.conn, self.s, previous)
        dropped = False
        if drop_old:
            await drop_retired(self.conn, previous)
            await self.conn.execute(
                f"UPDATE {self.s}.projection_versions SET dropped_at = now() WHERE schema_name = $1", previous)
            dropped = True
        phase_ends("after")
        seconds = time.perf_counter() - started
        return RebuildResult(version, target, previous, progress.done, progress.applied, progress.duplicates,
                             progress.skipped, seconds, dict(self.read_to), dropped, self.held, phases)

    async def _write_positions(self) -> None:
        """The replay's per-aggregate positions, as the new version's (nothing reads them until it
        serves): all of them the first time, then those moved since; and its log rows."""
        touched, self.touched = self.touched, {producer: set() for producer in self.positions}
        async with self.conn.transaction():
            await self._write_log()
            for producer, pos in self.positions.items():
                key = positions_key(durable(self.s, producer), self.target)
                if touched is None:
                    # In key order: the primary key's entries then fill its pages one after the
                    # other instead of splitting pages all over it (257,000 positions: 0.53 s of
                    # Postgres's time against 0.87-1.09 s in arrival order).
                    await self.conn.copy_records_to_table(
                        "consumer_positions", schema_name=self.s, columns=("consumer", "stream_id", "stream_version"),
                        records=((key, sid, pos[sid]) for sid in sorted(pos)))
                elif touched[producer]:
                    await self.conn.execute(
                        f"INSERT INTO {self.s}.consumer_positions (consumer, stream_id, stream_version) "
                        "SELECT $1, unnest($2::text[]), unnest($3::int[]) ON CONFLICT (consumer, stream_id) "
                        "DO UPDATE SET stream_version = EXCLUDED.stream_version",
                        key, list(touched[producer]), [pos[sid] for sid in touched[producer]])

    async def _write_log(self) -> None:
        """The new version's ``applied_log`` rows for the events read since the last write, the
        old log read again a page at a time."""
        spans, self.log = self.log, []
        for producer, first, last, stamps in spans:
            name = durable(self.s, producer)
            async for entries in stamps.paged_entries(self.conn, producer, first, last):
                await self.conn.copy_records_to_table(
                    "applied_log", schema_name=self.target, columns=("consumer", "through_seq", "applied_at"),
                    records=[(name, through, at) for through, at in entries])

    async def _swap(self, projector: Projector, version: int, target: str, previous: str,
                    progress: Progress) -> None:
        s = self.s
        async with self.conn.transaction():
            # Waits for the live batches in flight, holds back the next ones (their first
            # statement touches consumer_positions) until this transaction ends.
            await self.conn.execute(f"LOCK TABLE {s}.consumer_positions IN EXCLUSIVE MODE")
            locked = time.perf_counter()
            # And circulars being frozen on the old version (SHARE): one frozen after the swap's
            # instant there would lack what the swap applies, dated before it here.
            await self.conn.execute(f"LOCK TABLE {previous}.ledger IN SHARE ROW EXCLUSIVE MODE")
            now = await self._last_seqs()
            progress.total += sum(max(now[p] - self.read_to[p], 0) for p in now)
            await self._run(projector, {p: (self.read_to[p] + 1, now[p]) for p in now}, progress,
                            await self._stamps(swap=True))
            # What those last events changed.
            await projector.state.write(ProjectionTx(self.conn), fold_now=True)
            await self._write_positions()
            for producer in self.positions:
                name = durable(s, producer)
                await self.conn.execute(
                    f"INSERT INTO {s}.consumer_checkpoint (consumer, stream_sequence) VALUES ($1, $2) "
                    "ON CONFLICT (consumer) DO UPDATE SET stream_sequence = "
                    f"GREATEST({s}.consumer_checkpoint.stream_sequence, EXCLUDED.stream_sequence), updated_at = now()",
                    name, self.read_to[producer])
            await self.conn.execute(
                f"UPDATE {s}.projection_versions SET status = 'retired', retired_at = now() WHERE status = 'current'")
            await self.conn.execute(
                f"UPDATE {s}.projection_versions SET status = 'current', events = $2, built_at = now(), "
                "stream_sequences = $3::jsonb WHERE version = $1", version, progress.applied, json.dumps(self.read_to))
        self.held = time.perf_counter() - locked

    async def _fail(self, version: int, target: str) -> None:
        try:
            await self.conn.execute(f"DROP SCHEMA IF EXISTS {target} CASCADE")
            await forget_positions(self.conn, self.s, target)
            await self.conn.execute(
                f"UPDATE {self.s}.projection_versions SET status = 'failed', retired_at = now() "
                "WHERE version = $1 AND status = 'building'", version)
        except Exception as exc:
            log.error("could not clean up the failed rebuild", version=version, error=str(exc))


async def drop_retired(conn: asyncpg.Connection, schema: str, attempts: int = 5) -> None:
    """Drop a version that no longer serves. A reader that found it serving just before the swap
    (a live batch, a query) may still hold one of its tables while it waits for another the drop
    already holds: Postgres then cancels one of the two, and if it is the drop, it is tried again
    once that reader is done (seen once in the suite: the rebuild failed after its swap had
    committed, the old schema left in place)."""
    for attempt in range(1, attempts + 1):
        try:
            await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            return
        except asyncpg.exceptions.DeadlockDetectedError:
            if attempt == attempts:
                raise
            log.info("dropping the retired version met a live batch; trying again", schema=schema, attempt=attempt)
            await asyncio.sleep(0.1 * attempt)


async def forget_positions(conn: asyncpg.Connection, service_schema: str, version: str) -> None:
    """Delete a version's aggregate positions (it no longer serves, or never will). Outside the
    swap's lock: the live batches read and write only the serving version's."""
    await conn.execute(f"DELETE FROM {service_schema}.consumer_positions WHERE consumer = ANY($1::text[])",
                       [positions_key(durable(service_schema, reg.producer), version) for reg, _ in SOURCES])


@contextlib.contextmanager
def bulk_gc() -> Iterator[None]:
    """The collector's settings for a rebuild, restored after it.

    Nearly everything a rebuild allocates either dies young (reference counting frees it) or
    stays to the end (rows kept for the final write), and its cycles are few: young collections
    every 1,000,000 net allocations instead of CPython's 700 (or a service's 200,000) took the
    rebuild from 6,950 to ~9,700 events/s. What each chunk leaves alive is frozen (``_run``).
    """
    threshold = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(1_000_000, 20, 10)
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()


def summary(r: RebuildResult) -> dict[str, Any]:
    return {"version": r.version, "schema": r.schema, "previous": r.previous, "events": r.events,
            "applied": r.applied, "duplicates": r.duplicates, "skipped": r.skipped,
            "seconds": round(r.seconds, 2), "events_per_s": round(r.rate), "sequences": r.sequences,
            "dropped_old": r.dropped_old, "live_consumers_held_s": round(r.held, 3),
            "phases_s": {name: round(sec, 2) for name, sec in r.phases.items()}}
