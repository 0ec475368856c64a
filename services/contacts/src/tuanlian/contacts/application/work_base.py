"""What the work-record handlers share: saving through the service's one save path, and who may
act for a cadre."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
from tuanlian.contacts.application.handlers import ContactsService
from tuanlian.contacts.work_settings import WorkSettings
from tuanlian.shared.aggregate import Aggregate, Repository
from tuanlian.shared.auth import Forbidden, Principal, Role
from tuanlian.shared.events import Envelope
from tuanlian.shared.http import require


@dataclass
class WorkBase:
    base: ContactsService
    settings: WorkSettings = field(default_factory=WorkSettings)

    def __post_init__(self) -> None:
        pass

    @property
    def db(self) -> Any:
        return self.base.db

    @property
    def schema(self) -> str:
        return self.base.schema

    async def save(
        self,
        conn: asyncpg.Connection,
        agg: Aggregate,
        who: Principal,
        org_path: str | None,
        cid: UUID | None,
        occurred_at: datetime | None = None,
        **extra: Any,
    ) -> list[Envelope]:
        # The service's one save path: events, then every read-model projection, in ``conn``.
        repo: Repository[Any] = Repository(self.base.store, type(agg))
        return await self.base._save(conn, repo, agg, who, org_path, cid, occurred_at, **extra)

    @staticmethod
    def is_cadre(who: Principal, cadre_id: str) -> bool:
        return who.role is Role.cadre and who.subject == cadre_id

    def cadre_or_admin(self, who: Principal, cadre_id: str, org_path: str, why: str) -> None:
        """The cadre themself, or an org admin whose subtree holds the cadre."""
        if not self.is_cadre(who, cadre_id):
            if who.role is Role.cadre:
                raise Forbidden(f"a cadre may {why} only for themself")
            require(who, Role.org_admin, org_path=org_path, why=why)

    def cadre_or_overseer(self, who: Principal, cadre_id: str, org_path: str, why: str) -> None:
        """Reads: the cadre, or an admin or leader whose subtree holds the cadre."""
        if not self.is_cadre(who, cadre_id):
            if who.role is Role.cadre:
                raise Forbidden(f"a cadre may {why} only for themself")
            require(who, Role.org_admin, Role.leader, org_path=org_path, why=why)

    async def linked_since(
        self, conn: asyncpg.Connection, cadre_id: str, youth_ids: list[str]
    ) -> dict[str, datetime]:
        rows = await conn.fetch(
            f"SELECT youth_id, accepted_at FROM {self.schema}.links "
            "WHERE cadre_id = $1 AND state = 'active' AND youth_id = ANY($2::text[])",
            cadre_id,
            youth_ids,
        )
        return {r["youth_id"]: r["accepted_at"] for r in rows}
