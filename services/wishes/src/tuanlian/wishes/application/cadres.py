"""When contacts says a cadre moved or left: their open wishes and posts follow, or go on without them.

Called by the cadre consumer inside its batch transaction, so the wishes' events are committed
with the inbox record of the contacts event that caused them: exactly once in effect.
"""

from __future__ import annotations

import asyncpg
from tuanlian.shared.auth import Principal, Role
from tuanlian.shared.contracts.wishes import ClaimantKind
from tuanlian.shared.events import Envelope
from tuanlian.wishes.adapters.repository import TimedRepository
from tuanlian.wishes.application.base import Base
from tuanlian.wishes.domain.voice import VoicePost
from tuanlian.wishes.domain.wish import TRANSITIONS, Wish

CONTACTS_SYNC = Principal("contacts-sync", Role.system)  # the actor of changes caused by contacts events


class CadreCommands(Base):
    def __post_init__(self) -> None:
        super().__post_init__()
        self.wishes = TimedRepository(self.store, Wish)
        self.posts = TimedRepository(self.store, VoicePost)

    async def _wish_ids(self, conn: asyncpg.Connection, sql: str, *args: object) -> list[str]:
        return [r[0] for r in await conn.fetch(sql, *args)]

    async def transferred(self, conn: object, cadre_id: str, org_id: str, org_path: str, env: Envelope) -> None:
        """Their open wishes stay theirs under the new path; open posts to them follow them."""
        assert isinstance(conn, asyncpg.Connection)
        now = self.clock()
        states = [s.value for s in TRANSITIONS["relocate"]]
        for wish_id in await self._wish_ids(
            conn, f"SELECT wish_id FROM {self.s}.wishes WHERE cadre_id = $1 AND state = ANY($2::text[]) "
            "AND org_path <> $3 ORDER BY wish_id", cadre_id, states, org_path,
        ):
            wish = await self.wishes.get(conn, wish_id)
            await self.located(conn, "wishes", "wish_id", wish)
            wish.relocate(org_path, now)
            await self._save(conn, self.wishes, wish, org_path, env)
        for post_id in await self._open_posts(conn, cadre_id):
            post = await self.posts.get(conn, post_id)
            await self.located(conn, "voice_posts", "post_id", post)
            post.redirect(cadre_id, org_id, org_path, "cadre_transferred", now)
            await self._save(conn, self.posts, post, org_path, env)

    async def deactivated(self, conn: object, cadre_id: str, org_id: str, org_path: str, env: Envelope) -> None:
        """Wishes waiting on them go to the pool at once; claims they hold lapse; posts to them go
        to their org, whose admins answer."""
        assert isinstance(conn, asyncpg.Connection)
        now = self.clock()
        states = [s.value for s in TRANSITIONS["cadre_left"]]
        for wish_id in await self._wish_ids(
            conn, f"SELECT wish_id FROM {self.s}.wishes WHERE cadre_id = $1 AND state = ANY($2::text[]) "
            "ORDER BY wish_id", cadre_id, states,
        ):
            wish = await self.wishes.get(conn, wish_id)
            await self.located(conn, "wishes", "wish_id", wish)
            wish.cadre_left(now)
            await self._save(conn, self.wishes, wish, wish.org_path, env)
        for wish_id in await self._wish_ids(
            conn, f"SELECT wish_id FROM {self.s}.wishes WHERE state = 'claimed' AND claimant_kind = $1 "
            "AND claimant_id = $2 ORDER BY wish_id", ClaimantKind.cadre.value, cadre_id,
        ):
            wish = await self.wishes.get(conn, wish_id)
            await self.located(conn, "wishes", "wish_id", wish)
            wish.lapse(now, given_up=True, reason="cadre_deactivated")
            await self._save(conn, self.wishes, wish, wish.org_path, env)
        for post_id in await self._open_posts(conn, cadre_id):
            post = await self.posts.get(conn, post_id)
            await self.located(conn, "voice_posts", "post_id", post)
            post.redirect(None, org_id, org_path, "cadre_deactivated", now)
            await self._save(conn, self.posts, post, org_path, env)

    async def _open_posts(self, conn: asyncpg.Connection, cadre_id: str) -> list[str]:
        return await self._wish_ids(
            conn, f"SELECT post_id FROM {self.s}.voice_posts WHERE cadre_id = $1 AND state <> 'answered' "
            "ORDER BY post_id", cadre_id,
        )

    async def _save(self, conn: asyncpg.Connection, repo: TimedRepository, agg: Wish | VoicePost,  # type: ignore[type-arg]
                    org_path: str, env: Envelope) -> None:
        await self.save(conn, repo, agg, CONTACTS_SYNC, org_path, self.clock(), env.correlation_id,
                        causation_id=env.event_id)
