"""Queries on wishes' read model of contacts: links, orgs, rules in force, partners."""

from __future__ import annotations

from datetime import date

import asyncpg
from tuanlian.shared.contracts.contacts import ServiceLimits
from tuanlian.shared.errors import NotFound
from tuanlian.wishes.domain.rules import RuleSet, ancestors, limits_for


class Directory:
    def __init__(self, schema: str) -> None:
        self.s = schema

    async def pair(self, conn: asyncpg.Connection, cadre_id: str, youth_id: str) -> str | None:
        """The org path of an active link between the two, ``None`` when they are not linked."""
        row = await conn.fetchrow(
            f"SELECT org_path FROM {self.s}.pairs WHERE cadre_id = $1 AND youth_id = $2 AND linked",
            cadre_id,
            youth_id,
        )
        return row["org_path"] if row else None

    async def cadre_active(self, conn: asyncpg.Connection, cadre_id: str) -> bool:
        """False once contacts said the cadre left; a cadre not (yet) known here counts as active."""
        active = await conn.fetchval(f"SELECT active FROM {self.s}.cadres WHERE cadre_id = $1", cadre_id)
        return active is not False

    async def limits(self, conn: asyncpg.Connection, org_path: str, on: date) -> ServiceLimits:
        rows = await conn.fetch(
            f"SELECT org_path, effective_from, limits FROM {self.s}.org_rules WHERE org_path = ANY($1::text[])",
            ancestors(org_path),
        )
        return limits_for(
            org_path,
            on,
            [RuleSet(r["org_path"], r["effective_from"], ServiceLimits.model_validate(r["limits"])) for r in rows],
        )

    async def org(self, conn: asyncpg.Connection, org_id: str) -> asyncpg.Record:
        row = await conn.fetchrow(f"SELECT org_id, org_path, org_type FROM {self.s}.orgs WHERE org_id = $1", org_id)
        if row is None:
            raise NotFound(f"organisation {org_id} not found")
        return row

    async def cadre(self, conn: asyncpg.Connection, cadre_id: str) -> asyncpg.Record | None:
        """A cadre as contacts last said: its org now (a transfer moves it) and whether it serves;
        ``None`` if contacts has not said yet."""
        return await conn.fetchrow(
            f"SELECT cadre_id, org_id, org_path, active FROM {self.s}.cadres WHERE cadre_id = $1", cadre_id)

    async def partner_path(self, conn: asyncpg.Connection, partner_id: str) -> str | None:
        val = await conn.fetchval(f"SELECT org_path FROM {self.s}.partners WHERE partner_id = $1", partner_id)
        return str(val) if val is not None else None
