"""Circular fan-out: every cadre and admin of the subtree once, in batches, resumable."""

from __future__ import annotations

from datetime import UTC, date, datetime

from support import SCHEMA, apply
from tuanlian.notify.application.fanout import FanoutWorker
from tuanlian.shared.contracts import contacts as c
from tuanlian.shared.contracts import scoring as sc
from tuanlian.shared.db import Database

NOW = datetime(2026, 7, 3, 2, tzinfo=UTC)
CIRCULAR = sc.CircularPublished(
    circular_id="circ-1", number="2026-Q2-001", org_id="c", org_path="/c", period_kind=sc.PeriodKind.quarter,
    period_start=date(2026, 4, 1), period_end=date(2026, 6, 30), title="第二季度通报", positions={"contacts": 9})


async def seed(db: Database, cadres: int) -> None:
    """``cadres`` cadres under /c, two admins (one inside, one outside), youths who get nothing."""
    async with db.connection() as conn:
        await conn.execute(
            f"INSERT INTO {SCHEMA}.recipients (subject_id, role, org_path, joined_at) "
            "SELECT 'cadre-' || lpad(i::text, 6, '0'), 'cadre', '/c/b' || (i % 7), now() "
            "FROM generate_series(1, $1) i", cadres)
    await apply(db, c.AccountIssued(account_id="x1", subject_id="admin-in", role=c.AccountRole.org_admin,
                                    org_path="/c"),
                c.AccountIssued(account_id="x2", subject_id="admin-out", role=c.AccountRole.org_admin,
                                org_path="/cc"),
                c.CadreRegistered(cadre_id="cadre-elsewhere", org_id="d", org_path="/d",
                                  kind=c.CadreKind.full_time, in_leadership_organ=False),
                c.YouthRegistered(youth_id="youth-1", org_id="b1", org_path="/c/b1"))


async def circular_rows(db: Database) -> tuple[int, int, int]:
    async with db.connection() as conn:
        row = await conn.fetchrow(
            f"SELECT count(*) AS n, count(DISTINCT recipient_id) AS distinct_n, "
            f"count(*) FILTER (WHERE recipient_id IN ('admin-out', 'cadre-elsewhere', 'youth-1')) AS outside "
            f"FROM {SCHEMA}.inbox WHERE kind = 'circular'")
    assert row is not None
    return row["n"], row["distinct_n"], row["outside"]


async def test_a_circular_reaches_every_cadre_and_admin_of_the_subtree_once(ndb: Database) -> None:
    await seed(ndb, 2500)
    await apply(ndb, CIRCULAR, CIRCULAR)  # a redelivered event makes no second job
    assert await FanoutWorker(ndb, SCHEMA, batch=1000).drain(NOW) == 3
    assert await circular_rows(ndb) == (2501, 2501, 0)
    async with ndb.connection() as conn:
        job = await conn.fetchrow(f"SELECT written, done FROM {SCHEMA}.fanouts")
        sample = await conn.fetchrow(f"SELECT title, org_path FROM {SCHEMA}.inbox WHERE recipient_id = 'cadre-000007'")
    assert job is not None and (job["written"], job["done"]) == (2501, True)
    assert sample is not None and sample["title"] == "通报：第二季度通报" and sample["org_path"] == "/c/b0"


async def test_restart_half_way_resumes_without_duplicates(ndb: Database) -> None:
    await seed(ndb, 2500)
    await apply(ndb, CIRCULAR)
    first = FanoutWorker(ndb, SCHEMA, batch=700)
    await first.step(NOW)
    await first.step(NOW)  # ... and the replica dies here
    assert (await circular_rows(ndb))[0] == 1400
    # Even a cursor that lost ground (say, restored from an older backup) writes nothing twice.
    async with ndb.connection() as conn:
        await conn.execute(f"UPDATE {SCHEMA}.fanouts SET cursor = 'cadre-000300'")
    await FanoutWorker(ndb, SCHEMA, batch=700).drain(NOW)
    assert await circular_rows(ndb) == (2501, 2501, 0)


async def test_fan_out_queues_deliveries_for_those_who_chose_a_channel(ndb: Database) -> None:
    await seed(ndb, 50)
    async with ndb.connection() as conn:
        await conn.execute(f"INSERT INTO {SCHEMA}.preferences (recipient_id, channels, email) VALUES "
                           "('cadre-000003', '{email,webhook}', 'a@b.cn'), ('cadre-000004', '{webhook}', NULL)")
    await apply(ndb, CIRCULAR)
    await FanoutWorker(ndb, SCHEMA, batch=20, channels=["webhook"]).drain(NOW)
    async with ndb.connection() as conn:
        rows = await conn.fetch(f"SELECT recipient_id, channel FROM {SCHEMA}.deliveries ORDER BY recipient_id")
    assert [(r["recipient_id"], r["channel"]) for r in rows] == [("cadre-000003", "webhook"),
                                                                  ("cadre-000004", "webhook")]
