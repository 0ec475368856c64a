"""The outbox relay against real Postgres and a real JetStream: commit order, no skips, dedup."""

from __future__ import annotations

import asyncio
import os
import signal
import tempfile
from pathlib import Path

import nats
import platform_support as ps
import pytest
from nats.js import JetStreamContext
from tuanlian.shared.db import Database, connect_raw
from tuanlian.shared.events import Envelope
from tuanlian.shared.eventstore import EventStore, Position
from tuanlian.shared.infra import EmbeddedNats
from tuanlian.shared.outbox import OutboxRelay
from tuanlian.shared.streams import declare_stream, producer_stream
from tuanlian.shared.testing import stream_messages, wait_until


def _relay(db: Database, js: JetStreamContext, **kw) -> OutboxRelay:
    return OutboxRelay(db, js, schema=ps.STORE_SCHEMA, producer=ps.PRODUCER, **kw)


async def _append(db: Database, store: EventStore, stream: str, expected: int, *events):
    async with db.transaction() as conn:
        return await store.append(conn, stream, expected, list(events))


async def _published(js: JetStreamContext) -> list[Envelope]:
    return [Envelope.model_validate_json(m.data) for m in await stream_messages(js, "DEMO")]


async def test_relay_publishes_every_event_once_in_commit_order(
    db: Database, store: EventStore, js: JetStreamContext, demo_stream: str
) -> None:
    written = []
    for i in range(3):
        for stream in ("a", "b"):
            written += await _append(db, store, stream, i, ps.ThingTicked(n=i))
    relay = _relay(db, js, batch_size=4)
    assert await relay.relay_once() == 4
    assert await relay.relay_once() == 2
    assert await relay.relay_once() == 0
    messages = await stream_messages(js, demo_stream)
    assert [m.headers["Nats-Msg-Id"] for m in messages] == [str(e.event_id) for e in written]  # type: ignore[index]
    assert [m.subject for m in messages] == ["demo.events.thing.thing.ticked"] * 6
    published = await _published(js)
    for sent, stored in zip(published, written, strict=True):
        # The relay's JSON (built by Postgres) is the stored envelope, hash chain included.
        assert sent == stored
        assert sent.chain_hash(sent.prev_hash) == sent.hash
    status = await relay.status()
    assert status.published == 6 and status.pending == 0
    async with db.connection() as conn:
        last = await conn.fetchrow(
            "SELECT tx_id::text AS tx, global_position FROM demo.events ORDER BY tx_id DESC, global_position DESC LIMIT 1"
        )
    assert status.checkpoint == Position(int(last["tx"]), last["global_position"])


async def test_relay_does_not_skip_a_transaction_that_commits_late(
    db: Database, store: EventStore, js: JetStreamContext, demo_stream: str, database_url: str
) -> None:
    [early] = await _append(db, store, "early", 0, ps.ThingCreated(name="early"))
    relay = _relay(db, js)
    assert await relay.relay_once() == 1
    a = await connect_raw(database_url)
    b = await connect_raw(database_url)
    try:
        tx_a = a.transaction()
        await tx_a.start()
        [env_a] = await store.append(a, "a", 0, [ps.ThingCreated(name="A")])  # position first …
        async with b.transaction():
            [env_b] = await store.append(b, "b", 0, [ps.ThingCreated(name="B")])  # … commit first
        assert env_a.global_position < env_b.global_position  # type: ignore[operator]
        # B is committed and visible, but publishing it now would move the checkpoint past A.
        assert await relay.relay_once() == 0
        status = await relay.status()
        assert status.checkpoint == await _position(db, early) and status.pending == 1  # B
        assert [e.event_id for e in await _published(js)] == [early.event_id]
        await tx_a.commit()
    finally:
        await a.close()
        await b.close()
    assert await relay.relay_once() == 2
    assert [e.event_id for e in await _published(js)] == [early.event_id, env_a.event_id, env_b.event_id]
    # The checkpoint is past both (a fresh relay has nothing left to send) …
    fresh = _relay(db, js)
    assert await fresh.relay_once() == 0
    status = await fresh.status()
    assert status.pending == 0 and status.published == 3
    async with db.connection() as conn:
        positions = {
            r["event_id"]: Position(int(r["tx"]), r["global_position"])
            for r in await conn.fetch("SELECT event_id, tx_id::text AS tx, global_position FROM demo.events")
        }
    assert status.checkpoint >= positions[env_a.event_id]
    assert status.checkpoint >= positions[env_b.event_id]
    # … and the late transaction's event sorts before the one that committed first.
    assert positions[env_a.event_id] < positions[env_b.event_id]


async def _position(db: Database, env: Envelope) -> Position:
    async with db.connection() as conn:
        row = await conn.fetchrow(
            "SELECT tx_id::text AS tx, global_position FROM demo.events WHERE event_id = $1",
            env.event_id,
        )
    return Position(int(row["tx"]), row["global_position"])


async def test_republishing_a_batch_is_harmless(
    db: Database, store: EventStore, js: JetStreamContext, demo_stream: str
) -> None:
    for i in range(5):
        await _append(db, store, f"s{i}", 0, ps.ThingTicked(n=i))
    assert await _relay(db, js).relay_once() == 5
    async with db.transaction() as conn:
        await conn.execute("DELETE FROM demo.relay_checkpoint")  # as if the save was lost
    assert await _relay(db, js).relay_once() == 5
    assert len(await stream_messages(js, demo_stream)) == 5


async def test_pump_pipelines_batches_in_commit_order_and_checkpoints_each(
    db: Database, store: EventStore, js: JetStreamContext, demo_stream: str
) -> None:
    written = []
    for i in range(4):
        for stream in ("a", "b", "c"):
            written += await _append(db, store, stream, i, ps.ThingTicked(n=i))
    relay = _relay(db, js, batch_size=5)  # 12 events: batches of 5, 5, 2 overlap on the wire
    assert await relay.pump() == 12
    messages = await stream_messages(js, demo_stream)
    assert [m.headers["Nats-Msg-Id"] for m in messages] == [str(e.event_id) for e in written]  # type: ignore[index]
    status = await relay.status()
    assert status.published == 12 and status.pending == 0
    assert await relay.pump() == 0


async def test_pump_failing_mid_way_keeps_what_was_acknowledged_and_resends_the_rest(
    db: Database, store: EventStore, js: JetStreamContext, demo_stream: str
) -> None:
    for i in range(6):
        await _append(db, store, f"s{i}", 0, ps.ThingTicked(n=i))
    relay = _relay(db, js, batch_size=2)
    first = await relay.pump()
    assert first == 6
    for i in range(6, 12):
        await _append(db, store, f"s{i}", 0, ps.ThingTicked(n=i))
    await js.delete_stream(demo_stream)  # every publish from now on fails: no responder
    with pytest.raises(Exception):  # noqa: B017 - the no-responders error of nats-py
        await relay.pump()
    status = await relay.status()
    assert status.published == 6 and status.pending == 6
    await declare_stream(js, producer_stream(ps.PRODUCER))
    assert await relay.pump() == 6
    assert len(await stream_messages(js, demo_stream)) == 6  # the stream was recreated empty


async def test_a_failed_publish_leaves_the_batch_pending(
    db: Database, store: EventStore, js: JetStreamContext
) -> None:
    for i in range(3):
        await _append(db, store, f"s{i}", 0, ps.ThingTicked(n=i))
    relay = _relay(db, js)
    with pytest.raises(Exception):  # noqa: B017 - no stream yet: JetStream has no responder
        await relay.relay_once()
    status = await relay.status()
    assert status.published == 0 and status.pending == 3
    await declare_stream(js, producer_stream(ps.PRODUCER))
    assert await _relay(db, js).relay_once() == 3
    assert len(await stream_messages(js, "DEMO")) == 3


async def test_only_one_of_several_relays_publishes(
    db: Database, store: EventStore, js: JetStreamContext, demo_stream: str
) -> None:
    relays = [_relay(db, js, batch_size=7, idle_poll=0.01) for _ in range(3)]
    stop = asyncio.Event()
    tasks = [asyncio.create_task(r.run(stop)) for r in relays]
    written = []
    for i in range(10):
        for stream in ("a", "b", "c"):
            written += await _append(db, store, stream, i, ps.ThingTicked(n=i))
    try:
        await wait_until(
            lambda: _count(js, demo_stream, len(written)), timeout=20, message="all events relayed"
        )
        await wait_until(lambda: _no_pending(relays[0]), timeout=20, message="checkpoint saved")
    finally:
        stop.set()
        await asyncio.gather(*tasks)
    assert [e.event_id for e in await _published(js)] == [e.event_id for e in written]
    # Every event was sent by the leader exactly once: the others never published.
    assert (await relays[0].status()).published == len(written)


async def _count(js: JetStreamContext, stream: str, n: int) -> bool:
    return (await js.stream_info(stream)).state.messages >= n


async def _no_pending(relay: OutboxRelay) -> bool:
    return (await relay.status()).pending == 0


async def _times_out(relay: OutboxRelay, attempts: int = 200) -> None:
    """``relay_once`` gives up on a batch whose acks do not come. It may first find nothing to
    send: the commit horizon is cluster-wide, and another test's transaction can hold it back
    for a moment; nothing may be published meanwhile."""
    for _ in range(attempts):
        try:
            sent = await relay.relay_once()
        except TimeoutError:
            return
        assert sent == 0, "published while the server was stopped"
        await asyncio.sleep(0.05)
    raise AssertionError("the relay never tried the batch")


async def test_a_stalled_server_times_out_the_batch_and_it_is_sent_again(
    db: Database, store: EventStore
) -> None:
    """The JetStream server stops answering mid-batch (SIGSTOP): the relay gives up on the batch
    instead of waiting forever, and re-sends it once the server is back, without duplicates."""
    with tempfile.TemporaryDirectory(prefix="tuanlian-nats-stall-") as tmp:
        server = EmbeddedNats(Path(tmp))
        url = server.start()
        nc = await nats.connect(url)
        try:
            js = nc.jetstream()
            await declare_stream(js, producer_stream(ps.PRODUCER))
            for i in range(20):
                await _append(db, store, f"s{i}", 0, ps.ThingTicked(n=i))
            relay = _relay(db, js, batch_size=10)
            relay.ack_timeout = 0.5
            assert await relay.relay_once() == 10
            assert server.proc is not None
            os.kill(server.proc.pid, signal.SIGSTOP)
            try:
                await _times_out(relay)
                assert (await relay.status()).published == 10
            finally:
                os.kill(server.proc.pid, signal.SIGCONT)
            relay.ack_timeout = 10
            assert await relay.relay_once() == 10
            assert await relay.relay_once() == 0
            assert (await js.stream_info("DEMO")).state.messages == 20
            assert js.publish_async_pending() == 0
        finally:
            await nc.close()
            server.stop()
