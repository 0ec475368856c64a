"""Read side of the projection: leaderboards, a cadre's numbers, a subtree's numbers for a period.

Every aggregate can be taken ``as_of`` an instant: only what scoring had applied by then counts
(ledger and facts carry ``applied_at``; cadre paths keep their history).
"""

from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from collections.abc import Callable
from datetime import date, datetime, timedelta
from itertools import accumulate
from typing import Any

import asyncpg
from tuanlian.scoring.domain.periods import Period

SUBTREE = "({col} >= {p} AND {col} < {p} || '0' AND ({col} = {p} OR substr({col}, length({p}) + 1, 1) = '/'))"


def subtree(col: str, param: str) -> str:
    """An index range on a ``COLLATE "C"`` path column, then the exact test ('/a/b-x' is no child of '/a/b')."""
    return SUBTREE.format(col=col, p=param)


def move_subtree(schema: str, table: str) -> str:
    """Every ``org_path`` of ``table`` under $1 to start with $2 instead (an org moved or merged),
    the subtree found as an index range."""
    return (f"UPDATE {schema}.{table} SET org_path = $2::text || substr(org_path, length($1::text) + 1) "
            f"WHERE {subtree('org_path', '$1::text')}")


#: A leaderboard's filter on a period_points row: $3 owner kind, $4 subtree, $5 cadre kind and
#: $6 org level (NULL: any).
KEEP = (f"owner_kind = $3 AND {subtree('org_path', '$4')} AND ($5::text IS NULL OR cadre_kind = $5) "
        "AND ($6::text IS NULL OR org_type = $6)")

#: How far the top-of-the-period walk goes before a top-N query falls back to the subtree's range.
TOP_PROBE = 2000


async def top(conn: asyncpg.Connection, p: str, *, period_kind: str, period_key: str, org_path: str,
              owner_kind: str, limit: int, cadre_kind: str | None = None,
              org_type: str | None = None, probe: int = TOP_PROBE) -> list[asyncpg.Record]:
    """The top of a subtree for a period, highest points first (ties by id).

    Two plans, because neither serves every subtree: (1) walk the period's (points DESC, owner_id)
    index from the top, at most ``probe`` entries, keeping those in the subtree: when that yields
    ``limit`` rows they are the answer (every owner of the subtree ranked above them was walked
    past), which is the case for the root and other large subtrees; (2) otherwise the subtree is
    small: read its (period, org_path) range whole and sort it. Postgres cannot tell the two cases
    apart from the path alone (its estimate of a path range's share of a period is poor), so the
    query does not leave the choice to the planner.
    """
    cols = "owner_id, org_path, cadre_kind, org_type, points"
    walked = await conn.fetch(
        f"SELECT {cols} FROM (SELECT {cols}, owner_kind FROM {p}.period_points WHERE period_kind = $1 "
        "AND period_key = $2 ORDER BY points DESC, owner_id LIMIT $8) w "
        f"WHERE {KEEP} ORDER BY points DESC, owner_id LIMIT $7",
        period_kind, period_key, owner_kind, org_path, cadre_kind, org_type, limit, probe)
    if len(walked) >= limit:
        return list(walked)
    return list(await conn.fetch(
        f"WITH s AS MATERIALIZED (SELECT {cols}, owner_kind FROM {p}.period_points "
        f"WHERE period_kind = $1 AND period_key = $2 AND {subtree('org_path', '$4')}) "
        f"SELECT {cols} FROM s WHERE {KEEP} ORDER BY points DESC, owner_id LIMIT $7",
        period_kind, period_key, owner_kind, org_path, cadre_kind, org_type, limit))


async def previous_ranks(conn: asyncpg.Connection, p: str, *, period_kind: str, period_key: str, org_path: str,
                         owner_kind: str, ids: list[str], cadre_kind: str | None = None,
                         org_type: str | None = None, probe: int = TOP_PROBE) -> dict[str, int]:
    """Ranks (ties shared) the given owners held in another period, same subtree and filters.

    A rank is one more than the number of the subtree's owners with more points. Those are read
    by walking the period's (points DESC) index down to the lowest of the given owners' points,
    at most ``probe`` entries; only when that is not enough (an owner of today's top was far down
    then, in a large subtree) are the subtree's owners counted per points value. Never a sort of
    the subtree's rows (``rank() OVER`` took the root's leaderboard to 50 ms at 20,000 cadres).
    """
    if not ids:
        return {}
    args = (period_kind, period_key, owner_kind, org_path, cadre_kind, org_type)
    mine = {r["owner_id"]: r["points"] for r in await conn.fetch(
        f"SELECT owner_id, points FROM {p}.period_points WHERE period_kind = $1 AND period_key = $2 "
        f"AND owner_id = ANY($7::text[]) AND {KEEP}", *args, ids)}
    if not mine:
        return {}
    walked = await conn.fetch(
        f"SELECT points, {KEEP} AS kept FROM (SELECT points, owner_kind, org_path, cadre_kind, org_type "
        f"FROM {p}.period_points WHERE period_kind = $1 AND period_key = $2 AND points > $7 "
        "ORDER BY points DESC, owner_id LIMIT $8) w", *args, min(mine.values()), probe)
    if len(walked) < probe:
        tally: dict[int, int] = defaultdict(int)
        for r in walked:
            if r["kept"]:
                tally[r["points"]] += 1
        counts = sorted(tally.items())
    else:
        # Counted per points value over the subtree's range (no sort of its rows): a few
        # hundred distinct values, however many owners.
        counts = [(r["points"], r["n"]) for r in await conn.fetch(
            f"SELECT points, count(*)::int AS n FROM {p}.period_points WHERE period_kind = $1 AND period_key = $2 "
            f"AND points > $7 AND {KEEP} GROUP BY points ORDER BY points", *args, min(mine.values()))]
    values = [v for v, _ in counts]
    above = list(accumulate((n for _, n in reversed(counts)), initial=0))[::-1]  # above[i]: owners at values[i:]
    return {owner: 1 + above[bisect_right(values, pts)] for owner, pts in mine.items()}


async def ledger_points_as_of(conn: asyncpg.Connection, p: str, *, org_path: str, start: datetime,
                              end: datetime, as_of: datetime | None, owner_kind: str = "cadre") -> dict[str, int]:
    """Points per owner earned in [start, end) as scoring knew them at ``as_of``, filed under the
    owner's path at that instant."""
    sql = (
        f"SELECT l.owner_id, sum(l.points)::int AS points FROM {p}.ledger l "
        f"LEFT JOIN LATERAL (SELECT org_path FROM {p}.cadre_paths cp WHERE cp.cadre_id = l.owner_id "
        "AND ($4::timestamptz IS NULL OR cp.applied_at <= $4) ORDER BY applied_at DESC LIMIT 1) cp ON true "
        "WHERE l.owner_kind = $5 AND l.occurred_at >= $2 AND l.occurred_at < $3 "
        "AND ($4::timestamptz IS NULL OR l.applied_at <= $4) "
        f"AND {subtree('coalesce(cp.org_path, l.org_path)', '$1')} GROUP BY l.owner_id"
    )
    return {r["owner_id"]: r["points"] for r in await conn.fetch(sql, org_path, start, end, as_of, owner_kind)}


async def current_projection(conn: asyncpg.Connection, service_schema: str) -> str:
    """The schema of the projection version that serves (a rebuild swaps another one in)."""
    name = await conn.fetchval(
        f"SELECT schema_name FROM {service_schema}.projection_versions WHERE status = 'current'"
    )
    return str(name or f"{service_schema}_proj")


async def points_as_of(conn: asyncpg.Connection, p: str, *, org_path: str, start: datetime | None,
                       end: datetime | None, as_of: datetime) -> list[asyncpg.Record]:
    """Every owner with ledger entries in [start, end) applied by ``as_of`` (an owner whose entries
    cancel out is there with 0, as on the live board), filed under its path at that instant."""
    sql = (
        "SELECT owner_id, owner_kind, org_path, points FROM ("
        "SELECT l.owner_id, l.owner_kind, coalesce(cp.org_path, l.org_path) AS org_path, sum(l.points)::int AS points "
        f"FROM {p}.ledger l LEFT JOIN LATERAL (SELECT org_path FROM {p}.cadre_paths cp "
        "WHERE cp.cadre_id = l.owner_id AND l.owner_kind = 'cadre' AND cp.applied_at <= $4 "
        "ORDER BY applied_at DESC LIMIT 1) cp ON true "
        "WHERE ($2::timestamptz IS NULL OR l.occurred_at >= $2) AND ($3::timestamptz IS NULL OR l.occurred_at < $3) "
        "AND l.applied_at <= $4 GROUP BY 1, 2, 3) x "
        f"WHERE {subtree('org_path', '$1')}"
    )
    return list(await conn.fetch(sql, org_path, start, end, as_of))


async def org_as_of(conn: asyncpg.Connection, p: str, org_id: str, as_of: datetime) -> dict[str, Any] | None:
    """An org's path, name and level as of an instant (``None`` if it did not exist yet)."""
    row = await conn.fetchrow(
        f"SELECT org_id, org_path, name, org_type FROM {p}.org_history WHERE org_id = $1 AND applied_at <= $2 "
        "ORDER BY applied_at DESC LIMIT 1", org_id, as_of)
    return dict(row) if row else None


_ORG = "org_id, org_path, name, org_type, closed"


async def _orgs_then(conn: asyncpg.Connection, p: str, where: Callable[[str], str], args: tuple[Any, ...],
                     as_of: datetime | None) -> list[dict[str, Any]]:
    """The orgs a condition holds for (``where(alias)``: SQL on the columns of ``alias``), as of an
    instant: every org it held for at some time by then (an index range), at its last row by
    then, kept if it still holds there: where, as named and as open as it was then."""
    if as_of is None:
        rows = await conn.fetch(f"SELECT {_ORG} FROM {p}.orgs o WHERE {where('o')} ORDER BY org_path", *args)
    else:
        at = f"${len(args) + 1}"
        rows = await conn.fetch(
            f"SELECT v.* FROM (SELECT DISTINCT org_id FROM {p}.org_history h WHERE {where('h')} "
            f"AND applied_at <= {at}) c CROSS JOIN LATERAL (SELECT {_ORG} FROM {p}.org_history h "
            f"WHERE h.org_id = c.org_id AND h.applied_at <= {at} ORDER BY h.applied_at DESC LIMIT 1) v "
            f"WHERE {where('v')} ORDER BY v.org_path", *args, as_of)
    return [dict(r) for r in rows]


async def org_children(conn: asyncpg.Connection, p: str, org_path: str, as_of: datetime | None) -> list[dict[str, Any]]:
    """The orgs directly under ``org_path`` (by path: a move leaves its subtree's ``depth`` as it
    was) as of an instant. A merged org has its target's path since (its cadres went with it):
    it is that org, not a second one beside it."""
    def child(t: str) -> str:
        col = f"{t}.org_path"
        return f"{subtree(col, '$1')} AND {col} <> $1 AND strpos(substr({col}, length($1) + 2), '/') = 0"

    orgs = await _orgs_then(conn, p, child, (org_path,), as_of)
    open_at = {o["org_path"] for o in orgs if not o["closed"]}
    return [o for o in orgs if not (o["closed"] and o["org_path"] in open_at)]


async def orgs_of_level(conn: asyncpg.Connection, p: str, org_path: str, org_type: str,
                        as_of: datetime | None) -> list[dict[str, Any]]:
    """The open orgs of one level within a subtree, as of an instant."""
    return await _orgs_then(conn, p, lambda t: f"{t}.org_type = $2 AND NOT {t}.closed AND "
                                               f"{subtree(f'{t}.org_path', '$1')}", (org_path, org_type), as_of)


async def orgs_in(conn: asyncpg.Connection, p: str, org_path: str, as_of: datetime | None) -> list[dict[str, Any]]:
    """The open orgs within a subtree as of an instant, each with whether it is a leadership
    organ (团的领导机关, who owe the collective five-ones; fixed when an org is created)."""
    orgs = await _orgs_then(conn, p, lambda t: f"NOT {t}.closed AND {subtree(f'{t}.org_path', '$1')}",
                            (org_path,), as_of)
    organs = {r[0] for r in await conn.fetch(
        f"SELECT org_id FROM {p}.orgs WHERE is_leadership_organ AND org_id = ANY($1::text[])",
        [o["org_id"] for o in orgs])}
    return [{**o, "is_leadership_organ": o["org_id"] in organs} for o in orgs]


async def campaigns_run(conn: asyncpg.Connection, p: str, org_path: str, start: date, end: date,
                        as_of: datetime | None) -> list[dict[str, Any]]:
    """The campaigns (全团集中活动) run for ``org_path``, opened by it or by an org above it (where
    the opener was as of ``as_of``), whose days overlap [start, end], as known at ``as_of``."""
    rows = await conn.fetch(
        f"SELECT c.campaign_id, c.key, c.name, c.starts_on, c.ends_on FROM {p}.campaigns c "
        f"CROSS JOIN LATERAL (SELECT org_path FROM {p}.org_history h WHERE h.org_id = c.org_id "
        "AND ($4::timestamptz IS NULL OR h.applied_at <= $4) ORDER BY h.applied_at DESC LIMIT 1) o "
        "WHERE c.starts_on <= $3 AND c.ends_on >= $2 AND ($4::timestamptz IS NULL OR c.known_at <= $4) "
        "AND (o.org_path = $1 OR starts_with($1, o.org_path || '/')) ORDER BY c.starts_on, c.campaign_id",
        org_path, start, end, as_of)
    return [dict(r) for r in rows]


async def campaigns_taken(conn: asyncpg.Connection, p: str, owners: list[str], start: date, end: date,
                          as_of: datetime | None) -> dict[str, set[str]]:
    """The campaigns each owner recorded activities for over [start, end] (days), as known then."""
    rows = await conn.fetch(
        f"SELECT owner_id, subject FROM {p}.facts WHERE owner_id = ANY($1::text[]) AND metric = 'campaign' "
        "AND occurred_on BETWEEN $2 AND $3 AND ($4::timestamptz IS NULL OR applied_at <= $4) "
        "GROUP BY owner_id, subject HAVING sum(n) > 0", owners, start, end, as_of)
    out: dict[str, set[str]] = defaultdict(set)
    for r in rows:
        out[r["owner_id"]].add(r["subject"])
    return out


async def cadres_in(conn: asyncpg.Connection, p: str, org_path: str, as_of: datetime | None = None,
                    joined_by: date | None = None) -> list[dict[str, Any]]:
    """Cadres of a subtree with their place, kind and org level as of an instant (today's where
    the history has none), and their links now; with ``joined_by``, those registered by that day
    (their ``registered`` fact: a closed period is not theirs to be judged on otherwise)."""
    sql = (
        "SELECT c.cadre_id, coalesce(cp.kind, c.kind) AS kind, coalesce(cp.org_type, c.org_type) AS org_type, "
        "c.in_leadership_organ, c.active, c.linked_youths, c.last_online, c.last_face_to_face, "
        "coalesce(cp.org_path, c.org_path) AS org_path "
        f"FROM {p}.cadres c LEFT JOIN LATERAL (SELECT org_path, kind, org_type FROM {p}.cadre_paths x "
        "WHERE x.cadre_id = c.cadre_id AND ($2::timestamptz IS NULL OR x.applied_at <= $2) "
        "ORDER BY applied_at DESC LIMIT 1) cp ON true "
        f"WHERE {subtree('coalesce(cp.org_path, c.org_path)', '$1')} "
        "AND ($2::timestamptz IS NULL OR cp.org_path IS NOT NULL) "
        f"AND ($3::date IS NULL OR EXISTS (SELECT FROM {p}.facts f WHERE f.owner_id = c.cadre_id "
        "AND f.metric = 'registered' AND f.occurred_on <= $3)) ORDER BY c.cadre_id"
    )
    return [dict(r) for r in await conn.fetch(sql, org_path, as_of, joined_by)]


async def cadres_as_of(conn: asyncpg.Connection, p: str, ids: list[str],
                       as_of: datetime) -> dict[str, dict[str, Any]]:
    """Place, kind and org level of the given cadres as of an instant (today's where the history
    has none: it was kept only from migration 0004 on)."""
    rows = await conn.fetch(
        "SELECT c.cadre_id, coalesce(cp.org_path, c.org_path) AS org_path, coalesce(cp.kind, c.kind) AS kind, "
        f"coalesce(cp.org_type, c.org_type) AS org_type FROM {p}.cadres c "
        f"LEFT JOIN LATERAL (SELECT org_path, kind, org_type FROM {p}.cadre_paths x WHERE x.cadre_id = c.cadre_id "
        "AND x.applied_at <= $2 ORDER BY applied_at DESC LIMIT 1) cp ON true WHERE c.cadre_id = ANY($1::text[])",
        ids, as_of)
    return {r["cadre_id"]: dict(r) for r in rows}


async def fact_sums(conn: asyncpg.Connection, p: str, owners: list[str], start: date, end: date,
                    as_of: datetime | None = None) -> dict[str, dict[str, int]]:
    """metric → sum per owner over [start, end] (days)."""
    rows = await conn.fetch(
        f"SELECT owner_id, metric, sum(n)::int AS n FROM {p}.facts WHERE owner_id = ANY($1::text[]) "
        "AND occurred_on BETWEEN $2 AND $3 AND ($4::timestamptz IS NULL OR applied_at <= $4) "
        "GROUP BY owner_id, metric",
        owners, start, end, as_of,
    )
    out: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for r in rows:
        out[r["owner_id"]][r["metric"]] = r["n"]
    return out


async def linked_as_of(conn: asyncpg.Connection, p: str, owners: list[str], as_of: datetime | None,
                       on: date | None = None) -> dict[str, int]:
    """Youths linked per owner, as scoring knew it at ``as_of``; with ``on``, at the end of that
    day (China time), by the days the links were accepted and ended."""
    rows = await conn.fetch(
        f"SELECT owner_id, sum(n)::int AS n FROM {p}.facts WHERE owner_id = ANY($1::text[]) AND metric = 'linked' "
        "AND ($2::timestamptz IS NULL OR applied_at <= $2) AND ($3::date IS NULL OR occurred_on <= $3) "
        "GROUP BY owner_id",
        owners, as_of, on,
    )
    return {r["owner_id"]: r["n"] for r in rows}


async def weeks_with(conn: asyncpg.Connection, p: str, owner: str, metric: str, start: date, end: date) -> set[date]:
    """The Mondays of the weeks in which ``owner``'s ``metric`` adds up to more than nothing, over
    [start, end] (days)."""
    rows = await conn.fetch(
        f"SELECT (occurred_on - (extract(isodow FROM occurred_on)::int - 1))::date AS monday FROM {p}.facts "
        "WHERE owner_id = $1 AND metric = $2 AND occurred_on BETWEEN $3 AND $4 GROUP BY 1 HAVING sum(n) > 0",
        owner, metric, start, end)
    return {r["monday"] for r in rows}


async def last_online_on(conn: asyncpg.Connection, p: str, owner: str, day: date) -> date | None:
    """The last day up to ``day`` with an online contact that still counts (a correction can take one back)."""
    return await conn.fetchval(  # type: ignore[no-any-return]
        f"SELECT max(occurred_on) FROM (SELECT occurred_on FROM {p}.facts WHERE owner_id = $1 AND metric = 'online' "
        "AND occurred_on <= $2 GROUP BY occurred_on HAVING sum(n) > 0) d", owner, day)


async def window_distinct(conn: asyncpg.Connection, p: str, owners: list[str], day: date, window: int,
                          as_of: datetime | None = None) -> dict[str, tuple[int, int]]:
    """(youths contacted, days with an online contact) per owner over the ``window`` days to ``day``."""
    start = day - timedelta(days=window - 1)
    rows = await conn.fetch(
        "SELECT owner_id, count(*) FILTER (WHERE metric = 'youth_contact')::int AS youths, "
        "count(*) FILTER (WHERE metric = 'online')::int AS days FROM ("
        f"SELECT owner_id, metric, coalesce(subject, occurred_on::text) AS k FROM {p}.facts "
        "WHERE owner_id = ANY($1::text[]) AND metric IN ('youth_contact', 'online') "
        "AND occurred_on BETWEEN $2 AND $3 AND ($4::timestamptz IS NULL OR applied_at <= $4) "
        "GROUP BY owner_id, metric, coalesce(subject, occurred_on::text) HAVING sum(n) > 0) x GROUP BY owner_id",
        owners, start, day, as_of,
    )
    return {r["owner_id"]: (r["youths"], r["days"]) for r in rows}


def group_metric(group_org_type: str) -> str:
    """The fact counting a cadre's groups of a type (+1 linked, -1 ended, on the day it happened)."""
    return f"group:{group_org_type}"


async def groups_on(conn: asyncpg.Connection, p: str, cadre_id: str, day: date) -> dict[str, int]:
    """The groups a cadre covered at the end of ``day``, by group type."""
    rows = await conn.fetch(
        f"SELECT substr(metric, 7) AS typ, sum(n)::int AS n FROM {p}.facts WHERE owner_id = $1 "
        "AND metric LIKE 'group:%' AND occurred_on <= $2 GROUP BY metric", cadre_id, day,
    )
    return {r["typ"]: r["n"] for r in rows}


async def interactions_of(conn: asyncpg.Connection, p: str, owners: list[str], period: Period,
                          as_of: datetime | None = None) -> list[asyncpg.Record]:
    """The period's interactions of ``owners`` as scoring knew them at ``as_of``: those applied by
    then, each in the version current then (a correction applied later leaves the version it
    replaced). Rows projected before migration 0013 have no such instant and count at any; those
    corrected before 0014 have no earlier versions."""
    current = (
        f"SELECT cadre_id, occurred_at, recorded_at, summary_hash FROM {p}.interactions "
        "WHERE cadre_id = ANY($1::text[]) AND day BETWEEN $2 AND $3 "
        "AND ($4::timestamptz IS NULL OR coalesce(revised_at, known_at) IS NULL "
        "OR coalesce(revised_at, known_at) <= $4)"
    )
    if as_of is None:
        return list(await conn.fetch(current + " ORDER BY cadre_id, recorded_at", owners, period.start, period.end,
                                     as_of))
    # Version n of ``earlier`` was current from the one before's ``until`` (the first from known_at).
    replaced = (
        "SELECT i.cadre_id, v.occurred_at, v.recorded_at, v.summary_hash FROM "
        f"{p}.interactions i CROSS JOIN LATERAL ("
        "SELECT (e->>'day')::date AS day, (e->>'occurred_at')::timestamptz AS occurred_at, "
        "(e->>'recorded_at')::timestamptz AS recorded_at, e->>'summary_hash' AS summary_hash, "
        "(e->>'until')::timestamptz AS until, lag((e->>'until')::timestamptz) OVER (ORDER BY n) AS since "
        "FROM jsonb_array_elements(i.earlier) WITH ORDINALITY AS x(e, n)) v "
        "WHERE i.earlier IS NOT NULL AND i.cadre_id = ANY($1::text[]) AND v.day BETWEEN $2 AND $3 "
        "AND coalesce(v.since, i.known_at, '-infinity') <= $4 AND $4 < v.until"
    )
    return list(await conn.fetch(f"{current} UNION ALL {replaced} ORDER BY cadre_id, recorded_at",
                                 owners, period.start, period.end, as_of))


async def fabricated_flags(conn: asyncpg.Connection, p: str, owners: list[str], period: Period,
                           as_of: datetime | None = None) -> dict[str, int]:
    rows = await conn.fetch(
        f"SELECT owner_id, count(*)::int AS n FROM {p}.flags WHERE owner_id = ANY($1::text[]) "
        "AND occurred_on BETWEEN $2 AND $3 AND ($4::timestamptz IS NULL OR applied_at <= $4) GROUP BY owner_id",
        owners, period.start, period.end, as_of,
    )
    return {r["owner_id"]: r["n"] for r in rows}


async def rules_records(conn: asyncpg.Connection, p: str, org_path: str,
                        as_of: datetime | None = None) -> list[dict[str, Any]]:
    """OrgRulesSet records of the path and its ancestors, as stored; with ``as_of``, ``org_path``
    being a path then, those scoring knew then: a record replaced since, not its replacement
    (records from before migration 0014 carry no instant and count at any), and each org's own,
    found by its id (a path's last part) under the path its rules row has now, after a move or
    a merge."""
    from tuanlian.scoring.domain.scoring import ancestors

    paths = ancestors(org_path)
    filed = {path: path for path in paths}
    if as_of is not None:
        ids = {path.rsplit("/", 1)[-1]: path for path in paths}
        for r in await conn.fetch(f"SELECT org_id, org_path FROM {p}.orgs WHERE org_id = ANY($1::text[])", list(ids)):
            filed[ids[r["org_id"]]] = r["org_path"]
    rows = {r["org_path"]: r for r in await conn.fetch(
        f"SELECT org_path, records, replaced FROM {p}.org_rules WHERE org_path = ANY($1::text[])",
        list(set(filed.values())))}

    def known(rec: dict[str, Any], org_id: str) -> bool:
        if as_of is None:
            return "until" not in rec
        since, until = rec.get("known_at"), rec.get("until")
        return (rec["org_id"] == org_id and (since is None or datetime.fromisoformat(since) <= as_of)
                and (until is None or as_of < datetime.fromisoformat(until)))

    return [{"org_path": path, **rec} for path in paths if (row := rows.get(filed[path])) is not None
            for rec in [*row["records"], *(row["replaced"] or ())] if known(rec, path.rsplit("/", 1)[-1])]
