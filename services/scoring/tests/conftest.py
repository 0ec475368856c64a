"""Scoring tests: the real service (migrations, consumers, relay) on real Postgres and NATS, fed by
envelopes of the contacts and wishes contracts published on their streams."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from nats.js import JetStreamContext

sys.path.insert(0, str(Path(__file__).parent))

from scoring_support import Producer, Scoring
from tuanlian.scoring.app import SPEC
from tuanlian.shared.auth import TokenVerifier, load_or_create_signing_key
from tuanlian.shared.service import build_runtime
from tuanlian.shared.settings import Settings
from tuanlian.shared.streams import declare_stream, producer_stream


@pytest.fixture
async def scoring(database_url: str, nats_url: str, js: JetStreamContext, tmp_path: Path) -> AsyncIterator[Scoring]:
    for producer in ("contacts", "wishes"):
        await declare_stream(js, producer_stream(producer), storage="memory")
    settings = Settings(home=tmp_path, database_url=database_url, nats_url=nats_url, stream_storage="memory",
                        retry_base_delay=0.05, period_close_check_seconds=0.5)
    runtime = build_runtime(SPEC, settings)
    issuer = load_or_create_signing_key(tmp_path / "keys")
    runtime._verifier = TokenVerifier.from_jwks(issuer.jwks())
    await runtime.start()
    try:
        from fastapi import FastAPI
        from tuanlian.shared.http import install_error_handlers

        app = FastAPI()
        install_error_handlers(app)
        app.include_router(SPEC.build_router(runtime))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://scoring") as http:
            yield Scoring(runtime, http, tmp_path)
    finally:
        await runtime.stop()
        await asyncio.sleep(0)


@pytest.fixture
def contacts(js: JetStreamContext) -> Producer:
    return Producer(js, "contacts")


@pytest.fixture
def wishes(js: JetStreamContext) -> Producer:
    return Producer(js, "wishes")
