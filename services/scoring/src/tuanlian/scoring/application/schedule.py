"""Circulars at each period's close (定期通报): the scoring service issues them itself, once per
org and period, for every org whose own rules plan them (``OrgRules.circulars``)."""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Any

import structlog
from tuanlian.scoring.adapters.queries import current_projection
from tuanlian.scoring.application import circulars
from tuanlian.scoring.domain.periods import Period, china_day
from tuanlian.scoring.domain.schedule import circulars_due, closed_at
from tuanlian.scoring.domain.scoring import RulesRecord
from tuanlian.shared.auth import Principal, Role
from tuanlian.shared.contracts.contacts import OrgRules
from tuanlian.shared.events import utcnow
from tuanlian.shared.outbox import sleep_or_stop
from tuanlian.shared.service import Runtime

log = structlog.get_logger("tuanlian.scoring.schedule")

SCHEDULER = Principal("circular-schedule", Role.system)


async def due(runtime: Runtime, p: str, today: date) -> list[tuple[str, Period]]:
    """(org id, period) of every circular due by ``today``, issued or not. Only rows whose rules
    ever planned one are read; an org that was closed issues none."""
    async with runtime.db.connection() as conn:
        rows = await conn.fetch(
            f"SELECT r.org_path, r.records FROM {p}.org_rules r JOIN {p}.orgs o ON o.org_path = r.org_path "
            "WHERE NOT o.closed AND r.records @? '$[*].rules.circulars.periods[*]'")
    out = []
    for row in rows:
        by_org: dict[str, list[RulesRecord]] = {}
        for rec in row["records"]:
            by_org.setdefault(rec["org_id"], []).append(RulesRecord(
                row["org_path"], date.fromisoformat(rec["effective_from"]), OrgRules.model_validate(rec["rules"])))
        out += [(org_id, period) for org_id, own in by_org.items() for period in circulars_due(own, today)]
    return out


async def _not_issued(runtime: Runtime, due: list[tuple[str, Period]]) -> list[tuple[str, Period]]:
    """Those of ``due`` with no circular computed since the close, in one statement: nearly all
    were issued at an earlier look, and a transaction each to find that out would be a national
    deployment's hundreds of thousands every few minutes. ``publish`` checks again under its lock."""
    if not due:
        return []
    async with runtime.db.connection() as conn:
        rows = await conn.fetch(
            f"SELECT d.org_id, d.kind, d.key FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[]) "
            f"AS d(org_id, kind, key, closed) WHERE EXISTS (SELECT FROM {runtime.schema}.circulars c "
            "WHERE c.org_id = d.org_id AND c.period_kind = d.kind AND c.period_key = d.key AND c.as_of >= d.closed)",
            [o for o, _ in due], [p.kind.value for _, p in due], [p.key for _, p in due],
            [closed_at(p) for _, p in due])
    issued = {(r["org_id"], r["kind"], r["key"]) for r in rows}
    return [(o, p) for o, p in due if (o, p.kind.value, p.key) not in issued]


async def publish_due(runtime: Runtime, today: date | None = None) -> list[dict[str, Any]]:
    """Issue the circulars due by ``today`` (China's today by default) that no circular computed
    since their period closed stands for; the documents issued."""
    today = today or china_day(utcnow())
    async with runtime.db.connection() as conn:
        p = await current_projection(conn, runtime.schema)
    issued, failed = [], []
    for org_id, period in await _not_issued(runtime, await due(runtime, p, today)):
        try:  # one org's failure does not hold back the others' circulars
            doc = await circulars.publish(runtime, p, SCHEDULER, org_id, period, unless_since=closed_at(period))
        except Exception as exc:
            log.warning("circular not issued", org_id=org_id, period=period.key, error=f"{type(exc).__name__}: {exc}")
            failed.append(exc)
            continue
        if doc is not None:
            log.info("circular issued at the period's close", number=doc["number"], org_id=org_id,
                     period=period.key)
            issued.append(doc)
    if failed:
        raise failed[0]
    return issued


class CircularSchedule:
    """The background task: looks every ``Settings.circular_check_seconds``."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await publish_due(self.runtime)
            except Exception as exc:  # the database went away, a version swapped: the next look retries
                log.warning("circular schedule failed", error=f"{type(exc).__name__}: {exc}")
            await sleep_or_stop(stop, self.runtime.settings.circular_check_seconds)
