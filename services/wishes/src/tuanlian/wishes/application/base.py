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

Clock = Callable[[], datetime]


@dataclass
class Base:
    db: Database
    store: EventStore
    clock: Clock = field(default=utcnow)

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
    ) -> list[Envelope]:
        # ``who`` None: the actor is withheld from the envelope (ratings: the rater stays off the bus).
        meta = Metadata(actor=who.actor if who else None, org_path=org_path, correlation_id=cid, occurred_at=now)
        envelopes = await repo.save(conn, agg, meta)
        for env in envelopes:
            await project(conn, self.s, env, self.store.contracts.decode(env))
        return envelopes


SCHEDULER = Principal("scheduler", Role.system)  # the actor of time-driven transitions
