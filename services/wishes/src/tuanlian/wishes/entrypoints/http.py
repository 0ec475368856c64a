"""Wishes' HTTP API."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from tuanlian.shared.auth import Principal, Role
from tuanlian.shared.http import require
from tuanlian.shared.service import Runtime


def build_router(runtime: Runtime) -> APIRouter:
    router = APIRouter()
    Who = Annotated[Principal, Depends(runtime.current_principal())]
    s = runtime.schema

    @router.get(
        "/pairs/{cadre_id}/{youth_id}",
        tags=["pairs"],
        summary="May this youth raise wishes to this cadre? (only over an accepted link)",
    )
    async def pair(cadre_id: str, youth_id: str, who: Who) -> dict[str, Any]:
        async with runtime.db.connection() as conn:
            row = await conn.fetchrow(
                f"SELECT org_path, linked, since FROM {s}.pairs WHERE cadre_id = $1 AND youth_id = $2",
                cadre_id,
                youth_id,
            )
        if who.subject not in (cadre_id, youth_id) or who.role not in (Role.cadre, Role.youth):
            require(
                who,
                Role.org_admin,
                Role.leader,
                org_path=row["org_path"] if row else "/",
                why="see this pair",
            )
        linked = bool(row and row["linked"])
        return {
            "cadre_id": cadre_id,
            "youth_id": youth_id,
            "may_exchange_wishes": linked,
            "since": row["since"] if linked and row else None,
        }

    return router
