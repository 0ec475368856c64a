"""Scoring's HTTP API: leaderboards (日常排名), a cadre's ledger, activity level (活跃度) and
compliance (达标), circulars (通报) and assessments (考核)."""

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import Response
from pydantic import BaseModel
from tuanlian.scoring.adapters import queries as q
from tuanlian.scoring.application import circulars as circ
from tuanlian.scoring.application import reports
from tuanlian.scoring.domain.periods import Period, PeriodKind, china_day, parse_period, period_of
from tuanlian.scoring.domain.ranking import peer_level, points_per_cadre, rank, rank_change
from tuanlian.scoring.entrypoints import render
from tuanlian.shared.auth import Principal, Role
from tuanlian.shared.contracts.contacts import OrgType
from tuanlian.shared.contracts.dates import CivilDateTime
from tuanlian.shared.errors import NotFound
from tuanlian.shared.events import utcnow
from tuanlian.shared.http import require, require_view
from tuanlian.shared.service import Runtime

PATH = r"^(/[A-Za-z0-9_-]+)+$"
RANKED = {"all", "day", "month", "quarter", "year"}


def _period(kind: str, key: str | None, loc: tuple[str, str] = ("query", "period")) -> Period | None:
    """The period named by query parameters (or a body's, at ``loc``); 422 with the field when it
    does not parse."""
    if kind == "all":
        if key not in (None, "all"):  # a period without its kind would silently rank all time
            raise HTTPException(422, [{"loc": list(loc), "type": "value_error",
                                       "msg": f"period {key!r} needs its period_kind (day, month, quarter or year)"}])
        return None
    try:
        return parse_period(kind, key) if key else period_of(china_day(utcnow()), PeriodKind(kind))
    except ValueError as exc:
        raise HTTPException(422, [{"loc": list(loc), "msg": str(exc), "type": "value_error"}]) from exc


class CircularRequest(BaseModel):
    org_id: str
    period_kind: PeriodKind = PeriodKind.month
    period: str | None = None


class AssessmentRequest(BaseModel):
    org_id: str
    period_kind: PeriodKind = PeriodKind.half_year
    period: str | None = None


def build_router(runtime: Runtime) -> APIRouter:
    router = APIRouter()
    Who = Annotated[Principal, Depends(runtime.current_principal())]

    async def serving() -> str:
        async with runtime.db.connection() as conn:
            return await q.current_projection(conn, runtime.schema)

    # The projection version that serves, looked up per request (a rebuild swaps versions).
    Proj = Annotated[str, Depends(serving)]

    def span(per: Period | None) -> tuple[datetime | None, datetime | None]:
        return (None, None) if per is None else (reports._instant(per.start), reports._instant(per.next().start))

    async def cadre_row(conn: Any, p: str, cadre_id: str, who: Principal, why: str) -> dict[str, Any]:
        row = await conn.fetchrow(f"SELECT * FROM {p}.cadres WHERE cadre_id = $1", cadre_id)
        if row is None:
            raise NotFound(f"cadre {cadre_id} not found")
        if not (who.role is Role.cadre and who.subject == cadre_id):
            require(who, Role.org_admin, Role.leader, org_path=row["org_path"], why=why)
        return dict(row)

    @router.get("/leaderboards/cadres", tags=["leaderboards"],
                summary="Cadres of an org subtree ranked by points for a period (ties share a rank)")
    async def cadre_leaderboard(
        who: Who,
        p: Proj,
        org_path: Annotated[str, Query(pattern=PATH, description="subtree root")],
        period_kind: Annotated[str, Query(pattern="^(all|day|month|quarter|year)$")] = "all",
        period: Annotated[str | None, Query(description="e.g. 2026-03, 2026-Q1; default: the current one")] = None,
        cadre_kind: Annotated[str | None, Query(pattern="^(full_time|seconded|part_time)$")] = None,
        org_type: Annotated[OrgType | None, Query(description="only cadres of orgs of this level")] = None,
        as_of: Annotated[CivilDateTime | None, Query(description="recompute as scoring knew it then")] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> dict[str, Any]:
        require_view(who, org_path, Role.org_admin, Role.leader, Role.cadre, why="see this ranking")
        per = _period(period_kind, period)
        kind, key = (per.kind.value, per.key) if per else ("all", "all")
        async with runtime.db.connection() as conn:
            if as_of is not None:
                # As scoring knew it then: the ledger applied by that instant, paths and links then.
                def keep(c: Any) -> bool:
                    return (cadre_kind is None or c["kind"] == cadre_kind) and (
                        org_type is None or c["org_type"] == org_type)

                then: dict[str, dict[str, Any]] = {}  # each cadre's place, kind and org level then

                async def board_as_of(per_: Period | None) -> list[dict[str, Any]]:
                    start, end = span(per_)
                    got = [dict(r) for r in await q.points_as_of(conn, p, org_path=org_path, start=start, end=end,
                                                                  as_of=as_of) if r["owner_kind"] == "cadre"]
                    unknown = [r["owner_id"] for r in got if r["owner_id"] not in then]
                    then.update(await q.cadres_as_of(conn, p, unknown, as_of))
                    return [r for r in got if r["owner_id"] not in then or keep(then[r["owner_id"]])]

                rows = await board_as_of(per)
                prev = {} if per is None else {
                    r.key: r.rank for r in rank([(b["owner_id"], b["points"]) for b in await board_as_of(per.previous())])}
                linked = await q.linked_as_of(conn, p, [r["owner_id"] for r in rows], as_of)
                info = {r["owner_id"]: {"org_path": r["org_path"], "kind": then.get(r["owner_id"], {}).get("kind"),
                                        "linked_youths": linked.get(r["owner_id"], 0)} for r in rows}
            else:
                rows = [dict(r) for r in await q.top(conn, p, period_kind=kind, period_key=key, org_path=org_path,
                                                     owner_kind="cadre", limit=limit, cadre_kind=cadre_kind,
                                                     org_type=org_type)]
                prev = {} if per is None else await q.previous_ranks(
                    conn, p, period_kind=kind, period_key=per.previous().key, org_path=org_path,
                    owner_kind="cadre", ids=[r["owner_id"] for r in rows], cadre_kind=cadre_kind,
                    org_type=org_type)
                info = {r["cadre_id"]: dict(r) for r in await conn.fetch(
                    f"SELECT cadre_id, org_path, kind, linked_youths FROM {p}.cadres WHERE cadre_id = ANY($1::text[])",
                    [r["owner_id"] for r in rows])}
        ranked = rank([(r["owner_id"], r["points"]) for r in rows])[:limit]
        entries = []
        for r in ranked:
            c = info.get(r.key)
            entries.append({"cadre_id": r.key, "points": int(r.score), "rank": r.rank,
                            "rank_change": rank_change(r.rank, prev.get(r.key)),
                            "org_path": c["org_path"] if c else None, "kind": c["kind"] if c else None,
                            "linked_youths": c["linked_youths"] if c else 0})
        return {"org_path": org_path, "period_kind": kind, "period": key, "entries": entries}

    @router.get("/leaderboards/orgs", tags=["leaderboards"],
                summary="Orgs of one level within a subtree ranked by points per cadre")
    async def org_leaderboard(
        who: Who,
        p: Proj,
        org_path: Annotated[str, Query(pattern=PATH)],
        org_type: Annotated[OrgType | None, Query(
            description="the level compared (orgs are ranked against their peers); default: the level "
                        "most of the subtree root's direct sub-organisations have")] = None,
        period_kind: Annotated[str, Query(pattern="^(all|day|month|quarter|year)$")] = "month",
        period: str | None = None,
        as_of: Annotated[CivilDateTime | None, Query(description="recompute as scoring knew it then")] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> dict[str, Any]:
        require_view(who, org_path, Role.org_admin, Role.leader, Role.cadre, why="see this ranking")
        per = _period(period_kind, period)
        kind, key = (per.kind.value, per.key) if per else ("all", "all")

        def per_cadre(r: dict[str, Any]) -> dict[str, Any]:
            return {**r, "points_per_cadre": points_per_cadre(r["points"], r["cadres"])}

        async def scores(level: OrgType, k: str) -> list[dict[str, Any]]:
            rows = await conn.fetch(
                f"SELECT o.org_id, o.org_path, o.name, "
                f"(SELECT count(*) FROM {p}.cadres c WHERE c.active AND {q.subtree('c.org_path', 'o.org_path')}) AS cadres, "
                f"(SELECT coalesce(sum(points), 0) FROM {p}.period_points pp WHERE pp.period_kind = $3 "
                f"AND pp.period_key = $4 AND {q.subtree('pp.org_path', 'o.org_path')}) AS points "
                f"FROM {p}.orgs o WHERE o.org_type = $2 AND NOT o.closed AND {q.subtree('o.org_path', '$1')}",
                org_path, level.value, kind, k)
            return [per_cadre(dict(r)) for r in rows]

        async def scores_as_of(orgs: list[dict[str, Any]], per_: Period | None) -> list[dict[str, Any]]:
            assert as_of is not None
            start, end = span(per_)
            pts = await q.points_as_of(conn, p, org_path=org_path, start=start, end=end, as_of=as_of)
            cadres = [c for c in await q.cadres_in(conn, p, org_path, as_of) if c["active"]]
            out = []
            for o in orgs:
                def inside(path: str, root: str = o["org_path"]) -> bool:
                    return path == root or path.startswith(root + "/")
                out.append(per_cadre({"org_id": o["org_id"], "org_path": o["org_path"], "name": o["name"],
                                      "cadres": sum(1 for c in cadres if inside(c["org_path"])),
                                      "points": sum(r["points"] for r in pts if inside(r["org_path"]))}))
            return out

        async with runtime.db.connection() as conn:
            level = org_type or peer_level(await q.org_children(conn, p, org_path, as_of))
            if level is None:
                raise HTTPException(422, [{"loc": ["query", "org_type"], "type": "missing",
                                           "msg": f"{org_path} has no open sub-organisations to rank: name the "
                                                  "level compared (org_type)"}])
            if as_of is None:
                rows = await scores(level, key)
                before = await scores(level, per.previous().key) if per else []
            else:
                orgs = await q.orgs_of_level(conn, p, org_path, level.value, as_of)
                rows = await scores_as_of(orgs, per)
                before = await scores_as_of(orgs, per.previous()) if per else []
        prev = {r.key: r.rank for r in rank([(b["org_id"], b["points_per_cadre"]) for b in before])}
        by_id = {r["org_id"]: r for r in rows}
        entries = [{**by_id[r.key], "rank": r.rank, "rank_change": rank_change(r.rank, prev.get(r.key))}
                   for r in rank([(r["org_id"], r["points_per_cadre"]) for r in rows])[:limit]]
        return {"org_path": org_path, "org_type": level.value, "period_kind": kind, "period": key, "entries": entries}

    @router.get("/cadres/{cadre_id}/ledger", tags=["audit"],
                summary="Every ledger entry of a cadre with its rule, rule-set version and source events")
    async def ledger(cadre_id: str, who: Who, p: Proj) -> list[dict[str, Any]]:
        async with runtime.db.connection() as conn:
            await cadre_row(conn, p, cadre_id, who, "see this ledger")
            rows = await conn.fetch(
                f"SELECT entry_id, org_path, points, rule, ruleset_version, source_event_ids, youth_id, ref, "
                f"occurred_at, applied_at FROM {p}.ledger WHERE owner_id = $1 ORDER BY entry_id", cadre_id)
        return [dict(r) for r in rows]

    @router.get("/cadres/{cadre_id}/activity-level", tags=["cadres"], summary="活跃度 (0–100) and its parts")
    async def activity(cadre_id: str, who: Who, p: Proj) -> dict[str, Any]:
        async with runtime.db.connection() as conn:
            cadre = await cadre_row(conn, p, cadre_id, who, "see this cadre")
            today = china_day(utcnow())
            level = (await reports.activity_levels(conn, p, [cadre], today))[cadre_id]
        return {"cadre_id": cadre_id, "day": today.isoformat(), "activity_level": level}

    @router.get("/cadres/{cadre_id}/compliance", tags=["cadres"],
                summary="Compliance for a period: met / at risk / missed, with the numbers")
    async def compliance(
        cadre_id: str, who: Who, p: Proj,
        period_kind: Annotated[PeriodKind, Query()] = PeriodKind.quarter,
        period: str | None = None,
    ) -> dict[str, Any]:
        per = _period(period_kind.value, period)
        assert per is not None
        async with runtime.db.connection() as conn:
            cadre = await cadre_row(conn, p, cadre_id, who, "see this cadre")
            result = await reports.compliance(conn, p, cadre, per, china_day(utcnow()))
        return reports.compliance_json(result)

    @router.get("/orgs/{org_id}/compliance", tags=["orgs"],
                summary="A county committee's organ duties for a period (002: 8+4, open days): met / at risk / "
                        "missed, with the numbers")
    async def org_compliance(
        org_id: str, who: Who, p: Proj,
        period_kind: Annotated[PeriodKind, Query()] = PeriodKind.quarter,
        period: str | None = None,
    ) -> dict[str, Any]:
        per = _period(period_kind.value, period)
        assert per is not None
        async with runtime.db.connection() as conn:
            org = await reports.org_row(conn, p, org_id)
            require(who, Role.org_admin, Role.leader, org_path=org["org_path"], why="see this org's duties")
            result = await reports.organ_compliance(conn, p, org, per, china_day(utcnow()))
        return reports.compliance_json(result, subject="org_id")

    @router.post("/circulars", tags=["circulars"], status_code=201,
                 summary="Publish a numbered, immutable circular (通报) for an org subtree")
    async def publish(body: CircularRequest, who: Who, p: Proj) -> dict[str, Any]:
        per = _period(body.period_kind.value, body.period, ("body", "period"))
        assert per is not None
        if per.start > china_day(utcnow()):
            raise HTTPException(422, [{"loc": ["body", "period"], "type": "value_error",
                                       "msg": f"{per.key} has not begun: a circular reports on a period under way or past"}])
        return await circ.publish(runtime, p, who, body.org_id, per)

    @router.get("/circulars", tags=["circulars"],
                summary="An org's circulars (on demand and at each period's close), the latest first")
    async def list_circulars(
        org_id: str, who: Who, p: Proj, period_kind: Annotated[PeriodKind | None, Query()] = None,
    ) -> list[dict[str, Any]]:
        return await circ.listing(runtime, p, who, org_id, period_kind.value if period_kind else None)

    @router.get("/circulars/{number}", tags=["circulars"], summary="A circular as JSON, CSV, XLSX or HTML")
    async def get_circular(
        number: str, who: Who,
        format: Annotated[str, Query(pattern="^(json|csv|xlsx|html)$")] = "json",
    ) -> Any:
        doc = await circ.load(runtime, who, number)
        if format == "json":
            return doc
        body, media = render.render(doc, format)
        return Response(body, media_type=media,
                        headers={"Content-Disposition": f'inline; filename="circular-{number}.{format}"'})

    @router.get("/circulars/{number}/as-of", tags=["audit"],
                summary="Recompute a circular as of the instant it was published and compare")
    async def circular_as_of(number: str, who: Who, p: Proj) -> dict[str, Any]:
        return await circ.recompute(runtime, p, who, number)

    @router.post("/assessments", tags=["assessments"], status_code=201,
                 summary="Mid-year / year-end assessment (年中/年终考核) of every cadre in a subtree and of "
                         "the orgs under it (全面评估)")
    async def assessments(body: AssessmentRequest, who: Who, p: Proj) -> dict[str, Any]:
        per = _period(body.period_kind.value, body.period, ("body", "period"))
        assert per is not None
        return await circ.assess(runtime, p, who, body.org_id, per)

    @router.get("/assessments", tags=["assessments"],
                summary="An org's assessment of a period: its runs and its cadres' results")
    async def get_assessments(
        org_id: str, who: Who, p: Proj, period_kind: Annotated[PeriodKind, Query()] = PeriodKind.half_year,
        period: str | None = None,
    ) -> dict[str, Any]:
        per = _period(period_kind.value, period)
        assert per is not None
        return await circ.assessments_of(runtime, p, who, org_id, per)

    return router
