"""Migrations that give rows already projected a history they did not have, on real Postgres."""

from __future__ import annotations

from datetime import date

from tuanlian.scoring.adapters import queries as q
from tuanlian.shared.db import connect_raw
from tuanlian.shared.migrations import load_migrations, migrate


async def test_0014_counts_groups_covered_and_cadres_registered_before_it_from_any_day(
    database_url: str,
) -> None:
    migrations = load_migrations("tuanlian.scoring.migrations", "scoring")
    (at,) = [i for i, m in enumerate(migrations) if m.version.startswith("0014")]
    conn = await connect_raw(database_url)
    try:
        await migrate(conn, "scoring", migrations[:at])
        await conn.execute(
            "INSERT INTO scoring_proj.cadres (cadre_id, org_id, org_path, kind, in_leadership_organ, active, "
            "linked_youths) VALUES ('c1', 'o1', '/r/o1', 'part_time', false, true, 0)")
        await conn.execute(
            "INSERT INTO scoring_proj.groups VALUES ('c1', 'g1', 'dorm_group', true), ('c1', 'g2', 'dorm_group', true), "
            "('c1', 'g3', 'dorm_group', false), ('c1', 'b1', 'branch', true), ('c2', 'g9', 'dorm_group', false)")
        assert await migrate(conn, "scoring", migrations) == [m.version for m in migrations[at:]]
        assert await q.groups_on(conn, "scoring_proj", "c1", date(2000, 1, 1)) == {"dorm_group": 2, "branch": 1}
        assert await q.groups_on(conn, "scoring_proj", "c2", date(2026, 12, 31)) == {}
        assert [c["cadre_id"] for c in await q.cadres_in(conn, "scoring_proj", "/r", joined_by=date(2000, 1, 1))] == [
            "c1"]
        # Run again (another replica, a redeploy): recorded once, counted once.
        assert await migrate(conn, "scoring", migrations) == []
        assert await conn.fetchval("SELECT count(*) FROM scoring_proj.facts WHERE metric LIKE 'group:%'") == 3
        assert await conn.fetchval("SELECT count(*) FROM scoring_proj.facts WHERE metric = 'registered'") == 1
        cols = {r[0] for r in await conn.fetch(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = 'scoring_proj' "
            "AND table_name = 'interactions'")}
        assert {"revised_at", "earlier", "known_at"} <= cols
    finally:
        await conn.close()


async def test_0016_gives_every_projected_version_campaigns_and_the_activities_campaign(
    database_url: str,
) -> None:
    """A projection projected before 0016, and a second version beside it, get the campaigns
    table and the activities' campaign column; their rows stay as they were."""
    migrations = load_migrations("tuanlian.scoring.migrations", "scoring")
    (at,) = [i for i, m in enumerate(migrations) if m.version.startswith("0016")]
    conn = await connect_raw(database_url)
    try:
        await migrate(conn, "scoring", migrations[:at])
        await conn.execute("INSERT INTO scoring_proj.activities (activity_id, owner_id, kind, collective, occurred_on, "
                           "points, ruleset) VALUES ('a1', 'c1', 'exchange', false, '2026-03-02', 5, 'default-2026.1')")
        await conn.execute("CREATE SCHEMA scoring_v9; CREATE TABLE scoring_v9.activities (LIKE scoring_proj.activities)")
        await conn.execute("INSERT INTO scoring.projection_versions (version, schema_name, status) "
                           "VALUES (9, 'scoring_v9', 'retired')")
        assert await migrate(conn, "scoring", migrations) == [m.version for m in migrations[at:]]
        for schema in ("scoring_proj", "scoring_v9"):
            assert await conn.fetchval(f"SELECT count(*) FROM {schema}.campaigns") == 0
            assert await conn.fetchval(f"SELECT count(*) FROM {schema}.activities WHERE campaign_id IS NULL") == (
                1 if schema == "scoring_proj" else 0)
        assert await migrate(conn, "scoring", migrations) == []
    finally:
        await conn.close()
