"""ProjectionTx: queued writes grouped into executemany runs, flushed before every read."""

from __future__ import annotations

from typing import Any

from tuanlian.shared.consumer import ProjectionTx
from tuanlian.shared.db import Database


class _RecordingConnection:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, Any]] = []

    async def execute(self, sql: str, *args: Any) -> str:
        self.calls.append(("execute", sql, args))
        return "OK"

    async def executemany(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        self.calls.append(("executemany", sql, list(rows)))

    async def fetch(self, sql: str, *args: Any) -> list[Any]:
        self.calls.append(("fetch", sql, args))
        return []

    async def fetchrow(self, sql: str, *args: Any) -> Any:
        self.calls.append(("fetchrow", sql, args))
        return None

    async def fetchval(self, sql: str, *args: Any) -> Any:
        self.calls.append(("fetchval", sql, args))
        return 7


async def test_consecutive_identical_statements_become_one_executemany() -> None:
    conn = _RecordingConnection()
    tx = ProjectionTx(conn)  # type: ignore[arg-type]
    for i in range(3):
        tx.execute("INSERT a", i)
    tx.execute("UPDATE b", "x", 1)
    tx.execute("INSERT a", 3)
    tx.execute("INSERT a", 4)
    assert conn.calls == []  # nothing is sent before a flush
    await tx.flush()
    assert conn.calls == [
        ("executemany", "INSERT a", [(0,), (1,), (2,)]),
        ("execute", "UPDATE b", ("x", 1)),
        ("executemany", "INSERT a", [(3,), (4,)]),
    ]
    await tx.flush()
    assert len(conn.calls) == 3  # a flush sends each write once


async def test_every_read_flushes_first() -> None:
    conn = _RecordingConnection()
    tx = ProjectionTx(conn)  # type: ignore[arg-type]
    tx.execute("INSERT a", 1)
    assert await tx.fetchval("SELECT 1") == 7
    tx.execute("INSERT a", 2)
    await tx.fetch("SELECT 2")
    tx.execute("INSERT a", 3)
    await tx.fetchrow("SELECT 3")
    assert [(kind, sql) for kind, sql, _ in conn.calls] == [
        ("execute", "INSERT a"),
        ("fetchval", "SELECT 1"),
        ("execute", "INSERT a"),
        ("fetch", "SELECT 2"),
        ("execute", "INSERT a"),
        ("fetchrow", "SELECT 3"),
    ]


async def test_on_postgres_writes_apply_in_order_and_reads_see_them(db: Database) -> None:
    async with db.transaction() as conn:
        await conn.execute("CREATE TABLE counters (k text PRIMARY KEY, v int NOT NULL)")
    async with db.transaction() as conn:
        tx = ProjectionTx(conn)
        for k in ("a", "b", "c"):
            tx.execute("INSERT INTO counters VALUES ($1, 0)", k)
        for _ in range(5):
            tx.execute("UPDATE counters SET v = v + 1 WHERE k = $1", "a")
        tx.execute("UPDATE counters SET v = v * 10")  # must run after the increments
        assert await tx.fetchval("SELECT v FROM counters WHERE k = 'a'") == 50
        tx.execute("DELETE FROM counters WHERE k = $1", "b")
        rows = await tx.fetch("SELECT k, v FROM counters ORDER BY k")
        assert [tuple(r) for r in rows] == [("a", 50), ("c", 0)]
    async with db.connection() as conn:
        assert await conn.fetchval("SELECT sum(v) FROM counters") == 50
