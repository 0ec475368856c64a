"""Notify's HTTP API: the inbox (站内信) with its live stream, preferences, delivery status."""

import json
from contextlib import aclosing
from datetime import time
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Header, Query, Request
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sse_starlette.sse import EventSourceResponse
from tuanlian.notify.adapters import inbox
from tuanlian.notify.adapters.messages import prefix_like
from tuanlian.notify.settings import NotifySettings
from tuanlian.shared.auth import Forbidden, Principal, Role
from tuanlian.shared.errors import DomainError, NotFound
from tuanlian.shared.http import require
from tuanlian.shared.service import Runtime

EMAIL = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
ADMINS = (Role.org_admin, Role.leader)


class QuietHours(BaseModel):
    """免打扰时段 (Beijing time); may wrap midnight."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool = True
    start: time = time(22, 0)
    end: time = time(8, 0)

    @model_validator(mode="after")
    def _not_empty(self) -> "QuietHours":
        if self.start == self.end:
            raise ValueError("quiet hours must start and end at different times")
        return self


class Preferences(BaseModel):
    """推送偏好: channels beyond the inbox, quiet hours, one daily digest instead of single messages."""

    model_config = ConfigDict(extra="forbid")
    channels: list[Literal["webhook", "email"]] = []
    email: str | None = Field(default=None, pattern=EMAIL, max_length=254)
    quiet_hours: QuietHours = QuietHours()
    digest: bool = False
    lang: Literal["zh", "en"] = "zh"

    @model_validator(mode="after")
    def _email_needs_address(self) -> "Preferences":
        if "email" in self.channels and not self.email:
            raise ValueError("the email channel needs an email address")
        return self


class BadRequest(DomainError):
    status = 400


class LiveFeeds:
    """How many live streams (SSE) this replica holds open: a client that goes away must not leave one."""

    def __init__(self) -> None:
        self.open = 0
        self.served = 0

    def opened(self) -> None:
        self.open += 1
        self.served += 1

    def closed(self) -> None:
        self.open -= 1


def _seen_seq(last_event_id: str) -> int:
    """The arrival ``seq`` a reconnecting client saw last (the ``id`` this stream sends).

    Refused before ``int()``: 5,000 digits passed ``isdigit`` and broke int()'s digit limit (a 500),
    and a number past a bigint was taken, then failed in the first poll after the 200 had gone out,
    so the client reconnected with it forever. ``isdigit`` also passes "²" and other non-ASCII digits.
    """
    digits = last_event_id.lstrip("0") or "0"
    if not (digits.isascii() and digits.isdigit()) or len(digits) > len(str(inbox.SEQ_MAX)):
        raise BadRequest(_not_an_id(last_event_id))
    seq = int(digits)
    if seq > inbox.SEQ_MAX:
        raise BadRequest(_not_an_id(last_event_id))
    return seq


def _not_an_id(value: str) -> str:
    shown = value if len(value) <= 40 else f"{value[:40]}… ({len(value)} characters)"
    return (f"Last-Event-ID must be an event id this stream sent (a whole number from 0 to {inbox.SEQ_MAX}), "
            f"not {shown!r}")


def _jsonable(row: Any) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, UUID) else v.isoformat() if hasattr(v, "isoformat") else v)
            for k, v in dict(row).items()}


def build_router(runtime: Runtime, settings: NotifySettings, feeds: LiveFeeds | None = None) -> APIRouter:
    router = APIRouter()
    feeds = feeds or LiveFeeds()
    Who = Annotated[Principal, Depends(runtime.current_principal())]
    s = runtime.schema
    db = runtime.db

    @router.get("/inbox", tags=["inbox"], summary="My messages, newest first")
    async def my_inbox(who: Who, limit: Annotated[int, Query(ge=1, le=200)] = 50,
                       unread_only: bool = False) -> dict[str, Any]:
        async with db.connection() as conn:
            rows = await conn.fetch(
                f"SELECT {inbox.COLUMNS} FROM {s}.inbox WHERE recipient_id = $1 "
                "AND (NOT $3 OR read_at IS NULL) ORDER BY created_at DESC, seq DESC LIMIT $2",
                who.subject, limit, unread_only)
            unread = await conn.fetchval(
                f"SELECT count(*) FROM {s}.inbox WHERE recipient_id = $1 AND read_at IS NULL", who.subject)
        return {"unread": unread, "messages": [dict(r) for r in rows]}

    @router.get("/inbox/unread", tags=["inbox"], summary="How many of my messages are unread")
    async def unread_count(who: Who) -> dict[str, int]:
        async with db.connection() as conn:
            n = await conn.fetchval(
                f"SELECT count(*) FROM {s}.inbox WHERE recipient_id = $1 AND read_at IS NULL", who.subject)
        return {"unread": int(n)}

    @router.get("/inbox/stream", tags=["inbox"], summary="Live stream of my new messages (SSE)",
                description="Server-sent events, one `message` event per new inbox message (`id` = its "
                "arrival sequence). A reconnecting client sends `Last-Event-ID` and gets what it missed.")
    async def stream(
        who: Who, request: Request,
        last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    ) -> EventSourceResponse:
        if who.role is Role.system:
            raise Forbidden("a system account has no inbox to stream")
        if last_event_id is None or last_event_id == "":
            start = await inbox.latest_seq(db, s, who.subject)
        else:
            start = _seen_seq(last_event_id)

        async def events() -> Any:
            feeds.opened()
            try:
                async with aclosing(inbox.watch(db, s, who.subject, start, settings.sse_poll_seconds)) as feed:
                    async for m in feed:
                        if await request.is_disconnected():
                            return
                        yield {"event": "message", "id": str(m["seq"]),
                               "data": json.dumps(_jsonable(m), ensure_ascii=False)}
            finally:
                feeds.closed()

        return EventSourceResponse(events())

    @router.get("/recipients/{recipient_id}/inbox", tags=["inbox"], summary="A user's inbox (system)")
    async def inbox_of(recipient_id: str, who: Who) -> dict[str, Any]:
        require(who, Role.system, why="read another user's inbox")
        async with db.connection() as conn:
            rows = await conn.fetch(
                f"SELECT message_id, kind, title, ref, created_at, read_at FROM {s}.inbox "
                "WHERE recipient_id = $1 ORDER BY created_at DESC",
                recipient_id,
            )
        return {"messages": [dict(r) for r in rows]}

    @router.post("/inbox/{message_id}/read", tags=["inbox"])
    async def mark_read(message_id: UUID, who: Who) -> dict[str, Any]:
        async with db.connection() as conn:
            done = await conn.fetchval(
                f"UPDATE {s}.inbox SET read_at = coalesce(read_at, now()) "
                "WHERE message_id = $1 AND recipient_id = $2 RETURNING message_id",
                message_id,
                who.subject,
            )
        if done is None:
            raise NotFound(f"message {message_id} not found in your inbox")
        return {"message_id": str(message_id), "read": True}

    @router.post("/inbox/read-all", tags=["inbox"], summary="Mark all my messages read")
    async def mark_all_read(who: Who) -> dict[str, int]:
        async with db.connection() as conn:
            status = await conn.execute(
                f"UPDATE {s}.inbox SET read_at = now() WHERE recipient_id = $1 AND read_at IS NULL", who.subject)
        return {"marked": int(status.split()[-1])}

    @router.get("/preferences", tags=["preferences"], summary="My delivery preferences")
    async def get_preferences(who: Who) -> Preferences:
        async with db.connection() as conn:
            r = await conn.fetchrow(f"SELECT * FROM {s}.preferences WHERE recipient_id = $1", who.subject)
        if r is None:
            return Preferences(quiet_hours=QuietHours(start=settings.quiet_start, end=settings.quiet_end))
        return Preferences(
            channels=r["channels"], email=r["email"], digest=r["digest"], lang=r["lang"],
            quiet_hours=QuietHours(enabled=r["quiet_enabled"], start=r["quiet_start"] or settings.quiet_start,
                                   end=r["quiet_end"] or settings.quiet_end))

    @router.put("/preferences", tags=["preferences"], summary="Set my delivery preferences")
    async def put_preferences(body: Preferences, who: Who) -> Preferences:
        q = body.quiet_hours
        async with db.connection() as conn:
            await conn.execute(
                f"INSERT INTO {s}.preferences (recipient_id, channels, email, quiet_enabled, quiet_start, quiet_end, "
                "digest, lang, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now()) "
                "ON CONFLICT (recipient_id) DO UPDATE SET channels = $2, email = $3, quiet_enabled = $4, "
                "quiet_start = $5, quiet_end = $6, digest = $7, lang = $8, updated_at = now()",
                who.subject, sorted(set(body.channels)), body.email, q.enabled, q.start, q.end, body.digest,
                body.lang)
        return body

    @router.get("/deliveries", tags=["delivery"], summary="Delivery status of messages in my subtree")
    async def deliveries(
        who: Who,
        org_path: Annotated[str, Query(min_length=1, description="an org path in your subtree")],
        status: Annotated[Literal["pending", "sent", "dead", "digest", "digested"] | None, Query()] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> dict[str, Any]:
        require(who, *ADMINS, org_path=org_path, why="see delivery status")
        async with db.connection() as conn:
            rows = await conn.fetch(
                "SELECT d.message_id, d.channel, d.recipient_id, d.status, d.attempts, d.next_attempt_at, "
                "d.last_error, d.held_reason, d.address_masked, d.sent_at, i.kind, i.org_path "
                f"FROM {s}.deliveries d JOIN {s}.inbox i ON i.message_id = d.message_id "
                "WHERE (i.org_path = $1 OR i.org_path LIKE $2) AND ($3::text IS NULL OR d.status = $3) "
                "ORDER BY d.updated_at DESC LIMIT $4", org_path, prefix_like(org_path), status, limit)
        return {"deliveries": [dict(r) for r in rows]}

    @router.get("/messages/{message_id}/deliveries", tags=["delivery"], summary="Where one message went")
    async def message_deliveries(message_id: UUID, who: Who) -> dict[str, Any]:
        async with db.connection() as conn:
            msg = await conn.fetchrow(
                f"SELECT recipient_id, org_path FROM {s}.inbox WHERE message_id = $1", message_id)
            if msg is None:
                raise NotFound(f"message {message_id} not found")
            if msg["recipient_id"] != who.subject:
                if who.role is not Role.system and not (who.role in ADMINS and who.covers(msg["org_path"])):
                    raise Forbidden("this message is outside your organisation's subtree")
            rows = await conn.fetch(
                "SELECT channel, status, attempts, next_attempt_at, last_error, held_reason, address_masked, "
                f"sent_at FROM {s}.deliveries WHERE message_id = $1 ORDER BY channel", message_id)
        return {"message_id": str(message_id), "inbox": "delivered", "channels": [dict(r) for r in rows]}

    @router.get("/reminders", tags=["delivery"], summary="Reminders decided in my subtree, dropped ones with why")
    async def reminders(
        who: Who,
        org_path: Annotated[str, Query(min_length=1)],
        outcome: Annotated[Literal["sent", "dropped"] | None, Query()] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> dict[str, Any]:
        require(who, *ADMINS, org_path=org_path, why="see reminders")
        async with db.connection() as conn:
            rows = await conn.fetch(
                "SELECT m.rule, m.recipient_id, m.period, m.due_at, m.window_ends_at, m.outcome, m.reason, "
                f"m.message_id, m.decided_at FROM {s}.reminders m JOIN {s}.recipients r "
                "ON r.subject_id = m.recipient_id WHERE (r.org_path = $1 OR r.org_path LIKE $2) "
                "AND ($3::text IS NULL OR m.outcome = $3) ORDER BY m.decided_at DESC LIMIT $4",
                org_path, prefix_like(org_path), outcome, limit)
        return {"reminders": [dict(r) for r in rows]}

    @router.get("/dev/inbox", tags=["dev"], summary="Recent messages of everyone (dev only)")
    async def dev_inbox(limit: Annotated[int, Query(ge=1, le=500)] = 50) -> dict[str, Any]:
        if not settings.dev_inbox:
            raise NotFound("the dev inbox is off (TUANLIAN_NOTIFY_DEV_INBOX=1 turns it on)")
        async with db.connection() as conn:
            rows = await conn.fetch(
                f"SELECT recipient_id, {inbox.COLUMNS} FROM {s}.inbox ORDER BY seq DESC LIMIT $1", limit)
        return {"messages": [dict(r) for r in rows]}

    return router
