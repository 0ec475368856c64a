"""Fixtures: a running wishes service (real Postgres, real NATS) with a stand-in contacts producer."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from nats.js import JetStreamContext
from tuanlian.shared.auth import load_or_create_signing_key
from tuanlian.shared.service import create_app
from tuanlian.shared.settings import Settings
from tuanlian.shared.streams import declare_stream, producer_stream
from tuanlian.wishes.app import SPEC

sys.path.insert(0, str(Path(__file__).parent))

from wishes_support import Contacts, Harness


@pytest.fixture(autouse=True)
def _no_background_scheduler(monkeypatch: pytest.MonkeyPatch) -> None:
    # Tests drive time themselves through Scheduler.tick(now).
    monkeypatch.setenv("TUANLIAN_WISHES_SCHEDULER_ENABLED", "false")


@pytest_asyncio.fixture(loop_scope="session")
async def harness(database_url: str, nats_url: str, js: JetStreamContext, tmp_path: Path) -> AsyncIterator[Harness]:
    await declare_stream(js, producer_stream("contacts"), storage="memory")
    settings = Settings(home=tmp_path, database_url=database_url, nats_url=nats_url, stream_storage="memory",
                        retry_base_delay=0.05)
    app = create_app(SPEC, settings)
    issuer = load_or_create_signing_key(tmp_path / "keys")
    app.state.runtime.issuer = issuer
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://wishes") as http:
            yield Harness(app, http, issuer, Contacts(js), js)
