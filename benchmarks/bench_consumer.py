"""Consumer projection apply rate through the production path.

N envelopes over N/10 aggregates (interleaved, so every batch spans many aggregates and each
aggregate's versions arrive in order) are published to a file-storage stream first. Then, for a
few consumer batch sizes, a fresh schema and a fresh durable consumer: ``EventConsumer.register``
on a FastStream ``NatsBroker`` started with ``broker.start()`` — the manual-ack
batch pull subscriber services run — and the clock runs from starting the broker until the
projection table holds N rows (polled). Every event costs the inbox row, the per-aggregate
position (``FOR UPDATE``), the checkpoint and one projection row via ``ProjectionTx.execute``,
all in one transaction per batch, plus one JetStream ack per message.

Baseline: raw asyncpg ``executemany`` of the same N rows into a table of the same shape, one
transaction per batch of the same size: the cost of the projection rows alone.
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg
from common import (
    BenchContext,
    BenchInfo,
    Result,
    Stopwatch,
    absolute_result,
    fmt_rate,
    poll_until,
)
from faststream.nats import NatsBroker
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from tuanlian.shared.consumer import EventConsumer, ProjectionTx
from tuanlian.shared.db import Database
from tuanlian.shared.events import DomainEvent, Envelope
from tuanlian.shared.eventstore import platform_ddl
from tuanlian.shared.streams import declare_stream, event_stream_name, producer_stream
from workload import PointsAwarded, aggregate_id, contracts, envelope, envelope_bytes

INFO = BenchInfo(
    key="consumer",
    title="Consumer projection apply rate",
    measures=(
        "Events per second an `EventConsumer` applies through the production path "
        "(`consumer.register(broker)` on a FastStream `NatsBroker` started with "
        "`broker.start()`): JetStream batch pull, envelope validation, one transaction per batch "
        "with the inbox rows, the per-aggregate positions (`FOR UPDATE`), the checkpoint and "
        "one projection row per event written through `ProjectionTx.execute`, then one ack per "
        "message. N events over N/10 aggregates already in a file-storage stream; timed from "
        "starting the broker until the projection holds N rows. Several consumer batch sizes; "
        "the best is reported (best of two runs each)."
    ),
    baseline=(
        "Raw asyncpg `executemany` of the same N projection rows into a table of the same shape, "
        "one transaction per batch of the same size (the projection rows alone: no NATS, no "
        "inbox, positions or checkpoint). The target is absolute (≥ 10 000 events/s); the ratio "
        "shows how much of the raw insert rate the runtime keeps."
    ),
)

PRODUCER = "benchcons"
SERVICE = "benchproj"
EVENTS_PER_AGGREGATE = 10
BATCH_SIZES = (256, 1000, 2000, 4000)  # 256 = Settings.consumer_batch
ROUNDS = 2
TARGET = 10_000.0

_ROW_DDL = """
CREATE TABLE {table} (
    event_id uuid PRIMARY KEY,
    youth_id text NOT NULL,
    version int NOT NULL,
    activity_id text NOT NULL,
    points int NOT NULL,
    occurred_at timestamptz NOT NULL
)"""
_ROW_INSERT = (
    "INSERT INTO {table} (event_id, youth_id, version, activity_id, points, occurred_at) "
    "VALUES ($1, $2, $3, $4, $5, $6)"
)


async def _publish(ctx: BenchContext, js: JetStreamContext, envelopes: list[Envelope]) -> None:
    try:
        await js.delete_stream(event_stream_name(PRODUCER))
    except NotFoundError:
        pass
    await declare_stream(js, producer_stream(PRODUCER), storage="file")
    with ctx.task(f"consumer: publish {len(envelopes):,} events to the stream",
                  total=len(envelopes)) as advance:
        for start in range(0, len(envelopes), 2000):
            acks = [
                await js.publish_async(e.subject, envelope_bytes(e),
                                       headers={"Nats-Msg-Id": str(e.event_id)})
                for e in envelopes[start : start + 2000]
            ]
            await asyncio.gather(*acks)
            advance(len(acks))


async def _consume(
    ctx: BenchContext, js: JetStreamContext, n: int, batch: int, run: int
) -> float:
    schema = f"bench_cons_b{batch}_r{run}"
    table = f"{schema}.points"
    insert = _ROW_INSERT.format(table=table)

    async def project(tx: ProjectionTx, env: Envelope, ev: DomainEvent) -> None:
        assert isinstance(ev, PointsAwarded)
        tx.execute(insert, env.event_id, env.stream_id, env.stream_version, ev.activity_id,
                   ev.points, env.occurred_at)

    admin = await asyncpg.connect(ctx.pg_url)
    db = Database(ctx.pg_url, pool_size=4, max_overflow=0)
    try:
        await admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await admin.execute(platform_ddl(schema))
        await admin.execute(_ROW_DDL.format(table=table))
        consumer = EventConsumer(
            service=SERVICE, name=f"points_b{batch}_r{run}", producer=PRODUCER,
            contracts=contracts(PRODUCER), db=db, schema=schema,
            handlers={PointsAwarded.event_type: project}, batch_size=batch,
        )
        # As services run it (tuanlian.shared.logging keeps FastStream's per-message lines out).
        logging.getLogger("faststream").setLevel(logging.WARNING)
        broker = NatsBroker(ctx.nats_url, logger=logging.getLogger("faststream"))
        consumer.register(broker)
        await consumer.ensure_durable(js)
        consumer.bind_js(js)
        with ctx.task(f"consumer: apply {n:,} events, batch_size={batch} (run {run})",
                      total=n) as advance:

            async def count() -> int:
                return int(await admin.fetchval(f"SELECT count(*) FROM {table}"))

            try:
                with Stopwatch() as sw:
                    await broker.start()
                    await poll_until(count, n, interval=0.05, give_up_after=600, advance=advance)
            finally:
                await broker.stop()
                await consumer.drain()
        problems = await admin.fetchval(
            f"SELECT count(*) FROM {schema}.consumer_positions WHERE stream_version <> $1",
            EVENTS_PER_AGGREGATE,
        )
        if problems:
            raise RuntimeError(f"{problems} aggregates not fully applied")
        await js.delete_consumer(event_stream_name(PRODUCER), consumer.durable)
        await admin.execute(f"DROP SCHEMA {schema} CASCADE")
    finally:
        await db.close()
        await admin.close()
    return sw.rate(n)


async def _raw_insert(
    ctx: BenchContext, envelopes: list[Envelope], batch: int, run: int
) -> float:
    table = "bench_cons_raw.points"
    rows = [
        (e.event_id, e.stream_id, e.stream_version, e.payload["activity_id"], e.payload["points"],
         e.occurred_at)
        for e in envelopes
    ]
    conn = await asyncpg.connect(ctx.pg_url)
    try:
        await conn.execute("DROP SCHEMA IF EXISTS bench_cons_raw CASCADE; "
                           "CREATE SCHEMA bench_cons_raw")
        await conn.execute(_ROW_DDL.format(table=table))
        insert = _ROW_INSERT.format(table=table)
        with ctx.task(f"consumer: raw executemany, {batch}/transaction (run {run})",
                      total=len(rows)) \
                as advance, Stopwatch() as sw:
            for start in range(0, len(rows), batch):
                chunk = rows[start : start + batch]
                async with conn.transaction():
                    await conn.executemany(insert, chunk)
                advance(len(chunk))
        await conn.execute("DROP SCHEMA bench_cons_raw CASCADE")
    finally:
        await conn.close()
    return sw.rate(len(rows))


async def run(ctx: BenchContext) -> list[Result]:
    n = ctx.size(50_000, 5_000)
    aggregates = n // EVENTS_PER_AGGREGATE
    envelopes = [
        envelope(PRODUCER, aggregate_id("y", a), v, (v - 1) * aggregates + a)
        for v in range(1, EVENTS_PER_AGGREGATE + 1)
        for a in range(aggregates)
    ]
    runs: dict[int, list[float]] = {b: [] for b in BATCH_SIZES}
    raw_runs: dict[int, list[float]] = {b: [] for b in BATCH_SIZES}
    async with ctx.jetstream("bench-consumer") as (_nc, js):
        await _publish(ctx, js, envelopes)
        for r in range(1, ROUNDS + 1):
            for batch in BATCH_SIZES:
                runs[batch].append(await _consume(ctx, js, n, batch, r))
                raw_runs[batch].append(await _raw_insert(ctx, envelopes, batch, r))
        await js.delete_stream(event_stream_name(PRODUCER))
    rates = {b: max(v) for b, v in runs.items()}
    raw = {b: max(v) for b, v in raw_runs.items()}
    best = max(rates, key=lambda b: rates[b])
    notes = (
        f"N={n:,} events over {aggregates:,} aggregates; best consumer batch_size={best} "
        f"(services default to {BATCH_SIZES[0]}); best of {ROUNDS} runs each. By batch_size "
        "(consumer / raw executemany, events/s): "
        + "; ".join(f"{b}: {fmt_rate(rates[b])} / {fmt_rate(raw[b])}" for b in BATCH_SIZES)
        + ". All consumer runs: "
        + "; ".join(f"{b}: {', '.join(fmt_rate(x) for x in runs[b])}" for b in BATCH_SIZES)
        + "."
    )
    ctx.scratch["consumer"] = {"rates": rates, "raw": raw}
    return [
        absolute_result("consumer projection apply rate", rates[best], "events/s",
                        f"raw asyncpg executemany, {best} rows/transaction", raw[best], TARGET,
                        notes),
    ]
