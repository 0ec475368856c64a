"""The consumer runtime on real JetStream and Postgres: exactly-once effect, order, dead letters.

Most tests run the consumer the production way (a FastStream broker with the consumer registered
as a manual-ack batch pull subscriber); a few drive ``process`` directly to replay exact batches.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import random
from collections import Counter
from typing import Any

import asyncpg
import platform_support as ps
import pytest
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from structlog.testing import capture_logs
from tuanlian.shared.consumer import EventConsumer, ProjectionTx, _Item, _versions_in_order
from tuanlian.shared.db import Database
from tuanlian.shared.events import DomainEvent, Envelope
from tuanlian.shared.eventstore import EventStore
from tuanlian.shared.outbox import OutboxRelay
from tuanlian.shared.streams import declare_stream, dlq_stream, dlq_stream_name
from tuanlian.shared.testing import running_consumers, stream_messages, wait_until

DLQ = dlq_stream_name(ps.SERVICE)


async def _until_applied(
    db: Database, expected: dict[str, list[int]], *, timeout: float = 20.0, message: str = "applied"
) -> None:
    await wait_until(
        lambda: ps.applied_versions(db), until=lambda got: got == expected, timeout=timeout, message=message
    )


async def _settled(js: JetStreamContext, consumer: EventConsumer) -> bool:
    """Everything delivered and acknowledged (or terminated)."""
    info = await js.consumer_info(consumer.stream, consumer.durable)
    return info.num_pending == 0 and info.num_ack_pending == 0


async def _dlq(js: JetStreamContext) -> list[Any]:
    try:
        return await stream_messages(js, DLQ)
    except NotFoundError:  # not declared yet
        return []


async def _fetch(js: JetStreamContext, consumer: EventConsumer, n: int) -> list[Msg]:
    sub = await js.pull_subscribe_bind(durable=consumer.durable, stream=consumer.stream)
    msgs: list[Msg] = []
    while len(msgs) < n:
        msgs += await sub.fetch(n - len(msgs), timeout=5)
    return msgs


async def _direct(js: JetStreamContext, consumer: EventConsumer) -> EventConsumer:
    await declare_stream(js, dlq_stream(consumer.service))
    await consumer.ensure_durable(js)
    consumer.bind_js(js)
    return consumer


# -- the happy path ----------------------------------------------------------------------------


async def test_events_are_applied_with_inbox_positions_and_checkpoint(
    probe_db: Database, js: JetStreamContext, nats_url: str, demo_stream: str
) -> None:
    envs = [ps.envelope("a", 1, ps.ThingCreated(name="a")), ps.envelope("b", 1), ps.envelope("a", 2)]
    seqs = [await ps.publish(js, e) for e in envs]
    consumer = ps.make_consumer(probe_db)
    async with running_consumers(nats_url, js, consumer):
        await _until_applied(probe_db, {"a": [1, 2], "b": [1]}, message="applied")
        await wait_until(lambda: _settled(js, consumer), message="all acknowledged")
    async with probe_db.connection() as conn:
        inbox = await conn.fetch("SELECT event_id, outcome FROM probe.consumer_inbox")
        positions = await conn.fetch("SELECT stream_id, stream_version FROM probe.consumer_positions")
        checkpoint = await conn.fetchval("SELECT stream_sequence FROM probe.consumer_checkpoint")
    assert {r["event_id"]: r["outcome"] for r in inbox} == {e.event_id: "applied" for e in envs}
    assert {r["stream_id"]: r["stream_version"] for r in positions} == {"a": 2, "b": 1}
    assert checkpoint == max(seqs)
    decoded = {e["event_id"]: e["decoded"] for e in await ps.effects(probe_db)}
    assert decoded[envs[0].event_id] == {"class": "ThingCreated", "name": "a"}
    assert await _dlq(js) == []


async def test_a_consumer_filtered_to_one_stream_type_sees_only_that(
    probe_db: Database, js: JetStreamContext, demo_stream: str
) -> None:
    consumer = await _direct(js, ps.make_consumer(probe_db, stream_type="thing"))
    assert consumer.subject == "demo.events.thing.>" and consumer.durable.endswith("_thing")
    await ps.publish(js, ps.envelope("a", 1))
    await js.publish("demo.events.gadget.gadget.made", b"{}")
    info = await js.consumer_info(consumer.stream, consumer.durable)
    assert info.num_pending == 1


# -- exactly once in effect --------------------------------------------------------------------


async def test_the_same_event_delivered_twice_has_one_effect(
    probe_db: Database, js: JetStreamContext, nats_url: str, demo_stream: str
) -> None:
    first = ps.envelope("a", 1, ps.ThingCreated(name="a"))
    second = ps.envelope("a", 2)
    await ps.publish(js, first)
    await ps.publish(js, first, msg_id="again-1")  # a different msg id: JetStream keeps both
    await ps.publish(js, second)
    await ps.publish(js, first, msg_id="again-2")  # and once more after its successor
    await ps.publish(js, second, msg_id="again-3")
    assert (await js.stream_info(demo_stream)).state.messages == 5
    consumer = ps.make_consumer(probe_db)
    async with running_consumers(nats_url, js, consumer):
        await wait_until(lambda: _settled(js, consumer), message="all five deliveries acknowledged")
    assert await ps.applied_versions(probe_db) == {"a": [1, 2]}
    effects = Counter(e["event_id"] for e in await ps.effects(probe_db))
    assert effects == {first.event_id: 1, second.event_id: 1}
    assert await _dlq(js) == []


async def test_a_redelivered_batch_is_acknowledged_without_effect(
    probe_db: Database, js: JetStreamContext, demo_stream: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As after a crash between commit and ack: the very same messages come back."""
    consumer = await _direct(js, ps.make_consumer(probe_db))
    envs = [ps.envelope(s, v) for v in (1, 2, 3) for s in ("a", "b")]
    for e in envs:
        await ps.publish(js, e)

    async def acks_lost(items: list[Any]) -> None:
        for item in items:
            await item.msg.nak()  # the server redelivers as if the ack never arrived

    with monkeypatch.context() as patch:
        patch.setattr(consumer, "_ack_all", acks_lost)
        outcome = await consumer.process(await _fetch(js, consumer, len(envs)))
    assert (outcome.applied, outcome.duplicates, outcome.deferred) == (6, 0, 0)
    redelivered = await _fetch(js, consumer, len(envs))
    assert all(m.metadata.num_delivered == 2 for m in redelivered)
    again = await consumer.process(redelivered)
    assert (again.applied, again.duplicates, again.deferred) == (0, 6, 0)
    assert await ps.applied_versions(probe_db) == {"a": [1, 2, 3], "b": [1, 2, 3]}
    assert len(await ps.effects(probe_db)) == 6


async def test_events_of_an_aggregate_out_of_order_in_one_batch_are_applied_in_order(
    probe_db: Database, js: JetStreamContext, demo_stream: str
) -> None:
    consumer = await _direct(js, ps.make_consumer(probe_db))
    for e in (ps.envelope("a", 2), ps.envelope("a", 3), ps.envelope("b", 1), ps.envelope("a", 1)):
        await ps.publish(js, e)
    outcome = await consumer.process(await _fetch(js, consumer, 4))
    assert (outcome.applied, outcome.deferred) == (4, 0)
    assert await ps.applied_versions(probe_db) == {"a": [1, 2, 3], "b": [1]}


def test_a_repeat_in_a_batch_keeps_the_interleaving_of_aggregates_as_delivered() -> None:
    """A version repeated late in a batch (a relay re-published it) takes no slot of its
    aggregate's later events: those stay where they came, among the other aggregates' events."""
    batch = [ps.envelope("a", 1), ps.envelope("b", 1), ps.envelope("a", 2), ps.envelope("b", 2),
             ps.envelope("a", 3)]
    batch.insert(4, batch[0])  # a:1 again, after b:2
    batch.append(ps.envelope("c", 2))
    batch.append(ps.envelope("c", 1))  # out of order: sorted into c's slots
    order = [(i.envelope.stream_id, i.envelope.stream_version) for i in _versions_in_order(
        [_Item(msg=None, envelope=e) for e in batch])]  # type: ignore[arg-type]
    assert order == [("a", 1), ("b", 1), ("a", 2), ("b", 2), ("a", 1), ("a", 3), ("c", 1), ("c", 2)]


async def test_an_event_that_arrives_early_waits_for_its_predecessor(
    probe_db: Database, js: JetStreamContext, demo_stream: str
) -> None:
    consumer = await _direct(js, ps.make_consumer(probe_db))
    v1, v2, v3, b1 = ps.envelope("a", 1), ps.envelope("a", 2), ps.envelope("a", 3), ps.envelope("b", 1)
    for e in (v2, v3, b1):
        await ps.publish(js, e)
    outcome = await consumer.process(await _fetch(js, consumer, 3))
    # Nothing of "a" is applied ahead of its predecessor; "b" does not wait for "a".
    assert (outcome.applied, outcome.deferred) == (1, 2)
    assert await ps.applied_versions(probe_db) == {"b": [1]}
    await ps.publish(js, v1)
    outcome = await consumer.process(await _fetch(js, consumer, 1))
    assert outcome.applied == 1
    redelivered = await _fetch(js, consumer, 2)  # the two put back, after gap_delay
    assert sorted(json.loads(m.data)["stream_version"] for m in redelivered) == [2, 3]
    assert all(m.metadata.num_delivered == 2 for m in redelivered)
    outcome = await consumer.process(redelivered)
    assert outcome.applied == 2
    assert await ps.applied_versions(probe_db) == {"a": [1, 2, 3], "b": [1]}
    # Acks reach the server asynchronously: the consumer settles shortly after.
    await wait_until(lambda: _settled(js, consumer), message="settled")


async def test_an_aggregate_waiting_too_long_for_its_predecessor_is_reported(
    probe_db: Database, js: JetStreamContext, demo_stream: str
) -> None:
    consumer = await _direct(js, ps.make_consumer(probe_db, gap_delay=0.01))
    consumer.gap_alert_after = 0.0  # report at once
    await ps.publish(js, ps.envelope("a", 2))
    with capture_logs() as logs:
        outcome = await consumer.process(await _fetch(js, consumer, 1))
    assert outcome.deferred == 1
    stalled = [e for e in logs if e["event"].startswith("aggregate stalled")]
    assert len(stalled) == 1 and stalled[0]["stream_id"] == "a" and stalled[0]["waiting_version"] == 2
    assert set(consumer.stalled()) == {"a"}
    await ps.publish(js, ps.envelope("a", 1))
    outcome = await consumer.process(await _fetch(js, consumer, 2))
    assert outcome.applied == 2
    assert consumer.stalled() == {}


# -- failures and dead letters -----------------------------------------------------------------


async def test_a_handler_that_always_raises_is_dead_lettered_and_the_consumer_moves_on(
    probe_db: Database, js: JetStreamContext, nats_url: str, demo_stream: str
) -> None:
    calls = Counter[str]()

    async def fails(tx: ProjectionTx, env: Envelope, event: DomainEvent) -> None:
        calls[env.stream_id] += 1
        await ps.always_fails(tx, env, event)

    handlers = {t.event_type: ps.record for t in ps.contracts.types()} | {"thing.broke": fails}
    consumer = ps.make_consumer(probe_db, handlers=handlers)
    broke = ps.envelope("a", 2, ps.ThingBroke(why="bad luck"))
    for e in (
        ps.envelope("a", 1, ps.ThingCreated(name="a")),
        broke,
        ps.envelope("a", 3),
        ps.envelope("b", 1),
        ps.envelope("a", 4),
        ps.envelope("b", 2),
    ):
        await ps.publish(js, e)
    async with running_consumers(nats_url, js, consumer):
        await _until_applied(probe_db, {"a": [1, 3, 4], "b": [1, 2]}, message="applied")
        await wait_until(lambda: _settled(js, consumer), message="settled")
        # Events published after the dead letter are still processed.
        await ps.publish(js, ps.envelope("a", 5))
        await ps.publish(js, ps.envelope("c", 1))
        await _until_applied(probe_db, {"a": [1, 3, 4, 5], "b": [1, 2], "c": [1]}, message="later events applied")
    [dead] = await _dlq(js)
    assert Envelope.model_validate_json(dead.data).event_id == broke.event_id
    headers = dead.headers or {}
    assert headers["Tuanlian-Reason"] == "HandlerBoom: cannot handle thing.broke of a"
    assert headers["Tuanlian-Attempts"] == str(consumer.max_deliveries)
    assert headers["Tuanlian-Consumer"] == consumer.durable
    assert headers["Tuanlian-Original-Subject"] == broke.subject
    assert dead.subject == f"dlq.{ps.SERVICE}.{consumer.name}"
    assert calls["a"] >= consumer.max_deliveries
    async with probe_db.connection() as conn:
        failure = await conn.fetchrow("SELECT attempts, last_error, dead_lettered FROM probe.consumer_failures")
        outcome = await conn.fetchval(
            "SELECT outcome FROM probe.consumer_inbox WHERE event_id = $1", broke.event_id
        )
    assert failure["attempts"] == consumer.max_deliveries and failure["dead_lettered"]
    assert "HandlerBoom" in failure["last_error"]
    assert outcome == "dead_lettered"


async def test_a_handler_whose_sql_fails_is_dead_lettered_not_retried_forever(
    probe_db: Database, js: JetStreamContext, nats_url: str, demo_stream: str
) -> None:
    async def bad_sql(tx: ProjectionTx, env: Envelope, event: DomainEvent) -> None:
        # Queued, so the error surfaces when the batch is flushed, after the handler returned.
        tx.execute("INSERT INTO probe.applied (stream_id, versions) VALUES ($1, NULL)", env.stream_id)

    handlers = {t.event_type: ps.record for t in ps.contracts.types()} | {"thing.broke": bad_sql}
    consumer = ps.make_consumer(probe_db, handlers=handlers)
    broke = ps.envelope("x", 1, ps.ThingBroke(why="schema drift"))
    for e in (ps.envelope("a", 1), broke, ps.envelope("x", 2), ps.envelope("a", 2)):
        await ps.publish(js, e)
    async with running_consumers(nats_url, js, consumer):
        await _until_applied(probe_db, {"a": [1, 2], "x": [2]}, message="applied")
        await wait_until(lambda: _settled(js, consumer), message="settled")
    [dead] = await _dlq(js)
    assert Envelope.model_validate_json(dead.data).event_id == broke.event_id
    assert "NotNullViolation" in (dead.headers or {})["Tuanlian-Reason"]


async def test_malformed_and_unknown_messages_are_dead_lettered_with_a_reason(
    probe_db: Database, js: JetStreamContext, nats_url: str, demo_stream: str
) -> None:
    consumer = ps.make_consumer(probe_db)
    subject = "demo.events.thing.thing.ticked"
    unknown = ps.envelope("q", 3, event_type="thing.exploded", payload={"boom": True})
    invalid = ps.envelope("r", 1, event_type="thing.ticked", payload={"n": "not a number"})
    future = ps.envelope("s", 1, event_type="thing.created", payload={"name": "x"}, schema_version=9)
    await ps.publish(js, b"{not json", subject=subject, msg_id="m1")
    await ps.publish(js, b'{"hello": "world"}', subject=subject, msg_id="m2")
    await ps.publish(js, unknown)  # q v3 arrives before q v1 and v2 …
    await ps.publish(js, invalid)
    await ps.publish(js, future)
    for e in (ps.envelope("q", 1), ps.envelope("q", 2), ps.envelope("q", 4), ps.envelope("r", 2)):
        await ps.publish(js, e)
    async with running_consumers(nats_url, js, consumer):
        # … and dead-lettering it must not make the consumer skip them.
        await _until_applied(probe_db, {"q": [1, 2, 4], "r": [2]}, message="good events applied")
        await wait_until(lambda: _settled(js, consumer), message="settled")
        await wait_until(lambda: _count_dlq(js, 5), message="five dead letters")
        await ps.publish(js, ps.envelope("s", 2))
        await _until_applied(probe_db, {"q": [1, 2, 4], "r": [2], "s": [2]})
    reasons = {
        (m.headers or {})["Tuanlian-Original-Sequence"]: (m.headers or {})["Tuanlian-Reason"]
        for m in await _dlq(js)
    }
    assert len(reasons) == 5
    by_seq = [reasons[str(i)] for i in range(1, 6)]
    assert by_seq[0].startswith("malformed envelope: Invalid JSON")
    assert by_seq[1].startswith("malformed envelope: Field required")
    assert by_seq[2] == "unknown event type 'thing.exploded' from demo"
    assert by_seq[3].startswith("cannot read thing.ticked:") and "valid integer" in by_seq[3]
    assert "newer than this code" in by_seq[4]
    for reason in by_seq:
        assert "\n" not in reason and "\r" not in reason


async def _count_dlq(js: JetStreamContext, n: int) -> bool:
    return len(await _dlq(js)) >= n


# -- order under load --------------------------------------------------------------------------


async def test_per_aggregate_order_with_two_replicas_reordering_and_duplicates(
    probe_db: Database, js: JetStreamContext, nats_url: str, demo_stream: str
) -> None:
    aggregates, per_aggregate = 30, 20
    rng = random.Random()
    seed = rng.randrange(2**32)
    rng.seed(seed)
    queues = {f"agg-{i}": [ps.envelope(f"agg-{i}", v) for v in range(1, per_aggregate + 1)] for i in range(aggregates)}
    order: list[Envelope] = []
    while any(queues.values()):  # interleave the aggregates at random
        sid = rng.choice([k for k, q in queues.items() if q])
        order.append(queues[sid].pop(0))
    for i in range(len(order) - 1):  # swap some neighbours: out of order on the wire
        if rng.random() < 0.15:
            order[i], order[i + 1] = order[i + 1], order[i]
    duplicates = rng.sample(order, k=len(order) // 10)
    for dup in duplicates:  # and re-send some events later under a new message id
        order.insert(rng.randrange(order.index(dup) + 1, len(order) + 1), dup.model_copy())

    applied_by: Counter[str] = Counter()

    def replica(name: str) -> EventConsumer:
        async def handle(tx: ProjectionTx, env: Envelope, event: DomainEvent) -> None:
            applied_by[name] += 1
            await ps.record(tx, env, event)

        return ps.make_consumer(
            probe_db, handlers={"thing.ticked": handle}, batch_size=16, gap_delay=0.02
        )

    one, two = replica("one"), replica("two")
    assert one.durable == two.durable
    async with running_consumers(nats_url, js, one), running_consumers(nats_url, js, two):
        sent = Counter[str]()

        async def publish(env: Envelope) -> None:
            sent[str(env.event_id)] += 1
            await ps.publish(js, env, msg_id=f"{env.event_id}:{sent[str(env.event_id)]}")

        for i in range(0, len(order), 50):
            await asyncio.gather(*(publish(e) for e in order[i : i + 50]))
        expected = {sid: list(range(1, per_aggregate + 1)) for sid in (f"agg-{i}" for i in range(aggregates))}
        await _until_applied(probe_db, expected, timeout=40, message=f"all applied (seed {seed})")
        await wait_until(lambda: _settled(js, one), message="settled")
    effects = Counter(e["event_id"] for e in await ps.effects(probe_db))
    assert len(effects) == aggregates * per_aggregate and set(effects.values()) == {1}, seed
    # Handler calls may exceed the effects: a batch that raced the other replica to an aggregate
    # both saw first is rolled back (its effects with it) and comes back as duplicates.
    assert sum(applied_by.values()) >= aggregates * per_aggregate
    assert applied_by["one"] > 0 and applied_by["two"] > 0, (applied_by, seed)
    assert await _dlq(js) == []


# -- upcasting on the way through --------------------------------------------------------------


async def test_an_old_event_reaches_new_code_upcast(
    db: Database, probe_db: Database, js: JetStreamContext, nats_url: str, demo_stream: str
) -> None:
    """Producer code at v1 stores an event; the store → relay → consumer path delivers v2."""
    from tuanlian.shared.testing import create_platform_tables

    await create_platform_tables(db, ps.STORE_SCHEMA)
    old_store = EventStore(ps.STORE_SCHEMA, ps.PRODUCER, ps.old_contracts)
    new_store = EventStore(ps.STORE_SCHEMA, ps.PRODUCER, ps.contracts)
    async with db.transaction() as conn:
        await old_store.append(conn, "t", 0, [ps.ThingCreated(name="旧"), ps.ThingRenamedV1(name="中")])
    async with db.transaction() as conn:
        await new_store.append(conn, "t", 2, [ps.ThingRenamed(new_name="新", reason="merged")])
    # And one written straight into the table, as an event from before the contract existed.
    async with db.transaction() as conn:
        head = await new_store.read_stream(conn, "t")
        raw = ps.envelope("t", 4, ps.ThingRenamedV1(name="直接"))
        raw = raw.model_copy(update={"prev_hash": head[-1].hash})
        await conn.execute(
            "INSERT INTO demo.events (event_id, event_type, schema_version, stream_type, stream_id, "
            "stream_version, occurred_at, payload, prev_hash, hash) "
            "VALUES ($1, $2, 1, 'thing', 't', 4, $3, $4::text::jsonb, $5, $6)",
            raw.event_id,
            raw.event_type,
            raw.occurred_at,
            json.dumps(raw.payload),
            raw.prev_hash,
            raw.chain_hash(raw.prev_hash),
        )
        assert await new_store.verify_chains(conn) == []
    relay = OutboxRelay(db, js, schema=ps.STORE_SCHEMA, producer=ps.PRODUCER)
    assert await relay.relay_once() == 4
    consumer = ps.make_consumer(probe_db)
    async with running_consumers(nats_url, js, consumer):
        await _until_applied(probe_db, {"t": [1, 2, 3, 4]}, message="applied")
    by_version = {e["stream_version"]: e["decoded"] for e in await ps.effects(probe_db)}
    assert by_version == {
        1: {"class": "ThingCreated", "name": "旧"},
        2: {"class": "ThingRenamed", "new_name": "中", "reason": "unspecified (v1)"},
        3: {"class": "ThingRenamed", "new_name": "新", "reason": "merged"},
        4: {"class": "ThingRenamed", "new_name": "直接", "reason": "unspecified (v1)"},
    }
    published = [json.loads(m.data) for m in await stream_messages(js, demo_stream)]
    assert [(p["schema_version"], p["payload"]) for p in published][1] == (1, {"name": "中"})


# -- durable configuration ---------------------------------------------------------------------


async def test_ensure_durable_updates_a_drifted_config(
    probe_db: Database, js: JetStreamContext, demo_stream: str
) -> None:
    old = ps.make_consumer(probe_db, stream_type="thing")
    old_config = old.consumer_config()
    old_config.ack_wait = 5.0
    old_config.max_ack_pending = 10
    await js.add_consumer(old.stream, old_config)
    await old.ensure_durable(js)
    info = await js.consumer_info(old.stream, old.durable)
    assert info.config.ack_wait == 30.0 and info.config.max_ack_pending == 20_000
    assert info.config.filter_subject == "demo.events.thing.>"


@pytest.mark.parametrize("attempts", [1, 2])
async def test_max_deliveries_bounds_the_tries(
    attempts: int, probe_db: Database, js: JetStreamContext, nats_url: str, demo_stream: str
) -> None:
    tries: list[Any] = []

    async def fails(tx: ProjectionTx, env: Envelope, event: DomainEvent) -> None:
        tries.append(env.event_id)
        raise ValueError("never")

    consumer = ps.make_consumer(probe_db, handlers={"thing.ticked": fails}, max_deliveries=attempts)
    await ps.publish(js, ps.envelope("a", 1))
    async with running_consumers(nats_url, js, consumer):
        await wait_until(lambda: _count_dlq(js, 1), message="dead-lettered")
    async with probe_db.connection() as conn:
        assert await conn.fetchval("SELECT attempts FROM probe.consumer_failures") == attempts


async def test_a_transient_database_error_is_retried_without_charging_the_event(
    probe_db: Database, js: JetStreamContext, nats_url: str, demo_stream: str
) -> None:
    """A deadlock is the database's trouble, not the event's: no attempt counted, no dead letter."""
    raised = Counter[str]()

    async def deadlocks_twice(tx: ProjectionTx, env: Envelope, event: DomainEvent) -> None:
        if raised[env.stream_id] < 2:
            raised[env.stream_id] += 1
            raise asyncpg.exceptions.DeadlockDetectedError("deadlock detected")
        await ps.record(tx, env, event)

    consumer = ps.make_consumer(probe_db, handlers={"thing.ticked": deadlocks_twice}, max_deliveries=1)
    for e in (ps.envelope("a", 1), ps.envelope("a", 2), ps.envelope("b", 1)):
        await ps.publish(js, e)
    async with running_consumers(nats_url, js, consumer):
        await _until_applied(probe_db, {"a": [1, 2], "b": [1]})
        await wait_until(lambda: _settled(js, consumer), message="settled")
    assert raised == {"a": 2, "b": 2}
    assert await _dlq(js) == []
    async with probe_db.connection() as conn:
        assert await conn.fetchval("SELECT count(*) FROM probe.consumer_failures") == 0


async def test_two_replicas_first_seeing_one_aggregate_apply_it_once(
    probe_db: Database, js: JetStreamContext, demo_stream: str
) -> None:
    """Neither finds a position to lock for a new aggregate: the one that commits second fails on
    the position's key, rolls back its effect and puts the batch back."""
    inside, release = asyncio.Event(), asyncio.Event()

    async def slow(tx: ProjectionTx, env: Envelope, event: DomainEvent) -> None:
        inside.set()
        await release.wait()
        await ps.record(tx, env, event)

    first = await _direct(js, ps.make_consumer(probe_db, handlers={"thing.ticked": slow}))
    second = ps.make_consumer(probe_db)
    second.bind_js(js)
    await ps.publish(js, ps.envelope("a", 1))
    [msg] = await _fetch(js, first, 1)
    # The same delivery as another replica would get it after an ack wait: its own message object.
    again = Msg(msg._client, msg.subject, msg.reply, msg.data, msg.headers)
    slow_one = asyncio.create_task(first.process([msg]))
    await asyncio.wait_for(inside.wait(), 10)
    fast_one = await second.process([again])
    release.set()
    raced = await asyncio.wait_for(slow_one, 10)
    assert (fast_one.applied, raced.applied, raced.deferred) == (1, 0, 1)
    assert await ps.applied_versions(probe_db) == {"a": [1]}
    assert len(await ps.effects(probe_db)) == 1


# -- applying the next batch ahead of its transaction -------------------------------------------


class _AheadProbe:
    """The probe projection, able to apply a batch ahead (``AppliesAhead``): it remembers what it
    was given and writes it when its transaction adopts it; ``keep`` says whether it does."""

    def __init__(self, keep: bool) -> None:
        self.keep = keep
        self.handled: list[tuple[str, int]] = []  # applied by the handlers, in their transaction
        self.ahead: list[list[tuple[str, int]]] = []  # each batch as it was applied ahead
        self.abandoned = 0
        self.adopting = asyncio.Event()  # a batch applied ahead has reached its transaction
        self._remembered: list[tuple[Envelope, DomainEvent]] = []

    @staticmethod
    async def _release(tx: ProjectionTx) -> None:
        tx.release_memory()

    async def handler(self, tx: ProjectionTx, env: Envelope, event: DomainEvent) -> None:
        self.handled.append((env.stream_id, env.stream_version))
        await ps.record(tx, env, event)
        tx.before_flush(self._release)

    def applies_ahead(self, events: Any) -> bool:
        return True

    def memory_epoch(self) -> int:
        return 0

    async def apply_ahead(self, conn: asyncpg.Connection, events: Any) -> None:
        self._remembered = list(events)
        self.ahead.append([(env.stream_id, env.stream_version) for env, _e in events])

    async def adopt(self, tx: ProjectionTx, epoch: int) -> bool:
        self.adopting.set()
        if not self.keep:
            return False

        async def write(tx: ProjectionTx) -> None:
            for env, event in self._remembered:
                await ps.record(tx, env, event)
            tx.release_memory()

        tx.before_flush(write)
        return True

    def abandon(self) -> None:
        self.abandoned += 1
        self._remembered = []


@pytest.mark.parametrize("keep", [True, False])
async def test_the_next_batch_is_applied_ahead_and_kept_or_applied_as_usual(
    keep: bool, probe_db: Database, js: JetStreamContext, demo_stream: str
) -> None:
    """Each batch after the first is applied ahead while the one before is written, sorted out
    against that one's uncommitted moves (``a`` v2 follows v1, still in flight). Kept, its
    handlers are not called again; refused, it is abandoned and applied as usual. Either way
    every event is applied once, in order."""
    batches = [[("a", 1), ("b", 1), ("c", 1)], [("a", 2), ("b", 2), ("d", 1)], [("a", 3), ("e", 1)]]
    for batch in batches:
        for sid, v in batch:
            await ps.publish(js, ps.envelope(sid, v))
    probe = _AheadProbe(keep)
    consumer = await _direct(js, ps.make_consumer(probe_db))
    consumer.handlers = {t: probe.handler for t in consumer.handlers}
    consumer.ahead = probe
    for batch in batches:
        await consumer.submit(await _fetch(js, consumer, len(batch)))
    await consumer.drain()
    assert await ps.applied_versions(probe_db) == {"a": [1, 2, 3], "b": [1, 2], "c": [1], "d": [1], "e": [1]}
    assert probe.ahead == batches[1:]
    assert probe.handled == (batches[0] if keep else [e for b in batches for e in b])
    assert probe.abandoned == (0 if keep else 2)
    assert await wait_until(lambda: _settled(js, consumer), message="all acknowledged")


async def test_a_batch_is_decoded_a_chunk_at_a_time_handing_the_loop_back(
    probe_db: Database, js: JetStreamContext, demo_stream: str
) -> None:
    """Decoding a delivered batch holds the event loop one chunk at a time, so the batch in its
    transaction gets its statements' replies meanwhile; the items are those decoded at once."""
    for v in range(1, 6):
        await ps.publish(js, ps.envelope("a", v))
    consumer = await _direct(js, ps.make_consumer(probe_db))
    consumer.decode_chunk = 2
    msgs = await _fetch(js, consumer, 5)
    turns = 0

    async def ticker() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    try:
        before = turns
        items = await consumer._decoded(msgs)
        during = turns - before
    finally:
        task.cancel()
    assert during >= 2  # between the three chunks
    assert [i.envelope for i in items] == [i.envelope for i in consumer._prepare(msgs)]
    assert [i.envelope.stream_version for i in items if i.envelope] == [1, 2, 3, 4, 5]


class _SlowToAcknowledge(EventConsumer):
    """The runtime, with its first batch's acknowledgements held until the next batch's
    transaction has begun (or 5 s have passed)."""

    next_began: asyncio.Event
    overlapped: bool | None = None

    async def _settle(self, result: Any, outcome: Any) -> None:
        if self.overlapped is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.next_began.wait(), 5)
            self.overlapped = self.next_began.is_set()
        await super()._settle(result, outcome)


async def test_the_next_transaction_begins_while_the_batch_before_is_still_acknowledging(
    probe_db: Database, js: JetStreamContext, demo_stream: str
) -> None:
    batches = [[("a", 1), ("b", 1)], [("a", 2), ("c", 1)]]
    for batch in batches:
        for sid, v in batch:
            await ps.publish(js, ps.envelope(sid, v))
    probe = _AheadProbe(keep=True)
    base = ps.make_consumer(probe_db)
    consumer = _SlowToAcknowledge(**{f.name: getattr(base, f.name) for f in dataclasses.fields(base) if f.init})
    consumer.next_began = probe.adopting
    await _direct(js, consumer)
    consumer.handlers = {t: probe.handler for t in consumer.handlers}
    consumer.ahead = probe
    for batch in batches:
        await consumer.submit(await _fetch(js, consumer, len(batch)))
    await consumer.drain()
    assert consumer.overlapped
    assert await ps.applied_versions(probe_db) == {"a": [1, 2], "b": [1], "c": [1]}
    assert await wait_until(lambda: _settled(js, consumer), message="all acknowledged")


# -- positions kept per projection version ------------------------------------------------------


async def test_positions_are_kept_per_version_and_a_batch_asks_for_it_after_a_swap_under_way(
    probe_db: Database, js: JetStreamContext, nats_url: str, demo_stream: str
) -> None:
    """With ``version_of`` each projection version keeps its own aggregate positions. A swap holds
    ``consumer_positions`` EXCLUSIVE while it makes another version serve: a batch arriving then
    waits, and once the swap has committed it reads and moves the new version's positions. An
    event the new version holds already (the rebuild applied it) has no effect and is recorded in
    the inbox, which the rebuild does not write."""
    async with probe_db.connection() as conn:
        await conn.execute("CREATE TABLE probe.serving (version text NOT NULL)")
        await conn.execute("INSERT INTO probe.serving VALUES ('v1')")

    async def serving(conn: asyncpg.Connection) -> str | None:
        return await conn.fetchval("SELECT version FROM probe.serving")

    async def positions() -> dict[tuple[str, str], int]:
        async with probe_db.connection() as conn:
            rows = await conn.fetch("SELECT consumer, stream_id, stream_version FROM probe.consumer_positions")
        return {(r["consumer"], r["stream_id"]): r["stream_version"] for r in rows}

    consumer = ps.make_consumer(probe_db)
    consumer.version_of = serving
    v1, v2 = f"{consumer.durable}@v1", f"{consumer.durable}@v2"
    await ps.publish(js, ps.envelope("a", 1))
    async with running_consumers(nats_url, js, consumer):
        await _until_applied(probe_db, {"a": [1]})
        assert await positions() == {(v1, "a"): 1}
        async with probe_db.connection() as swap, swap.transaction():
            await swap.execute("LOCK TABLE probe.consumer_positions IN EXCLUSIVE MODE")
            await ps.publish(js, ps.envelope("a", 2))
            await ps.publish(js, ps.envelope("b", 1))
            replayed = ps.envelope("c", 1)
            await ps.publish(js, replayed)
            await asyncio.sleep(1.0)  # delivered by now, and held back
            assert await ps.applied_versions(probe_db) == {"a": [1]}
            # The new version was built from a:1 and c:1 (a rebuild copies its positions in).
            await swap.execute("UPDATE probe.serving SET version = 'v2'")
            await swap.execute("INSERT INTO probe.consumer_positions VALUES ($1, 'a', 1), ($1, 'c', 1)", v2)
        await _until_applied(probe_db, {"a": [1, 2], "b": [1]})
        await wait_until(lambda: _settled(js, consumer), message="all acknowledged")
    assert await positions() == {(v1, "a"): 1, (v2, "a"): 2, (v2, "b"): 1, (v2, "c"): 1}
    async with probe_db.connection() as conn:
        assert await conn.fetchval("SELECT outcome FROM probe.consumer_inbox WHERE event_id = $1",
                                   replayed.event_id) == "applied"
