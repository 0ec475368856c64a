"""Command handlers: load aggregates, let them decide, save events and read tables atomically."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
from tuanlian.contacts.adapters.current import CurrentRepository
from tuanlian.contacts.adapters.pii import PhoneTaken, PiiVault
from tuanlian.contacts.adapters.readmodel import interaction_row_beside_append, project
from tuanlian.contacts.adapters.readmodel_people import project_people
from tuanlian.contacts.adapters.work_readmodel import project_work
from tuanlian.contacts.application import commands as c
from tuanlian.contacts.domain.model import Cadre, ContactLink, Interaction, Org, Youth
from tuanlian.shared.aggregate import Aggregate, Repository
from tuanlian.shared.auth import Forbidden, Principal, Role
from tuanlian.shared.contracts.contacts import InteractionLogged
from tuanlian.shared.db import Database
from tuanlian.shared.errors import NotFound, RuleViolation
from tuanlian.shared.events import Envelope, short_id, utcnow
from tuanlian.shared.eventstore import EventStore, Metadata
from tuanlian.shared.http import require


@dataclass
class ContactsService:
    db: Database
    store: EventStore
    vault: PiiVault

    def __post_init__(self) -> None:
        # Current place in the tree from the read tables (see adapters/current.py).
        self.orgs = CurrentRepository(
            self.store, Org, "orgs", "org_id", {"path": "org_path", "depth": "depth", "parent_id": "parent_id"}
        )
        self.cadres = CurrentRepository(
            self.store, Cadre, "cadres", "cadre_id", {"org_id": "org_id", "org_path": "org_path"}
        )
        self.youths = CurrentRepository(
            self.store, Youth, "youths", "youth_id", {"org_id": "org_id", "org_path": "org_path"}
        )
        self.links = CurrentRepository(self.store, ContactLink, "links", "link_id", {"org_path": "org_path"})
        self.interactions = Repository(self.store, Interaction)
        s = self.store.schema
        self._sql_cadre_links = (
            f"SELECT c.org_id, c.org_path, c.active, l.youth_id, l.accepted_at FROM {s}.cadres c "
            f"LEFT JOIN {s}.links l ON l.cadre_id = c.cadre_id AND l.state = 'active' "
            "AND l.youth_id = ANY($2::text[]) WHERE c.cadre_id = $1"
        )

    @property
    def schema(self) -> str:
        return self.store.schema

    async def _save(
        self,
        conn: asyncpg.Connection,
        repo: Repository,  # type: ignore[type-arg]
        agg: Aggregate,
        who: Principal,
        org_path: str | None,
        correlation_id: UUID | None,
        occurred_at: datetime | None = None,
        **extra: Any,
    ) -> list[Envelope]:
        meta = Metadata(
            actor=who.actor, org_path=org_path, correlation_id=correlation_id, occurred_at=occurred_at
        )
        envelopes = await repo.save(conn, agg, meta)
        for env in envelopes:
            event = self.store.contracts.decode(env)
            await project(conn, self.schema, env, event, **extra)
            await project_people(conn, self.schema, env, event)
            await project_work(conn, self.schema, env, event, dict(extra))
        return envelopes

    # -- organisations ----------------------------------------------------------------------

    async def create_org(
        self, who: Principal, cmd: c.CreateOrg, cid: UUID | None = None, at: datetime | None = None
    ) -> Org:
        async with self.db.transaction() as conn:
            parent = await self.orgs.get(conn, cmd.parent_id) if cmd.parent_id else None
            if parent is None:
                require(who, Role.system, why="create a top-level organisation")
            else:
                require(who, Role.org_admin, org_path=parent.path, why="create organisations")
            org_id = cmd.org_id or short_id()
            if await self.orgs.find(conn, org_id) is not None:
                raise RuleViolation(f"organisation id {org_id} is taken", field="org_id")
            org = Org.create(org_id, cmd.name, cmd.org_type, parent, cmd.is_leadership_organ)
            await self._save(conn, self.orgs, org, who, org.path, cid, at)
            return org

    # -- people -----------------------------------------------------------------------------

    async def register_cadre(
        self, who: Principal, cmd: c.RegisterCadre, cid: UUID | None = None, at: datetime | None = None
    ) -> Cadre:
        async with self.db.transaction() as conn:
            org = await self.orgs.get(conn, cmd.org_id)
            require(who, Role.org_admin, org_path=org.path, why="register cadres")
            taken = "this phone number is already registered"
            if cmd.phone and await self.vault.find_by_phone(conn, cmd.phone):
                raise RuleViolation(taken, field="phone")
            cadre = Cadre.register(short_id(), org, cmd.kind, cmd.in_leadership_organ)
            await self._store_person(conn, cadre.id, "cadre", cmd.name, cmd.phone, taken)
            await self._save(conn, self.cadres, cadre, who, org.path, cid, at)
            return cadre

    async def register_youth(
        self, who: Principal, cmd: c.RegisterYouth, cid: UUID | None = None, at: datetime | None = None
    ) -> Youth:
        async with self.db.transaction() as conn:
            org = await self.orgs.get(conn, cmd.org_id) if cmd.org_id else None
            if org is None:
                # A youth outside any org (社会青年): any admin may register them, and reaches them
                # through its cadres' links (PeopleService._may_reach_youth).
                require(who, Role.org_admin, why="register youths")
            else:
                require(who, Role.org_admin, org_path=org.path, why="register youths")
            taken = "a youth with this phone number already exists"
            if await self.vault.find_by_phone(conn, cmd.phone):
                raise RuleViolation(taken, field="phone")
            youth = Youth.register(
                short_id(),
                org,
                cmd.field,
                cmd.grade,
                cmd.political_status,
                cmd.family_situation,
                cmd.special_care,
                cmd.industry,
            )
            await self._store_person(conn, youth.id, "youth", cmd.name, cmd.phone, taken)
            if cmd.major or cmd.native_place:
                await self.vault.seal_profile(
                    conn, youth.id, {"major": cmd.major, "native_place": cmd.native_place}
                )
            await self._save(conn, self.youths, youth, who, org.path if org else None, cid, at)
            return youth

    async def _store_person(
        self, conn: asyncpg.Connection, person_id: str, kind: str, name: str, phone: str | None, taken: str
    ) -> None:
        """Seal a new person in the vault. The look-up before answers the usual duplicate early; a
        registration that lost the race for the number since gets the same 422, not a 500."""
        try:
            await self.vault.store(conn, person_id, kind, name, phone)
        except PhoneTaken:
            raise RuleViolation(taken, field="phone") from None

    # -- contact links ----------------------------------------------------------------------

    async def invite(
        self, who: Principal, cmd: c.InviteYouth, cid: UUID | None = None, at: datetime | None = None
    ) -> ContactLink:
        async with self.db.transaction() as conn:
            cadre = await self.cadres.get(conn, cmd.cadre_id)
            if who.role is Role.cadre and who.subject != cadre.id:
                raise Forbidden("a cadre invites youths only to their own list")
            require(who, Role.cadre, Role.org_admin, org_path=cadre.org_path, why="invite youths")
            await self.youths.get(conn, cmd.youth_id)
            link_id = ContactLink.id_for(cadre.id, cmd.youth_id)
            link = await self.links.find(conn, link_id) or ContactLink(link_id)
            link.invite(cadre, cmd.youth_id, initiated_by="cadre")
            await self._save(conn, self.links, link, who, cadre.org_path, cid, at)
            return link

    async def _youth_decides(
        self, who: Principal, link_id: str, action: str, cid: UUID | None, at: datetime | None
    ) -> ContactLink:
        async with self.db.transaction() as conn:
            link = await self.links.get(conn, link_id)
            # The side that did not ask answers: the youth a cadre's invitation, the cadre a
            # youth's own request (which is the youth's consent already).
            side, subject = (
                (Role.youth, link.youth_id) if link.answered_by == "youth" else (Role.cadre, link.cadre_id)
            )
            # No exception for the system role: consent is the youth's own (决不允许强迫青年).
            if not (who.role is side and who.subject == subject):
                raise Forbidden(
                    f"only the {side.value} concerned can answer this {link.initiated_by}'s request"
                )
            getattr(link, action)()
            await self._save(conn, self.links, link, who, link.org_path, cid, at)
            return link

    async def accept(
        self, who: Principal, link_id: str, cid: UUID | None = None, at: datetime | None = None
    ) -> ContactLink:
        return await self._youth_decides(who, link_id, "accept", cid, at)

    async def decline(self, who: Principal, link_id: str, cid: UUID | None = None) -> ContactLink:
        return await self._youth_decides(who, link_id, "decline", cid, None)

    async def end_link(self, who: Principal, link_id: str, cid: UUID | None = None) -> ContactLink:
        async with self.db.transaction() as conn:
            link = await self.links.get(conn, link_id)
            if who.role is Role.youth and who.subject == link.youth_id:
                ended_by = "youth"
            elif who.role is Role.cadre and who.subject == link.cadre_id:
                ended_by = "cadre"
            else:
                require(who, Role.org_admin, org_path=link.org_path, why="end this link")
                ended_by = "admin"
            link.end(ended_by)
            await self._save(conn, self.links, link, who, link.org_path, cid)
            return link

    # -- interactions -----------------------------------------------------------------------

    async def log_interaction(
        self, who: Principal, cmd: c.LogInteraction, cid: UUID | None = None, now: datetime | None = None
    ) -> Interaction:
        if not (who.role is Role.system or (who.role is Role.cadre and who.subject == cmd.cadre_id)):
            raise Forbidden("interactions are logged by the cadre who had them")
        # The hot path (most commands are this one) in two round trips and no explicit
        # transaction: (1) the cadre and their active links to the named youths, one query on the
        # read tables that the cadres' and links' own commands keep in step; (2) the new
        # interaction's stream and its read-model row, one atomic statement. Under READ COMMITTED
        # a transaction around them would see nothing more: each statement has its own snapshot.
        async with self.db.connection() as conn:
            rows = await conn.fetch(self._sql_cadre_links, cmd.cadre_id, cmd.youth_ids)
            if not rows:
                raise NotFound(f"cadre {cmd.cadre_id} not found")
            cadre = Cadre(cmd.cadre_id)
            cadre.org_id, cadre.org_path, cadre.active = rows[0]["org_id"], rows[0]["org_path"], rows[0]["active"]
            linked_since = {r["youth_id"]: r["accepted_at"] for r in rows if r["youth_id"] is not None}
            interaction = Interaction.log(
                short_id(),
                cadre,
                cmd.youth_ids,
                linked_since,
                cmd.channel,
                cmd.occurred_at,
                cmd.summary,
                now or utcnow(),
            )
            logged = interaction.pending[0]
            assert isinstance(logged, InteractionLogged)
            meta = Metadata(
                actor=who.actor, org_path=cadre.org_path, correlation_id=cid, occurred_at=cmd.occurred_at
            )
            also = interaction_row_beside_append(self.schema, logged, cmd.summary)
            await self.interactions.save(conn, interaction, meta, also=also)
            return interaction

    # -- queries ----------------------------------------------------------------------------

    async def cadre_links(self, who: Principal, cadre_id: str) -> list[dict[str, object]]:
        async with self.db.connection() as conn:
            cadre = await conn.fetchrow(f"SELECT * FROM {self.schema}.cadres WHERE cadre_id = $1", cadre_id)
            if cadre is None:
                raise NotFound(f"cadre {cadre_id} not found")
            if not (who.role is Role.cadre and who.subject == cadre_id):
                require(who, Role.org_admin, Role.leader, org_path=cadre["org_path"], why="see this list")
            rows = await conn.fetch(
                f"SELECT link_id, youth_id, state, invited_at, accepted_at FROM {self.schema}.links "
                "WHERE cadre_id = $1 ORDER BY invited_at",
                cadre_id,
            )
        return [dict(r) for r in rows]

    async def links_of(self, conn: asyncpg.Connection, link_ids: Sequence[str]) -> list[dict[str, object]]:
        rows = await conn.fetch(
            f"SELECT * FROM {self.schema}.links WHERE link_id = ANY($1::text[])", list(link_ids)
        )
        return [dict(r) for r in rows]
