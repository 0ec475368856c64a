"""Rebuild from the streams into a new projection version, swapped in under live consumers; as-of
leaderboards equal to what they showed then."""

from __future__ import annotations

import asyncio
import multiprocessing
import random
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from nats.js import JetStreamContext
from scoring_support import Producer, Scoring
from test_projection import T0, _interaction, _org_and_cadre
from tuanlian.scoring.adapters import stamps as stamps_module
from tuanlian.scoring.adapters.projection import Projector
from tuanlian.scoring.adapters.rebuild import Rebuild, RebuildError, drop_retired, durable, read_stream
from tuanlian.scoring.adapters.stamps import LogSource, Stamps
from tuanlian.scoring.adapters.state import State
from tuanlian.scoring.domain.rules import RuleSet, register_ruleset
from tuanlian.shared.auth import Role
from tuanlian.shared.consumer import ProjectionTx
from tuanlian.shared.contracts import contacts as c
from tuanlian.shared.contracts import wishes as w
from tuanlian.shared.db import connect_raw
from tuanlian.shared.infra import free_port
from tuanlian.shared.migrations import load_migrations, migrate
from tuanlian.shared.streams import declare_stream, event_stream_name, producer_stream
from tuanlian.shared.testing import wait_until

LEDGER = ("owner_id, owner_kind, org_path, points, rule, ruleset_version, source_event_ids, youth_id, ref, "
          "occurred_at")


async def _story(contacts: Producer, wishes: Producer) -> int:
    await _org_and_cadre(contacts)
    await contacts.emit("cadre-c2", c.CadreRegistered(cadre_id="c2", org_id="o1", org_path="/root/o1",
                                                      kind=c.CadreKind.full_time, in_leadership_organ=False), T0)
    for i, y in enumerate(["y1", "y2"]):
        await contacts.emit(f"link-l{i}", c.ContactLinkAccepted(link_id=f"l{i}", cadre_id="c1", youth_id=y,
                                                                 org_path="/root/o1"), T0)
    await contacts.emit("interaction-i1", _interaction("i1", ["y1", "y2"], False, T0))
    await contacts.emit("interaction-i2", _interaction("i2", ["y1"], True, T0 + timedelta(days=1)))
    await contacts.emit("interaction-i3", _interaction("i3", ["y3"], False, T0, "c2"))
    await contacts.emit("interaction-i1", c.InteractionConfirmed(interaction_id="i1", cadre_id="c1", youth_id="y2",
                                                                 org_path="/root/o1"))
    await wishes.emit("wish-w1", w.WishConfirmed(wish_id="w1", youth_id="y1", cadre_id="c1", org_path="/root/o1",
                                                 from_pool=False, days_to_fulfil=3), T0)
    await wishes.emit("rating-r1", w.CadreRated(rating_id="r1", cadre_id="c2", org_path="/root/o1", score=5,
                                                period="2026Q1"), T0)
    return 11


async def _ledger(scoring: Scoring, schema: str) -> list[tuple[Any, ...]]:
    async with scoring.runtime.db.connection() as conn:
        rows = await conn.fetch(f"SELECT {LEDGER} FROM {schema}.ledger")
    return sorted((tuple(r) for r in rows), key=repr)


async def _dated(scoring: Scoring, schema: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every appended row of a version with its ``applied_at``, per table; each interaction with
    the instant it was first applied."""
    queries = {"ledger": f"SELECT {LEDGER}, applied_at FROM {schema}.ledger",
               "facts": f"SELECT owner_id, metric, subject, n, occurred_on, source_event_id, applied_at FROM {schema}.facts",
               "flags": f"SELECT owner_id, code, ref, source_event_id, occurred_on, applied_at FROM {schema}.flags",
               "cadre_paths": f"SELECT cadre_id, org_path, kind, org_type, applied_at FROM {schema}.cadre_paths",
               "org_history": f"SELECT org_id, org_path, name, org_type, closed, applied_at FROM {schema}.org_history",
               "interactions": f"SELECT interaction_id, known_at, revised_at, earlier FROM {schema}.interactions",
               "org_rules": f"SELECT org_path, records, replaced FROM {schema}.org_rules"}
    async with scoring.runtime.db.connection() as conn:
        return {table: sorted((tuple(r) for r in await conn.fetch(sql)), key=repr) for table, sql in queries.items()}


async def _points(scoring: Scoring, schema: str) -> list[tuple[Any, ...]]:
    async with scoring.runtime.db.connection() as conn:
        rows = await conn.fetch(f"SELECT period_kind, period_key, owner_id, org_path, points FROM {schema}.period_points")
    return sorted(tuple(r) for r in rows)


async def test_rebuild_equals_old_version_swaps_reads_and_live_consumers_continue(
    scoring: Scoring, contacts: Producer, wishes: Producer, js: JetStreamContext
) -> None:
    n = await _story(contacts, wishes)
    await scoring.applied(n)
    old_ledger, old_points = await _ledger(scoring, "scoring_proj"), await _points(scoring, "scoring_proj")
    board_before = await scoring.get("/leaderboards/cadres", org_path="/root", period_kind="month", period="2026-03")
    seen: list[int] = []
    async with scoring.runtime.db.connection() as conn:
        result = await Rebuild(conn, js, on_progress=lambda p: seen.append(p.done)).run()
    assert (result.version, result.schema, result.previous) == (2, "scoring_proj_v2", "scoring_proj")
    assert result.events == n and result.applied == n and seen[-1] == n
    assert list(result.phases) == ["replay", "write", "swap", "after"]
    assert abs(sum(result.phases.values()) - result.seconds) < 0.05  # the phases add up to the rebuild
    # The new version equals the old one, entry for entry.
    assert await _ledger(scoring, "scoring_proj_v2") == old_ledger
    assert await _points(scoring, "scoring_proj_v2") == old_points
    async with scoring.runtime.db.connection() as conn:
        versions = [tuple(r) for r in await conn.fetch(
            "SELECT version, schema_name, status FROM scoring.projection_versions ORDER BY version")]
        # Reads switch: make the old version visibly different, the HTTP API does not see it.
        await conn.execute("UPDATE scoring_proj.period_points SET points = points + 1000")
    assert versions == [(1, "scoring_proj", "retired"), (2, "scoring_proj_v2", "current")]
    assert await scoring.get("/leaderboards/cadres", org_path="/root", period_kind="month",
                             period="2026-03") == board_before
    # The live consumers go on in the new version, counting nothing twice: a redelivered old
    # event is a duplicate, a new one applies once.
    await contacts.emit("interaction-i4", _interaction("i4", ["y2"], False, T0 + timedelta(days=2)))
    await scoring.applied(n + 1)
    led = await scoring.get("/cadres/c1/ledger")
    assert sum(e["points"] for e in led) == sum(r[3] for r in old_ledger if r[0] == "c1") + 3
    assert len(await _ledger(scoring, "scoring_proj_v2")) == len(old_ledger) + 1
    assert len(await _ledger(scoring, "scoring_proj")) == len(old_ledger)  # the retired one is kept, frozen


async def test_rebuild_under_another_rule_set_is_an_explicit_replay(
    scoring: Scoring, contacts: Producer, wishes: Producer, js: JetStreamContext
) -> None:
    n = await _story(contacts, wishes)
    await scoring.applied(n)
    register_ruleset(RuleSet(version="test-double-offline", interaction={"offline": 6}))  # type: ignore[arg-type]
    async with scoring.runtime.db.connection() as conn:
        r = await Rebuild(conn, js, ruleset_override="test-double-offline").run(drop_old=True)
        dropped = await conn.fetchval("SELECT to_regnamespace('scoring_proj')")
    assert r.dropped_old and dropped is None
    led = await scoring.get("/cadres/c1/ledger")
    assert {e["ruleset_version"] for e in led} == {"test-double-offline"}
    offline = [e["points"] for e in led if e["rule"] == "interaction_offline"]
    assert sorted(offline) == [6, 6]
    # New events after the swap are scored by the version's rule set too.
    await contacts.emit("interaction-i5", _interaction("i5", ["y2"], False, T0 + timedelta(days=3)))
    await scoring.applied(n + 1)
    led = await scoring.get("/cadres/c1/ledger")
    assert [e["points"] for e in led if e["ref"] == "i5"] == [6]


async def test_dropping_the_retired_version_outlasts_a_deadlock_with_a_reader(database_url: str) -> None:
    """A reader holds one table of the retired schema and then asks for one the drop already holds:
    Postgres cancels the drop (its deadlock check is the first to run here); it is tried again
    once the reader is done, and the schema goes."""
    schema = f"retired_{random.randrange(10**9)}"
    setup, reader, dropper = [await connect_raw(database_url) for _ in range(3)]
    drop: asyncio.Task[None] | None = None
    try:
        await setup.execute(f"CREATE SCHEMA {schema}; CREATE TABLE {schema}.a (x int); "
                            f"CREATE TABLE {schema}.b (x int); CREATE TABLE {schema}.c (x int)")
        # Postgres checks for a cycle once, deadlock_timeout after a wait begins: the drop's check
        # must come after the reader has closed the cycle, and well before the reader's own.
        await dropper.execute("SET deadlock_timeout = '2s'")
        await reader.execute("SET deadlock_timeout = '60s'")
        tx = reader.transaction()
        await tx.start()
        await reader.execute(f"LOCK {schema}.c IN ACCESS SHARE MODE")  # the drop takes the tables in order
        pid = dropper.get_server_pid()
        drop = asyncio.create_task(drop_retired(dropper, schema))
        held = await wait_until(lambda: setup.fetch(
            "SELECT relation::regclass::text AS name, granted FROM pg_locks WHERE pid = $1 AND relation = ANY($2::regclass[])",
            pid, [f"{schema}.{t}" for t in "abc"]), until=lambda rows: any(not r["granted"] for r in rows), timeout=10)
        assert {(r["name"], r["granted"]) for r in held} == {(f"{schema}.a", True), (f"{schema}.b", True),
                                                             (f"{schema}.c", False)}
        # The reader asks for a, which the drop holds: a cycle. The drop's check runs first and
        # cancels it, which lets the reader have a; the drop tries again, waiting for the reader.
        await asyncio.wait_for(reader.execute(f"LOCK {schema}.a IN ACCESS SHARE MODE"), 10)
        assert not drop.done()
        await tx.rollback()
        await asyncio.wait_for(drop, 10)
        assert await setup.fetchval("SELECT count(*) FROM pg_namespace WHERE nspname = $1", schema) == 0
    finally:
        if drop is not None and not drop.done():
            drop.cancel()
        for conn in (reader, dropper):
            await conn.close(timeout=5)
        await setup.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await setup.close()


async def test_transfers_and_moves_among_the_swaps_last_events_move_the_boards_already_written(
    scoring: Scoring, contacts: Producer, wishes: Producer, js: JetStreamContext
) -> None:
    """The swap applies, under its lock, what arrived after the rows and boards were written: a
    transfer or an org move among those events moves the boards already there, as a live
    consumer's would. The version equals one rebuilt with them in the replay."""
    n = await _story(contacts, wishes)
    await contacts.emit("org-o2", c.OrgCreated(org_id="o2", parent_id="root", name="二支部", org_type=c.OrgType.general_branch,
                                               depth=2, is_leadership_organ=False, org_path="/root/o2"), T0)
    await scoring.applied(n + 1)

    class LateEvents(Rebuild):
        async def _write_rows(self, projector: Projector) -> None:
            await super()._write_rows(projector)
            await contacts.emit("cadre-c1", c.CadreTransferred(cadre_id="c1", from_org_id="o1", to_org_id="o2",
                                                               old_path="/root/o1", org_path="/root/o2",
                                                               in_leadership_organ=False))
            await contacts.emit("org-o2", c.OrgMoved(org_id="o2", old_parent_id="root", new_parent_id="o9",
                                                     old_path="/root/o2", new_path="/root/o9/o2", depth=3))

    async with scoring.runtime.db.connection() as conn:
        late = await LateEvents(conn, js).run()
        assert late.events == n + 3
        again = await Rebuild(conn, js).run()
        boards = await conn.fetch(f"SELECT DISTINCT org_path, org_type FROM {late.schema}.period_points "
                                  "WHERE owner_id = 'c1'")
    assert [tuple(r) for r in boards] == [("/root/o9/o2", "general_branch")]
    assert await _points(scoring, late.schema) == await _points(scoring, again.schema)
    assert await _ledger(scoring, late.schema) == await _ledger(scoring, again.schema)


async def test_leaderboards_as_of_equal_what_they_showed_then(
    scoring: Scoring, contacts: Producer, wishes: Producer
) -> None:
    n = await _story(contacts, wishes)
    # c3 has entries that cancel out: the live board shows them with 0, as-of must too.
    await contacts.emit("cadre-c3", c.CadreRegistered(cadre_id="c3", org_id="o1", org_path="/root/o1",
                                                      kind=c.CadreKind.part_time, in_leadership_organ=False), T0)
    await contacts.emit("interaction-z1", _interaction("z1", ["y9"], True, T0, "c3"))
    await contacts.emit("interaction-z1", c.InteractionDisputed(interaction_id="z1", cadre_id="c3", youth_id="y9",
                                                                org_path="/root/o1"))
    await contacts.emit("org-o2", c.OrgCreated(org_id="o2", parent_id="root", name="二支部", org_type=c.OrgType.branch,
                                               depth=2, is_leadership_organ=False, org_path="/root/o2"), T0)
    n += 4
    await scoring.applied(n)
    queries: list[tuple[str, dict[str, Any]]] = [
        ("/leaderboards/cadres", {"org_path": "/root", "period_kind": "month", "period": "2026-03"}),
        ("/leaderboards/cadres", {"org_path": "/root", "period_kind": "all"}),
        ("/leaderboards/cadres", {"org_path": "/root/o1", "period_kind": "day", "period": "2026-03-10"}),
        ("/leaderboards/cadres", {"org_path": "/root", "period_kind": "month", "period": "2026-03",
                                  "cadre_kind": "part_time"}),
        ("/leaderboards/orgs", {"org_path": "/root", "org_type": "branch", "period_kind": "month",
                                "period": "2026-03"}),
    ]
    then = [await scoring.get(url, **params) for url, params in queries]
    instant = await _now(scoring)
    assert any(e["cadre_id"] == "c3" and e["points"] == 0 for e in then[0]["entries"]), then[0]
    # Afterwards: more points, a new cadre, a transfer, a new link.
    await contacts.emit("cadre-c4", c.CadreRegistered(cadre_id="c4", org_id="o2", org_path="/root/o2",
                                                      kind=c.CadreKind.full_time, in_leadership_organ=False), T0)
    await contacts.emit("interaction-k1", _interaction("k1", ["y5"], False, T0, "c4", "/root/o2"))
    await contacts.emit("interaction-k2", _interaction("k2", ["y6"], False, T0, "c2"))
    await contacts.emit("cadre-c2", c.CadreTransferred(cadre_id="c2", from_org_id="o1", to_org_id="o2", old_path="/root/o1",
                                                       org_path="/root/o2", in_leadership_organ=False), T0)
    await contacts.emit("link-l9", c.ContactLinkAccepted(link_id="l9", cadre_id="c1", youth_id="y7",
                                                         org_path="/root/o1"), T0)
    await scoring.applied(n + 5)
    now = [await scoring.get(url, **params) for url, params in queries]
    assert now != then
    again = [await scoring.get(url, **params, as_of=instant.isoformat()) for url, params in queries]
    assert again == then
    # Before anything was applied, the boards were empty.
    early = (datetime.now(UTC) - timedelta(days=400)).isoformat()
    assert (await scoring.get(queries[0][0], **queries[0][1], as_of=early))["entries"] == []


async def test_a_rebuild_whose_reader_process_fails_is_marked_failed_and_the_old_version_serves(
    scoring: Scoring, contacts: Producer, wishes: Producer, js: JetStreamContext
) -> None:
    n = await _story(contacts, wishes)
    await scoring.applied(n)
    nobody = f"nats://127.0.0.1:{free_port()}"  # no server there: the reader cannot connect
    async with scoring.runtime.db.connection() as conn:
        with pytest.raises(RebuildError, match="reading the streams failed"):
            await Rebuild(conn, js, reader_url=nobody, reader_from=1).run()
        versions = [tuple(r) for r in await conn.fetch(
            "SELECT version, schema_name, status FROM scoring.projection_versions ORDER BY version")]
        leftover = await conn.fetchval("SELECT to_regnamespace('scoring_proj_v2')")
    assert versions == [(1, "scoring_proj", "current"), (2, "scoring_proj_v2", "failed")]
    assert leftover is None
    assert len(await scoring.get("/cadres/c1/ledger")) > 0


async def test_a_rebuild_that_fails_to_apply_ends_and_stops_its_reader_process(
    scoring: Scoring, contacts: Producer, wishes: Producer, js: JetStreamContext, nats_url: str,
    monkeypatch: pytest.MonkeyPatch
) -> None:
    n = await _story(contacts, wishes)
    for i in range(1500):  # far more than the pipe holds: the reader is still sending when the applier fails
        await wishes.emit(f"rating-x{i}", w.CadreRated(rating_id=f"x{i}", cadre_id="c2", org_path="/root/o1",
                                                      score=4, period="2026Q1"), T0)
    await scoring.applied(n + 1500)

    async def breaks(self: Projector, tx: Any, env: Any, e: Any) -> None:
        raise ValueError("cannot apply this interaction")

    monkeypatch.setattr(Projector, "on_InteractionLogged", breaks)
    async with scoring.runtime.db.connection() as conn:
        with pytest.raises(RebuildError, match="cannot apply this interaction"):
            # Bounded: a reader left waiting to hand over its end marker used to hang the rebuild.
            await asyncio.wait_for(Rebuild(conn, js, reader_url=nats_url, reader_from=1, batch=2, fetch=10).run(), 60)
        status = await conn.fetchval("SELECT status FROM scoring.projection_versions WHERE version = 2")
    assert status == "failed"
    assert multiprocessing.active_children() == []  # the reader was stopped, not left to the collector


async def test_a_reader_held_up_past_its_consumers_idle_limit_goes_on_with_a_new_one(
    wishes: Producer, js: JetStreamContext
) -> None:
    """The server deletes a rebuild's ephemeral consumer after ``idle`` seconds without a fetch; a
    reader held up that long (its applier writing millions of rows) reads on from where it was."""
    await declare_stream(js, producer_stream("wishes"), storage="memory")
    for i in range(60):
        await wishes.emit(f"rating-h{i}", w.CadreRated(rating_id=f"h{i}", cadre_id="c1", org_path="/root/o1",
                                                      score=4, period="2026Q1"), T0)
    stream = event_stream_name("wishes")
    last = (await js.stream_info(stream)).state.last_seq
    seqs: list[int] = []
    reader = read_stream(js, "wishes", 1, last, batch=25, idle=1.0)
    async for msgs in reader:
        seqs.extend(m.seq for m in msgs)
        if len(seqs) == 25:
            for _ in range(100):  # held up until the server has deleted the consumer
                await asyncio.sleep(0.1)
                if not [ci for ci in await js.consumers_info(stream) if ci.config.description == "scoring rebuild (ephemeral)"]:
                    break
            else:
                pytest.fail("the idle consumer was never deleted")
    assert seqs == list(range(1, last + 1))


async def test_each_version_keeps_its_own_positions_and_the_swap_writes_only_what_its_last_events_moved(
    scoring: Scoring, contacts: Producer, wishes: Producer, js: JetStreamContext
) -> None:
    """The replay's positions are copied in under the new version's key before the swap, beside
    the live consumers' (left as they are); under its lock the swap writes only the positions its
    last events moved; the retired version's are deleted; the live consumers go on with the new
    version's, applying nothing twice."""
    n = await _story(contacts, wishes)
    await scoring.applied(n)
    points = durable("scoring", "contacts")
    old, new = f"{points}@scoring_proj", f"{points}@scoring_proj_v2"

    async def positions(conn: Any, key: str) -> dict[str, tuple[int, str]]:
        return {r["stream_id"]: (r["stream_version"], r["xmin"]) for r in await conn.fetch(
            "SELECT stream_id, stream_version, xmin::text FROM scoring.consumer_positions WHERE consumer = $1", key)}

    async with scoring.runtime.db.connection() as conn:
        live = await positions(conn, old)
        assert live and await positions(conn, points) == {}  # the live consumer's are its version's
        # Left by a build of that version that died and was marked failed by hand: not the new one's.
        await conn.execute("INSERT INTO scoring.consumer_positions VALUES ($1, 'link-l0', 9), ($1, 'gone', 1)", new)
        copied: dict[str, tuple[int, str]] = {}

        class LateEvents(Rebuild):
            async def _write_rows(self, projector: Projector) -> None:
                await super()._write_rows(projector)
                copied.update(await positions(conn, new))
                assert {k: v for k, (v, _) in copied.items()} == self.positions["contacts"]
                assert await positions(conn, old) == live
                # After the copy: a new aggregate and an old one's next event, for the swap.
                await contacts.emit("interaction-i4", _interaction("i4", ["y2"], False, T0 + timedelta(days=2)))
                await contacts.emit("interaction-i2", c.InteractionConfirmed(
                    interaction_id="i2", cadre_id="c1", youth_id="y1", org_path="/root/o1"))

        rebuild = LateEvents(conn, js)
        await rebuild.run()
        after = await positions(conn, new)
        assert await positions(conn, old) == {}
    assert {k: v for k, (v, _) in after.items()} == rebuild.positions["contacts"]
    assert after["interaction-i4"][0] == 1 and after["interaction-i2"][0] == 2
    assert {k for k, row in after.items() if copied.get(k) != row} == {"interaction-i4", "interaction-i2"}
    await scoring.applied(n + 2)  # the live consumers have seen both: duplicates in the new version
    ledger = await _ledger(scoring, "scoring_proj_v2")
    assert [r[8] for r in ledger].count("i4") == 1
    assert sorted(r[4] for r in ledger if r[8] == "i2") == ["interaction_confirmed", "interaction_online"]


async def _upgraded(database_url: str, schema: str, migration: str, before: str, after: str) -> list[tuple[Any, ...]]:
    """Rows ``after`` reads once the migrations up to ``migration`` (excluded) have run, ``before``
    has, and then the rest."""
    conn = await connect_raw(database_url)
    try:
        migrations = load_migrations("tuanlian.scoring.migrations", schema)
        n = [m.version for m in migrations].index(migration)
        await migrate(conn, schema, migrations[:n])
        await conn.execute(before)
        await migrate(conn, schema, migrations)
        return sorted(tuple(r) for r in await conn.fetch(after))
    finally:
        await conn.close()


async def test_the_positions_written_before_versions_kept_their_own_become_the_serving_versions(
    database_url: str
) -> None:
    """Migration 0008: the live durables' rows (keyed by the durable alone) are the version's that
    serves."""
    rows = await _upgraded(database_url, "sp", "0008_positions_per_version",
                           "INSERT INTO sp.consumer_positions VALUES ('sp_points_contacts', 'link-l1', 3), "
                           "('sp_points_wishes', 'wish-w1', 2)", "SELECT * FROM sp.consumer_positions")
    assert rows == [("sp_points_contacts@sp_proj", "link-l1", 3), ("sp_points_wishes@sp_proj", "wish-w1", 2)]


async def test_what_the_serving_version_applied_before_it_had_a_log_is_logged_undated(database_url: str) -> None:
    """Migration 0009: up to each live durable's checkpoint, the serving version's log says
    nothing of when (a rebuild dates those events by the bus, as before)."""
    rows = await _upgraded(database_url, "sl", "0009_applied_log",
                           "INSERT INTO sl.consumer_checkpoint (consumer, stream_sequence) VALUES "
                           "('sl_points_contacts', 7), ('sl_points_wishes', 3), ('sl_other', 9)",
                           "SELECT consumer, through_seq, applied_at FROM sl_proj.applied_log")
    assert rows == [("sl_points_contacts", 7, None), ("sl_points_wishes", 3, None)]


async def test_a_batch_told_its_version_under_the_positions_lock_does_not_ask_again() -> None:
    """The runtime asks which version serves once it holds ROW SHARE on consumer_positions (no
    swap can commit before the batch ends); the state takes that answer instead of asking again.
    A batch told another version (a swap committed before it) reads the version's row."""
    st = State("scoring_proj", "c", versions="scoring.projection_versions")
    assert await st._serving(ProjectionTx(None, version="scoring_proj")) == ("scoring_proj", None)  # type: ignore[arg-type]
    with pytest.raises(AttributeError):  # no connection: it would have had to ask
        await st._serving(ProjectionTx(None, version="scoring_proj_v2"))  # type: ignore[arg-type]


async def test_a_circular_published_while_scoring_lagged_recomputes_equal_on_a_rebuilt_version(
    scoring: Scoring, contacts: Producer, wishes: Producer, js: JetStreamContext
) -> None:
    await contacts.emit("org-root", c.OrgCreated(org_id="root", parent_id=None, name="市团委", org_type=c.OrgType.city,
                                                 depth=1, is_leadership_organ=True, org_path="/root"), T0)
    n = await _story(contacts, wishes) + 1
    await scoring.applied(n)
    admin = scoring.auth(Role.org_admin, "a", "/root")
    async with scoring.runtime.db.connection() as hold:
        async with hold.transaction():
            # The live consumers held back (as a swap holds them): what reaches the bus now waits,
            # and the circular published meanwhile leaves it out.
            await hold.execute("LOCK TABLE scoring.consumer_positions IN EXCLUSIVE MODE")
            await contacts.emit("interaction-late", _interaction("late", ["y1"], False, T0 + timedelta(days=2)))
            await wishes.emit("rating-late", w.CadreRated(rating_id="late", cadre_id="c1", org_path="/root/o1",
                                                          score=5, period="2026Q1"), T0)
            r = await scoring.http.post("/circulars", json={"org_id": "root", "period_kind": "month",
                                                            "period": "2026-03"}, headers=admin)
            assert r.status_code == 201, r.text
    published = r.json()
    await scoring.applied(n + 2)
    assert (await scoring.get(f"/circulars/{published['number']}/as-of"))["equal"] is True
    # Corrected after it to 02:00 in Beijing: the circular knew the interaction by its first time.
    await contacts.emit("interaction-i2", c.InteractionCorrected(
        interaction_id="i2", cadre_id="c1", org_path="/root/o1", youth_ids=["y1"], channel=c.Channel.wechat,
        online=True, occurred_at=T0 + timedelta(hours=16), summary_length=10, summary_hash="h", reason="wrong time"))
    await scoring.applied(n + 3)
    assert (await scoring.get(f"/circulars/{published['number']}/as-of"))["equal"] is True
    r = await scoring.http.post("/circulars", json={"org_id": "root", "period_kind": "month", "period": "2026-03"},
                                headers=admin)
    assert "implausible_hours" in r.text  # the correction counts from its own instant

    async with scoring.runtime.db.connection() as conn:
        result = await Rebuild(conn, js).run()
    again = await scoring.get(f"/circulars/{published['number']}/as-of")
    assert again["equal"] is True, again["recomputed"]["rows"]
    # The late events are in the new version, dated as the live one dated them: after the
    # circular's instant (on the bus they were before it).
    assert await _dated(scoring, result.schema) == await _dated(scoring, result.previous)
    async with scoring.runtime.db.connection() as conn:
        late = await conn.fetchval(f"SELECT applied_at FROM {result.schema}.ledger WHERE ref = 'late'")
    assert late > datetime.fromisoformat(published["as_of"])
    # And today's numbers have them: the version is whole, only dated as the live one was.
    now = await scoring.http.post("/circulars", json={"org_id": "root", "period_kind": "month", "period": "2026-03"},
                                  headers=admin)
    assert now.json()["rows"][0]["points"] == published["rows"][0]["points"] + 4


def test_stamps_date_an_event_after_the_latest_circular_that_left_it_out() -> None:
    t = [T0 + timedelta(minutes=m) for m in range(6)]
    tick = timedelta(microseconds=1)
    # No log (no consumer of the version replaced applied anything); three circulars, frozen at
    # t1, t3 and t5, the contacts consumer at 10, 20 and 20.
    late = Stamps(circulars={"contacts": ([10, 20, 20], [t[1], t[3], t[5]])})
    assert late.stamp("contacts", 10, t[0]) == t[0]  # seen by all three: its own instant
    assert late.stamp("contacts", 11, t[0]) == t[1] + tick  # on the bus before t1, not yet applied
    assert late.stamp("contacts", 11, t[2]) == t[2]  # reached the bus after the first circular
    assert late.stamp("contacts", 25, t[2]) == t[5] + tick  # none of the three had it
    assert late.stamp("contacts", 25, t[5] + tick * 2) == t[5] + tick * 2  # after them all
    assert late.stamp("wishes", 25, t[0]) == t[0]  # no circular says anything of wishes
    assert not late.knows("wishes") and late.knows("contacts")


def test_stamps_date_an_event_as_the_batch_that_applied_it() -> None:
    t = [T0 + timedelta(minutes=m) for m in range(8)]
    # Batches through 3 and 7 applied at t2 and t4; 8..9 were read by a rebuild before anyone
    # applied them (by the bus); 10..12 applied at t6. A circular at t5 had seen up to 7.
    stamps = Stamps({"contacts": ([3, 7, 9, 12], [t[2], t[4], None, t[6]])},
                    {"contacts": ([7], [t[5]])})
    assert [stamps.stamp("contacts", seq, t[0]) for seq in (1, 3, 4, 7, 10, 12)] == [t[2], t[2], t[4], t[4], t[6], t[6]]
    assert stamps.stamp("contacts", 8, t[1]) == t[5] + timedelta(microseconds=1)  # by the bus, after the circular
    assert stamps.stamp("contacts", 9, t[7]) == t[7]
    assert stamps.stamp("contacts", 13, t[7]) == t[7]  # past the log
    assert stamps.logged("contacts") == 12 and stamps.logged("wishes") == 0
    stamps.beyond = t[7] + timedelta(seconds=1)  # the swap's instant, for what the log has not
    assert stamps.stamp("contacts", 13, t[0]) == stamps.beyond and stamps.stamp("wishes", 1, t[0]) == stamps.beyond
    assert stamps.stamp("contacts", 5, t[0]) == t[4]


def test_the_log_a_rebuild_writes_dates_every_event_as_its_own_stamps_did() -> None:
    """Whatever rounds a rebuild reads in, the next rebuild, reading the log it wrote, dates
    every event as it did (round by round, each with the log as it then stood)."""
    rng = random.Random(5)
    for _ in range(200):
        t = [T0 + timedelta(seconds=s) for s in range(200)]
        throughs = sorted(rng.sample(range(1, 60), rng.randint(0, 8)))
        instants: list[datetime | None] = [rng.choice([None, t[rng.randrange(100)]]) for _ in throughs]
        bus = {seq: t[rng.randrange(200)] for seq in range(1, 80)}
        circulars = {"contacts": ([rng.randint(0, 40)], [t[rng.randrange(200)]])}
        written: list[tuple[int, datetime | None]] = []
        dated: dict[int, datetime] = {}
        first, seen = 1, 0
        while first <= 79:
            last = min(79, first + rng.randint(0, 25))
            swap = last == 79
            # The log grows between rounds: a round sees more of it (the swap, under its lock, all).
            seen = len(throughs) if swap else rng.randint(seen, len(throughs))
            stamps = Stamps({"contacts": (throughs[:seen], instants[:seen])} if seen else {}, circulars,
                            beyond=t[150] if swap else None)
            written += stamps.entries("contacts", first, last)
            dated.update({seq: stamps.stamp("contacts", seq, bus[seq]) for seq in range(first, last + 1)})
            first = last + 1
        again = Stamps({"contacts": ([w for w, _ in written], [a for _, a in written])}, circulars)
        assert {seq: again.stamp("contacts", seq, bus[seq]) for seq in dated} == dated


async def _now(scoring: Scoring) -> datetime:
    async with scoring.runtime.db.connection() as conn:
        at: datetime = await conn.fetchval("SELECT clock_timestamp()")
    return at


async def test_a_rebuilt_version_dates_every_row_as_the_live_one_and_answers_as_of_any_instant_alike(
    scoring: Scoring, contacts: Producer, wishes: Producer, js: JetStreamContext, nats_url: str, database_url: str
) -> None:
    """Not only circulars: a leaderboard asked as of any instant answers on the rebuilt version as
    it did on the live one, and on the version rebuilt from that one."""
    n = await _story(contacts, wishes)
    await scoring.applied(n)
    instants = [await _now(scoring)]
    await contacts.emit("org-o2", c.OrgCreated(org_id="o2", parent_id="root", name="二支部", org_type=c.OrgType.branch,
                                               depth=2, is_leadership_organ=False, org_path="/root/o2"), T0)
    await contacts.emit("cadre-c2", c.CadreTransferred(cadre_id="c2", from_org_id="o1", to_org_id="o2",
                                                       old_path="/root/o1", org_path="/root/o2",
                                                       in_leadership_organ=False), T0)
    await contacts.emit("interaction-k1", _interaction("k1", ["y5"], False, T0 + timedelta(days=1), "c2", "/root/o2"))
    n += 3
    await scoring.applied(n)
    instants.append(await _now(scoring))
    # An org move: its cadres' new places are written by SQL, in the batch's transaction.
    await contacts.emit("org-o2", c.OrgMoved(org_id="o2", old_parent_id="root", new_parent_id="o1",
                                             old_path="/root/o2", new_path="/root/o1/o2", depth=3))
    await wishes.emit("rating-r2", w.CadreRated(rating_id="r2", cadre_id="c2", org_path="/root/o1/o2", score=5,
                                                period="2026Q1"), T0)
    await contacts.emit("interaction-k2", _interaction("k2", ["y6"], True, T0 + timedelta(days=2), "c2", "/root/o1/o2"))
    n += 3
    await scoring.applied(n)
    instants.append(await _now(scoring))
    queries: list[tuple[str, dict[str, Any]]] = [
        ("/leaderboards/cadres", {"org_path": "/root", "period_kind": "month", "period": "2026-03"}),
        ("/leaderboards/cadres", {"org_path": "/root/o1", "period_kind": "all"}),
        ("/leaderboards/orgs", {"org_path": "/root", "org_type": "branch", "period_kind": "all"}),
    ]

    async def boards() -> list[Any]:
        return [await scoring.get(url, **params, as_of=at.isoformat()) for at in instants for url, params in queries]

    live = await boards()
    assert live[0] != live[3] != live[6]  # the three instants show three states
    async with scoring.runtime.db.connection() as conn:
        rebuilt = await Rebuild(conn, js).run()
    assert await _dated(scoring, rebuilt.schema) == await _dated(scoring, rebuilt.previous)
    assert await boards() == live
    # Read by a reader process, which reads the log rows itself as it goes.
    async with scoring.runtime.db.connection() as conn:
        again = await Rebuild(conn, js, reader_url=nats_url, reader_from=1, db_url=database_url).run()
    assert await _dated(scoring, again.schema) == await _dated(scoring, rebuilt.schema)
    assert await boards() == live


async def _hold_live_consumers(scoring: Scoring) -> tuple[asyncpg.Connection, Any]:
    """The live consumers held back, as a swap holds them (commit the transaction to let them go)."""
    hold = await connect_raw(scoring.runtime.settings.database_url)
    tx = hold.transaction()
    await tx.start()
    await hold.execute("LOCK TABLE scoring.consumer_positions IN EXCLUSIVE MODE")
    return hold, tx


class _HeldAtSwap(Rebuild):
    """A rebuild that, once it has written its rows, holds the live consumers back; once its swap
    waits for them, ``queued`` runs (whatever waits for the lock from then on, waits behind the
    swap), then it lets them go."""

    scoring: Scoring
    queued: Callable[[], Awaitable[None]]

    async def _write_rows(self, projector: Projector) -> None:
        await super()._write_rows(projector)
        hold, tx = await _hold_live_consumers(self.scoring)

        async def release() -> None:
            try:
                await wait_until(lambda: _waiting_for(self.scoring, _SWAP_LOCK), until=lambda k: k == 1,
                                 timeout=30, message="the swap waiting")
                await self.queued()
                self.released = await _now(self.scoring)
            finally:
                await tx.commit()
                await hold.close()

        self.releasing = asyncio.create_task(release())


_SWAP_LOCK = "LOCK TABLE scoring.consumer_positions IN EXCLUSIVE MODE"
_LIVE_LOCK = "LOCK TABLE scoring.consumer_positions IN ROW SHARE MODE"  # a live batch's first statement


async def _waiting_for(scoring: Scoring, sql_start: str) -> int:
    async with scoring.runtime.db.connection() as conn:
        return int(await conn.fetchval("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                       "AND query LIKE $1", sql_start + "%"))


async def test_events_only_the_swap_applies_are_dated_by_the_swap_and_stay_so(
    scoring: Scoring, contacts: Producer, wishes: Producer, js: JetStreamContext
) -> None:
    """The version replaced never had them: the rebuilt one has them from its swap on."""
    n = await _story(contacts, wishes)
    await scoring.applied(n)

    async def tail() -> None:
        # On the bus once the swap waits for its lock: both live consumers wait behind it.
        await contacts.emit("interaction-s1", _interaction("s1", ["y1"], False, T0 + timedelta(days=3)))
        await wishes.emit("rating-s2", w.CadreRated(rating_id="s2", cadre_id="c1", org_path="/root/o1",
                                                    score=5, period="2026Q1"), T0)
        await wait_until(lambda: _waiting_for(scoring, _LIVE_LOCK), until=lambda k: k == 2, timeout=30,
                         message="both live consumers waiting")

    async with scoring.runtime.db.connection() as conn:
        rebuild = _HeldAtSwap(conn, js)
        rebuild.scoring, rebuild.queued = scoring, tail
        result = await rebuild.run()
        await rebuild.releasing
    assert result.events == n + 2
    await scoring.applied(n + 2)  # the live consumers find them applied by the swap: duplicates
    dated = await _dated(scoring, result.schema)
    swap = {r[-1] for r in dated["ledger"] if r[8] in ("s1", "s2")}
    assert len(swap) == 1 and swap.pop() > rebuild.released
    assert len(dated["ledger"]) == len(await _ledger(scoring, result.previous)) + 2
    async with scoring.runtime.db.connection() as conn:
        again = await Rebuild(conn, js).run()
    assert await _dated(scoring, again.schema) == dated


@pytest.mark.parametrize("chunk", [2, 10_000])
async def test_a_round_reads_only_what_live_consumers_within_a_chunk_applied_and_past_that_dates_by_the_bus(
    scoring: Scoring, contacts: Producer, wishes: Producer, js: JetStreamContext, chunk: int
) -> None:
    """Three events on the bus that the live consumers have not applied when the rebuild starts.
    Within a chunk of the stream's end, a round leaves them to the swap, which finds them applied
    and dates them as the live version did. More than a chunk behind, a round reads them, by the
    bus; the log the rebuild writes says so, and the next rebuild dates them alike."""
    n = await _story(contacts, wishes)
    await scoring.applied(n)

    class Behind(Rebuild):
        async def _create(self) -> tuple[int, str, str]:
            created = await super()._create()
            self.hold, self.held_tx = await _hold_live_consumers(scoring)
            for k in range(3):
                await contacts.emit(f"interaction-b{k}", _interaction(f"b{k}", [f"y{k}"], False, T0 + timedelta(days=4)))
            return created

        async def _write_rows(self, projector: Projector) -> None:
            # The live consumers apply them to the version serving only now.
            await self.held_tx.commit()
            await self.hold.close()
            await scoring.applied(n + 3)
            await super()._write_rows(projector)

    async with scoring.runtime.db.connection() as conn:
        result = await Behind(conn, js, batch=chunk).run()
    dated = await _dated(scoring, result.schema)
    assert len(dated["ledger"]) == len(await _ledger(scoring, result.previous))  # the old one has them too
    async with scoring.runtime.db.connection() as conn:
        logged = [r["applied_at"] for r in await conn.fetch(
            f"SELECT applied_at FROM {result.schema}.applied_log WHERE consumer = $1 ORDER BY id",
            durable("scoring", "contacts"))]
        again = await Rebuild(conn, js).run()
    if chunk == 2:
        assert logged[-1] is None  # the three, by the bus
        assert dated != await _dated(scoring, result.previous)
    else:
        assert None not in logged
        assert dated == await _dated(scoring, result.previous)
    assert await _dated(scoring, again.schema) == dated


async def test_the_log_read_a_page_at_a_time_stamps_as_the_whole_log_says(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An event takes the instant of the first log row (in the order written) at or past its
    sequence, whatever pages the rows come in, with rows of another consumer between and batches
    of redeliveries that end below the batch before; and the log a rebuild writes from them, read
    a page at a time too, says the same."""
    monkeypatch.setattr(stamps_module, "PAGE", 3)
    rng = random.Random(11)
    conn = await connect_raw(database_url)
    try:
        await conn.execute("DROP SCHEMA IF EXISTS lg CASCADE; CREATE SCHEMA lg; CREATE TABLE lg.applied_log ("
                           "id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, consumer text NOT NULL, "
                           "through_seq bigint NOT NULL, applied_at timestamptz)")
        for _ in range(25):
            await conn.execute("TRUNCATE lg.applied_log RESTART IDENTITY")
            t = [T0 + timedelta(seconds=s) for s in range(100)]
            rows: list[tuple[str, int, datetime | None]] = []
            through = 0
            for _ in range(rng.randint(0, 20)):
                through = rng.randint(max(through - 3, 1), through + 6)  # now and then below the last
                rows.append(("c", through, rng.choice([None, t[rng.randrange(100)]])))
                if rng.random() < 0.3:
                    rows.append(("other", rng.randint(1, 90), t[0]))
            await conn.copy_records_to_table("applied_log", schema_name="lg",
                                             columns=("consumer", "through_seq", "applied_at"), records=rows)
            bus = {seq: t[rng.randrange(100)] for seq in range(1, 61)}
            mine = [(thr, at) for who, thr, at in rows if who == "c"]

            def expected(seq: int, mine: list[tuple[int, datetime | None]] = mine,
                         bus: dict[int, datetime] = bus) -> datetime:
                return next((at or bus[seq] for thr, at in mine if thr >= seq), bus[seq])

            last = await conn.fetchrow("SELECT id, through_seq FROM lg.applied_log WHERE consumer = 'c' "
                                       "ORDER BY id DESC LIMIT 1")
            source = {"c": LogSource("lg.applied_log", "c", last["id"], last["through_seq"])} if last else {}
            paged = Stamps({"c": ([], [])} if last else {}, sources=source)
            written: list[tuple[int, datetime | None]] = []
            async for entries in paged.reading_anew("c").paged_entries(conn, "c", 1, 60):
                written += entries
            lo = 1
            while lo <= 60:  # read as a reader does: fetched batches of increasing sequences
                hi = min(60, lo + rng.randint(0, 6))
                await paged.cover(conn, "c", lo, hi)
                assert [paged.stamp("c", seq, bus[seq]) for seq in range(lo, hi + 1)] == [
                    expected(seq) for seq in range(lo, hi + 1)]
                lo = hi + 1
            again = Stamps({"c": ([w for w, _ in written], [a for _, a in written])})
            assert [again.stamp("c", seq, bus[seq]) for seq in range(1, 61)] == [expected(seq) for seq in range(1, 61)]
    finally:
        await conn.execute("DROP SCHEMA IF EXISTS lg CASCADE")
        await conn.close()


async def test_a_circular_frozen_during_a_swap_computes_on_the_version_swapped_in(
    scoring: Scoring, contacts: Producer, wishes: Producer, js: JetStreamContext
) -> None:
    """A circular published while a swap applies events the old version never had: frozen there
    after the swap's instant, it would lack them while the new version dates them before it. It
    waits for the swap, and computes on the new version."""
    await contacts.emit("org-root", c.OrgCreated(org_id="root", parent_id=None, name="市团委", org_type=c.OrgType.city,
                                                 depth=1, is_leadership_organ=True, org_path="/root"), T0)
    n = await _story(contacts, wishes) + 1
    await scoring.applied(n)
    admin = scoring.auth(Role.org_admin, "a", "/root")
    published: list[Any] = []

    async def tail() -> None:
        await contacts.emit("interaction-s1", _interaction("s1", ["y1"], False, T0 + timedelta(days=3)))
        await wait_until(lambda: _waiting_for(scoring, _LIVE_LOCK), until=lambda k: k >= 1, timeout=30,
                         message="the live consumer waiting")

    class CircularMeanwhile(_HeldAtSwap):
        async def _stamps(self, *, swap: bool = False) -> Stamps:
            stamps = await super()._stamps(swap=swap)
            if swap:  # the swap's instant is taken: a circular now
                async def publish() -> None:
                    published.append(await scoring.http.post(
                        "/circulars", json={"org_id": "root", "period_kind": "month", "period": "2026-03"},
                        headers=admin))
                self.circular = asyncio.create_task(publish())
                await wait_until(lambda: _waiting_for(scoring, "LOCK TABLE scoring_proj.ledger"),
                                 until=lambda k: k == 1 or self.circular.done(), timeout=30,
                                 message="the circular waiting or published")
            return stamps

    async with scoring.runtime.db.connection() as conn:
        rebuild = CircularMeanwhile(conn, js)
        rebuild.scoring, rebuild.queued = scoring, tail
        result = await rebuild.run()
        await rebuild.releasing
        await rebuild.circular
    assert published[0].status_code == 201, published[0].text
    number = published[0].json()["number"]
    assert (await scoring.get(f"/circulars/{number}/as-of"))["equal"] is True
    async with scoring.runtime.db.connection() as conn:
        swapped = await conn.fetchval(f"SELECT applied_at FROM {result.schema}.ledger WHERE ref = 's1'")
    assert swapped < datetime.fromisoformat(published[0].json()["as_of"])
