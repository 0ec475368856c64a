"""Time-driven transitions: auto-release, claim lapses, expiry, Youth Voice escalation, ballot close.

Each tick finds due items with a query and issues the same commands through the aggregates, which
check the deadline again against their own history. Replicas take turns through an advisory lock,
and a racing command (or a second run) loses on the expected version, so nothing is emitted twice.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from tuanlian.shared.errors import DomainError
from tuanlian.shared.eventstore import ConcurrencyConflict
from tuanlian.wishes.application.ballots import BallotCommands
from tuanlian.wishes.application.base import SCHEDULER
from tuanlian.wishes.application.voice import VoiceCommands
from tuanlian.wishes.application.wishes import WishCommands

log = structlog.get_logger("tuanlian.wishes.scheduler")
LOCK_KEY = "wishes.scheduler"
BATCH = 500


@dataclass
class Scheduler:
    wishes: WishCommands
    voice: VoiceCommands
    ballots: BallotCommands

    @property
    def s(self) -> str:
        return self.wishes.s

    async def tick(self, now: datetime | None = None) -> Counter[str]:
        """One pass over everything due at ``now``; returns what it did (empty if another replica holds
        the turn)."""
        now = now or self.wishes.clock()
        done: Counter[str] = Counter()
        async with self.wishes.db.connection() as lock_conn:
            if not await lock_conn.fetchval("SELECT pg_try_advisory_lock(hashtextextended($1, 0))", LOCK_KEY):
                return done
            try:
                await self._run(now, done)
            finally:
                await lock_conn.execute("SELECT pg_advisory_unlock(hashtextextended($1, 0))", LOCK_KEY)
        if done:
            log.info("scheduler tick", **done)
        return done

    async def _due(self, sql: str, *args: object) -> list[str]:
        async with self.wishes.db.connection() as conn:
            return [r[0] for r in await conn.fetch(sql + f" LIMIT {BATCH}", *args)]

    async def _run(self, now: datetime, done: Counter[str]) -> None:
        s, w = self.s, self.wishes
        for wish_id in await self._due(
            f"SELECT wish_id FROM {s}.wishes WHERE state IN ('raised', 'accepted') AND touched_at <= $1",
            now - timedelta(days=1),
        ):
            await self._try(done, "released", w.auto_release(wish_id, now))
        for wish_id in await self._due(
            f"SELECT wish_id FROM {s}.wishes WHERE state = 'claimed' AND claim_deadline <= $1", now
        ):
            await self._try(done, "claims_lapsed", w.lapse(wish_id, now))
        for wish_id in await self._due(
            # a coarse filter; each wish's own org limit decides (a DomainError when not yet due)
            f"SELECT wish_id FROM {s}.wishes WHERE state = 'fulfilled' AND fulfilled_at <= $1",
            now - timedelta(days=1),
        ):
            await self._try(done, "closed_unconfirmed", w.close_unconfirmed(wish_id, now))
        for wish_id in await self._due(
            f"SELECT wish_id FROM {s}.wishes WHERE state IN ('raised', 'accepted', 'awaiting_review', 'pooled') "
            "AND expires_at <= $1",
            now,
        ):
            await self._try(done, "expired", w.expire(wish_id, now))
        for post_id in await self._due(
            f"SELECT post_id FROM {s}.voice_posts WHERE state = 'open' AND due_at < $1", now
        ):
            await self._try(done, "escalated", self.voice.escalate(post_id, now))
        for ballot_id in await self._due(
            f"SELECT ballot_id FROM {s}.ballots WHERE state = 'open' AND closes_at <= $1", now
        ):
            await self._try(done, "ballots_closed", self.ballots.close(SCHEDULER, ballot_id, now))

    @staticmethod
    async def _try(done: Counter[str], what: str, command: object) -> None:
        try:
            assert asyncio.iscoroutine(command)
            if await command:
                done[what] += 1
        except (DomainError, ConcurrencyConflict):
            pass  # not due after all (touched meanwhile), or another run got there first

    async def run(self, stop: asyncio.Event, interval: float) -> None:
        while not stop.is_set():
            try:
                await self.tick()
            except Exception as exc:  # a failed tick must not end the loop; the next one retries
                log.error("scheduler tick failed", error=f"{type(exc).__name__}: {exc}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval)
