"""Folding credits into the leaderboards (积分汇总): ``period_deltas`` → ``period_points``.

A projector's batch appends one row per owner and day it credited; the fold files each under its
day, month, quarter, year and "all" and adds them to ``period_points`` in one sorted upsert. The
upserts (every one updates a row of three indexes, so none is HOT) were most of the projector's
time in Postgres; folded apart they run beside the next batch, and many batches' credits of one
owner become one row update.

A board is behind the ledger by the deltas not folded yet (a fold's interval, some tens of
milliseconds once caught up). Whatever moves period rows by SQL (a transfer, an org move) folds
first, inside the batch's transaction, so that no older delta is filed under the old place later.
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from tuanlian.shared.db import Database
from tuanlian.shared.outbox import sleep_or_stop

log = structlog.get_logger("tuanlian.scoring.fold")

# The owner's place as first credited, its kind and org level as last known (what the old per
# batch upsert kept), and the keys of periods.Period for day, month, quarter and year.
_FOLD = """
WITH d AS (DELETE FROM {s}.period_deltas RETURNING *),
x AS (
    SELECT k.kind, k.key, d.id, d.owner_id, d.owner_kind, d.org_path, d.cadre_kind, d.org_type, d.points
    FROM d CROSS JOIN LATERAL (VALUES
        ('day', to_char(d.day, 'YYYY-MM-DD')), ('month', to_char(d.day, 'YYYY-MM')),
        ('quarter', to_char(d.day, 'YYYY-"Q"Q')), ('year', to_char(d.day, 'YYYY')), ('all', 'all')
    ) AS k(kind, key)
)
INSERT INTO {s}.period_points AS t
    (period_kind, period_key, owner_id, owner_kind, org_path, cadre_kind, org_type, points)
SELECT kind, key, owner_id,
       (array_agg(owner_kind ORDER BY id))[1],
       (array_agg(org_path ORDER BY id))[1],
       (array_agg(cadre_kind ORDER BY id DESC) FILTER (WHERE cadre_kind IS NOT NULL))[1],
       (array_agg(org_type ORDER BY id DESC) FILTER (WHERE org_type IS NOT NULL))[1],
       sum(points)::int
FROM x GROUP BY kind, key, owner_id
ORDER BY kind, key, owner_id  -- one lock order for every fold
ON CONFLICT (period_kind, period_key, owner_id) DO UPDATE SET
    points = t.points + EXCLUDED.points,
    cadre_kind = coalesce(EXCLUDED.cadre_kind, t.cadre_kind),
    org_type = coalesce(EXCLUDED.org_type, t.org_type)
"""


async def fold(conn: Any, schema: str) -> int:
    """Fold every delta this transaction sees; the number of period rows written. Folds of one
    schema take turns (a transaction-scoped advisory lock): two at once would each wait on rows
    the other deleted or upserted."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", f"{schema}.period_deltas")
    status = await conn.execute(_FOLD.format(s=schema))
    return int(status.rsplit(" ", 1)[1])


async def pending(conn: Any, schema: str) -> int:
    """Deltas not folded yet (what the boards are behind by)."""
    return int(await conn.fetchval(f"SELECT count(*) FROM {schema}.period_deltas"))


class PeriodFolder:
    """The service's background fold of the serving projection version."""

    def __init__(self, db: Database, versions: str, *, idle: float = 0.05) -> None:
        self.db = db
        self.versions = versions  # <service schema>.projection_versions
        self.idle = idle

    async def once(self) -> int:
        async with self.db.transaction() as conn:
            schema = await conn.fetchval(f"SELECT schema_name FROM {self.versions} WHERE status = 'current'")
            return await fold(conn, schema) if schema else 0

    async def run(self, stop: asyncio.Event) -> None:
        failures = 0
        while not stop.is_set():
            try:
                folded = await self.once()
                failures = 0
            except Exception as exc:  # the database went away: the deltas wait, nothing is lost
                failures += 1
                delay = min(0.2 * 2**failures, 10.0)
                log.warning("fold failed", error=f"{type(exc).__name__}: {exc}", retry_in=delay)
                await sleep_or_stop(stop, delay)
                continue
            if not folded:
                await sleep_or_stop(stop, self.idle)
