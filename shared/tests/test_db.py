"""Database: ``transaction()`` is one real transaction; ``connection()`` is autocommit."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from tuanlian.shared.db import Database, asyncpg_url, connect_raw, sqlalchemy_url
from tuanlian.shared.testing import wait_until


def test_urls_accept_either_scheme() -> None:
    assert sqlalchemy_url("postgresql://u@h/d") == "postgresql+asyncpg://u@h/d"
    assert sqlalchemy_url("postgres://u@h/d") == "postgresql+asyncpg://u@h/d"
    assert asyncpg_url("postgresql+asyncpg://u@h/d") == "postgresql://u@h/d"
    with pytest.raises(ValueError, match="not a Postgres URL"):
        sqlalchemy_url("mysql://u@h/d")


async def _count(db: Database) -> int:
    async with db.connection() as conn:
        return int(await conn.fetchval("SELECT count(*) FROM t"))


async def test_transaction_commits_together_and_rolls_back_together(db: Database) -> None:
    async with db.transaction() as conn:
        assert conn.is_in_transaction()
        await conn.execute("CREATE TABLE t (x int PRIMARY KEY)")
    async with db.transaction() as conn:
        await conn.execute("INSERT INTO t VALUES (1)")
        await conn.execute("INSERT INTO t VALUES (2)")
    assert await _count(db) == 2
    with pytest.raises(RuntimeError):
        async with db.transaction() as conn:
            await conn.execute("INSERT INTO t VALUES (3)")
            raise RuntimeError("the caller changed its mind")
    assert await _count(db) == 2
    with pytest.raises(Exception, match="duplicate key"):
        async with db.transaction() as conn:
            await conn.execute("INSERT INTO t VALUES (4)")
            await conn.execute("INSERT INTO t VALUES (1)")
    assert await _count(db) == 2
    # The pool hands out clean connections afterwards.
    for _ in range(3):
        async with db.connection() as conn:
            assert not conn.is_in_transaction()


async def test_uncommitted_writes_are_invisible_and_row_locks_hold(db: Database, database_url: str) -> None:
    async with db.transaction() as conn:
        await conn.execute("CREATE TABLE t (x int PRIMARY KEY, v int)")
        await conn.execute("INSERT INTO t VALUES (1, 0)")
    other = await connect_raw(database_url)
    try:
        async with db.transaction() as conn:
            await conn.execute("INSERT INTO t VALUES (2, 0)")
            await conn.fetchrow("SELECT * FROM t WHERE x = 1 FOR UPDATE")
            assert await other.fetchval("SELECT count(*) FROM t") == 1
            blocked = asyncio.create_task(other.execute("UPDATE t SET v = v + 1 WHERE x = 1"))
            pid = other.get_server_pid()
            await wait_until(
                lambda: conn.fetchval(
                    "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1", pid
                ),
                timeout=10,
                message="the other writer waits for the row lock",
            )
            assert not blocked.done()
        await blocked
        assert await other.fetchval("SELECT v FROM t WHERE x = 1") == 1
        assert await other.fetchval("SELECT count(*) FROM t") == 2
    finally:
        await other.close()


async def test_connection_is_autocommit(db: Database) -> None:
    async with db.connection() as conn:
        assert not conn.is_in_transaction()
        await conn.execute("CREATE TABLE t (x int)")
        await conn.execute("INSERT INTO t VALUES (1)")
    assert await _count(db) == 1
    await db.ping()


async def test_a_connection_whose_session_ended_is_not_handed_out_again(database_url: str) -> None:
    """Postgres restarted or failed over, a session terminated: a connection that ended idle in
    the pool is replaced as it is checked out; one that ended in use fails its user, and the next
    one gets a new connection. One connection: the next user gets it back."""
    one = Database(database_url, pool_size=1, max_overflow=0)

    async def end(conn: asyncpg.Connection) -> int:
        pid: int = await conn.fetchval("SELECT pg_backend_pid()")
        killer = await connect_raw(database_url)
        try:  # waits until the backend has gone
            assert await killer.fetchval("SELECT pg_terminate_backend($1, 5000)", pid) is True
        finally:
            await killer.close()
        return pid

    try:
        for use in (one.connection, one.transaction):
            ended = []
            with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError, ConnectionError)):
                async with use() as conn:
                    ended.append(await end(conn))
                    await conn.fetchval("SELECT 1")
            pid = ended[0]
            async with use() as conn:
                assert await conn.fetchval("SELECT pg_backend_pid()") != pid
            async with use() as conn:  # ends while idle in the pool
                pid = await conn.fetchval("SELECT pg_backend_pid()")
            async with one.connection() as other:
                assert await other.fetchval("SELECT pg_backend_pid()") == pid  # the same one, back
            killer = await connect_raw(database_url)
            try:
                assert await killer.fetchval("SELECT pg_terminate_backend($1, 5000)", pid) is True
            finally:
                await killer.close()
            await asyncio.sleep(0.05)  # the event loop sees the socket close
            async with use() as conn:
                assert await conn.fetchval("SELECT pg_backend_pid()") != pid
    finally:
        await one.close()
