"""Notify's HTTP API: the in-app inbox (站内信)."""

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Query
from tuanlian.shared.auth import Principal, Role
from tuanlian.shared.errors import NotFound
from tuanlian.shared.http import require
from tuanlian.shared.service import Runtime


def build_router(runtime: Runtime) -> APIRouter:
    router = APIRouter()
    Who = Annotated[Principal, Depends(runtime.current_principal())]
    s = runtime.schema

    @router.get("/inbox", tags=["inbox"], summary="My messages, newest first")
    async def my_inbox(who: Who, limit: Annotated[int, Query(ge=1, le=200)] = 50) -> dict[str, Any]:
        async with runtime.db.connection() as conn:
            rows = await conn.fetch(
                f"SELECT message_id, kind, title, body, ref, created_at, read_at FROM {s}.inbox "
                "WHERE recipient_id = $1 ORDER BY created_at DESC LIMIT $2",
                who.subject,
                limit,
            )
            unread = await conn.fetchval(
                f"SELECT count(*) FROM {s}.inbox WHERE recipient_id = $1 AND read_at IS NULL", who.subject
            )
        return {"unread": unread, "messages": [dict(r) for r in rows]}

    @router.get("/recipients/{recipient_id}/inbox", tags=["inbox"], summary="A user's inbox (system)")
    async def inbox_of(recipient_id: str, who: Who) -> dict[str, Any]:
        require(who, Role.system, why="read another user's inbox")
        async with runtime.db.connection() as conn:
            rows = await conn.fetch(
                f"SELECT message_id, kind, title, ref, created_at, read_at FROM {s}.inbox "
                "WHERE recipient_id = $1 ORDER BY created_at DESC",
                recipient_id,
            )
        return {"messages": [dict(r) for r in rows]}

    @router.post("/inbox/{message_id}/read", tags=["inbox"])
    async def mark_read(message_id: UUID, who: Who) -> dict[str, Any]:
        async with runtime.db.connection() as conn:
            done = await conn.fetchval(
                f"UPDATE {s}.inbox SET read_at = coalesce(read_at, now()) "
                "WHERE message_id = $1 AND recipient_id = $2 RETURNING message_id",
                message_id,
                who.subject,
            )
        if done is None:
            raise NotFound(f"message {message_id} not found in your inbox")
        return {"message_id": str(message_id), "read": True}

    return router
