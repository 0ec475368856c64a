"""Event store append rate under 32 concurrent writers vs the ``eventsourcing`` library's recorder.

Tuanlian: 32 asyncio writers, each appending single-event commits round-robin to its own 10
streams: ``Database.transaction()`` + ``EventStore.append`` (head read, envelope, hash chain,
insert; no table lock — commit order comes from the xid8 horizon), pool of 32 connections.

Baseline: ``eventsourcing.postgres.PostgresApplicationRecorder`` (library defaults: psycopg 3
pool, pipelined transaction that takes ``LOCK TABLE … IN EXCLUSIVE MODE`` so notification ids are
issued in commit order) on the same server in its own schema, 32 threads each calling
``insert_events([StoredEvent])`` round-robin over its own 10 aggregates, with a ``state`` of the
same size as the envelope Tuanlian stores. Both sides warm their pools before the clock starts;
each side runs twice, interleaved, and the best run of each is kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from urllib.parse import urlsplit
from uuid import uuid4

import asyncpg
from common import BenchContext, BenchInfo, Result, Stopwatch, fmt_rate, ratio_result
from tuanlian.shared.db import Database
from tuanlian.shared.eventstore import EventStore, platform_ddl
from workload import aggregate_id, contracts, envelope, envelope_bytes, event, metadata

INFO = BenchInfo(
    key="append",
    title="Event store append rate, 32 concurrent writers",
    measures=(
        "Single-event commits per second through `Database.transaction()` + `EventStore.append` "
        "(stream head read, envelope and hash-chain link, insert) with 32 concurrent asyncio "
        "writers, each appending to its own 10 streams, fsync on. Each side runs twice, "
        "interleaved; the best run of each is kept."
    ),
    baseline=(
        "The `eventsourcing` library's `PostgresApplicationRecorder` (default settings: a "
        "pipelined transaction with `LOCK TABLE … IN EXCLUSIVE MODE` so that notification ids "
        "follow commit order) on the same server in its own schema: 32 threads, each "
        "`insert_events` of one `StoredEvent` per call over its own 10 aggregates, state of the "
        "same size as Tuanlian's stored envelope. The library's serialisation (mapper, "
        "transcoder) is not included on its side; Tuanlian's envelope and hash are. The lock "
        "is held until commit, so the library's writers commit (and wait for the WAL flush) "
        "one at a time; Tuanlian's take no lock and can share flushes."
    ),
)

PRODUCER = "benchappend"
SCHEMA = "bench_append"
ES_SCHEMA = "bench_es"
WRITERS = 32
STREAMS_PER_WRITER = 10
WARMUP_PER_WRITER = 3
TOPIC = "tuanlian.bench:PointsAwarded"
ROUNDS = 2


async def _tuanlian(ctx: BenchContext, total: int, run: int) -> float:
    per_writer = total // WRITERS
    db = Database(ctx.pg_url, pool_size=WRITERS, max_overflow=0)
    store = EventStore(SCHEMA, PRODUCER, contracts(PRODUCER))
    try:
        async with db.connection() as conn:
            await conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
            await conn.execute(platform_ddl(SCHEMA))

        async def writer(w: int, count: int, prefix: str, advance: object | None) -> None:
            streams = [aggregate_id(f"{prefix}{w:02d}", s) for s in range(STREAMS_PER_WRITER)]
            versions = [0] * STREAMS_PER_WRITER
            for i in range(count):
                j = i % STREAMS_PER_WRITER
                async with db.transaction() as conn:
                    await store.append(conn, streams[j], versions[j], [event(i)], metadata(i))
                versions[j] += 1
                if advance is not None and i % 20 == 19:
                    advance(20)  # type: ignore[operator]

        await asyncio.gather(*(writer(w, WARMUP_PER_WRITER, "z", None) for w in range(WRITERS)))
        done = per_writer * WRITERS
        with ctx.task(f"append: tuanlian EventStore.append, {WRITERS} writers (run {run})",
                      total=done) \
                as advance, Stopwatch() as sw:
            await asyncio.gather(*(writer(w, per_writer, "w", advance) for w in range(WRITERS)))
        async with db.connection() as conn:
            stored = await conn.fetchval(
                f"SELECT count(*) FROM {SCHEMA}.events WHERE stream_id LIKE 'w%'")
        if stored != done:
            raise RuntimeError(f"stored {stored} of {done} appends")
    finally:
        await db.close()
    return sw.rate(done)


def _eventsourcing(ctx: BenchContext, total: int, state_size: int, run: int) -> float:
    from eventsourcing.persistence import StoredEvent
    from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore

    url = urlsplit(ctx.pg_url)
    datastore = PostgresDatastore(
        dbname=url.path.lstrip("/") or "postgres",
        host=url.hostname or "127.0.0.1",
        port=url.port or 5432,
        user=url.username or "postgres",
        password=url.password or "",
        pool_size=WRITERS,
        max_overflow=0,
        schema=ES_SCHEMA,
    )
    try:
        recorder = PostgresApplicationRecorder(datastore, events_table_name="stored_events")
        recorder.create_table()
        per_writer = total // WRITERS
        done = per_writer * WRITERS
        state = envelope_bytes(envelope(PRODUCER, "y-000000", 1, 0)).ljust(state_size)[:state_size]
        ready = threading.Barrier(WRITERS + 1)
        errors: list[BaseException] = []
        with ctx.task(f"append: eventsourcing recorder, {WRITERS} threads (run {run})",
                      total=done) as advance:

            def writer(w: int) -> None:
                try:
                    ids = [uuid4() for _ in range(STREAMS_PER_WRITER + 1)]
                    versions = [0] * (STREAMS_PER_WRITER + 1)

                    def insert(j: int) -> None:
                        versions[j] += 1
                        recorder.insert_events([StoredEvent(
                            originator_id=ids[j], originator_version=versions[j], topic=TOPIC,
                            state=state)])

                    for _ in range(WARMUP_PER_WRITER):
                        insert(STREAMS_PER_WRITER)  # the warm-up aggregate
                    ready.wait()
                    for i in range(per_writer):
                        insert(i % STREAMS_PER_WRITER)
                        if i % 20 == 19:
                            advance(20)
                except BaseException as exc:
                    errors.append(exc)
                    ready.abort()

            threads = [threading.Thread(target=writer, args=(w,), daemon=True)
                       for w in range(WRITERS)]
            for t in threads:
                t.start()
            with contextlib.suppress(threading.BrokenBarrierError):  # a writer failed
                ready.wait()
            with Stopwatch() as sw:
                for t in threads:
                    t.join()
        if errors:
            raise errors[0]
        with datastore.transaction(commit=False) as curs:
            curs.execute(f"SELECT count(*) AS n FROM {ES_SCHEMA}.stored_events")
            row = curs.fetchone()
        stored = row["n"] if row else 0
        expected = done + WRITERS * WARMUP_PER_WRITER
        if stored != expected:
            raise RuntimeError(f"eventsourcing stored {stored} rows, expected {expected}")
    finally:
        datastore.close()
    return sw.rate(done)


async def run(ctx: BenchContext) -> list[Result]:
    total = ctx.size(20_000, 2_000)
    conn = await asyncpg.connect(ctx.pg_url)
    try:
        await conn.execute(f"DROP SCHEMA IF EXISTS {ES_SCHEMA} CASCADE; CREATE SCHEMA {ES_SCHEMA}")
    finally:
        await conn.close()
    ours: list[float] = []
    theirs: list[float] = []
    state_size = 0
    for r in range(1, ROUNDS + 1):
        ours.append(await _tuanlian(ctx, total, r))
        # What Tuanlian stored per event (row size), so the library writes as many bytes.
        conn = await asyncpg.connect(ctx.pg_url)
        try:
            state_size = int(await conn.fetchval(
                f"SELECT avg(pg_column_size(e.*))::int FROM {SCHEMA}.events e"))
            await conn.execute(f"DROP SCHEMA {SCHEMA} CASCADE")
            await conn.execute(f"DROP SCHEMA IF EXISTS {ES_SCHEMA} CASCADE; "
                               f"CREATE SCHEMA {ES_SCHEMA}")
        finally:
            await conn.close()
        theirs.append(await asyncio.to_thread(_eventsourcing, ctx, total, state_size, r))
    conn = await asyncpg.connect(ctx.pg_url)
    try:
        await conn.execute(f"DROP SCHEMA {ES_SCHEMA} CASCADE")
    finally:
        await conn.close()
    notes = (
        f"{total:,} single-event commits by {WRITERS} writers ({STREAMS_PER_WRITER} streams "
        f"each); library state padded to {state_size} B = Tuanlian's average stored row. "
        f"Best of {ROUNDS} interleaved runs; all runs (appends/s): Tuanlian "
        f"{', '.join(fmt_rate(x) for x in ours)}; eventsourcing "
        f"{', '.join(fmt_rate(x) for x in theirs)}."
    )
    ours_best, theirs_best = max(ours), max(theirs)
    return [
        ratio_result("event store appends, 32 writers", ours_best, "appends/s",
                     "eventsourcing PostgresApplicationRecorder, 32 threads", theirs_best, 3.0,
                     notes),
    ]
