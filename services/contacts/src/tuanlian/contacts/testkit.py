"""Test support: the real contacts app (real Postgres, real NATS) behind an httpx client."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from nats.js import JetStreamContext
from tuanlian.shared.auth import Principal, Role
from tuanlian.shared.service import Runtime
from tuanlian.shared.settings import Settings
from tuanlian.shared.testing import stream_messages, wait_until


class ContactsApi:
    def __init__(self, client: httpx.AsyncClient, runtime: Runtime, app: FastAPI | None = None) -> None:
        self.http = client
        self.runtime = runtime
        self.app = app  # for dependency overrides (e.g. the identity clock)

    def token(self, role: Role, subject: str = "tester", org_path: str | None = None) -> dict[str, str]:
        assert self.runtime.issuer is not None
        return {"Authorization": f"Bearer {self.runtime.issuer.issue(Principal(subject, role, org_path))}"}

    @property
    def system(self) -> dict[str, str]:
        return self.token(Role.system, "operator")

    def token_youth(self, youth_id: str) -> dict[str, str]:
        return self.token(Role.youth, youth_id)

    def admin(self, org_path: str) -> dict[str, str]:
        return self.token(Role.org_admin, "admin", org_path)

    async def org(self, name: str, org_type: str, parent: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
        headers = self.admin(parent["org_path"]) if parent else self.system
        body = {"name": name, "org_type": org_type, "parent_id": parent["org_id"] if parent else None, **extra}
        r = await self.http.post("/orgs", json=body, headers=headers)
        assert r.status_code == 201, r.text
        return dict(r.json())

    async def published(self, js: JetStreamContext, until: Any = bool) -> list[dict[str, Any]]:
        """Every CONTACTS envelope on the bus once ``until(envelopes)`` holds (the relay catches up)."""

        async def probe() -> list[dict[str, Any]]:
            return [json.loads(m.data) for m in await stream_messages(js, "CONTACTS")]

        return await wait_until(probe, until=until, message="contacts events on the bus")


@asynccontextmanager
async def running_contacts(database_url: str, nats_url: str, home: Path) -> AsyncIterator[ContactsApi]:
    from tuanlian.contacts.app import app

    settings = Settings(home=home, database_url=database_url, nats_url=nats_url, stream_storage="memory")
    application = app(settings)
    runtime: Runtime = application.state.runtime
    await runtime.start()
    try:
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://contacts", timeout=30) as client:
            yield ContactsApi(client, runtime, application)
    finally:
        await runtime.stop()
