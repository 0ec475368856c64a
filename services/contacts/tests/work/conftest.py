"""Fixtures of contacts-work's tests: the real contacts app on real Postgres and NATS JetStream."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest_asyncio

sys.path.insert(0, str(Path(__file__).parent))

from tuanlian.contacts.app import app as contacts_app
from tuanlian.shared.service import Runtime
from tuanlian.shared.settings import Settings
from work_support import Api


@pytest_asyncio.fixture(loop_scope="session")
async def api(database_url: str, nats_url: str, tmp_path: Path) -> AsyncIterator[Api]:
    settings = Settings(home=tmp_path, database_url=database_url, nats_url=nats_url, stream_storage="memory")
    application = contacts_app(settings)
    runtime: Runtime = application.state.runtime
    await runtime.start()
    try:
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://contacts", timeout=30) as http:
            yield Api(http, runtime)
    finally:
        await runtime.stop()
