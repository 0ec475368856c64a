"""A relay process killed at the worst moment loses nothing and duplicates nothing in effect.

The relay runs in a subprocess (``relay_worker.py``) that is SIGKILLed: once deterministically
after JetStream acknowledged a batch and before its checkpoint was saved, and once by the test
at whatever instruction it happens to be executing.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections import Counter
from pathlib import Path

import platform_support as ps
from nats.js import JetStreamContext
from tuanlian.shared.db import Database
from tuanlian.shared.eventstore import EventStore
from tuanlian.shared.outbox import OutboxRelay
from tuanlian.shared.testing import running_consumers, stream_messages, wait_until

WORKER = Path(__file__).with_name("relay_worker.py")


async def _worker(*args: object) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        str(WORKER),
        *map(str, args),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def _run_worker(*args: object) -> tuple[int, str, str]:
    proc = await _worker(*args)
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def _write_events(
    db: Database, store: EventStore, streams: int, per_stream: int, per_tx: int = 1
) -> list:
    written = []
    for v in range(0, per_stream, per_tx):
        for s in range(streams):
            async with db.transaction() as conn:
                events = [ps.ThingTicked(n=n) for n in range(v, min(v + per_tx, per_stream))]
                written += await store.append(conn, f"agg-{s}", v, events)
    return written


def _relay_status(db: Database, js: JetStreamContext):
    return OutboxRelay(db, js, schema=ps.STORE_SCHEMA, producer=ps.PRODUCER).status()


async def _project_and_check(
    probe_db: Database, js: JetStreamContext, nats_url: str, written: list, streams: int, per_stream: int
) -> None:
    consumer = ps.make_consumer(probe_db)
    expected = {f"agg-{s}": list(range(1, per_stream + 1)) for s in range(streams)}
    async with running_consumers(nats_url, js, consumer):
        await wait_until(
            lambda: ps.applied_versions(probe_db), until=lambda got: got == expected, message="projected"
        )
    effects = Counter(e["event_id"] for e in await ps.effects(probe_db))
    assert effects == {e.event_id: 1 for e in written}


async def test_relay_killed_between_publish_and_checkpoint(
    db: Database,
    store: EventStore,
    probe_db: Database,
    js: JetStreamContext,
    nats_url: str,
    database_url: str,
    demo_stream: str,
) -> None:
    streams, per_stream, batch = 5, 10, 7
    written = await _write_events(db, store, streams, per_stream)

    code, out, _ = await _run_worker(database_url, nats_url, batch, 3)
    assert code == -signal.SIGKILL and "dying before save 3" in out
    # Three batches were acknowledged by JetStream (the pipeline may have put a fourth on the
    # wire), but only two are recorded as published.
    assert 3 * batch <= (await js.stream_info(demo_stream)).state.messages <= 4 * batch
    assert (await _relay_status(db, js)).published == 2 * batch

    code, out, _ = await _run_worker(database_url, nats_url, batch, 2)  # and once more
    assert code == -signal.SIGKILL
    assert 4 * batch <= (await js.stream_info(demo_stream)).state.messages <= 5 * batch
    assert (await _relay_status(db, js)).published == 3 * batch  # the third batch, re-sent

    code, out, err = await _run_worker(database_url, nats_url, batch)
    assert code == 0, err
    status = await _relay_status(db, js)
    assert status.pending == 0

    messages = await stream_messages(js, demo_stream)
    assert len(messages) == len(written)  # each re-sent batch was dropped by JetStream's dedup
    assert ps.event_ids_of(messages) == [e.event_id for e in written]  # in commit order
    await _project_and_check(probe_db, js, nats_url, written, streams, per_stream)


async def test_relay_killed_at_an_arbitrary_moment(
    db: Database,
    store: EventStore,
    probe_db: Database,
    js: JetStreamContext,
    nats_url: str,
    database_url: str,
    demo_stream: str,
) -> None:
    streams, per_stream = 20, 50
    written = await _write_events(db, store, streams, per_stream, per_tx=10)
    proc = await _worker(database_url, nats_url, 5)
    try:
        # Let it get going, then kill it wherever it is.
        await wait_until(
            lambda: _stream_count(js, demo_stream),
            until=lambda n: n >= 40,
            interval=0.005,
            message="relay under way",
        )
        proc.send_signal(signal.SIGKILL)
    finally:
        await proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert (await js.stream_info(demo_stream)).state.messages < len(written)  # died mid-flight

    code, _, err = await _run_worker(database_url, nats_url, 100)
    assert code == 0, err
    messages = await stream_messages(js, demo_stream)
    assert len(messages) == len(written)
    assert ps.event_ids_of(messages) == [e.event_id for e in written]
    await _project_and_check(probe_db, js, nats_url, written, streams, per_stream)


async def _stream_count(js: JetStreamContext, stream: str) -> int:
    return (await js.stream_info(stream)).state.messages
