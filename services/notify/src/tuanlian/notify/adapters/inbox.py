"""Reading the inbox (站内信): pages, unread counts and the live feed behind SSE."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from tuanlian.shared.db import Database

COLUMNS = "message_id, kind, title, body, ref, urgent, created_at, read_at, seq"
SEQ_MAX = 2**63 - 1  # inbox.seq is a bigserial: a larger "last seen" cannot be compared with it


async def latest_seq(db: Database, s: str, recipient: str) -> int:
    async with db.connection() as conn:
        return int(await conn.fetchval(
            f"SELECT coalesce(max(seq), 0) FROM {s}.inbox WHERE recipient_id = $1", recipient))


async def watch(db: Database, s: str, recipient: str, after: int, poll: float) -> AsyncIterator[dict[str, Any]]:
    """New messages for ``recipient`` after ``after``, as they arrive (polled: no LISTEN, see docs)."""
    while True:
        async with db.connection() as conn:
            rows = await conn.fetch(
                f"SELECT {COLUMNS} FROM {s}.inbox WHERE recipient_id = $1 AND seq > $2 ORDER BY seq",
                recipient, after)
        for r in rows:
            after = r["seq"]
            yield dict(r)
        if not rows:
            await asyncio.sleep(poll)
