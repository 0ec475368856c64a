"""Organisations (团组织) and their rules (实施细则): lifecycle commands, rule sets, tree import."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from typing import Any
from uuid import UUID

import asyncpg
from pydantic import BaseModel, ConfigDict, Field, field_validator
from tuanlian.contacts.adapters.importer import ImportReport, run_import, truthy
from tuanlian.contacts.application.handlers import ContactsService
from tuanlian.contacts.domain.orgs import Org
from tuanlian.contacts.domain.presets import PRESETS
from tuanlian.contacts.domain.rules import RuleVersion, effective_rules
from tuanlian.shared.auth import Forbidden, Principal, Role, path_covers
from tuanlian.shared.contracts.contacts import OrgRules, OrgType
from tuanlian.shared.contracts.dates import CivilDate
from tuanlian.shared.errors import NotFound, RuleViolation
from tuanlian.shared.http import require
from tuanlian.shared.league_calendar import today as league_today


def may_read_org(who: Principal, org_path: str) -> None:
    """Reads of an org's records: admins and leaders their subtree; cadres and youths their own org
    and those above it (whose rules and campaigns apply to them), not a sibling's."""
    if who.role in (Role.cadre, Role.youth) and who.org_path and path_covers(org_path, who.org_path):
        return
    require(who, Role.org_admin, Role.leader, org_path=org_path, why="read this organisation's records")


class _Cmd(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class CompleteOrgDetails(_Cmd):
    secretary_cadre_id: str | None = None
    member_count: int | None = Field(default=None, ge=0, le=10_000_000)
    region_code: str | None = Field(default=None, pattern=r"^\d{6}$")


class RenameOrg(_Cmd):
    name: str = Field(min_length=1, max_length=100)


class MoveOrg(_Cmd):
    new_parent_id: str


class MergeOrg(_Cmd):
    into_org_id: str


class CloseOrg(_Cmd):
    reason: str | None = Field(default=None, max_length=500)


class SetOrgRules(_Cmd):
    effective_from: CivilDate
    preset: str | None = Field(default=None, description="000, 001, 002 or 004; the rules default to it")
    rules: OrgRules | None = None

    @field_validator("preset")
    @classmethod
    def _known(cls, v: str | None) -> str | None:
        if v is not None and v not in PRESETS:
            raise ValueError(f"unknown preset; use one of {', '.join(PRESETS)}")
        return v


class OrgRow(_Cmd):
    """One row of an org-tree import."""

    org_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,40}$")
    parent_id: str | None = None
    name: str = Field(min_length=1, max_length=100)
    org_type: OrgType
    is_leadership_organ: bool = False

    @field_validator("parent_id", mode="before")
    @classmethod
    def _blank(cls, v: Any) -> Any:
        return v or None

    @field_validator("is_leadership_organ", mode="before")
    @classmethod
    def _flag(cls, v: Any) -> Any:
        return truthy(v) if isinstance(v, str) else v


@dataclass
class OrgsService:
    core: ContactsService

    @property
    def s(self) -> str:
        return self.core.schema

    async def _parent(self, conn: asyncpg.Connection, org: Org) -> Org | None:
        return await self.core.orgs.get(conn, org.parent_id) if org.parent_id else None

    def _require_over(self, who: Principal, parent: Org | None, why: str) -> None:
        """Structural changes belong to whoever administers the org's parent."""
        if parent is None:
            require(who, Role.system, why=why)
        else:
            require(who, Role.org_admin, org_path=parent.path, why=why)

    async def _change(self, who: Principal, org_id: str, cid: UUID | None, act: Any) -> Org:
        async with self.core.db.transaction() as conn:
            org = await self.core.orgs.get(conn, org_id)
            await act(conn, org)
            await self.core._save(conn, self.core.orgs, org, who, org.path, cid)
            return org

    async def complete_details(
        self, who: Principal, org_id: str, cmd: CompleteOrgDetails, cid: UUID | None = None
    ) -> Org:
        async def act(conn: asyncpg.Connection, org: Org) -> None:
            require(who, Role.org_admin, org_path=org.path, why="complete this organisation")
            if cmd.secretary_cadre_id:
                cadre = await self.core.cadres.get(conn, cmd.secretary_cadre_id)
                if cadre.org_id != org.id:
                    raise RuleViolation("the secretary must be a cadre of this organisation", field="secretary_cadre_id")
            org.complete_details(cmd.secretary_cadre_id, cmd.member_count, cmd.region_code)

        return await self._change(who, org_id, cid, act)

    async def rename(self, who: Principal, org_id: str, cmd: RenameOrg, cid: UUID | None = None) -> Org:
        async def act(conn: asyncpg.Connection, org: Org) -> None:
            self._require_over(who, await self._parent(conn, org), "rename this organisation")
            org.rename(cmd.name)

        return await self._change(who, org_id, cid, act)

    async def move(self, who: Principal, org_id: str, cmd: MoveOrg, cid: UUID | None = None) -> Org:
        async def act(conn: asyncpg.Connection, org: Org) -> None:
            self._require_over(who, await self._parent(conn, org), "move this organisation")
            target = await self.core.orgs.get(conn, cmd.new_parent_id)
            require(who, Role.org_admin, org_path=target.path, why="move organisations there")
            org.move(target)

        return await self._change(who, org_id, cid, act)

    async def merge(self, who: Principal, org_id: str, cmd: MergeOrg, cid: UUID | None = None) -> Org:
        async def act(conn: asyncpg.Connection, org: Org) -> None:
            self._require_over(who, await self._parent(conn, org), "merge this organisation")
            target = await self.core.orgs.get(conn, cmd.into_org_id)
            require(who, Role.org_admin, org_path=target.path, why="merge organisations into that one")
            org.merge_into(target)

        return await self._change(who, org_id, cid, act)

    async def close(self, who: Principal, org_id: str, cmd: CloseOrg, cid: UUID | None = None) -> Org:
        async def act(conn: asyncpg.Connection, org: Org) -> None:
            self._require_over(who, await self._parent(conn, org), "close this organisation")
            children = await conn.fetchval(
                f"SELECT count(*) FROM {self.s}.orgs WHERE parent_id = $1 AND status = 'open'", org.id
            )
            cadres = await conn.fetchval(
                f"SELECT count(*) FROM {self.s}.cadres WHERE org_id = $1 AND active", org.id
            )
            org.close(cmd.reason, children, cadres)

        return await self._change(who, org_id, cid, act)

    # -- rules ------------------------------------------------------------------------------

    async def chains(self, conn: asyncpg.Connection, paths: list[str]) -> dict[str, list[list[RuleVersion]]]:
        """Each path's rule chain: the versions of every org on it, root first, from one read."""
        ids = sorted({p for path in paths for p in path.split("/") if p})
        rows = await conn.fetch(
            f"SELECT org_id, effective_from, preset, rules FROM {self.s}.org_rules WHERE org_id = ANY($1::text[])",
            ids,
        )
        history: dict[str, list[RuleVersion]] = {i: [] for i in ids}
        for r in rows:
            rules = r["rules"] if isinstance(r["rules"], dict) else json.loads(r["rules"])
            history[r["org_id"]].append(RuleVersion(r["effective_from"], OrgRules.model_validate(rules), r["preset"]))
        return {path: [history[i] for i in path.split("/") if i] for path in paths}

    async def _chain(self, conn: asyncpg.Connection, path: str) -> tuple[list[str], list[list[RuleVersion]]]:
        return [p for p in path.split("/") if p], (await self.chains(conn, [path]))[path]

    async def set_rules(
        self, who: Principal, org_id: str, cmd: SetOrgRules, cid: UUID | None = None, today: date | None = None
    ) -> Org:
        if cmd.rules is None and cmd.preset is None:
            raise RuleViolation("give a preset or the rules", field="rules")
        rules = cmd.rules if cmd.rules is not None else PRESETS[cmd.preset or ""][1]

        async def act(conn: asyncpg.Connection, org: Org) -> None:
            require(who, Role.org_admin, org_path=org.path, why="set this organisation's rules")
            parent_rules, parent_name = None, None
            if org.parent_id:
                _ids, chain = await self._chain(conn, org.path)
                parent_rules, _ = effective_rules(chain[:-1], cmd.effective_from)
                parent_name = await conn.fetchval(f"SELECT name FROM {self.s}.orgs WHERE org_id = $1", org.parent_id)
                parent_name = f"{parent_name} ({org.parent_id})"
            org.set_rules(rules, cmd.effective_from, cmd.preset, parent_rules, parent_name, today or league_today())

        return await self._change(who, org_id, cid, act)

    async def rules(self, who: Principal, org_id: str, on: date | None = None) -> dict[str, Any]:
        """The rules in force on a date, where they come from, and the org's own history."""
        async with self.core.db.connection() as conn:
            org = await self._row(conn, org_id)
            may_read_org(who, org["org_path"])
            ids, chain = await self._chain(conn, org["org_path"])
        day = on or league_today()
        rules, source = effective_rules(chain, day)
        return {
            "org_id": org_id,
            "on": day.isoformat(),
            "rules": rules.model_dump(mode="json"),
            "inherited_from": ids[source] if source is not None else None,
            "history": [
                {"effective_from": v.effective_from.isoformat(), "preset": v.preset, "rules": v.rules.model_dump(mode="json")}
                for v in sorted(chain[-1], key=lambda v: v.effective_from)
            ],
        }

    async def _row(self, conn: asyncpg.Connection, org_id: str) -> dict[str, Any]:
        row = await conn.fetchrow(f"SELECT * FROM {self.s}.orgs WHERE org_id = $1", org_id)
        if row is None:
            raise NotFound(f"organisation {org_id} not found")
        return dict(row)

    async def org(self, who: Principal, org_id: str) -> dict[str, Any]:
        async with self.core.db.connection() as conn:
            org = await self._row(conn, org_id)
        may_read_org(who, org["org_path"])
        return org

    async def history(self, who: Principal, org_id: str) -> list[dict[str, Any]]:
        async with self.core.db.connection() as conn:
            org = await self._row(conn, org_id)
            may_read_org(who, org["org_path"])
            envelopes = await self.core.store.read_stream(conn, f"org-{org_id}")
        return [
            {"version": e.stream_version, "event_type": e.event_type, "occurred_at": e.occurred_at.isoformat(),
             "actor": e.actor, "payload": e.payload}
            for e in envelopes
        ]

    async def children(self, who: Principal, org_id: str) -> list[dict[str, Any]]:
        async with self.core.db.connection() as conn:
            org = await self._row(conn, org_id)
            may_read_org(who, org["org_path"])
            rows = await conn.fetch(
                f"SELECT org_id, name, org_type, org_path, status FROM {self.s}.orgs WHERE parent_id = $1 ORDER BY org_path",
                org_id,
            )
        return [dict(r) for r in rows]

    # -- import -----------------------------------------------------------------------------

    async def import_tree(
        self, who: Principal, filename: str, data: bytes, all_or_nothing: bool = True, cid: UUID | None = None
    ) -> ImportReport:
        """组织架构导入: rows in file order, parents before children; re-importing changes nothing."""
        require(who, Role.org_admin, why="import organisations")
        known: dict[str, Org] = {}

        async def apply(conn: asyncpg.Connection, number: int, row: OrgRow, report: ImportReport) -> None:
            existing = await self.core.orgs.find(conn, row.org_id)
            if existing is not None:
                if (existing.name, existing.org_type, existing.parent_id, existing.is_leadership_organ) == (
                    row.name, row.org_type, row.parent_id, row.is_leadership_organ
                ):
                    report.unchanged.append({"row": number, "org_id": row.org_id})
                    known[row.org_id] = existing
                else:
                    report.error(number, "org_id", f"organisation {row.org_id} exists with other details")
                return
            parent = known.get(row.parent_id or "")
            if row.parent_id and parent is None:
                parent = await self.core.orgs.find(conn, row.parent_id)
                if parent is None:
                    report.error(number, "parent_id", f"parent {row.parent_id} is neither in the file above nor known")
                    return
            if parent is None and who.role is not Role.system:
                report.error(number, "parent_id", "only the system creates top-level organisations")
                return
            if parent is not None and not who.covers(parent.path):
                report.error(number, "parent_id", f"{parent.path} is outside your organisation's subtree")
                return
            try:
                org = Org.create(row.org_id, row.name, row.org_type, parent, row.is_leadership_organ)
            except (RuleViolation, Forbidden) as exc:
                report.error(number, "parent_id", str(exc))
                return
            known[row.org_id] = org
            report.created.append({"row": number, "org_id": org.id, "org_path": org.path})
            await self.core._save(conn, self.core.orgs, org, who, org.path, cid)

        return await run_import(self.core.db, filename, data, OrgRow, "org_id", all_or_nothing, apply)
