"""Envelopes of the producers' contracts, and applying them through notify's handlers."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from nats.js import JetStreamContext
from tuanlian.notify.adapters.projections import contacts_handlers, scoring_handlers, wishes_handlers
from tuanlian.shared.consumer import ProjectionTx
from tuanlian.shared.db import Database
from tuanlian.shared.events import DomainEvent, Envelope, new_id
from tuanlian.shared.testing import wait_until

SCHEMA = "notify"
_versions: dict[str, itertools.count[int]] = {}
_producer = {"contacts": contacts_handlers, "wishes": wishes_handlers, "scoring": scoring_handlers}


def producer_of(event: DomainEvent) -> str:
    module = type(event).__module__.rsplit(".", 1)[-1]
    return module


def envelope(event: DomainEvent, at: datetime | None = None, stream_id: str | None = None) -> Envelope:
    sid = stream_id or f"{event.stream_type}-{new_id()}"
    version = next(_versions.setdefault(sid, itertools.count(1)))
    return Envelope(
        event_id=new_id(), event_type=event.event_type, producer=producer_of(event),
        stream_type=event.stream_type, stream_id=sid, stream_version=version,
        occurred_at=at or datetime.now(UTC), payload=event.model_dump(mode="json"),
    )


async def apply(db: Database, *events: DomainEvent | tuple[DomainEvent, datetime],
                channels: tuple[str, ...] = ()) -> None:
    """Run events through the same handlers the consumers run, in one transaction."""
    async with db.transaction() as conn:
        tx = ProjectionTx(conn)
        for item in events:
            event, at = item if isinstance(item, tuple) else (item, None)
            env = envelope(event, at)
            factory: Any = _producer[env.producer]
            handlers = factory(SCHEMA, channels) if env.producer != "scoring" else factory(SCHEMA)
            await handlers[env.event_type](tx, env, event)
        await tx.flush()


async def publish(js: JetStreamContext, event: DomainEvent, at: datetime | None = None,
                  stream_id: str | None = None) -> Envelope:
    env = envelope(event, at, stream_id)
    await js.publish(env.subject, env.model_dump_json().encode(), headers={"Nats-Msg-Id": str(env.event_id)})
    return env


async def inbox(db: Database, recipient: str | None = None) -> list[dict[str, Any]]:
    async with db.connection() as conn:
        rows = await conn.fetch(
            f"SELECT * FROM {SCHEMA}.inbox WHERE $1::text IS NULL OR recipient_id = $1 ORDER BY seq", recipient)
    return [dict(r) for r in rows]


async def set_preferences(db: Database, recipient: str, channels: list[str], *, email: str | None = None,
                          digest: bool = False, quiet: bool = True, lang: str = "zh") -> None:
    async with db.connection() as conn:
        await conn.execute(
            f"INSERT INTO {SCHEMA}.preferences (recipient_id, channels, email, digest, quiet_enabled, lang) "
            "VALUES ($1, $2, $3, $4, $5, $6)", recipient, channels, email, digest, quiet, lang)


async def deliveries(db: Database) -> list[dict[str, Any]]:
    async with db.connection() as conn:
        rows = await conn.fetch(f"SELECT * FROM {SCHEMA}.deliveries ORDER BY updated_at, message_id")
    return [dict(r) for r in rows]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class WebhookReceiver:
    """A real HTTP server standing in for the SMS / WeChat gateway; it can be told to fail."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.failures_left = 0
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self._server: Any = None
        self._task: Any = None

    async def _hook(self, request: Any) -> Any:
        from starlette.responses import Response

        body = await request.body()
        if self.failures_left > 0:
            self.failures_left -= 1
            return Response("gateway busy", status_code=503)
        self.received.append((dict(request.headers), body))
        return Response(status_code=204)

    async def __aenter__(self) -> WebhookReceiver:
        import asyncio

        import uvicorn
        from starlette.applications import Starlette
        from starlette.routing import Route

        app = Starlette(routes=[Route("/hook", self._hook, methods=["POST"])])
        self._server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                     lifespan="off"))
        self._task = asyncio.create_task(self._server.serve())
        await wait_until(lambda: self._server.started, message="webhook receiver started")
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.should_exit = True
        await self._task


@contextlib.asynccontextmanager
async def served(app: Any) -> AsyncIterator[str]:
    """``app`` behind a real uvicorn server on a free port (its lifespan already running); yields the base URL."""
    import asyncio

    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve())
    await wait_until(lambda: server.started, message="uvicorn started")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


class SmtpInbox:
    """A real SMTP server (aiosmtpd) collecting what it is sent."""

    def __init__(self) -> None:
        self.messages: list[Any] = []
        self.port = free_port()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope)
        return "250 OK"

    def __enter__(self) -> SmtpInbox:
        from aiosmtpd.controller import Controller

        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()
