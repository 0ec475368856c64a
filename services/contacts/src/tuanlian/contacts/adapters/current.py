"""Repositories that read an aggregate's place in the tree from the read tables.

Moving or merging an org rewrites the path of a whole subtree with one event on the moved org's
stream (``OrgMoved``/``OrgMerged``), not one per descendant: the descendants' own streams keep
the path they had when their events were written. Their *current* place is in the read tables,
which the same transaction keeps in step, so decisions are taken on it.
"""

from __future__ import annotations

from typing import TypeVar

import asyncpg
from tuanlian.shared.aggregate import Aggregate, Repository
from tuanlian.shared.eventstore import EventStore

A = TypeVar("A", bound=Aggregate)


class CurrentRepository(Repository[A]):
    def __init__(
        self, store: EventStore, cls: type[A], table: str, key: str, columns: dict[str, str]
    ) -> None:
        super().__init__(store, cls)
        cols = ", ".join(f"{col} AS {attr}" for attr, col in columns.items())
        self._sql = f"SELECT {cols} FROM {store.schema}.{table} WHERE {key} = $1"

    async def find(self, conn: asyncpg.Connection, id: str) -> A | None:
        agg = await super().find(conn, id)
        if agg is not None:
            row = await conn.fetchrow(self._sql, id)
            if row is not None:
                for attr, value in dict(row).items():
                    setattr(agg, attr, value)
        return agg
