"""Circulars (月度/季度通报) and assessments (年中/年终考核): computed, numbered, stored immutably,
announced on the scoring stream through the outbox in the same transaction."""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any
from uuid import UUID

from tuanlian.scoring.adapters.queries import current_projection, subtree
from tuanlian.scoring.application import reports
from tuanlian.scoring.domain.assessment import assess as assess_one
from tuanlian.scoring.domain.periods import Period, PeriodKind, china_day
from tuanlian.shared.auth import Principal, Role
from tuanlian.shared.contracts.scoring import AssessmentCompleted, CircularPublished
from tuanlian.shared.contracts.scoring import PeriodKind as ContractPeriod
from tuanlian.shared.errors import NotFound, RuleViolation
from tuanlian.shared.events import new_id, utcnow
from tuanlian.shared.eventstore import Metadata
from tuanlian.shared.http import require, require_view
from tuanlian.shared.service import Runtime

_PUBLISHABLE = {"month", "quarter", "half_year", "year"}
_TITLES = {PeriodKind.month: "月度通报", PeriodKind.quarter: "季度通报", PeriodKind.half_year: "半年通报",
           PeriodKind.year: "年度通报"}


async def _freeze(conn: Any, service_schema: str, p: str) -> tuple[str, datetime]:
    """The version and the instant the document is computed at. Taking the projection's
    append-only tables in SHARE mode waits for batches in flight and holds new ones back, so every
    row applied before this instant is visible and none applied after it is (as-of recomputation
    then agrees). A rebuild's swap holds them too: a circular that waited for one computes on the
    version swapped in (the old one lacks what the swap applied)."""
    while True:
        await conn.execute(f"LOCK TABLE {p}.ledger, {p}.facts, {p}.flags, {p}.cadre_paths IN SHARE MODE")
        serving = await current_projection(conn, service_schema)
        if serving == p:
            at: datetime = await conn.fetchval("SELECT clock_timestamp()")
            return p, at
        p = serving


def _jsonable(doc: Any) -> Any:
    return json.loads(json.dumps(doc, default=str))


async def publish(runtime: Runtime, p: str, who: Principal, org_id: str, period: Period) -> dict[str, Any]:
    async with runtime.db.transaction() as conn:
        return await publish_in(conn, runtime, p, who, org_id, period)


async def publish_in(conn: Any, runtime: Runtime, p: str, who: Principal, org_id: str,
                     period: Period) -> dict[str, Any]:
    """Compute, number, store and announce a circular, in the transaction ``conn``."""
    if period.kind.value not in _PUBLISHABLE:
        raise RuleViolation("circulars are monthly, quarterly, half-yearly or yearly", field="period_kind")
    assert runtime.store is not None
    org = await reports.org_row(conn, p, org_id)
    require(who, Role.org_admin, org_path=org["org_path"], why="publish circulars")  # leaders only read
    p, as_of = await _freeze(conn, runtime.schema, p)
    doc = _jsonable(await reports.circular_document(conn, p, org, period, as_of))
    positions = {r["consumer"]: r["stream_sequence"] for r in await conn.fetch(
        f"SELECT consumer, stream_sequence FROM {runtime.schema}.consumer_checkpoint")}
    prefix = period.key
    n = await conn.fetchval(
        f"INSERT INTO {runtime.schema}.circular_numbers (prefix, last) VALUES ($1, 1) ON CONFLICT (prefix) "
        f"DO UPDATE SET last = {runtime.schema}.circular_numbers.last + 1 RETURNING last", prefix)
    number = f"{prefix}-{n:03d}"
    cid = new_id()
    title = f"{org['name']} {period.name_zh} {_TITLES[period.kind]}"
    await conn.execute(
        f"INSERT INTO {runtime.schema}.circulars (circular_id, number, org_id, org_path, period_kind, period_key, "
        "period_start, period_end, title, as_of, positions, document, published_by) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        cid, number, org_id, org["org_path"], period.kind.value, period.key, period.start, period.end,
        title, as_of, positions, doc, who.actor)
    event = CircularPublished(
        circular_id=str(cid), number=number, org_id=org_id, org_path=org["org_path"],
        period_kind=ContractPeriod(period.kind.value), period_start=period.start, period_end=period.end,
        title=title, positions=positions)
    await runtime.store.append(conn, f"circular-{cid}", 0, [event],
                               Metadata(actor=who.actor, org_path=org["org_path"]))
    return {"circular_id": str(cid), "number": number, "title": title, "as_of": as_of.isoformat(),
            "published_by": who.actor, "positions": positions, **doc}


async def load(runtime: Runtime, who: Principal, number: str) -> dict[str, Any]:
    async with runtime.db.connection() as conn:
        row = await conn.fetchrow(f"SELECT * FROM {runtime.schema}.circulars WHERE number = $1", number)
    if row is None:
        raise NotFound(f"circular {number} not found")
    require_view(who, row["org_path"], Role.org_admin, Role.leader, Role.cadre, why="read this circular")
    return {"circular_id": str(row["circular_id"]), "number": number, "title": row["title"],
            "as_of": row["as_of"].isoformat(), "published_at": row["published_at"].isoformat(),
            "published_by": row["published_by"], "positions": row["positions"], **row["document"]}


async def listing(runtime: Runtime, p: str, who: Principal, org_id: str,
                  period_kind: str | None = None) -> list[dict[str, Any]]:
    """The org's circulars, the latest period first: on demand and at each period's close."""
    async with runtime.db.connection() as conn:
        org = await reports.org_row(conn, p, org_id)
        require_view(who, org["org_path"], Role.org_admin, Role.leader, Role.cadre, why="list these circulars")
        rows = await conn.fetch(
            f"SELECT number, title, period_kind, period_key AS period, as_of, published_at, published_by "
            f"FROM {runtime.schema}.circulars WHERE org_id = $1 AND ($2::text IS NULL OR period_kind = $2) "
            "ORDER BY period_start DESC, published_at DESC", org_id, period_kind)
    return [{**dict(r), "as_of": r["as_of"].isoformat(), "published_at": r["published_at"].isoformat()}
            for r in rows]


async def recompute(runtime: Runtime, p: str, who: Principal, number: str) -> dict[str, Any]:
    """The circular recomputed from the projection as of its instant, beside what was published."""
    published = await load(runtime, who, number)
    async with runtime.db.connection() as conn:
        org = await reports.org_row(conn, p, published["org_id"])
        from tuanlian.scoring.domain.periods import parse_period

        period = parse_period(published["period_kind"], published["period"])
        as_of = datetime.fromisoformat(published["as_of"])
        doc = _jsonable(await reports.circular_document(
            conn, p, org, period, as_of, links_at_end=published.get("youths_linked_at") == "period_end",
            joined_by_end=published.get("cadres_joined_by") == "period_end",
            org_work=published.get("org_work") == "organs_and_campaigns"))
    keys = ("org_id", "org_path", "org", "period_kind", "period", "period_start", "period_end", "rows")
    same = all(doc[k] == published[k] for k in keys)
    return {"number": number, "as_of": published["as_of"], "equal": same, "recomputed": doc}


async def assess(runtime: Runtime, p: str, who: Principal, org_id: str, period: Period) -> dict[str, Any]:
    async with runtime.db.transaction() as conn:
        return await assess_in(conn, runtime, p, who, org_id, period)


async def assess_in(conn: Any, runtime: Runtime, p: str, who: Principal, org_id: str,
                    period: Period) -> dict[str, Any]:
    """年中/年终考核 of every cadre in the subtree, in the transaction ``conn``; failing → not
    eligible for excellence awards; and the 全面评估 of each org directly under it
    (:func:`reports.org_evaluations`). Each run is recorded with its orgs' (``assessment_runs``)."""
    if period.kind.value not in ("half_year", "year"):
        raise RuleViolation("assessments are mid-year (half_year) or year-end (year)", field="period_kind")
    assert runtime.store is not None
    today = china_day(utcnow())
    if period.end >= today:
        raise RuleViolation(f"{period.key} has not closed yet", field="period")
    out, fared = [], []
    org = await reports.org_row(conn, p, org_id)
    require(who, Role.org_admin, org_path=org["org_path"], why="assess cadres")  # leaders only read
    # Not those who joined after the period closed: it was not theirs (they would fail it all).
    cadres = [c for c in await reports.q.cadres_in(conn, p, org["org_path"], joined_by=period.end) if c["active"]]
    signals = await reports.signals_for(conn, p, [c["cadre_id"] for c in cadres], period)
    for cadre in cadres:
        comp = await reports.compliance(conn, p, cadre, period, today)
        result = assess_one(comp, signals.get(cadre["cadre_id"], []))
        aid = new_id()
        detail = {"failed_checks": result.failed_checks, "compliance": reports.compliance_json(comp),
                  "signals": [s.__dict__ for s in result.signals]}
        inserted = await conn.fetchval(
            f"INSERT INTO {runtime.schema}.assessments (assessment_id, cadre_id, org_path, period_kind, "
            "period_key, passed, eligible_for_excellence, detail) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
            "ON CONFLICT (cadre_id, period_kind, period_key) DO NOTHING RETURNING assessment_id",
            aid, cadre["cadre_id"], cadre["org_path"], period.kind.value, period.key, result.passed,
            result.eligible_for_excellence, _jsonable(detail))
        if inserted is not None:
            await runtime.store.append(conn, f"assessment-{aid}", 0, [AssessmentCompleted(
                assessment_id=str(aid), cadre_id=cadre["cadre_id"], org_path=cadre["org_path"],
                period_kind=ContractPeriod(period.kind.value), period_start=period.start,
                period_end=period.end, passed=result.passed,
                eligible_for_excellence=result.eligible_for_excellence)],
                Metadata(actor=who.actor, org_path=cadre["org_path"]))
        out.append({"cadre_id": cadre["cadre_id"], "passed": result.passed,
                    "eligible_for_excellence": result.eligible_for_excellence, **_jsonable(detail)})
        fared.append((cadre["org_path"], result.passed))
    orgs = _jsonable(await reports.org_evaluations(conn, p, runtime.schema, org, period, fared, today))
    await conn.execute(
        f"INSERT INTO {runtime.schema}.assessment_runs (org_id, org_path, period_kind, period_key, cadres, run_by, "
        "orgs) VALUES ($1, $2, $3, $4, $5, $6, $7)", org_id, org["org_path"], period.kind.value, period.key,
        len(out), who.actor, orgs)
    return {"org_id": org_id, "period": period.key, "period_kind": period.kind.value, "cadres": out, "orgs": orgs}


async def assessments_of(runtime: Runtime, p: str, who: Principal, org_id: str, period: Period) -> dict[str, Any]:
    """The org's runs of a period's assessment (on demand, at the close), each with what it found
    of the orgs under it (none before the twenty-fifth session), and the results stored for the
    cadres of its subtree (each cadre's first, which later runs leave as they were)."""
    if period.kind.value not in ("half_year", "year"):
        raise RuleViolation("assessments are mid-year (half_year) or year-end (year)", field="period_kind")
    async with runtime.db.connection() as conn:
        org = await reports.org_row(conn, p, org_id)
        require(who, Role.org_admin, Role.leader, org_path=org["org_path"], why="see these assessments")
        runs = await conn.fetch(
            f"SELECT cadres, run_by, run_at, orgs FROM {runtime.schema}.assessment_runs WHERE org_id = $1 "
            "AND period_kind = $2 AND period_key = $3 ORDER BY id", org_id, period.kind.value, period.key)
        results = await conn.fetch(
            f"SELECT cadre_id, org_path, passed, eligible_for_excellence, detail, assessed_at "
            f"FROM {runtime.schema}.assessments WHERE period_kind = $2 AND period_key = $3 AND "
            f"{subtree('org_path', '$1::text')} ORDER BY cadre_id", org["org_path"], period.kind.value, period.key)
    return {"org_id": org_id, "period_kind": period.kind.value, "period": period.key,
            "runs": [{**dict(r), "run_at": r["run_at"].isoformat()} for r in runs],
            "cadres": [{**dict(r), "assessed_at": r["assessed_at"].isoformat()} for r in results]}


__all__ = ["UUID", "assess", "assess_in", "assessments_of", "date", "listing", "load", "publish", "publish_in",
           "recompute"]
