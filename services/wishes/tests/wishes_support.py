"""Test support: a stand-in for the contacts producer and a harness around a running wishes service."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from fastapi import FastAPI
from nats.js import JetStreamContext
from tuanlian.shared.auth import Principal, Role, TokenIssuer
from tuanlian.shared.contracts.contacts import (
    CadreKind,
    CadreRegistered,
    ContactLinkAccepted,
    OrgCreated,
    OrgType,
    YouthRegistered,
)
from tuanlian.shared.events import DomainEvent, Envelope, new_id
from tuanlian.shared.testing import wait_until
from tuanlian.wishes.app import service_of
from tuanlian.wishes.application.service import WishesService


@dataclass
class Contacts:
    """Publishes CONTACTS envelopes the way the contacts relay does (the contract is the boundary)."""

    js: JetStreamContext
    versions: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    async def publish(self, stream_id: str, event: DomainEvent, at: datetime | None = None) -> Envelope:
        self.versions[stream_id] += 1
        env = Envelope(
            event_id=new_id(), event_type=event.event_type, producer="contacts", stream_type=event.stream_type,
            stream_id=stream_id, stream_version=self.versions[stream_id], occurred_at=at or datetime.now(UTC),
            payload=event.model_dump(mode="json"),
        )
        await self.js.publish(env.subject, env.model_dump_json().encode(), headers={"Nats-Msg-Id": str(env.event_id)})
        return env

    async def org(self, org_id: str, path: str, org_type: OrgType = OrgType.branch) -> None:
        await self.publish(f"org-{org_id}", OrgCreated(
            org_id=org_id, parent_id=None, name=org_id, org_type=org_type, depth=path.count("/") - 1,
            is_leadership_organ=False, org_path=path))

    async def youth(self, youth_id: str, org_id: str, path: str) -> None:
        await self.publish(f"youth-{youth_id}", YouthRegistered(youth_id=youth_id, org_id=org_id, org_path=path))

    async def cadre(self, cadre_id: str, org_id: str, path: str) -> None:
        await self.publish(f"cadre-{cadre_id}", CadreRegistered(
            cadre_id=cadre_id, org_id=org_id, org_path=path, kind=CadreKind.full_time, in_leadership_organ=False))

    async def link(self, cadre_id: str, youth_id: str, path: str) -> None:
        link_id = f"{cadre_id}-{youth_id}"
        await self.publish(f"contact_link-{link_id}", ContactLinkAccepted(
            link_id=link_id, cadre_id=cadre_id, youth_id=youth_id, org_path=path))


@dataclass
class Harness:
    app: FastAPI
    http: httpx.AsyncClient
    issuer: TokenIssuer
    contacts: Contacts
    js: JetStreamContext

    @property
    def service(self) -> WishesService:
        return service_of(self.app.state.runtime)

    def auth(self, role: Role, subject: str, org_path: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.issuer.issue(Principal(subject, role, org_path))}"}

    async def call(self, method: str, url: str, who: dict[str, str], expect: int = 200, **kw: Any) -> Any:
        r = await self.http.request(method, url, headers=who, **kw)
        assert r.status_code == expect, f"{method} {url}: {r.status_code} {r.text}"
        return r.json() if r.content and r.headers.get("content-type", "").startswith("application/json") else r

    async def rows(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        async with self.app.state.runtime.db.connection() as conn:
            return [dict(r) for r in await conn.fetch(sql, *args)]

    async def until_linked(self, cadre_id: str, youth_id: str) -> None:
        await wait_until(lambda: self.rows("SELECT 1 FROM wishes.pairs WHERE cadre_id = $1 AND youth_id = $2 "
                                           "AND linked", cadre_id, youth_id), message="the link reaches wishes")



    async def published(self, event_type: str) -> list[dict[str, Any]]:
        from tuanlian.shared.testing import stream_messages

        envs = [json.loads(m.data) for m in await stream_messages(self.js, "WISHES")]
        return [e for e in envs if e["event_type"] == event_type]
