"""An outbox relay in a process of its own, for the crash tests (not a test module).

    python relay_worker.py DATABASE_URL NATS_URL BATCH_SIZE [CRASH_AT_SAVE]

Relays the ``demo`` schema's events until nothing is pending, then exits 0. With
``CRASH_AT_SAVE = n`` it SIGKILLs itself at the n-th checkpoint save, i.e. after JetStream has
acknowledged that batch and before the checkpoint says so: the worst moment to die.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import nats
from tuanlian.shared.db import Database
from tuanlian.shared.outbox import OutboxRelay


class _SaveTrap:
    """An asyncpg connection that dies instead of saving the n-th checkpoint."""

    saves = 0

    def __init__(self, conn: Any, crash_at: int) -> None:
        self._conn = conn
        self._crash_at = crash_at

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)

    async def execute(self, sql: str, *args: Any) -> Any:
        if "INSERT INTO" in sql and "relay_checkpoint" in sql:
            _SaveTrap.saves += 1
            if _SaveTrap.saves == self._crash_at:
                print(f"dying before save {_SaveTrap.saves}", flush=True)
                os.kill(os.getpid(), signal.SIGKILL)
        return await self._conn.execute(sql, *args)


class _CrashingDatabase(Database):
    def __init__(self, url: str, crash_at: int) -> None:
        super().__init__(url)
        self._crash_at = crash_at

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Any]:
        async with super().connection() as conn:
            yield _SaveTrap(conn, self._crash_at)


async def main(database_url: str, nats_url: str, batch_size: int, crash_at: int) -> None:
    db = _CrashingDatabase(database_url, crash_at) if crash_at else Database(database_url)
    nc = await nats.connect(nats_url)
    try:
        relay = OutboxRelay(db, nc.jetstream(), schema="demo", producer="demo", batch_size=batch_size)
        while True:
            sent = await relay.pump()  # pipelined, as services run it
            print(f"sent {sent}", flush=True)
            if sent == 0 and (await relay.status()).pending == 0:
                return
    finally:
        await nc.close()
        await db.close()


if __name__ == "__main__":
    url, nats_url, batch = sys.argv[1], sys.argv[2], int(sys.argv[3])
    crash = int(sys.argv[4]) if len(sys.argv) > 4 else 0
    asyncio.run(main(url, nats_url, batch, crash))
