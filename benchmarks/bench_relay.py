"""Outbox relay publish rate vs raw nats-py asynchronous JetStream publish of the same messages.

N events are appended to a service schema's ``events`` table with ``EventStore.append`` (5 000
aggregates × 10 versions), then published twice to a freshly declared file-storage stream:

* raw: ``js.publish_async`` of the very subjects, bodies and ``Nats-Msg-Id`` headers the relay
  sends (read beforehand with the relay's own query), gathering the acks per window;
* relay: ``OutboxRelay.pump()`` (as services run it) until all N are acknowledged: read a batch
  in commit order and publish it asynchronously while the previous batch's acks come in, then
  save that batch's checkpoint.

The stream is deleted and declared again before every run, so JetStream's duplicate window never
drops a message and every run stores exactly N. Every variant runs three times, interleaved; the
best run of each is kept. The headline figure is the relay at the batch size services run with
(``Settings.relay_batch``); a larger batch is measured beside it for the notes.
"""

from __future__ import annotations

import asyncio
from typing import Any

from common import BenchContext, BenchInfo, Result, Stopwatch, fmt_rate, ratio_result
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from tuanlian.shared.db import Database
from tuanlian.shared.eventstore import EventStore, Position, platform_ddl
from tuanlian.shared.outbox import OutboxRelay
from tuanlian.shared.settings import Settings
from tuanlian.shared.streams import declare_stream, event_stream_name, producer_stream
from workload import aggregate_id, contracts, event, metadata

INFO = BenchInfo(
    key="relay",
    title="Outbox relay publish rate",
    measures=(
        "Events per second `OutboxRelay.pump()` moves from a service's `events` table to "
        "JetStream: commit-ordered reads of a batch (the envelope JSON built by Postgres), "
        "`publish_async` of every message with `Nats-Msg-Id` = event id, the next batch read "
        "and sent while the previous one's acks come in, each batch's checkpoint saved after "
        "all its acks, at the batch size services run with "
        "(`Settings.relay_batch`). N events pre-loaded with `EventStore.append`; file-storage "
        "stream declared with `declare_stream`, deleted and re-declared before every run."
    ),
    baseline=(
        "Raw nats-py `js.publish_async` + `asyncio.gather` of exactly the same messages (same "
        "subjects, same bytes, same `Nats-Msg-Id` headers, read beforehand with the relay's own "
        "query), no database in the loop; the best of two publishing shapes (acks gathered per "
        "window of the relay's batch size, or all at once under nats-py's 4 000 in-flight cap). "
        "Each variant runs three times, interleaved; the best run of each is kept."
    ),
)

PRODUCER = "benchrelay"
SCHEMA = "bench_relay"
EVENTS_PER_AGGREGATE = 10
APPENDS_PER_TX = 50
RELAY_BATCH = Settings().relay_batch  # what services run with
BIG_BATCH = 5000
ROUNDS = 3


async def _fresh_stream(js: JetStreamContext) -> None:
    try:
        await js.delete_stream(event_stream_name(PRODUCER))
    except NotFoundError:
        pass
    await declare_stream(js, producer_stream(PRODUCER), storage="file")


async def _stored(js: JetStreamContext) -> int:
    info = await js.stream_info(event_stream_name(PRODUCER))
    return int(info.state.messages)


async def _preload(ctx: BenchContext, db: Database, n: int) -> None:
    store = EventStore(SCHEMA, PRODUCER, contracts(PRODUCER))
    aggregates = n // EVENTS_PER_AGGREGATE
    with ctx.task(f"relay: append {n:,} events", total=n) as advance:
        for start in range(0, aggregates, APPENDS_PER_TX):
            async with db.transaction() as conn:
                for a in range(start, min(start + APPENDS_PER_TX, aggregates)):
                    base = a * EVENTS_PER_AGGREGATE
                    await store.append(
                        conn,
                        aggregate_id("y", a),
                        0,
                        [event(base + k) for k in range(EVENTS_PER_AGGREGATE)],
                        metadata(base),
                    )
                    advance(EVENTS_PER_AGGREGATE)


async def _raw_publish(
    ctx: BenchContext, js: JetStreamContext, msgs: list[tuple[str, bytes, dict[str, str]]],
    window: int | None, label: str,
) -> float:
    await _fresh_stream(js)
    n = len(msgs)
    with ctx.task(label, total=n) as advance, Stopwatch() as sw:
        step = window or n
        for start in range(0, n, step):
            acks = [
                await js.publish_async(subject, body, headers=headers)
                for subject, body, headers in msgs[start : start + step]
            ]
            await asyncio.gather(*acks)
            advance(len(acks))
    stored = await _stored(js)
    if stored != n:
        raise RuntimeError(f"raw publish stored {stored} of {n}")
    return sw.rate(n)


async def _relay(
    ctx: BenchContext, db: Database, js: JetStreamContext, n: int, batch: int, run: int
) -> float:
    await _fresh_stream(js)
    relay = OutboxRelay(db, js, schema=SCHEMA, producer=PRODUCER, batch_size=batch,
                        name=f"bench-{batch}-{run}")
    total = 0
    with ctx.task(f"relay: OutboxRelay.pump, batch {batch} (run {run})", total=n) \
            as advance, Stopwatch() as sw:
        while total < n:
            sent = await relay.pump()
            if sent == 0:
                await asyncio.sleep(0.001)
            total += sent
            advance(sent)
    stored = await _stored(js)
    if stored != n:
        raise RuntimeError(f"relay stored {stored} of {n}")
    return sw.rate(n)


async def run(ctx: BenchContext) -> list[Result]:
    n = ctx.size(50_000, 5_000)
    db = Database(ctx.pg_url, pool_size=4, max_overflow=0)
    try:
        async with db.connection() as conn:
            await conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
            await conn.execute(platform_ddl(SCHEMA))
        await _preload(ctx, db, n)
        # The exact messages the relay will send, read with the relay's own query.
        probe = OutboxRelay(db, None, schema=SCHEMA, producer=PRODUCER)  # type: ignore[arg-type]
        async with db.connection() as conn:
            rows = await conn.fetch(probe._sql_batch, str(Position().tx_id), 0, n)
        msgs = [(r["subject"], r["body"].encode(), {"Nats-Msg-Id": r["event_id"]}) for r in rows]
        avg_bytes = sum(len(m[1]) for m in msgs) / len(msgs)
        runs: dict[str, list[float]] = {"raw_window": [], "raw_all": [], "relay": [],
                                        "relay_big": []}
        async with ctx.jetstream("bench-relay") as (_nc, js):
            for r in range(1, ROUNDS + 1):
                runs["raw_window"].append(await _raw_publish(
                    ctx, js, msgs, RELAY_BATCH, f"relay: raw publish_async, {RELAY_BATCH}/gather "
                    f"(run {r})"))
                runs["raw_all"].append(await _raw_publish(
                    ctx, js, msgs, None, f"relay: raw publish_async, one gather (run {r})"))
                runs["relay"].append(await _relay(ctx, db, js, n, RELAY_BATCH, r))
                runs["relay_big"].append(await _relay(ctx, db, js, n, BIG_BATCH, r))
            await js.delete_stream(event_stream_name(PRODUCER))
        async with db.connection() as conn:
            await conn.execute(f"DROP SCHEMA {SCHEMA} CASCADE")
    finally:
        await db.close()
    best = {k: max(v) for k, v in runs.items()}
    baseline_key = max(("raw_window", "raw_all"), key=lambda k: best[k])
    baseline_name = {
        "raw_window": f"raw js.publish_async, gather per {RELAY_BATCH}",
        "raw_all": "raw js.publish_async, one gather (4 000 in flight)",
    }[baseline_key]
    big_ratio = best["relay_big"] / best[baseline_key]
    notes = (
        f"N={n:,} events, {avg_bytes:.0f} B average body, file storage; relay batch "
        f"{RELAY_BATCH} (Settings.relay_batch). With batch_size={BIG_BATCH} the relay reaches "
        f"{fmt_rate(best['relay_big'])} events/s (ratio {big_ratio:.2f}). Runs (events/s): "
        f"relay {_runs(runs['relay'])}; relay batch {BIG_BATCH} {_runs(runs['relay_big'])}; "
        f"raw gather per {RELAY_BATCH} {_runs(runs['raw_window'])}; raw one gather "
        f"{_runs(runs['raw_all'])}."
    )
    ctx.scratch["relay"] = {"runs": runs, "avg_bytes": avg_bytes}
    return [
        ratio_result("outbox relay publish rate", best["relay"], "events/s", baseline_name,
                     best[baseline_key], 0.7, notes),
    ]


def _runs(values: list[Any]) -> str:
    return ", ".join(fmt_rate(v) for v in values)
