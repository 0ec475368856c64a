"""The four services as separate processes, started by the same launcher as ``make run``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tuanlian.cli.launcher import Stack
from tuanlian.shared.infra import free_port
from tuanlian.shared.settings import Settings


@pytest.fixture
async def stack(database_url: str, nats_url: str, tmp_path: Path) -> AsyncIterator[Stack]:
    ports = {f"{s}_port": free_port() for s in ("contacts", "wishes", "scoring", "notify")}
    settings = Settings(home=tmp_path, database_url=database_url, nats_url=nats_url, **ports)
    running = Stack(settings=settings, home=tmp_path)
    running.start_infrastructure()
    try:
        running.start_services()
        yield running
    finally:
        running.stop()
