"""The fold of credits into the leaderboards (``period_deltas`` → ``period_points``), on real Postgres."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from tuanlian.scoring.adapters.folding import BOARD_COLUMNS, PeriodFolder, fold, pending
from tuanlian.scoring.adapters.projection import Projector
from tuanlian.scoring.adapters.queries import org_as_of
from tuanlian.scoring.adapters.rebuild import projection_ddl
from tuanlian.scoring.adapters.state import DELTA_COLUMNS, State
from tuanlian.scoring.domain.periods import RANKING_KINDS, period_of
from tuanlian.shared.consumer import ProjectionTx
from tuanlian.shared.contracts import contacts as c
from tuanlian.shared.db import Database, connect_raw
from tuanlian.shared.events import Envelope, new_id
from tuanlian.shared.migrations import load_migrations, migrate

P = "sf_proj"


async def _schema(database_url: str) -> None:
    conn = await connect_raw(database_url)
    try:
        await migrate(conn, "sf", load_migrations("tuanlian.scoring.migrations", "sf"))
    finally:
        await conn.close()


async def _deltas(db: Database, rows: list[tuple[object, ...]]) -> None:
    async with db.transaction() as conn:
        await conn.copy_records_to_table("period_deltas", schema_name=P, columns=DELTA_COLUMNS, records=rows)


async def _points(db: Database) -> dict[tuple[str, str, str], tuple[object, ...]]:
    async with db.connection() as conn:
        rows = await conn.fetch(f"SELECT period_kind, period_key, owner_id, org_path, cadre_kind, org_type, points "
                                f"FROM {P}.period_points")
    return {(r[0], r[1], r[2]): tuple(r[3:]) for r in rows}


async def test_the_fold_files_each_day_under_the_keys_the_domain_gives_its_periods(
    database_url: str, db: Database
) -> None:
    await _schema(database_url)
    days = [date(2024, 1, 1) + timedelta(days=i) for i in range((date(2028, 1, 1) - date(2024, 1, 1)).days)]
    await _deltas(db, [("c1", d, "cadre", "/r", None, None, 1) for d in days])
    async with db.transaction() as conn:
        assert await fold(conn, P) == len(days) + 48 + 16 + 4 + 1
        assert await pending(conn, P) == 0
    expected = Counter((k.value, period_of(d, k).key) for d in days for k in RANKING_KINDS)
    expected[("all", "all")] = len(days)
    got = {(kind, key): row[-1] for (kind, key, _o), row in (await _points(db)).items()}
    assert got == dict(expected)


async def test_folding_keeps_the_first_place_and_the_last_kind_and_adds_across_folds(
    database_url: str, db: Database
) -> None:
    await _schema(database_url)
    day = date(2026, 3, 10)
    await _deltas(db, [("c1", day, "cadre", "/r/a", None, None, 3),
                       ("c1", day + timedelta(days=1), "cadre", "/r/b", "part_time", "branch", 2)])
    await _deltas(db, [("c1", day, "cadre", "/r/c", "full_time", None, -1)])
    async with db.transaction() as conn:
        await fold(conn, P)
    await _deltas(db, [("c1", day, "cadre", "/r/d", None, "university", 5)])
    async with db.transaction() as conn:
        await fold(conn, P)
    points = await _points(db)
    # Filed where first credited; the kind and type as last known; points summed over both folds.
    assert points[("month", "2026-03", "c1")] == ("/r/a", "full_time", "university", 9)
    assert points[("day", "2026-03-10", "c1")] == ("/r/a", "full_time", "university", 7)
    assert points[("day", "2026-03-11", "c1")] == ("/r/b", "part_time", "branch", 2)


async def test_the_services_folder_folds_the_serving_version_until_stopped(database_url: str, db: Database) -> None:
    await _schema(database_url)
    async with db.connection() as conn:
        serving = await conn.fetchval("SELECT schema_name FROM sf.projection_versions WHERE status = 'current'")
    assert serving == P
    stop = asyncio.Event()
    task = asyncio.create_task(PeriodFolder(db, "sf.projection_versions", idle=0.01).run(stop))
    try:
        for i in range(5):
            await _deltas(db, [(f"c{i}", date(2026, 3, 1), "cadre", "/r", None, None, 2)])
            await asyncio.sleep(0.02)
        for _ in range(200):
            async with db.connection() as conn:
                if not await pending(conn, P):
                    break
            await asyncio.sleep(0.02)
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)
    points = await _points(db)
    assert {o: row[-1] for (k, _key, o), row in points.items() if k == "all"} == {f"c{i}": 2 for i in range(5)}


async def test_a_rebuilds_boards_folded_in_memory_equal_the_sql_fold_of_the_same_credits(
    database_url: str, db: Database
) -> None:
    """A rebuild keeps its credits in memory, re-files a transferred owner's there and folds them
    there (``State.take_boards``); the live path writes them as deltas batch by batch, folds them
    with SQL and moves a transferred owner's boards with SQL. Same credits and transfers, same
    boards: places as first credited (they change here) unless the owner was transferred since,
    kinds and types as last known, sums per period."""
    await _schema(database_url)
    rnd = random.Random(5)
    # A cadre's kind is registered once; its org type changes only with a transfer, and from
    # then on its credits are filed at its new place (the projector reads it from the cadre).
    kind = {f"c{i}": rnd.choice([None, "part_time", "full_time"]) for i in range(40)}
    org_type = {o: rnd.choice([None, "branch", "university"]) for o in kind}
    moved_to: dict[str, str] = {}
    steps: list[tuple[object, ...]] = []
    for _ in range(3000):
        owner = rnd.choice(list(kind))
        if rnd.random() < 0.01:
            org_type[owner], moved_to[owner] = rnd.choice([None, "school"]), rnd.choice(["/r/t", "/r/a/y"])
            steps.append(("transfer", owner, moved_to[owner], org_type[owner]))
        else:
            path = moved_to.get(owner) or rnd.choice(["/r/a", "/r/b", "/r/a/x"])
            steps.append(("credit", owner, ("cadre", path, kind[owner], org_type[owner]),
                          date(2025, 12, 1) + timedelta(days=rnd.randrange(150)), rnd.choice([1, 3, 5, -1])))
    assert sum(step[0] == "transfer" for step in steps) >= 15
    in_memory, as_deltas = State(P, "m", bulk=True, authoritative=True), State(P, "d")
    stepwise = State(P, "s", bulk=True, authoritative=True)  # folded a few owners at a time
    for n, step in enumerate(steps, start=1):
        for state in (in_memory, stepwise, as_deltas):
            if step[0] == "transfer":
                _t, owner, path, org_type = step
                state.refile(str(owner), str(path), org_type)  # type: ignore[arg-type]
            else:
                _c, owner, meta, day, points = step
                state.add_period_points(owner, meta, day, points)  # type: ignore[arg-type]
        if n % 250 == 0:  # a live batch: its credits written as deltas, some folded at once
            async with db.transaction() as conn:
                await as_deltas.write(ProjectionTx(conn), fold_now=n % 500 == 0)
    assert not in_memory.refiled  # nothing of a rebuild's is in Postgres yet: nothing to move there
    boards = await in_memory.take_boards()
    assert boards is not None and not in_memory.period_delta
    assert await stepwise.take_boards(owners_per_step=7) == boards
    async with db.transaction() as conn:
        await as_deltas.write(ProjectionTx(conn), fold_now=True)
        by_sql = {tuple(r) for r in await conn.fetch(f"SELECT {', '.join(BOARD_COLUMNS)} FROM {P}.period_points")}
    assert len(by_sql) > 1000
    assert {row[4] for row in by_sql} >= {"/r/t", "/r/a/y", "/r/a", "/r/b"}  # transferred and not
    assert set(boards) == by_sql and len(boards) == len(by_sql)
    # Once credits were written as deltas, memory no longer holds them all: no fold there.
    as_deltas.add_period_points("c1", ("cadre", "/r/a", None, None), date(2026, 1, 1), 1)
    assert await as_deltas.take_boards() is None


async def test_the_owner_index_and_the_moves_reach_every_projection_version_that_exists(database_url: str) -> None:
    """A fold moves a transferred cadre's boards by owner, as ``board_moves`` asks: migrations
    0006 (the index) and 0007 (the table) reach the serving version whatever its schema (a
    rebuilt one, here), the others still there, and a rebuild's fresh schema."""
    conn = await connect_raw(database_url)
    try:
        migrations = load_migrations("tuanlian.scoring.migrations", "sm")
        first = [m.version for m in migrations].index("0006_period_points_owner")
        await migrate(conn, "sm", migrations[:first])
        await conn.execute("CREATE SCHEMA sm_proj_v2; "
                           "CREATE TABLE sm_proj_v2.period_points (LIKE sm_proj.period_points INCLUDING ALL); "
                           "UPDATE sm.projection_versions SET status = 'retired'; "
                           "INSERT INTO sm.projection_versions (version, schema_name) VALUES (2, 'sm_proj_v2')")
        assert await migrate(conn, "sm", migrations) == [m.version for m in migrations[first:]]
        await conn.execute(projection_ddl("sm", "sm_proj_v3"))
        indexed = {r[0] for r in await conn.fetch(
            "SELECT schemaname FROM pg_indexes WHERE indexname = 'period_points_owner' AND indexdef LIKE '%(owner_id)'")}
        moves = {r[0] for r in await conn.fetch("SELECT table_schema FROM information_schema.tables "
                                                "WHERE table_name = 'board_moves'")}
        assert {"sm_proj", "sm_proj_v2", "sm_proj_v3"} <= indexed & moves
    finally:
        await conn.close()


async def test_orgs_projected_before_their_history_was_kept_get_one(database_url: str) -> None:
    """Migration 0012 gives each org already projected, in every version that exists, one history
    row from the beginning of time: a circular recomputed as of any instant still finds it."""
    conn = await connect_raw(database_url)
    try:
        migrations = load_migrations("tuanlian.scoring.migrations", "oh")
        first = [m.version for m in migrations].index("0012_org_history")
        await migrate(conn, "oh", migrations[:first])
        await conn.execute("INSERT INTO oh_proj.orgs (org_id, org_path, name, org_type, depth) "
                           "VALUES ('b1', '/c/b1', '一支部', 'branch', 2)")
        await conn.execute("CREATE SCHEMA oh_proj_v2; CREATE TABLE oh_proj_v2.period_points "
                           "(LIKE oh_proj.period_points INCLUDING ALL); "  # a version with no orgs table
                           "INSERT INTO oh.projection_versions (version, schema_name, status) VALUES (2, 'oh_proj_v2', 'retired')")
        assert await migrate(conn, "oh", migrations) == [m.version for m in migrations[first:]]
        assert [tuple(r) for r in await conn.fetch("SELECT org_id, org_path, name FROM oh_proj.org_history")] == [
            ("b1", "/c/b1", "一支部")]
        assert await conn.fetchval("SELECT count(*) FROM oh_proj_v2.org_history") == 0
        then = await org_as_of(conn, "oh_proj", "b1", datetime(2000, 1, 1, tzinfo=UTC))
        assert then is not None and then["name"] == "一支部"
    finally:
        await conn.close()


async def test_credits_in_memory_follow_their_owner_and_then_their_org() -> None:
    """A rebuild's credits: a transfer re-files the owner's (past days too), a later move of the
    org it went to re-files them again, and credits of other owners stay where they were."""
    st = State(P, "m", bulk=True, authoritative=True)
    day = date(2026, 3, 10)
    st.add_period_points("c1", ("cadre", "/r/a", "part_time", "branch"), day, 3)
    st.add_period_points("c2", ("cadre", "/r/b/x", "part_time", "branch"), day, 1)
    st.refile("c1", "/r/b/x", "school")
    st.move_credits("/r/b", lambda p: "/r/c/b" + p[len("/r/b"):] if p.startswith("/r/b/") else None)
    st.add_period_points("c1", ("cadre", "/r/c/b/x", "part_time", "school"), day + timedelta(days=1), 2)
    boards = {(r[0], r[1], r[2]): (r[4], r[6], r[7]) for r in await st.take_boards() or []}
    assert boards[("day", "2026-03-10", "c1")] == ("/r/c/b/x", "school", 3)
    assert boards[("day", "2026-03-11", "c1")] == ("/r/c/b/x", "school", 2)
    assert boards[("all", "all", "c1")] == ("/r/c/b/x", "school", 5)
    assert boards[("all", "all", "c2")] == ("/r/c/b/x", "branch", 1)
    st.add_period_points("c3", ("cadre", "/r/a", None, None), day, 1)
    st.move_credits("/r/a", lambda p: "/r/z" if p == "/r/a" else None)
    assert [r[4] for r in await st.take_boards() or []] == ["/r/z"] * 5  # the index was reset with the credits


async def test_boards_open_at_the_owners_place_as_its_row_has_it_in_memory_and_by_sql(
    database_url: str, db: Database
) -> None:
    """A consumer's batch that read a cadre before its transfer committed credits it at the old
    place, with the old org level, and writes that after the transfer moved the others: the fold
    files it where the cadre's row (and an org owner's) says, in memory as by SQL. An owner the
    projection has no row of keeps its credit's place and type."""
    await _schema(database_url)
    day = date(2026, 3, 10)
    async with db.transaction() as conn:
        await conn.execute(f"INSERT INTO {P}.cadres (cadre_id, org_path, org_type, kind) "
                           "VALUES ('c1', '/r/b', 'school', 'full_time')")
        await conn.execute(f"INSERT INTO {P}.orgs (org_id, org_path, org_type) VALUES ('o1', '/r/o', 'university')")
    credits = [("c1", ("cadre", "/r/a", "part_time", "branch"), day, 3),
               ("c1", ("cadre", "/r/a", "part_time", "branch"), day + timedelta(days=40), 2),
               ("o1", ("org", "/r/x", None, "branch"), day, 5),
               ("c9", ("cadre", "/r/z", "part_time", "branch"), day, 1)]
    in_memory, as_deltas = State(P, "m", bulk=True, authoritative=True), State(P, "d")
    in_memory.put("cadres", {"cadre_id": "c1", "org_path": "/r/b", "org_type": "school", "kind": "full_time"})
    in_memory.put("orgs", {"org_id": "o1", "org_path": "/r/o", "org_type": "university"})
    for state in (in_memory, as_deltas):
        for owner, meta, d, points in credits:
            state.add_period_points(owner, meta, d, points)
    async with db.transaction() as conn:
        await as_deltas.write(ProjectionTx(conn), fold_now=True)
    by_sql = await _points(db)
    assert by_sql[("all", "all", "c1")] == ("/r/b", "full_time", "school", 5)
    assert by_sql[("day", "2026-04-19", "c1")] == ("/r/b", "full_time", "school", 2)
    assert by_sql[("all", "all", "o1")] == ("/r/o", None, "university", 5)
    assert by_sql[("all", "all", "c9")] == ("/r/z", "part_time", "branch", 1)
    boards = await in_memory.take_boards() or []
    assert {(r[0], r[1], r[2]): (r[4], r[5], r[6], r[7]) for r in boards} == by_sql and len(boards) == len(by_sql)


async def test_a_transfer_and_an_org_move_leave_the_boards_to_the_next_fold(database_url: str, db: Database) -> None:
    """What changes places does not wait for a fold under way (a backlog's fold holds the folds'
    lock for seconds, and the contacts consumer's batch would wait it out): it appends to
    ``board_moves`` and commits, and the next fold moves the boards, those the fold under way
    opened at the old place included."""
    await _schema(database_url)
    day = date(2026, 3, 10)
    async with db.transaction() as conn:
        await conn.execute(f"INSERT INTO {P}.cadres (cadre_id, org_path, kind) VALUES ('c1', '/r/a', 'part_time')")
    await _deltas(db, [("c1", day, "cadre", "/r/a", "part_time", None, 3)])

    async def during_a_fold(change: Callable[[Any], Awaitable[None]], before: str) -> None:
        async with db.transaction() as folding:
            await fold(folding, P)  # its rows are not committed yet, and it holds the lock
            await asyncio.wait_for(_in_transaction(db, change), 5)  # waits for nothing
        assert {row[0] for row in (await _points(db)).values()} == {before}
        async with db.transaction() as conn:
            assert await pending(conn, P) == 1  # the move
            await fold(conn, P)

    async def transfer(conn: Any) -> None:
        await conn.execute(f"UPDATE {P}.cadres SET org_path = '/r/b', org_type = 'school'")  # the batch's upsert
        st = State(P, "t")
        st.refile("c1", "/r/b", "school")
        await st.write(ProjectionTx(conn))

    await during_a_fold(transfer, "/r/a")
    assert {row[:3] for row in (await _points(db)).values()} == {("/r/b", "part_time", "school")}
    await _deltas(db, [("c1", day, "cadre", "/r/b", "part_time", None, 1)])

    async def move(conn: Any) -> None:
        await Projector(State(P, "t"))._rewrite(ProjectionTx(conn), "/r/b", "/r/q/b")

    await during_a_fold(move, "/r/b")
    points = await _points(db)
    assert {row[0] for row in points.values()} == {"/r/q/b"} and points[("all", "all", "c1")][-1] == 4


_ENV = Envelope(event_id=new_id(), event_type="CadreRegistered", producer="contacts", stream_type="cadre",
                stream_id="cadre-c7", stream_version=1, occurred_at=datetime(2026, 3, 11, tzinfo=UTC), payload={})


async def test_a_cadre_credited_before_its_registration_gets_its_kind_and_place(
    database_url: str, db: Database
) -> None:
    """The wishes stream is read apart from the contacts stream: a wishes batch may credit a cadre
    the projection has no row of yet, and the fold opens its boards with no kind, at the wish's
    place. The registration, when it is applied, moves them to the cadre's row (a stress run of
    both consumers at once caught a board left with no kind, which the leaderboards' kind filter
    then never showed)."""
    await _schema(database_url)
    await _deltas(db, [("c7", date(2026, 3, 10), "cadre", "/r/wish", None, None, 5)])
    async with db.transaction() as conn:
        await fold(conn, P)
    assert {row[:3] for row in (await _points(db)).values()} == {("/r/wish", None, None)}
    async with db.transaction() as conn:
        tx = ProjectionTx(conn)
        projector = Projector(State(P, "t"))
        await projector.state.begin(tx)
        await projector.on_OrgCreated(tx, _ENV, c.OrgCreated(
            org_id="o7", parent_id="r", name="七支部", org_type=c.OrgType.branch, depth=2,
            is_leadership_organ=False, org_path="/r/o7"))
        await projector.on_CadreRegistered(tx, _ENV, c.CadreRegistered(
            cadre_id="c7", org_id="o7", org_path="/r/o7", kind=c.CadreKind.full_time, in_leadership_organ=False))
        await projector.state.write(tx)
    async with db.transaction() as conn:
        await fold(conn, P)
    assert {row[:3] for row in (await _points(db)).values()} == {("/r/o7", "full_time", "branch")}


async def _in_transaction(db: Database, change: Callable[[Any], Awaitable[None]]) -> None:
    async with db.transaction() as conn:
        await change(conn)


async def test_a_rebuilds_last_write_copies_rows_and_boards_and_lets_go_of_the_rows_without_a_path(
    database_url: str, db: Database
) -> None:
    """``State.write_spread`` on two connections: every row and the boards folded in memory
    (a few owners at a time, beside the other lane's COPY) reach Postgres; memory is no longer
    authoritative, keeps the rows with a path (the boards' fold read them) and lets go of the
    others, which are then read back from Postgres as a live consumer reads them."""
    await _schema(database_url)
    st = State(P, "rebuild-v2", bulk=True, authoritative=True, stamped=True)
    day = date(2026, 3, 10)
    st.put("cadres", {"cadre_id": "c1", "org_id": "b1", "org_path": "/r/b", "org_type": "branch",
                      "kind": "part_time", "in_leadership_organ": False, "active": True, "linked_youths": 3,
                      "last_online": None, "last_face_to_face": None})
    for i in range(12_000):  # more owners than one step of the fold, more links than one slice let go
        st.put("links", {"link_id": f"l{i}", "cadre_id": "c1", "youth_id": f"y{i}", "active": i % 7 != 0})
        st.add_period_points(f"c{i % 6_000}", ("cadre", "/r/b", "part_time", "branch"),
                             day + timedelta(days=i % 40), 1)
    twin = State(P, "twin", bulk=True, authoritative=True)
    for owner, days in st.period_delta.items():
        for d, (points, kind, path) in days.items():
            twin.add_period_points(owner, (kind, path, "part_time", "branch"), d, points)
    boards = await twin.take_boards()
    conns = [await connect_raw(database_url) for _ in range(2)]
    try:
        await st.write_spread(conns)
    finally:
        for conn in conns:
            await conn.close()
    assert not st.authoritative
    assert st.cached("links", "l5") == (False, None)  # let go of: not known from memory
    assert st.cached("cadres", "c1")[0]  # a row with a path stays
    async with db.connection() as conn:
        assert await conn.fetchval(f"SELECT count(*) FROM {P}.links") == 12_000
        assert await conn.fetchval(f"SELECT count(*) FROM {P}.links WHERE NOT active") == len(range(0, 12_000, 7))
        written = {tuple(r) for r in await conn.fetch(f"SELECT {', '.join(BOARD_COLUMNS)} FROM {P}.period_points")}
        assert boards is not None and written == set(boards) and len(written) == len(boards)
        st.lend(ProjectionTx(conn))
        assert await st.get("links", "l7") == {"link_id": "l7", "cadre_id": "c1", "youth_id": "y7", "active": False}
