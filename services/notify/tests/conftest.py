"""Fixtures of the notify tests: the notify schema migrated on the test's real Postgres, and a
way to feed events straight through the projection handlers (the consumer tests use NATS)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest_asyncio
from tuanlian.shared.db import Database
from tuanlian.shared.migrations import load_migrations, migrate

sys.path.insert(0, str(Path(__file__).parent))

SCHEMA = "notify"


@pytest_asyncio.fixture(loop_scope="session")
async def ndb(db: Database) -> Database:
    async with db.connection() as conn:
        await migrate(conn, SCHEMA, load_migrations("tuanlian.notify.migrations", SCHEMA))
    return db
