"""Helpers for the scoring tests: the real service (migrations, consumers, relay) on real Postgres and NATS, fed by
envelopes of the contacts and wishes contracts published on their streams."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from nats.js import JetStreamContext
from tuanlian.scoring.adapters.folding import pending
from tuanlian.shared.auth import Principal, Role, load_or_create_signing_key
from tuanlian.shared.events import DomainEvent, Envelope, new_id
from tuanlian.shared.service import Runtime
from tuanlian.shared.testing import wait_until


class Producer:
    """Publishes contract events as their producer would: one stream per aggregate, in order."""

    def __init__(self, js: JetStreamContext, producer: str) -> None:
        self.js = js
        self.producer = producer
        self.versions: dict[str, int] = defaultdict(int)

    async def emit(self, stream_id: str, event: DomainEvent, at: datetime | None = None,
                   org_path: str | None = None) -> Envelope:
        self.versions[stream_id] += 1
        at = at or datetime.now(UTC)
        env = Envelope(event_id=new_id(), event_type=event.event_type, schema_version=event.schema_version,
                       producer=self.producer, stream_type=event.stream_type, stream_id=stream_id,
                       stream_version=self.versions[stream_id], occurred_at=at, recorded_at=at,
                       org_path=org_path, payload=event.model_dump(mode="json"))
        await self.js.publish(env.subject, env.model_dump_json().encode(), headers={"Nats-Msg-Id": str(env.event_id)})
        return env


class Scoring:
    def __init__(self, runtime: Runtime, http: httpx.AsyncClient, home: Path) -> None:
        self.runtime = runtime
        self.http = http
        self.issuer = load_or_create_signing_key(home / "keys")

    def auth(self, role: Role, subject: str = "u", org_path: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.issuer.issue(Principal(subject, role, org_path))}"}

    async def get(self, url: str, role: Role = Role.system, scope: str | None = None, **params: Any) -> Any:
        r = await self.http.get(url, params=params, headers=self.auth(role, "u", scope))
        assert r.status_code == 200, r.text
        return r.json()

    async def applied(self, n: int) -> None:
        """Wait until the consumers have applied ``n`` events in all, and their credits have been
        folded into the leaderboards."""
        async def count() -> int:
            async with self.runtime.db.connection() as conn:
                return int(await conn.fetchval("SELECT count(*) FROM scoring.consumer_inbox"))

        async def unfolded() -> int:
            async with self.runtime.db.connection() as conn:
                schema = await conn.fetchval("SELECT schema_name FROM scoring.projection_versions "
                                             "WHERE status = 'current'")
                return await pending(conn, schema)
        await wait_until(count, until=lambda c: c >= n, timeout=60, message=f"{n} events applied")
        await wait_until(unfolded, until=lambda c: c == 0, timeout=60, message="credits folded")


