"""Helpers for contacts-work tests. Contacts over HTTP: the real FastAPI app on a real Postgres and a real NATS JetStream.

The app's runtime is started as its lifespan would (migrations, stream, outbox relay), and
requests go through httpx's ASGI transport; tokens are minted with the service's own issuer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from tuanlian.shared.auth import Principal, Role
from tuanlian.shared.service import Runtime


@dataclass
class Api:
    http: httpx.AsyncClient
    runtime: Runtime
    _phones: int = 0

    def auth(self, role: Role, subject: str, org_path: str | None = None) -> dict[str, str]:
        assert self.runtime.issuer is not None
        return {"Authorization": f"Bearer {self.runtime.issuer.issue(Principal(subject, role, org_path))}"}

    @property
    def system(self) -> dict[str, str]:
        return self.auth(Role.system, "test-operator")

    async def ok(self, method: str, url: str, headers: dict[str, str], status: int = 200, **kw: Any) -> Any:
        r = await self.http.request(method, url, headers=headers, **kw)
        assert r.status_code == status, f"{method} {url}: {r.status_code} {r.text}"
        return r.json() if r.content and r.headers.get("content-type", "").startswith("application/json") else r

    async def org(self, name: str, org_type: str, parent: dict[str, Any] | None = None, lo: bool = False) -> Any:
        body = {"name": name, "org_type": org_type, "is_leadership_organ": lo}
        if parent:
            body["parent_id"] = parent["org_id"]
        return await self.ok("POST", "/orgs", self.system, 201, json=body)

    async def cadre(self, org: dict[str, Any], name: str = "张三", kind: str = "full_time") -> str:
        admin = self.auth(Role.org_admin, "admin", org["org_path"])
        r = await self.ok("POST", "/cadres", admin, 201, json={"org_id": org["org_id"], "name": name, "kind": kind})
        return str(r["cadre_id"])

    async def youth(self, org: dict[str, Any] | None = None, **attrs: Any) -> str:
        self._phones += 1
        body = {"name": "青年", "phone": f"1390000{self._phones:04d}", **attrs}
        if org:
            body["org_id"] = org["org_id"]
        r = await self.ok("POST", "/youths", self.system, 201, json=body)
        return str(r["youth_id"])

    async def link(self, cadre_id: str, youth_id: str, org_path: str) -> str:
        cadre = self.auth(Role.cadre, cadre_id, org_path)
        r = await self.ok("POST", "/links/invitations", cadre, 201, json={"cadre_id": cadre_id, "youth_id": youth_id})
        await self.ok("POST", f"/links/{r['link_id']}/accept", self.auth(Role.youth, youth_id))
        return str(r["link_id"])

    async def interaction(self, cadre_id: str, org_path: str, youth_ids: list[str], **kw: Any) -> str:
        body = {
            "cadre_id": cadre_id,
            "youth_ids": youth_ids,
            "channel": "wechat",
            "occurred_at": (datetime.now(UTC) + timedelta(seconds=1)).isoformat(),
            "summary": "聊了聊最近的学习和实习情况",
            **kw,
        }
        r = await self.ok("POST", "/interactions", self.auth(Role.cadre, cadre_id, org_path), 201, json=body)
        return str(r["interaction_id"])
