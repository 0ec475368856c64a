"""People (团干部, 青年): transfers, deactivation, profiles, bulk import and edit, erasure (PIPL)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any
from uuid import UUID

import asyncpg
from pydantic import BaseModel, ConfigDict, Field, field_validator
from tuanlian.contacts.adapters.importer import ImportReport, run_import, truthy
from tuanlian.contacts.adapters.pii import PhoneTaken
from tuanlian.contacts.application import commands as c
from tuanlian.contacts.application.handlers import ContactsService
from tuanlian.contacts.application.identity import IdentityService
from tuanlian.contacts.application.work_base import WorkBase
from tuanlian.contacts.domain.orgs import Org
from tuanlian.contacts.domain.people import Cadre, Youth
from tuanlian.shared.auth import Forbidden, Principal, Role
from tuanlian.shared.contracts.contacts import AccountRole, CadreKind
from tuanlian.shared.contracts.contacts import Field as YouthField
from tuanlian.shared.errors import NotFound, RuleViolation
from tuanlian.shared.events import short_id
from tuanlian.shared.http import require


class _Cmd(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class TransferCadre(_Cmd):
    to_org_id: str
    in_leadership_organ: bool | None = None


class DeactivateCadre(_Cmd):
    reason: str | None = Field(default=None, max_length=500)


class UpdateYouthProfile(_Cmd):
    """Changed attributes only; absent fields stay as they are. Name and phone are personal data:
    re-sealed in the vault, the event says only that they changed."""

    name: str | None = Field(default=None, min_length=1, max_length=50)
    phone: str | None = Field(default=None, pattern=c.PHONE_PATTERN)
    org_id: str | None = None
    field: YouthField | None = None
    industry: str | None = Field(default=None, max_length=30)
    grade: str | None = Field(default=None, max_length=20)
    political_status: str | None = Field(default=None, max_length=20)
    family_situation: str | None = Field(default=None, max_length=50)
    special_care: list[str] | None = None
    major: str | None = Field(default=None, max_length=50)
    native_place: str | None = Field(default=None, max_length=50)


class TagIndustry(_Cmd):
    """批量修改行业标签 (000)."""

    youth_ids: list[str] = Field(min_length=1, max_length=5000)
    industry: str = Field(min_length=1, max_length=30)


def _split(v: Any) -> Any:
    if isinstance(v, str):
        return [p.strip() for p in v.replace("；", ";").split(";") if p.strip()]
    return v


class YouthRow(c.RegisterYouth):
    org_id: str | None = None

    @field_validator("special_care", mode="before")
    @classmethod
    def _list(cls, v: Any) -> Any:
        return _split(v)

    @field_validator("field", "org_id", "grade", "political_status", "family_situation", "industry",
                     "major", "native_place", mode="before")
    @classmethod
    def _blank(cls, v: Any) -> Any:
        return v or None


class CadreRow(_Cmd):
    org_id: str
    name: str = Field(min_length=1, max_length=50)
    phone: str = Field(pattern=c.PHONE_PATTERN)
    kind: CadreKind
    in_leadership_organ: bool = False
    login: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]{3,40}$")

    @field_validator("in_leadership_organ", mode="before")
    @classmethod
    def _flag(cls, v: Any) -> Any:
        return truthy(v) if isinstance(v, str) else v

    @field_validator("login", mode="before")
    @classmethod
    def _blank(cls, v: Any) -> Any:
        return v or None


@dataclass
class PeopleService:
    core: ContactsService
    identity: IdentityService

    @property
    def s(self) -> str:
        return self.core.schema

    async def _end_links(self, conn: asyncpg.Connection, who: Principal, column: str, subject: str,
                         ended_by: str, cid: UUID | None) -> int:
        ids = await conn.fetch(
            f"SELECT link_id FROM {self.s}.links WHERE {column} = $1 AND state IN ('invited', 'active')", subject
        )
        for r in ids:
            link = await self.core.links.get(conn, r["link_id"])
            link.end(ended_by)
            await self.core._save(conn, self.core.links, link, who, link.org_path, cid)
        return len(ids)

    # -- cadres -----------------------------------------------------------------------------

    async def transfer_cadre(self, who: Principal, cadre_id: str, cmd: TransferCadre, cid: UUID | None = None) -> Cadre:
        async with self.core.db.transaction() as conn:
            cadre = await self.core.cadres.get(conn, cadre_id)
            require(who, Role.org_admin, org_path=cadre.org_path, why="transfer this cadre")
            target = await self.core.orgs.get(conn, cmd.to_org_id)
            require(who, Role.org_admin, org_path=target.path, why="transfer cadres there")
            cadre.transfer(target, cmd.in_leadership_organ)
            await self.core._save(conn, self.core.cadres, cadre, who, target.path, cid)
            return cadre

    async def deactivate_cadre(
        self, who: Principal, cadre_id: str, cmd: DeactivateCadre, cid: UUID | None = None
    ) -> tuple[Cadre, int]:
        async with self.core.db.transaction() as conn:
            cadre = await self.core.cadres.get(conn, cadre_id)
            require(who, Role.org_admin, org_path=cadre.org_path, why="deactivate this cadre")
            cadre.deactivate(cmd.reason)
            await self.core._save(conn, self.core.cadres, cadre, who, cadre.org_path, cid)
            ended = await self._end_links(conn, who, "cadre_id", cadre.id, "cadre_deactivated", cid)
            return cadre, ended

    async def cadre_activities(
        self, who: Principal, cadre_id: str, start: date | None, end: date | None
    ) -> list[dict[str, Any]]:
        """The activities a cadre organised (五个一 and others), scoped like the cadre's other reads."""
        if start is not None and end is not None and end < start:
            raise RuleViolation("the period ends before it starts", field="to")
        async with self.core.db.connection() as conn:
            cadre = await conn.fetchrow(f"SELECT org_path FROM {self.s}.cadres WHERE cadre_id = $1", cadre_id)
            if cadre is None:
                raise NotFound(f"cadre {cadre_id} not found")
            if not (who.role is Role.cadre and who.subject == cadre_id):
                require(who, Role.org_admin, Role.leader, org_path=cadre["org_path"], why="see this cadre's activities")
            rows = await conn.fetch(
                f"SELECT activity_id, kind, occurred_on, collective, headcount, youth_ids, campaign_id, "
                f"description, org_path, corrections FROM {self.s}.activities WHERE organiser_cadre_id = $1 "
                "AND ($2::date IS NULL OR occurred_on >= $2) AND ($3::date IS NULL OR occurred_on <= $3) "
                "ORDER BY occurred_on, activity_id",
                cadre_id,
                start,
                end,
            )
        return [dict(r) for r in rows]

    # -- youths -----------------------------------------------------------------------------

    async def _may_reach_youth(
        self, conn: asyncpg.Connection, who: Principal, youth_id: str, org_path: str | None, why: str
    ) -> None:
        """Who may read, change, tag or erase a youth: the youth, system, or an admin of their subtree.

        A youth without an org (社会青年) lies in no subtree: an admin reaches them only through an
        active link with a cadre of its subtree, else any admin anywhere could read their phone or
        erase them."""
        if who.role is Role.system or (who.role is Role.youth and who.subject == youth_id):
            return
        if org_path is not None:
            require(who, Role.org_admin, org_path=org_path, why=why)
            return
        require(who, Role.org_admin, why=why)
        if not any(map(who.covers, await self._linked_cadre_paths(conn, youth_id))):
            raise Forbidden(
                f"youth {youth_id} has no organisation and no active link with a cadre of your subtree: "
                f"you may not {why}"
            )

    async def _linked_cadre_paths(self, conn: asyncpg.Connection, youth_id: str) -> list[str]:
        """Org paths of the cadres a youth is actively linked with (consented links only)."""
        rows = await conn.fetch(
            f"SELECT c.org_path FROM {self.s}.links l JOIN {self.s}.cadres c USING (cadre_id) "
            "WHERE l.youth_id = $1 AND l.state = 'active'",
            youth_id,
        )
        return [r["org_path"] for r in rows]

    def _may_move_youth(self, who: Principal, youth: Youth, target: Org) -> None:
        """组织关系转接 is the organisations' act, not the member's: an admin holding both orgs."""
        if target.id == youth.org_id:
            return  # the current org sent back with a profile: not a move
        if who.role is Role.youth:
            raise Forbidden("an organisation moves a youth: ask your admin")
        if youth.org_path is not None:
            require(who, Role.org_admin, org_path=youth.org_path, why="move this youth")
        require(who, Role.org_admin, org_path=target.path, why="move youths there")

    async def update_youth(
        self, who: Principal, youth_id: str, cmd: UpdateYouthProfile, cid: UUID | None = None
    ) -> Youth:
        async with self.core.db.transaction() as conn:
            youth = await self.core.youths.get(conn, youth_id)
            await self._may_reach_youth(conn, who, youth.id, youth.org_path, "change this youth's profile")
            org = None
            if cmd.org_id is not None:
                org = await self.core.orgs.get(conn, cmd.org_id)
                self._may_move_youth(who, youth, org)
            changes = cmd.model_dump(exclude={"org_id", "major", "native_place", "name", "phone"}, exclude_none=True)
            youth.update_profile(org, **changes)
            await self._change_contact_details(conn, youth, cmd.name, cmd.phone)
            if cmd.major is not None or cmd.native_place is not None:
                profile = await self.core.vault.profile(conn, youth.id)
                profile.update({k: v for k, v in (("major", cmd.major), ("native_place", cmd.native_place)) if v is not None})
                await self.core.vault.seal_profile(conn, youth.id, profile)
            await self.core._save(conn, self.core.youths, youth, who, youth.org_path, cid)
            return youth

    async def _change_contact_details(
        self, conn: asyncpg.Connection, youth: Youth, name: str | None, phone: str | None
    ) -> None:
        if name is None and phone is None:
            return
        youth.ensure_present()
        current = await self.core.vault.reveal(conn, youth.id)
        name = name if name is not None and name != current["name"] else None
        phone = phone if phone is not None and phone != current["phone"] else None
        if phone is not None:
            owner = await self.core.vault.find_by_phone(conn, phone)
            if owner is not None and owner != youth.id:
                raise PhoneTaken()
        youth.change_contact_details([k for k, v in (("name", name), ("phone", phone)) if v is not None])
        await self.core.vault.change_contact_details(conn, youth.id, name, phone)

    async def tag_industry(self, who: Principal, cmd: TagIndustry, cid: UUID | None = None) -> int:
        """All or nothing: one youth the caller may not tag refuses the whole batch.

        000 附件3: the 行业 tag "需要团干部自行添加，也可在网站通过批量修改功能操作": a cadre tags the
        youths linked to them (an active link), an admin any youth of their subtree."""
        ids = list(dict.fromkeys(cmd.youth_ids))
        if who.role is not Role.cadre:
            require(who, Role.org_admin, why="edit industry tags")
        async with self.core.db.transaction() as conn:
            if who.role is Role.cadre:
                strangers = sorted(set(ids) - (await WorkBase(self.core).linked_since(conn, who.subject, ids)).keys())
                if strangers:
                    raise Forbidden(f"a cadre tags only the youths linked to them; not {', '.join(strangers)}")
            for youth_id in ids:
                youth = await self.core.youths.get(conn, youth_id)
                if who.role is not Role.cadre:
                    await self._may_reach_youth(conn, who, youth.id, youth.org_path, f"tag youth {youth_id}")
                youth.update_profile(industry=cmd.industry)
                await self.core._save(conn, self.core.youths, youth, who, youth.org_path, cid)
        return len(ids)

    async def erase_youth(self, who: Principal, youth_id: str, cid: UUID | None = None) -> dict[str, Any]:
        """PIPL erasure: links end, the key and phone hash are destroyed, the event says only the id."""
        async with self.core.db.transaction() as conn:
            youth = await self.core.youths.get(conn, youth_id)
            await self._may_reach_youth(conn, who, youth.id, youth.org_path, "erase this youth")
            youth.ensure_present()
            ended = await self._end_links(conn, who, "youth_id", youth.id, "erasure", cid)
            person = await self.core.vault.reveal(conn, youth.id)
            # A cadre's free-text summary may have named the youth: keep the record, drop the words.
            for needle in (person["name"], person["phone"]):
                if needle:
                    await conn.execute(
                        f"UPDATE {self.s}.interactions SET summary = '[erased on request]' "
                        "WHERE $1 = ANY(youth_ids) AND strpos(summary, $2) > 0",
                        youth.id,
                        needle,
                    )
            youth.erase()
            await self.core._save(conn, self.core.youths, youth, who, None, cid)
            await self.core.vault.erase(conn, youth.id)
            return {"youth_id": youth.id, "erased": True, "links_ended": ended}

    async def youth(self, who: Principal, youth_id: str) -> dict[str, Any]:
        async with self.core.db.connection() as conn:
            row = await conn.fetchrow(f"SELECT * FROM {self.s}.youths WHERE youth_id = $1", youth_id)
            if row is None:
                raise NotFound(f"youth {youth_id} not found")
            await self._may_reach_youth(conn, who, youth_id, row["org_path"], "see this youth")
            out = dict(row)
            out.update(await self.core.vault.reveal(conn, youth_id))
            if row["erased_at"] is None:
                out.update(await self.core.vault.profile(conn, youth_id))
        return out

    async def find_youth_by_phone(self, who: Principal, phone: str) -> dict[str, Any]:
        """Search by keyed hash: the phone itself is never compared in clear or stored."""
        require(who, Role.org_admin, why="search youths")
        async with self.core.db.connection() as conn:
            subject = await self.core.vault.find_by_phone(conn, phone)
            row = None
            if subject:
                row = await conn.fetchrow(
                    f"SELECT youth_id, org_path FROM {self.s}.youths WHERE youth_id = $1", subject
                )
        if row is None or not who.covers(row["org_path"]):
            raise NotFound("no youth with this phone number in your subtree")
        return {"youth_id": row["youth_id"], "org_path": row["org_path"]}

    # -- imports ----------------------------------------------------------------------------

    async def import_youths(
        self, who: Principal, filename: str, data: bytes, all_or_nothing: bool = True, cid: UUID | None = None
    ) -> ImportReport:
        """青年批量导入. Duplicates are found by phone: in the file (an error) or already known (unchanged)."""
        require(who, Role.org_admin, why="import youths")

        async def apply(conn: asyncpg.Connection, number: int, row: YouthRow, report: ImportReport) -> None:
            existing = await self.core.vault.find_by_phone(conn, row.phone)
            if existing:
                report.unchanged.append({"row": number, "youth_id": existing, "reason": "phone already registered"})
                return
            org = await self.core.orgs.find(conn, row.org_id) if row.org_id else None
            if row.org_id and org is None:
                report.error(number, "org_id", f"organisation {row.org_id} not found")
                return
            if not who.covers(org.path if org else None):
                report.error(number, "org_id", "outside your organisation's subtree")
                return
            try:
                youth = Youth.register(
                    short_id(), org, row.field, row.grade, row.political_status, row.family_situation,
                    row.special_care, row.industry,
                )
            except (RuleViolation, Forbidden) as exc:
                report.error(number, str(getattr(exc, "details", {}).get("field", "row")), str(exc))
                return
            await self.core.vault.store(conn, youth.id, "youth", row.name, row.phone)
            if row.major or row.native_place:
                await self.core.vault.seal_profile(conn, youth.id, {"major": row.major, "native_place": row.native_place})
            await self.core._save(conn, self.core.youths, youth, who, org.path if org else None, cid)
            report.created.append({"row": number, "youth_id": youth.id})

        return await run_import(self.core.db, filename, data, YouthRow, "phone", all_or_nothing, apply)

    async def import_cadres(
        self, who: Principal, filename: str, data: bytes, all_or_nothing: bool = True, cid: UUID | None = None
    ) -> ImportReport:
        """团干部批量导入 with their accounts: each created row carries its login and initial password,
        shown this once. A known phone is unchanged (and gets no new password)."""
        require(who, Role.org_admin, why="import cadres")

        async def apply(conn: asyncpg.Connection, number: int, row: CadreRow, report: ImportReport) -> None:
            existing = await self.core.vault.find_by_phone(conn, row.phone)
            if existing:
                report.unchanged.append({"row": number, "cadre_id": existing, "reason": "phone already registered"})
                return
            org = await self.core.orgs.find(conn, row.org_id)
            if org is None:
                report.error(number, "org_id", f"organisation {row.org_id} not found")
                return
            if not who.covers(org.path):
                report.error(number, "org_id", "outside your organisation's subtree")
                return
            if row.login and await self.identity.login_taken(conn, row.login):
                report.error(number, "login", f"login {row.login} is taken")
                return
            try:
                cadre = Cadre.register(short_id(), org, row.kind, row.in_leadership_organ)
            except RuleViolation as exc:
                report.error(number, "org_id", str(exc))
                return
            await self.core.vault.store(conn, cadre.id, "cadre", row.name, row.phone)
            await self.core._save(conn, self.core.cadres, cadre, who, org.path, cid)
            login, password = await self.identity.issue(
                conn, who, cadre.id, AccountRole.cadre, org.id, org.path, row.login, cid
            )
            report.created.append(
                {"row": number, "cadre_id": cadre.id, "name": row.name, "org_id": org.id,
                 "login": login, "initial_password": password}
            )

        return await run_import(self.core.db, filename, data, CadreRow, "phone", all_or_nothing, apply)
