"""Command handlers for 微心愿 and 心愿池: who may do what, then the aggregate decides."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg
from tuanlian.shared.auth import Forbidden, Principal, Role, path_covers
from tuanlian.shared.contracts.wishes import ClaimantKind, PartnerKind, PartnerRegistered
from tuanlian.shared.errors import RuleViolation
from tuanlian.shared.events import short_id
from tuanlian.shared.http import require
from tuanlian.wishes.adapters.repository import TimedRepository
from tuanlian.wishes.application import commands as c
from tuanlian.wishes.application.base import SCHEDULER, Base
from tuanlian.wishes.domain.photos import check_photo
from tuanlian.wishes.domain.timed import TimedAggregate
from tuanlian.wishes.domain.wish import Wish, WishState


class Partner(TimedAggregate):
    """A registered partner (企业、志愿团队、部门); only its registration is recorded."""

    stream_type = "partner"
    label = "partner"


def _is(who: Principal, role: Role, subject: str) -> bool:
    return who.role is role and who.subject == subject


def related(who: Principal, org_path: str) -> bool:
    """The wish's org is in the principal's subtree, or the principal's org is in the wish's."""
    return who.org_path is not None and (path_covers(who.org_path, org_path) or path_covers(org_path, who.org_path))


class WishCommands(Base):
    def __post_init__(self) -> None:
        super().__post_init__()
        self.wishes = TimedRepository(self.store, Wish)
        self.partners = TimedRepository(self.store, Partner)

    async def _load(self, conn: asyncpg.Connection, wish_id: str) -> Wish:
        wish = await self.wishes.get(conn, wish_id)
        await self.located(conn, "wishes", "wish_id", wish)
        return wish

    async def raise_wish(self, who: Principal, cmd: c.RaiseWish, cid: UUID | None = None) -> Wish:
        if who.role is not Role.youth:
            raise Forbidden("only a youth raises micro-wishes")
        now = self.clock()
        async with self.db.transaction() as conn:
            org_path = await self.directory.pair(conn, cmd.cadre_id, who.subject)
            if org_path is not None and not await self.directory.cadre_active(conn, cmd.cadre_id):
                org_path = None  # the cadre left the programme: their links are ending
            limits = await self.directory.limits(conn, org_path or "/", now.date())
            wish = Wish.raise_(
                short_id(), who.subject, cmd.cadre_id, org_path or "", cmd.category, cmd.estimated_value_yuan,
                limits, org_path is not None, now,
            )
            await conn.execute(
                f"INSERT INTO {self.s}.wishes (wish_id, youth_id, cadre_id, org_path, category, "
                "estimated_value_yuan, state, version, raised_at, touched_at, text, expires_at) "
                "VALUES ($1, $2, $3, $4, $5, $6, 'raised', 1, $7, $7, $8, $9)",
                wish.id, who.subject, cmd.cadre_id, wish.org_path, cmd.category.value, cmd.estimated_value_yuan,
                now, cmd.text, now + timedelta(days=limits.wish_expiry_days),
            )
            await self.save(conn, self.wishes, wish, who, wish.org_path, now, cid)
            return wish

    async def _act(
        self,
        who: Principal,
        wish_id: str,
        allowed: Callable[[Wish], bool],
        why: str,
        change: Callable[[Wish, datetime], Any],
        cid: UUID | None,
        after: Callable[[asyncpg.Connection, Wish], Any] | None = None,
    ) -> Wish:
        now = self.clock()
        async with self.db.transaction() as conn:
            wish = await self._load(conn, wish_id)
            if not (who.role is Role.system or allowed(wish)):
                raise Forbidden(f"you may not {why}")
            result = change(wish, now)
            if hasattr(result, "__await__"):
                await result
            await self.save(conn, self.wishes, wish, who, wish.org_path, now, cid)
            if after is not None:
                await after(conn, wish)
            return wish

    def _cadre(self, who: Principal) -> Callable[[Wish], bool]:
        return lambda w: _is(who, Role.cadre, w.cadre_id)

    def _youth(self, who: Principal) -> Callable[[Wish], bool]:
        return lambda w: _is(who, Role.youth, w.youth_id)

    async def accept(self, who: Principal, wish_id: str, cid: UUID | None = None) -> Wish:
        return await self._act(who, wish_id, self._cadre(who), "accept another cadre's wish",
                               lambda w, now: w.accept(now), cid)

    async def decline(self, who: Principal, wish_id: str, cmd: c.Reason, cid: UUID | None = None) -> Wish:
        return await self._act(who, wish_id, self._cadre(who), "decline another cadre's wish",
                               lambda w, now: w.decline(cmd.reason, now), cid)

    async def start(self, who: Principal, wish_id: str, cid: UUID | None = None) -> Wish:
        return await self._act(who, wish_id, self._cadre(who), "start another cadre's wish",
                               lambda w, now: w.start(now), cid)

    async def release(self, who: Principal, wish_id: str, cid: UUID | None = None) -> Wish:
        return await self._act(who, wish_id, self._cadre(who), "release another cadre's wish",
                               lambda w, now: w.release(now), cid)

    async def fulfil(self, who: Principal, wish_id: str, cmd: c.Fulfil, cid: UUID | None = None) -> Wish:
        def allowed(w: Wish) -> bool:
            if w.claimant is None:
                return _is(who, Role.cadre, w.cadre_id)
            return self._is_claimant(who, w.claimant)

        async def evidence(conn: asyncpg.Connection, w: Wish) -> None:
            await conn.execute(f"UPDATE {self.s}.wishes SET evidence = $2 WHERE wish_id = $1", w.id, cmd.evidence)

        return await self._act(who, wish_id, allowed, "fulfil this wish", lambda w, now: w.fulfil(now), cid,
                               evidence)

    async def confirm(self, who: Principal, wish_id: str, cid: UUID | None = None) -> Wish:
        return await self._act(who, wish_id, self._youth(who), "confirm another youth's wish",
                               lambda w, now: w.confirm(now), cid)

    async def dispute(self, who: Principal, wish_id: str, cmd: c.OptionalReason, cid: UUID | None = None) -> Wish:
        async def nobody_left_to_act(conn: asyncpg.Connection, w: Wish) -> None:
            # A cadre's wish disputed after the cadre left the programme: the pool takes it, as
            # it took their open wishes when they left.
            if w.claimant is None and not await self.directory.cadre_active(conn, w.cadre_id):
                now = self.clock()
                w.cadre_left(now)
                await self.save(conn, self.wishes, w, SCHEDULER, w.org_path, now, cid)

        return await self._act(who, wish_id, self._youth(who), "dispute another youth's wish",
                               lambda w, now: w.dispute(cmd.reason, now), cid, nobody_left_to_act)

    async def withdraw(self, who: Principal, wish_id: str, cid: UUID | None = None) -> Wish:
        return await self._act(who, wish_id, self._youth(who), "withdraw another youth's wish",
                               lambda w, now: w.withdraw(now), cid)

    # -- the pool -------------------------------------------------------------------------

    async def review(self, who: Principal, wish_id: str, cmd: c.Review, cid: UUID | None = None) -> Wish:
        def allowed(w: Wish) -> bool:
            require(who, Role.org_admin, org_path=w.org_path, why="review pool wishes")
            return True

        async def listing(conn: asyncpg.Connection, w: Wish) -> None:
            if cmd.approved:
                await conn.execute(
                    f"UPDATE {self.s}.wishes SET public_text = coalesce($2, text) WHERE wish_id = $1",
                    w.id, cmd.public_text,
                )

        return await self._act(who, wish_id, allowed, "review pool wishes",
                               lambda w, now: w.review(cmd.approved, cmd.reason, who.subject, now,
                                                       cmd.keep_photo_ids), cid, listing)

    # -- photos ---------------------------------------------------------------------------

    async def attach_photos(self, who: Principal, wish_id: str, files: list[tuple[str, bytes]],
                            cid: UUID | None = None) -> list[str]:
        """The youth's photos, all or none: every file is checked (by its bytes) before any is stored."""
        if not files:
            raise RuleViolation("attach at least one photo", field="files")
        checked = [(name, data, check_photo(name, data, self.settings.photo_max_bytes)) for name, data in files]
        now = self.clock()
        async with self.db.transaction() as conn:
            wish = await self._load(conn, wish_id)
            if not _is(who, Role.youth, wish.youth_id):
                raise Forbidden("only the youth who raised the wish adds photos")
            ids = []
            for _name, data, kind in checked:
                photo_id, digest = short_id(), hashlib.sha256(data).hexdigest()
                wish.attach_photo(photo_id, kind, len(data), digest, self.settings.photo_max_per_wish, now)
                await conn.execute(
                    f"INSERT INTO {self.s}.wish_photos (photo_id, wish_id, content_type, size_bytes, sha256, data, "
                    "uploaded_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    photo_id, wish.id, kind, len(data), digest, data, now,
                )
                ids.append(photo_id)
            await self.save(conn, self.wishes, wish, who, wish.org_path, now, cid)
            return ids

    async def claimant_of(self, conn: asyncpg.Connection, who: Principal, wish_path: str) -> tuple[ClaimantKind, str]:
        """Who claims or pledges for ``who``: a registered partner, a cadre, or an admin's org."""
        if who.role is Role.partner:
            registered = await self.directory.partner_path(conn, who.subject)
            if registered is None or not path_covers(registered, wish_path):
                raise Forbidden("the wish is outside the subtree you are registered for")
            return ClaimantKind.partner, who.subject
        if who.role in (Role.cadre, Role.org_admin, Role.leader) and related(who, wish_path):
            if who.role is Role.cadre:
                return ClaimantKind.cadre, who.subject
            assert who.org_path is not None
            return ClaimantKind.org, who.org_path.rsplit("/", 1)[-1]
        raise Forbidden("only registered partners, cadres and organisations of this subtree take pool wishes")

    def _is_claimant(self, who: Principal, claimant: tuple[ClaimantKind, str]) -> bool:
        kind, cid_ = claimant
        if kind is ClaimantKind.org:
            return who.role in (Role.org_admin, Role.leader) and (who.org_path or "").rsplit("/", 1)[-1] == cid_
        return who.subject == cid_ and who.role.value == kind.value

    async def claim(self, who: Principal, wish_id: str, cid: UUID | None = None) -> Wish:
        now = self.clock()
        async with self.db.transaction() as conn:
            wish = await self._load(conn, wish_id)
            self._partner_sees(who, wish)
            kind, claimant = await self.claimant_of(conn, who, wish.org_path)
            limits = await self.directory.limits(conn, wish.org_path, now.date())
            wish.claim(short_id(), kind, claimant, limits, now)
            await self.save(conn, self.wishes, wish, who, wish.org_path, now, cid)
            return wish

    async def pledge(self, who: Principal, wish_id: str, cmd: c.Pledge, cid: UUID | None = None) -> Wish:
        now = self.clock()
        async with self.db.transaction() as conn:
            wish = await self._load(conn, wish_id)
            self._partner_sees(who, wish)
            kind, contributor = await self.claimant_of(conn, who, wish.org_path)
            # the cap in force when the wish was raised bounds a wish with no estimate, as it
            # bounded the estimate of one with
            limits = await self.directory.limits(conn, wish.org_path, wish.raised_at.date())
            wish.pledge(kind, contributor, cmd.amount_yuan, limits, now)
            await self.save(conn, self.wishes, wish, who, wish.org_path, now, cid)
            return wish

    async def give_up(self, who: Principal, wish_id: str, cid: UUID | None = None) -> Wish:
        return await self._act(
            who, wish_id, lambda w: w.claimant is not None and self._is_claimant(who, w.claimant),
            "give up a claim that is not yours", lambda w, now: w.lapse(now, given_up=True), cid,
        )

    @staticmethod
    def _partner_sees(who: Principal, wish: Wish) -> None:
        if who.role is Role.partner and wish.state not in (WishState.pooled, WishState.claimed):
            raise Forbidden("partners see approved pool wishes only")

    # -- partners -------------------------------------------------------------------------

    async def register_partner(self, who: Principal, cmd: c.RegisterPartner, cid: UUID | None = None) -> str:
        now = self.clock()
        async with self.db.transaction() as conn:
            org = await self.directory.org(conn, cmd.org_id)
            require(who, Role.org_admin, org_path=org["org_path"], why="register partners")
            partner = Partner(short_id())
            partner._emit(now, PartnerRegistered(
                partner_id=partner.id, kind=PartnerKind(cmd.kind), org_path=org["org_path"],
                registered_by=who.subject,
            ))
            await conn.execute(
                f"INSERT INTO {self.s}.partners (partner_id, kind, name, org_path) VALUES ($1, $2, $3, $4)",
                partner.id, cmd.kind.value, cmd.name, org["org_path"],
            )
            await self.save(conn, self.partners, partner, who, org["org_path"], now, cid)
            return partner.id

    # -- time-driven (the scheduler) ------------------------------------------------------

    async def _scheduled(self, wish_id: str, now: datetime, change: Callable[[Wish, asyncpg.Connection], Any]) -> Wish:
        async with self.db.transaction() as conn:
            wish = await self._load(conn, wish_id)
            await change(wish, conn)
            await self.save(conn, self.wishes, wish, SCHEDULER, wish.org_path, now)
            return wish

    async def auto_release(self, wish_id: str, now: datetime) -> Wish:
        async def change(w: Wish, conn: asyncpg.Connection) -> None:
            w.release(now, await self.directory.limits(conn, w.org_path, now.date()))

        return await self._scheduled(wish_id, now, change)

    async def lapse(self, wish_id: str, now: datetime) -> Wish:
        async def change(w: Wish, conn: asyncpg.Connection) -> None:
            w.lapse(now)

        return await self._scheduled(wish_id, now, change)

    async def close_unconfirmed(self, wish_id: str, now: datetime) -> Wish:
        async def change(w: Wish, conn: asyncpg.Connection) -> None:
            # the org's limit in force when the wish was fulfilled
            assert w.fulfilled_at is not None
            limits = await self.directory.limits(conn, w.org_path, w.fulfilled_at.date())
            w.close_unconfirmed(now, limits.wish_unconfirmed_close_days)

        return await self._scheduled(wish_id, now, change)

    async def expire(self, wish_id: str, now: datetime) -> Wish:
        async def change(w: Wish, conn: asyncpg.Connection) -> None:
            # the expiry in force when the wish was raised: later rule changes do not shorten it
            w.expire(now, await self.directory.limits(conn, w.org_path, w.raised_at.date()))

        return await self._scheduled(wish_id, now, change)
