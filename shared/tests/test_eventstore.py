"""The event store on real Postgres: optimistic concurrency, global and commit order, hash chain."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from uuid import uuid4

import asyncpg
import platform_support as ps
import pytest
from tuanlian.shared.db import Database, connect_raw
from tuanlian.shared.eventstore import ConcurrencyConflict, EventStore, Metadata, Position
from tuanlian.shared.testing import wait_until


async def _append(db: Database, store: EventStore, stream: str, expected: int, *events, meta=None):
    async with db.transaction() as conn:
        return await store.append(conn, stream, expected, list(events), meta)


# -- append and optimistic concurrency ---------------------------------------------------------


async def test_append_assigns_versions_positions_and_metadata(db: Database, store: EventStore) -> None:
    corr = uuid4()
    when = datetime(2024, 5, 4, 9, 0, tzinfo=UTC)
    meta = Metadata(actor="cadre:1", org_path="1.5", correlation_id=corr, occurred_at=when)
    first = await _append(db, store, "t-1", 0, ps.ThingCreated(name="a"), ps.ThingTicked(n=1), meta=meta)
    second = await _append(db, store, "t-1", 2, ps.ThingTicked(n=2))
    assert [e.stream_version for e in first + second] == [1, 2, 3]
    assert all(e.global_position is not None and e.recorded_at is not None for e in first + second)
    assert first[0].actor == "cadre:1" and first[0].org_path == "1.5"
    assert first[0].correlation_id == corr and first[0].occurred_at == when
    assert first[0].prev_hash is None
    assert first[1].prev_hash == first[0].hash and second[0].prev_hash == first[1].hash
    async with db.connection() as conn:
        stored = await store.read_stream(conn, "t-1")
        tail = await store.read_stream(conn, "t-1", after_version=2)
    assert [e.event_id for e in stored] == [e.event_id for e in first + second]
    assert [e.hash for e in stored] == [e.hash for e in first + second]
    assert stored[0].payload == {"name": "a"} and stored[0].producer == ps.PRODUCER
    assert [e.stream_version for e in tail] == [3]
    async with db.connection() as conn:
        # Stored as a JSON object (queryable), not as a string holding JSON.
        kinds = await conn.fetch("SELECT jsonb_typeof(payload) AS k, payload->>'name' AS n FROM demo.events")
    assert [r["k"] for r in kinds] == ["object"] * 3 and kinds[0]["n"] == "a"


async def test_append_of_nothing_writes_nothing(db: Database, store: EventStore) -> None:
    assert await _append(db, store, "t-1", 0) == []
    async with db.connection() as conn:
        assert await conn.fetchval("SELECT count(*) FROM demo.events") == 0


async def test_append_refuses_unregistered_event_types(db: Database, store: EventStore) -> None:
    class Stray(ps.DomainEvent):
        event_type = "stray.event"
        stream_type = "thing"

    with pytest.raises(ValueError, match="not a registered"):
        await _append(db, store, "t-1", 0, Stray())


async def test_stale_expected_version_is_a_conflict(db: Database, store: EventStore) -> None:
    await _append(db, store, "t-1", 0, ps.ThingCreated(name="a"), ps.ThingTicked(n=1))
    with pytest.raises(ConcurrencyConflict) as caught:
        await _append(db, store, "t-1", 1, ps.ThingTicked(n=2))
    assert caught.value.expected == 1 and caught.value.actual == 2
    with pytest.raises(ConcurrencyConflict):
        await _append(db, store, "t-1", 3, ps.ThingTicked(n=2))  # ahead of the stream, too
    with pytest.raises(ConcurrencyConflict):
        await _append(db, store, "t-new", 1, ps.ThingTicked(n=2))
    async with db.connection() as conn:
        assert [e.stream_version for e in await store.read_stream(conn, "t-1")] == [1, 2]


async def test_failed_append_rolls_back_the_callers_other_writes(db: Database, store: EventStore) -> None:
    await _append(db, store, "t-1", 0, ps.ThingCreated(name="a"))
    async with db.transaction() as conn:
        await conn.execute("CREATE TABLE side_effect (x int)")
    with pytest.raises(ConcurrencyConflict):
        async with db.transaction() as conn:
            await conn.execute("INSERT INTO side_effect VALUES (1)")
            await store.append(conn, "t-1", 0, [ps.ThingTicked(n=1)])
    async with db.connection() as conn:
        assert await conn.fetchval("SELECT count(*) FROM side_effect") == 0


async def _wait_for_lock_wait(db: Database, pid: int) -> None:
    async def waiting() -> bool:
        async with db.connection() as conn:
            return bool(
                await conn.fetchval(
                    "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1", pid
                )
            )

    await wait_until(waiting, timeout=10, message="second writer blocked on the first")


async def test_racing_appends_of_the_same_version_one_wins(
    db: Database, store: EventStore, database_url: str
) -> None:
    await _append(db, store, "t-1", 0, ps.ThingCreated(name="a"))
    a = await connect_raw(database_url)
    b = await connect_raw(database_url)
    try:
        tx_a, tx_b = a.transaction(), b.transaction()
        await tx_a.start()
        await tx_b.start()
        # Both read the stream at version 1 and append version 2.
        await store.append(a, "t-1", 1, [ps.ThingTicked(n=100)])
        b_append = asyncio.create_task(store.append(b, "t-1", 1, [ps.ThingTicked(n=200)]))
        await _wait_for_lock_wait(db, b.get_server_pid())
        assert not b_append.done()
        await tx_a.commit()
        with pytest.raises(ConcurrencyConflict) as caught:
            await b_append
        assert caught.value.stream_id == "t-1" and caught.value.expected == 1
        await tx_b.rollback()
    finally:
        await a.close()
        await b.close()
    async with db.connection() as conn:
        events = await store.read_stream(conn, "t-1")
    assert [(e.stream_version, e.payload) for e in events] == [(1, {"name": "a"}), (2, {"n": 100})]


async def test_many_concurrent_writers_never_fork_a_stream(db: Database, store: EventStore) -> None:
    """Twenty writers each read-then-append in a retry loop: every event lands, once, in a line."""

    async def writer(i: int) -> int:
        conflicts = 0
        while True:
            try:
                async with db.transaction() as conn:
                    head = await store.read_stream(conn, "hot")
                    await store.append(conn, "hot", len(head), [ps.ThingTicked(n=i)])
                return conflicts
            except ConcurrencyConflict:
                conflicts += 1

    await asyncio.gather(*(writer(i) for i in range(20)))
    async with db.connection() as conn:
        events = await store.read_stream(conn, "hot")
    assert [e.stream_version for e in events] == list(range(1, 21))
    assert sorted(e.payload["n"] for e in events) == list(range(20))


async def test_global_position_orders_all_streams(db: Database, store: EventStore) -> None:
    written = []
    for i in range(5):
        for stream in ("a", "b", "c"):
            written += await _append(db, store, stream, i, ps.ThingTicked(n=i))
    positions = [e.global_position for e in written]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)
    async with db.connection() as conn:
        read = await store.read_committed(conn, Position())
    assert [env.event_id for _, env in read] == [e.event_id for e in written]
    assert [p for p, _ in read] == sorted(p for p, _ in read)


async def test_read_committed_pages_from_a_position(db: Database, store: EventStore) -> None:
    for i in range(7):
        await _append(db, store, f"s{i}", 0, ps.ThingTicked(n=i))
    seen = []
    after = Position()
    async with db.connection() as conn:
        while page := await store.read_committed(conn, after, limit=3):
            assert len(page) <= 3
            seen += [env.payload["n"] for _, env in page]
            after = page[-1][0]
    assert seen == list(range(7))


# -- commit order ------------------------------------------------------------------------------


async def test_read_committed_waits_for_a_transaction_that_took_its_position_early(
    db: Database, store: EventStore, database_url: str
) -> None:
    """A appends first (lower position) but commits last: nothing of B is read before A is."""
    a = await connect_raw(database_url)
    b = await connect_raw(database_url)
    try:
        tx_a = a.transaction()
        await tx_a.start()
        [env_a] = await store.append(a, "a", 0, [ps.ThingTicked(n=1)])
        async with b.transaction():
            [env_b] = await store.append(b, "b", 0, [ps.ThingTicked(n=2)])
        assert env_a.global_position < env_b.global_position  # type: ignore[operator]
        async with db.connection() as conn:
            early = await store.read_committed(conn, Position())
        assert early == []  # B is committed, but reading it now would let A slip behind
        await tx_a.commit()
    finally:
        await a.close()
        await b.close()
    async with db.connection() as conn:
        late = await store.read_committed(conn, Position())
    assert [env.event_id for _, env in late] == [env_a.event_id, env_b.event_id]


async def test_commit_order_follows_transactions_not_positions(
    db: Database, store: EventStore, database_url: str
) -> None:
    """A starts writing first but appends its event after B's: its event is still read first,
    and a reader that checkpointed B's event does not skip A's."""
    a = await connect_raw(database_url)
    b = await connect_raw(database_url)
    try:
        tx_a = a.transaction()
        await tx_a.start()
        await a.execute("CREATE TEMP TABLE scratch (x int); INSERT INTO scratch VALUES (1)")
        await a.fetchval("SELECT pg_current_xact_id()")  # A has its transaction id now
        async with b.transaction():
            [env_b] = await store.append(b, "b", 0, [ps.ThingTicked(n=2)])
        [env_a] = await store.append(a, "a", 0, [ps.ThingTicked(n=1)])
        assert env_b.global_position < env_a.global_position  # type: ignore[operator]
        async with db.connection() as conn:
            assert await store.read_committed(conn, Position()) == []
        await tx_a.commit()
    finally:
        await a.close()
        await b.close()
    async with db.connection() as conn:
        read = await store.read_committed(conn, Position())
        after_first = await store.read_committed(conn, read[0][0])
    assert [env.event_id for _, env in read] == [env_a.event_id, env_b.event_id]
    assert [env.event_id for _, env in after_first] == [env_b.event_id]


# -- hash chain and immutability ---------------------------------------------------------------


async def test_intact_log_verifies(db: Database, store: EventStore) -> None:
    for stream in ("a", "b"):
        await _append(db, store, stream, 0, ps.ThingCreated(name=stream), ps.ThingTicked(n=1))
        await _append(db, store, stream, 2, ps.ThingTicked(n=2), ps.ThingTicked(n=3))
    async with db.transaction() as conn:
        assert await store.verify_chains(conn) == []
    async with db.connection() as conn:  # also outside an explicit transaction
        assert await store.verify_chains(conn) == []


async def test_numbers_survive_the_round_trip_through_jsonb(db: Database, store: EventStore) -> None:
    class Measured(ps.DomainEvent):
        event_type = "thing.measured"
        stream_type = "thing"
        values: list[float | int]

    registry = ps.ContractRegistry(ps.PRODUCER)
    registry.register(Measured)
    measuring = EventStore(store.schema, store.producer, registry)
    values = [5.0, 0.1, 1e-7, 1e16, 1.5e20, 1.2345678901234567e21, 7, 2**62, -0.0, 123456.789]
    async with db.transaction() as conn:
        await measuring.append(conn, "m", 0, [Measured(values=values)])
    async with db.connection() as conn:
        assert await measuring.verify_chains(conn) == []


async def _tamper(db: Database, sql: str, *args) -> None:
    async with db.transaction() as conn:
        await conn.execute("ALTER TABLE demo.events DISABLE TRIGGER events_immutable")
        await conn.execute(sql, *args)
        await conn.execute("ALTER TABLE demo.events ENABLE TRIGGER events_immutable")


async def test_verify_reports_an_edited_payload(db: Database, store: EventStore) -> None:
    await _append(db, store, "a", 0, ps.ThingCreated(name="a"), ps.ThingTicked(n=1), ps.ThingTicked(n=2))
    [victim] = await _append(db, store, "b", 0, ps.ThingCreated(name="b"))
    await _tamper(
        db, "UPDATE demo.events SET payload = '{\"name\": \"forged\"}' WHERE event_id = $1", victim.event_id
    )
    async with db.connection() as conn:
        problems = await store.verify_chains(conn)
    assert len(problems) == 1
    assert str(victim.event_id) in problems[0] and "hash mismatch" in problems[0]


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("actor", "someone-else"),
        ("org_path", "forged.path"),
        ("correlation_id", "00000000-0000-7000-8000-000000000001"),
        ("causation_id", "00000000-0000-7000-8000-000000000002"),
        ("occurred_at", "2001-01-01T00:00:00Z"),
    ],
)
async def test_verify_reports_edited_metadata(db: Database, store: EventStore, column: str, value: str) -> None:
    [victim] = await _append(db, store, "m", 0, ps.ThingCreated(name="m"))
    cast = {"correlation_id": "uuid", "causation_id": "uuid", "occurred_at": "timestamptz"}.get(column, "text")
    await _tamper(db, f"UPDATE demo.events SET {column} = $2::text::{cast} WHERE event_id = $1", victim.event_id, value)
    async with db.connection() as conn:
        problems = await store.verify_chains(conn)
    assert problems == [f"m v1 ({victim.event_id}): hash mismatch"]


async def test_verify_reports_a_rehashed_forgery_through_the_next_link(
    db: Database, store: EventStore
) -> None:
    """A forger who also recomputes the edited event's own hash still breaks its successor."""
    events = await _append(
        db, store, "a", 0, ps.ThingCreated(name="a"), ps.ThingTicked(n=1), ps.ThingTicked(n=2)
    )
    forged = events[1].model_copy(update={"payload": {"n": 999}})
    new_hash = forged.chain_hash(events[0].hash)
    await _tamper(
        db,
        "UPDATE demo.events SET payload = '{\"n\": 999}', hash = $2 WHERE event_id = $1",
        events[1].event_id,
        new_hash,
    )
    async with db.connection() as conn:
        problems = await store.verify_chains(conn)
    assert problems == [f"a v3 ({events[2].event_id}): hash mismatch"]


async def test_verify_reports_a_deleted_event(db: Database, store: EventStore) -> None:
    events = await _append(
        db, store, "a", 0, ps.ThingCreated(name="a"), ps.ThingTicked(n=1), ps.ThingTicked(n=2)
    )
    await _tamper(db, "DELETE FROM demo.events WHERE event_id = $1", events[1].event_id)
    async with db.connection() as conn:
        problems = await store.verify_chains(conn)
    assert any("version 3 follows 1" in p for p in problems)
    assert any(str(events[2].event_id) in p and "hash mismatch" in p for p in problems)


async def test_events_cannot_be_updated_or_deleted(db: Database, store: EventStore) -> None:
    [env] = await _append(db, store, "a", 0, ps.ThingCreated(name="a"))
    for sql in (
        "UPDATE demo.events SET payload = '{}' WHERE event_id = $1",
        "DELETE FROM demo.events WHERE event_id = $1",
    ):
        with pytest.raises(asyncpg.RaiseError, match="immutable"):
            async with db.transaction() as conn:
                await conn.execute(sql, env.event_id)
    async with db.connection() as conn:
        [again] = await store.read_stream(conn, "a")
        assert await store.verify_chains(conn) == []
    assert again.payload == {"name": "a"} and again.hash == env.hash


# -- appends that know the stream's head (one statement) ---------------------------------------


async def test_append_with_the_known_head_hash_chains_on_and_verifies(db: Database, store: EventStore) -> None:
    first = await _append(db, store, "t-h", 0, ps.ThingCreated(name="a"))
    async with db.transaction() as conn:
        second = await store.append(conn, "t-h", 1, [ps.ThingTicked(n=1)], head_hash=first[-1].hash)
    assert second[0].stream_version == 2 and second[0].prev_hash == first[0].hash
    async with db.connection() as conn:
        assert await store.verify_chains(conn) == []


async def test_append_with_a_stale_head_is_a_conflict_and_writes_nothing(db: Database, store: EventStore) -> None:
    first = await _append(db, store, "t-s", 0, ps.ThingCreated(name="a"))
    await _append(db, store, "t-s", 1, ps.ThingTicked(n=1))
    with pytest.raises(ConcurrencyConflict) as info:
        async with db.transaction() as conn:
            await store.append(conn, "t-s", 1, [ps.ThingTicked(n=2)], head_hash=first[-1].hash)
    assert info.value.actual == 2
    # A wrong hash at the right version is refused too: the chain never forks.
    with pytest.raises(ConcurrencyConflict):
        async with db.transaction() as conn:
            await store.append(conn, "t-s", 2, [ps.ThingTicked(n=2)], head_hash=first[-1].hash)
    # A version beyond the head leaves no gap.
    with pytest.raises(ConcurrencyConflict) as info:
        async with db.transaction() as conn:
            await store.append(conn, "t-s", 5, [ps.ThingTicked(n=2)], head_hash="x")
    assert info.value.actual == 2
    async with db.connection() as conn:
        assert [e.stream_version for e in await store.read_stream(conn, "t-s")] == [1, 2]
        assert await store.verify_chains(conn) == []


async def test_a_row_written_beside_the_append_commits_or_fails_with_it(db: Database, store: EventStore) -> None:
    async with db.connection() as conn:
        await conn.execute("CREATE TABLE demo.beside (name text PRIMARY KEY, at timestamptz NOT NULL)")
    also = ("INSERT INTO demo.beside SELECT $18::text, recorded_at FROM appended", ["a"])
    async with db.connection() as conn:  # no explicit transaction: one atomic statement
        first = await store.append(conn, "t-b", 0, [ps.ThingCreated(name="a")], also=also)
        with pytest.raises(ConcurrencyConflict):
            await store.append(conn, "t-b", 0, [ps.ThingCreated(name="b")], also=(also[0], ["b"]))
        rows = await conn.fetch("SELECT name, at FROM demo.beside")
    assert [(r["name"], r["at"]) for r in rows] == [("a", first[0].recorded_at)]
