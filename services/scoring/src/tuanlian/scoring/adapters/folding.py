"""Folding credits into the leaderboards (积分汇总): ``period_deltas`` → ``period_points``.

A projector's batch appends one row per owner and day it credited; the fold files each under its
day, month, quarter, year and "all" and adds them to ``period_points`` in one sorted upsert. The
upserts (every one updates a row of three indexes, so none is HOT) were most of the projector's
time in Postgres; folded apart they run beside the next batch, and many batches' credits of one
owner become one row update.

A board is behind the ledger by the deltas not folded yet (a fold's interval, some tens of
milliseconds once caught up), and behind the places by the moves not applied yet: a transfer or
an org move appends to ``board_moves`` in its batch's transaction (migration 0007), and each
fold first moves the boards and the deltas not folded yet as those say, in the order they were
made (:func:`apply_moves`). The consumer never waits for a fold.

A board row is at its owner's place as the projection knows it when the row is first folded
(the cadre's or org's row; the credit's own place only for an owner it has no row of): a
consumer's batch that read a cadre before a transfer committed credits it at the old place, and
its deltas, written after the transfer's move was applied, would have opened new boards there.
A fold whose statement reads a cadre's new place before the transfer's move is applied files
the credits there and leaves the older boards to the next fold, which moves them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import date
from typing import Any

import structlog
from tuanlian.scoring.adapters.queries import move_subtree
from tuanlian.scoring.domain.periods import RANKING_KINDS, PeriodKind, period_of
from tuanlian.shared.db import Database
from tuanlian.shared.outbox import sleep_or_stop

log = structlog.get_logger("tuanlian.scoring.fold")

# The owner's place, kind and org level from its row (cadres or orgs), else as its credits knew
# them: the place of the first, the kind and level as last known; and the keys of periods.Period
# for day, month, quarter and year. Plain aggregates pick which delta each comes from and joins
# fetch them: ordered array_agg()s sorted every group four times (a rebuild's final fold of
# 250,000 deltas: 5.8 s → 3.5 s).
_FOLD = """
WITH d AS (DELETE FROM {s}.period_deltas RETURNING *),
g AS (
    SELECT k.kind, k.key, d.owner_id, sum(d.points)::int AS points, min(d.id) AS first_id,
           max(d.id) FILTER (WHERE d.cadre_kind IS NOT NULL) AS kind_id,
           max(d.id) FILTER (WHERE d.org_type IS NOT NULL) AS type_id
    FROM d CROSS JOIN LATERAL (VALUES
        ('day', to_char(d.day, 'YYYY-MM-DD')), ('month', to_char(d.day, 'YYYY-MM')),
        ('quarter', to_char(d.day, 'YYYY-"Q"Q')), ('year', to_char(d.day, 'YYYY')), ('all', 'all')
    ) AS k(kind, key)
    GROUP BY k.kind, k.key, d.owner_id
)
INSERT INTO {s}.period_points AS t
    (period_kind, period_key, owner_id, owner_kind, org_path, cadre_kind, org_type, points)
SELECT g.kind, g.key, g.owner_id, first.owner_kind, coalesce(c.org_path, o.org_path, first.org_path),
       coalesce(c.kind, ck.cadre_kind), coalesce(c.org_type, o.org_type, ot.org_type), g.points
FROM g JOIN d AS first ON first.id = g.first_id
LEFT JOIN d AS ck ON ck.id = g.kind_id
LEFT JOIN d AS ot ON ot.id = g.type_id
LEFT JOIN {s}.cadres AS c ON first.owner_kind = 'cadre' AND c.cadre_id = g.owner_id
LEFT JOIN {s}.orgs AS o ON first.owner_kind = 'org' AND o.org_id = g.owner_id
ORDER BY g.kind, g.key, g.owner_id  -- one lock order for every fold
ON CONFLICT (period_kind, period_key, owner_id) DO UPDATE SET
    points = t.points + EXCLUDED.points,
    cadre_kind = coalesce(EXCLUDED.cadre_kind, t.cadre_kind),
    org_type = coalesce(EXCLUDED.org_type, t.org_type)
"""


BOARD_COLUMNS = ("period_kind", "period_key", "owner_id", "owner_kind", "org_path", "cadre_kind", "org_type",
                 "points")


def fold_in_memory(deltas: Iterable[tuple[str, dict[date, list[Any]]]],
                   kinds: dict[str, list[Any]]) -> list[tuple[Any, ...]]:
    """What :func:`fold` makes of credits not yet written, as ``period_points`` rows for an empty
    table: a rebuild holds every credit of its replay in memory, and the SQL fold of them (a
    million events: 580,000 owner-days, 650,000 rows) took 15-30 s of its end.

    ``deltas``: (owner, China day → [points, owner kind, org path]), days in the order first
    credited, all of an owner's in one pair (``State.period_delta``'s items, or some of them: a
    rebuild folds them a slice at a time); ``kinds``: owner → [cadre kind, org type] as last known.
    Filed as ``_FOLD`` files them: under the domain's day, month, quarter and year keys and "all",
    at the place of the owner's first credit in each period, with its last known kind and type.
    """
    longer = [k for k in RANKING_KINDS if k is not PeriodKind.day]
    filed: dict[date, tuple[str, tuple[tuple[str, str], ...]]] = {}  # day → its key, its longer periods
    rows: list[tuple[Any, ...]] = []
    unknown = (None, None)
    for owner, credits in deltas:
        cadre_kind, org_type = kinds.get(owner, unknown)
        # An owner has one credit per day: its day rows need no adding up; its longer periods do,
        # each at the place of its first credit in the period (the credits are in that order).
        boards: dict[tuple[str, str], list[Any]] = {}
        for day, (points, owner_kind, org_path) in credits.items():
            known = filed.get(day)
            if known is None:
                known = filed[day] = (period_of(day, PeriodKind.day).key,
                                      (*((k.value, period_of(day, k).key) for k in longer), ("all", "all")))
            day_key, periods = known
            rows.append((PeriodKind.day.value, day_key, owner, owner_kind, org_path, cadre_kind, org_type, points))
            for period in periods:
                board = boards.get(period)
                if board is None:
                    boards[period] = [points, owner_kind, org_path]
                else:
                    board[0] += points
        rows.extend((kind, key, owner, owner_kind, org_path, cadre_kind, org_type, points)
                    for (kind, key), (points, owner_kind, org_path) in boards.items())
    return rows


async def fold(conn: Any, schema: str) -> int:
    """Apply the moves and fold every delta this transaction sees; the number of period rows
    written. Folds of one schema take turns (a transaction-scoped advisory lock): two at once
    would each wait on rows the other deleted or upserted, and apply the same moves."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", f"{schema}.period_deltas")
    await apply_moves(conn, schema)
    # Sorts and hashes in memory: with the default 4 MB a rebuild's fold spilled ~100 MB to disk.
    await conn.execute("SET LOCAL work_mem = '128MB'")
    status = await conn.execute(_FOLD.format(s=schema))
    return int(status.rsplit(" ", 1)[1])


async def apply_moves(conn: Any, schema: str) -> int:
    """Move the boards and the deltas not folded yet as ``board_moves`` says, in the order the
    moves were made (a transfer into an org that then moves goes on to the org's new place); the
    number of moves applied. Runs of transfers go in one statement per table, the last of an
    owner's winning."""
    moves = await conn.fetch(f"WITH m AS (DELETE FROM {schema}.board_moves RETURNING *) SELECT * FROM m ORDER BY id")
    owners: dict[str, tuple[str, str | None, str | None]] = {}
    for move in moves:
        if move["owner_id"] is not None:
            kind = move["cadre_kind"] or owners.get(move["owner_id"], (None, None, None))[2]
            owners[move["owner_id"]] = (move["org_path"], move["org_type"], kind)
            continue
        await _move_owners(conn, schema, owners)
        owners = {}
        for table in ("period_deltas", "period_points"):
            await conn.execute(move_subtree(schema, table), move["old_path"], move["org_path"])
    await _move_owners(conn, schema, owners)
    return len(moves)


async def _move_owners(conn: Any, schema: str, owners: dict[str, tuple[str, str | None, str | None]]) -> None:
    if not owners:
        return
    ids = list(owners)
    paths, types, kinds = ([owners[o][i] for o in ids] for i in range(3))
    # The deltas' org level too: the fold keeps a delta's level where the owner's row has none.
    for table in ("period_deltas", "period_points"):
        await conn.execute(
            f"UPDATE {schema}.{table} AS t SET org_path = u.org_path, org_type = u.org_type, "
            "cadre_kind = coalesce(u.cadre_kind, t.cadre_kind) "
            "FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS u(owner_id, org_path, org_type, cadre_kind) "
            "WHERE t.owner_id = u.owner_id", ids, paths, types, kinds)


async def pending(conn: Any, schema: str) -> int:
    """Deltas not folded yet and moves not applied yet (what the boards are behind by)."""
    return int(await conn.fetchval(f"SELECT (SELECT count(*) FROM {schema}.period_deltas) "
                                   f"+ (SELECT count(*) FROM {schema}.board_moves)"))


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
