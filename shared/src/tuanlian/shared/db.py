"""Postgres access: one SQLAlchemy async engine (asyncpg underneath) per process.

Services write SQL against the raw asyncpg connection inside an SQLAlchemy-managed transaction:
SQLAlchemy owns pooling, transactions and migrations; the hot paths (append, projection
batches) keep asyncpg's speed and its ``executemany`` pipelining.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine


def sqlalchemy_url(url: str) -> str:
    """``postgresql://…`` → ``postgresql+asyncpg://…`` (accepts either)."""
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    raise ValueError(f"not a Postgres URL: {url!r}")


def asyncpg_url(url: str) -> str:
    return "postgresql://" + sqlalchemy_url(url)[len("postgresql+asyncpg://") :]


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    await conn.set_type_codec("json", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


class Database:
    """The process's connection pool, handing out asyncpg connections in transactions."""

    def __init__(
        self, url: str, *, pool_size: int = 10, max_overflow: int = 10, bulk: bool = False
    ) -> None:
        self.url = url
        server_settings = {"application_name": "tuanlian"}
        if bulk:
            # Loaders and rebuilds: a crash loses the last few commits, which they simply redo.
            server_settings["synchronous_commit"] = "off"
        self.engine: AsyncEngine = create_async_engine(
            sqlalchemy_url(url),
            pool_size=pool_size,
            max_overflow=max_overflow,
            pool_pre_ping=False,
            connect_args={"server_settings": server_settings},
        )
        from sqlalchemy import event

        @event.listens_for(self.engine.sync_engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.run_async(_init_connection)

    @asynccontextmanager
    async def _checked_out(self) -> AsyncIterator[tuple[AsyncConnection, asyncpg.Connection]]:
        """A pooled connection and its asyncpg connection. One whose session ended (the server
        terminated it, Postgres restarted or failed over, the network cut it) is invalidated, not
        returned: SQLAlchemy's reset on return does nothing to a raw asyncpg connection it began
        no transaction on, and handed the dead one out again, for ever to a worker checking out
        one connection a round (notify's fan-out, after a restart). One found ended as it is
        checked out (asyncpg saw the socket close while it sat in the pool) is replaced at once:
        no round trip, unlike SQLAlchemy's pre-ping, and no user meets it."""
        while True:  # each ended one is discarded: the pool ends with a new connection, never closed
            conn = await self.engine.connect().start()
            raw = await conn.get_raw_connection()
            driver: asyncpg.Connection = raw.driver_connection  # type: ignore[assignment]
            if not driver.is_closed():
                break
            await conn.invalidate()
            await conn.close()
        try:
            yield conn, driver
        finally:
            try:
                if driver.is_closed() and not conn.invalidated:
                    await conn.invalidate()
            finally:
                await conn.close()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[asyncpg.Connection]:
        """A raw asyncpg connection inside a transaction committed on success.

        The transaction is begun on the asyncpg connection itself: SQLAlchemy's asyncpg adapter
        begins lazily, on the first statement sent *through SQLAlchemy*, so ``engine.begin()``
        alone would leave the raw connection in autocommit (no atomicity, no row locks).
        """
        async with self._checked_out() as (conn, driver):
            tx = driver.transaction()
            await tx.start()
            try:
                yield driver
            except BaseException:
                try:
                    await tx.rollback()
                except BaseException:
                    # The connection's state is unknown (cancelled mid-rollback, connection lost):
                    # never hand it to the next user.
                    await conn.invalidate()
                raise
            try:
                await tx.commit()
            except asyncpg.PostgresError:
                raise  # the server ended the transaction; the connection is fine
            except BaseException:
                await conn.invalidate()
                raise

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        """A raw asyncpg connection outside any explicit transaction (autocommit)."""
        async with self._checked_out() as (conn, driver):
            yield driver
            if not driver.is_closed():
                await conn.rollback()

    async def ping(self, timeout: float = 2.0) -> None:
        async with asyncio.timeout(timeout), self.connection() as conn:
            await conn.fetchval("SELECT 1")

    async def close(self) -> None:
        await self.engine.dispose()


async def connect_raw(url: str) -> asyncpg.Connection:
    """A standalone asyncpg connection (listeners, benchmarks, tools)."""
    conn = await asyncpg.connect(asyncpg_url(url))
    await _init_connection(conn)
    return conn
