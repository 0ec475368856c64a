"""What every command handler of the service shares: the store, the clock, saving with projection."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

import asyncpg
from tuanlian.shared.aggregate import Aggregate, Repository
from tuanlian.shared.auth import Principal, Role
from tuanlian.shared.db import Database
from tuanlian.shared.events import Envelope, utcnow
from tuanlian.shared.eventstore import EventStore, Metadata
from tuanlian.wishes.adapters.directory import Directory
from tuanlian.wishes.adapters.readmodel import project
from tuanlian.wishes.settings import WishesSettings

Clock = Callable[[], datetime]


@dataclass
class Base:
    db: Database
    store: EventStore
    clock: Clock = field(default=utcnow)
    settings: WishesSettings = field(default_factory=WishesSettings)

    def __post_init__(self) -> None:
        self.directory = Directory(self.store.schema)

    @property
    def s(self) -> str:
        return self.store.schema

    async def save(
        self,
        conn: asyncpg.Connection,
        repo: Repository,  # type: ignore[type-arg]
        agg: Aggregate,
        who: Principal | None,
        org_path: str | None,
        now: datetime,
        cid: UUID | None = None,
        causation_id: UUID | None = None,
    ) -> list[Envelope]:
        # ``who`` None: the actor is withheld from the envelope (ratings: the rater stays off the bus).
        meta = Metadata(actor=who.actor if who else None, org_path=org_path, correlation_id=cid,
                        causation_id=causation_id, occurred_at=now)
        envelopes = await repo.save(conn, agg, meta)
        for env in envelopes:
            await project(conn, self.s, env, self.store.contracts.decode(env))
        return envelopes


    async def located(self, conn: asyncpg.Connection, table: str, key: str, agg: Aggregate) -> None:
        """Give a loaded aggregate its org's current path: org moves rewrite the read tables, not
        the aggregate's history, and later events and checks must use where the org is now."""
        path = await conn.fetchval(f"SELECT org_path FROM {self.s}.{table} WHERE {key} = $1", agg.id)
        if path is not None:
            agg.org_path = path  # type: ignore[attr-defined]


SCHEDULER = Principal("scheduler", Role.system)  # the actor of time-driven transitions
