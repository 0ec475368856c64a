"""Fixtures of the platform tests (the infrastructure ones come from tuanlian.shared.testing)."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio
from nats.js import JetStreamContext

sys.path.insert(0, str(Path(__file__).parent))

import platform_support as ps
from tuanlian.shared.db import Database
from tuanlian.shared.eventstore import EventStore
from tuanlian.shared.streams import declare_stream, producer_stream
from tuanlian.shared.testing import create_platform_tables


@pytest_asyncio.fixture(loop_scope="session")
async def store(db: Database) -> EventStore:
    """The demo producer's event store, its schema created."""
    await create_platform_tables(db, ps.STORE_SCHEMA)
    return EventStore(ps.STORE_SCHEMA, ps.PRODUCER, ps.contracts)


@pytest_asyncio.fixture(loop_scope="session")
async def probe_db(db: Database) -> Database:
    """The probe service's schema (platform tables + probe projection) in the test database."""
    await create_platform_tables(db, ps.SCHEMA)
    async with db.transaction() as conn:
        await conn.execute(ps.projection_ddl())
    return db


@pytest_asyncio.fixture(loop_scope="session")
async def demo_stream(js: JetStreamContext) -> AsyncIterator[str]:
    """The demo producer's stream, declared as its owner would."""
    spec = producer_stream(ps.PRODUCER)
    await declare_stream(js, spec)
    yield spec.name
