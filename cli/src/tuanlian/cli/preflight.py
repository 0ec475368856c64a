"""Before a service starts: are its Postgres and NATS there? One clear line if not."""

from __future__ import annotations

import asyncio

import asyncpg
from tuanlian.shared.db import asyncpg_url
from tuanlian.shared.settings import Settings
from tuanlian.shared.streams import connect_nats


async def preflight(settings: Settings, service: str) -> str | None:
    if not settings.database_url:
        return f"{service}: TUANLIAN_DATABASE_URL is not set (which Postgres should I use?)"
    if not settings.nats_url:
        return f"{service}: TUANLIAN_NATS_URL is not set (which NATS server should I use?)"
    try:
        conn = await asyncio.wait_for(asyncpg.connect(asyncpg_url(settings.database_url)), 5)
        await conn.close()
    except Exception as exc:
        where = settings.database_url.split("@")[-1]
        return f"{service}: Postgres is not reachable at {where}: {exc or type(exc).__name__}"
    try:
        nc = await connect_nats(settings.nats_url, name=f"preflight-{service}", timeout=3)
        await nc.close()
    except ConnectionError as exc:
        return f"{service}: {exc}"
    return None
