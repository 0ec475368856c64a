"""Circulars and assessments at each period's close (定期通报, 年中/年终评估): the scoring service
issues them itself, once per org and period, for every org whose own rules plan them
(``OrgRules.circulars``, ``OrgRules.assessments``)."""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Any

import structlog
from tuanlian.scoring.adapters.queries import current_projection
from tuanlian.scoring.application import circulars
from tuanlian.scoring.domain.periods import Period, china_day
from tuanlian.scoring.domain.schedule import ASSESSMENTS, CIRCULARS, Plan, closed_at, periods_due
from tuanlian.scoring.domain.scoring import RulesRecord
from tuanlian.shared.auth import Principal, Role
from tuanlian.shared.contracts.contacts import OrgRules
from tuanlian.shared.events import utcnow
from tuanlian.shared.outbox import sleep_or_stop
from tuanlian.shared.service import Runtime

log = structlog.get_logger("tuanlian.scoring.schedule")

SCHEDULER = Principal("period-close", Role.system)
#: What is issued at a period's close: its plan in the org's rules, and the jsonpath that finds
#: the rules rows that ever planned one.
PLANS: dict[str, tuple[Plan, str]] = {
    "circular": (CIRCULARS, "$[*].rules.circulars.periods[*]"),
    "assessment": (ASSESSMENTS, "$[*].rules.assessments.periods[*]"),
}

Due = tuple[str, str, Period]  # what ("circular" | "assessment"), org id, period


async def due(conn: Any, p: str, today: date) -> list[Due]:
    """Every circular and assessment due by ``today``, done or not. Only the rules rows that ever
    planned one are read; an org that was closed is issued nothing."""
    rows = await conn.fetch(
        f"SELECT r.org_path, r.records FROM {p}.org_rules r JOIN {p}.orgs o ON o.org_path = r.org_path "
        "WHERE NOT o.closed AND (r.records @? $1::jsonpath OR r.records @? $2::jsonpath)",
        *(path for _plan, path in PLANS.values()))
    out: list[Due] = []
    for row in rows:
        by_org: dict[str, list[RulesRecord]] = {}
        for rec in row["records"]:
            by_org.setdefault(rec["org_id"], []).append(RulesRecord(
                row["org_path"], date.fromisoformat(rec["effective_from"]), OrgRules.model_validate(rec["rules"])))
        out += [(what, org_id, period) for what, (plan, _path) in PLANS.items()
                for org_id, own in by_org.items() for period in periods_due(own, today, plan)]
    return out


async def _not_done(conn: Any, schema: str, due: list[Due]) -> list[Due]:
    """Those of ``due`` not done yet, in one statement. A circular is done if one was computed
    since the period closed (one published before, a progress circular, does not stand for it);
    an assessment, if the org's period was assessed at all."""
    if not due:
        return []
    rows = await conn.fetch(
        "SELECT d.what, d.org_id, d.kind, d.key FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], "
        "$5::timestamptz[]) AS d(what, org_id, kind, key, closed) WHERE CASE d.what "
        f"WHEN 'circular' THEN EXISTS (SELECT FROM {schema}.circulars c WHERE c.org_id = d.org_id "
        "AND c.period_kind = d.kind AND c.period_key = d.key AND c.as_of >= d.closed) "
        f"ELSE EXISTS (SELECT FROM {schema}.assessment_runs a WHERE a.org_id = d.org_id AND a.period_kind = d.kind "
        "AND a.period_key = d.key) END",
        [w for w, _o, _p in due], [o for _w, o, _p in due], [p.kind.value for _w, _o, p in due],
        [p.key for _w, _o, p in due], [closed_at(p) for _w, _o, p in due])
    done = {(r["what"], r["org_id"], r["kind"], r["key"]) for r in rows}
    return [(w, o, p) for w, o, p in due if (w, o, p.kind.value, p.key) not in done]


async def issue_once(runtime: Runtime, p: str, what: str, org_id: str, period: Period) -> dict[str, Any] | None:
    """Issue one circular or run one assessment, unless done already (None). Under a lock on
    (org, period) for its transaction: two looks (replicas) finding it not done at once, the
    second waits, then finds the first's."""
    async with runtime.db.transaction() as conn:
        await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                           f"{runtime.schema}.{what} {org_id} {period.kind.value} {period.key}")
        if not await _not_done(conn, runtime.schema, [(what, org_id, period)]):
            return None
        issue = circulars.publish_in if what == "circular" else circulars.assess_in
        return await issue(conn, runtime, p, SCHEDULER, org_id, period)


async def issue_due(runtime: Runtime, today: date | None = None) -> list[dict[str, Any]]:
    """Issue the circulars and run the assessments due by ``today`` (China's today by default)
    that are not done yet; what was issued (each document, or the assessment's result)."""
    today = today or china_day(utcnow())
    async with runtime.db.connection() as conn:
        p = await current_projection(conn, runtime.schema)
        # Nearly all were done at an earlier look: found in one statement, not a transaction
        # each (a national deployment's hundreds of thousands every few minutes).
        todo = await _not_done(conn, runtime.schema, await due(conn, p, today))
    issued, failed = [], []
    for what, org_id, period in todo:
        try:  # one org's failure does not hold back the others'
            doc = await issue_once(runtime, p, what, org_id, period)
        except Exception as exc:
            log.warning(f"{what} not issued", org_id=org_id, period=period.key, error=f"{type(exc).__name__}: {exc}")
            failed.append(exc)
            continue
        if doc is not None:
            log.info(f"{what} issued at the period's close", org_id=org_id, period=period.key)
            issued.append({"what": what, **doc})
    if failed:
        raise failed[0]
    return issued


class PeriodClose:
    """The background task: looks every ``Settings.period_close_check_seconds``."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await issue_due(self.runtime)
            except Exception as exc:  # the database went away, a version swapped: the next look retries
                log.warning("period close failed", error=f"{type(exc).__name__}: {exc}")
            await sleep_or_stop(stop, self.runtime.settings.period_close_check_seconds)
