"""Scoring's HTTP API: leaderboards (日常排名) and the ledger behind every number."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from tuanlian.shared.auth import Principal, Role
from tuanlian.shared.http import require
from tuanlian.shared.service import Runtime


def build_router(runtime: Runtime) -> APIRouter:
    router = APIRouter()
    Who = Annotated[Principal, Depends(runtime.current_principal())]
    s = runtime.schema

    @router.get(
        "/leaderboards/cadres",
        tags=["leaderboards"],
        summary="Cadres of an org subtree ranked by points (ties share a rank)",
    )
    async def cadre_leaderboard(
        who: Who,
        org_path: Annotated[str, Query(pattern=r"^(/[A-Za-z0-9_-]+)+$", description="subtree root")],
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> dict[str, Any]:
        require(who, Role.org_admin, Role.leader, Role.cadre, org_path=org_path, why="see this ranking")
        async with runtime.db.connection() as conn:
            rows = await conn.fetch(
                f"SELECT cadre_id, org_path, kind, linked_youths, points, "
                f"rank() OVER (ORDER BY points DESC) AS rank FROM {s}.cadres "
                "WHERE org_path = $1 OR org_path LIKE $1 || '/%' ORDER BY points DESC, cadre_id LIMIT $2",
                org_path,
                limit,
            )
        return {"org_path": org_path, "entries": [dict(r) for r in rows]}

    @router.get(
        "/cadres/{cadre_id}/ledger",
        tags=["audit"],
        summary="Every ledger entry of a cadre with its rule and source event",
    )
    async def ledger(cadre_id: str, who: Who) -> list[dict[str, Any]]:
        async with runtime.db.connection() as conn:
            rows = await conn.fetch(
                f"SELECT entry_id, org_path, points, rule, ruleset_version, source_event_id, youth_id, "
                f"occurred_at FROM {s}.ledger WHERE cadre_id = $1 ORDER BY entry_id",
                cadre_id,
            )
        if rows:
            if not (who.role is Role.cadre and who.subject == cadre_id):
                require(who, Role.org_admin, Role.leader, org_path=rows[0]["org_path"], why="see this ledger")
        return [dict(r) for r in rows]

    return router
