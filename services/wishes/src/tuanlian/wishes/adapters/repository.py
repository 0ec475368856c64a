"""Loading timed aggregates: each past event is applied knowing when it happened."""

from __future__ import annotations

from typing import TypeVar

import asyncpg
from tuanlian.shared.aggregate import Repository
from tuanlian.wishes.domain.timed import TimedAggregate

T = TypeVar("T", bound=TimedAggregate)


class TimedRepository(Repository[T]):
    async def find(self, conn: asyncpg.Connection, id: str) -> T | None:
        envelopes = await self.store.read_stream(conn, f"{self.cls.stream_type}-{id}")
        if not envelopes:
            return None
        agg = self.cls(id)
        for env in envelopes:
            agg.at = env.occurred_at
            agg._apply(self.store.contracts.decode(env))
        return agg
