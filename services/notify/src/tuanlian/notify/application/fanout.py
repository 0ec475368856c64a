"""Circular fan-out (通报下发): every cadre and admin of the subtree gets the circular in their inbox.

Batches of recipients in id order; each batch's inbox rows, its deliveries and the job's cursor
are one statement in one transaction. Killed half-way, the next run resumes at the cursor; and
were the cursor ever behind, ``ON CONFLICT (source, recipient, kind)`` keeps the rows single.
The job row is locked ``FOR UPDATE SKIP LOCKED``, so replicas work on different circulars.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from tuanlian.notify.adapters.messages import localised, prefix_like
from tuanlian.shared.db import Database


@dataclass(frozen=True)
class BatchDone:
    circular_id: str
    written: int
    done: bool


class FanoutWorker:
    def __init__(self, db: Database, schema: str, batch: int = 10_000, channels: Sequence[str] = ()) -> None:
        self.db, self.s, self.batch, self.channels = db, schema, batch, list(channels)

    async def step(self, now: datetime) -> BatchDone | None:
        """One batch of one unfinished circular; ``None`` when nothing is left to do."""
        s = self.s
        async with self.db.transaction() as conn:
            job = await conn.fetchrow(
                f"SELECT circular_id, source_event_id, org_path, title, body, title_en, body_en, cursor, created_at FROM {s}.fanouts "
                "WHERE NOT done ORDER BY created_at, circular_id LIMIT 1 FOR UPDATE SKIP LOCKED")
            if job is None:
                return None
            row = await conn.fetchrow(
                f"WITH batch AS (SELECT r.subject_id, r.org_path, p.lang FROM {s}.recipients r "
                f"LEFT JOIN {s}.preferences p ON p.recipient_id = r.subject_id "
                "WHERE r.role IN ('cadre', 'org_admin') AND r.active AND (r.org_path = $3 OR r.org_path LIKE $4) "
                "AND r.subject_id > $5 ORDER BY r.subject_id LIMIT $6), "
                f"ins AS (INSERT INTO {s}.inbox (message_id, recipient_id, kind, title, body, ref, "
                "source_event_id, created_at, org_path) "
                "SELECT md5($2::uuid::text || '/' || subject_id || '/circular')::uuid, subject_id, 'circular', "
                f"{localised('$7::text', '$12::text', 'lang')}, {localised('$8::text', '$13::text', 'lang')}, "
                "$1, $2::uuid, $9, org_path FROM batch ON CONFLICT (source_event_id, recipient_id, kind) DO NOTHING "
                "RETURNING message_id, recipient_id), "
                f"dl AS (INSERT INTO {s}.deliveries (message_id, channel, recipient_id, next_attempt_at, updated_at) "
                f"SELECT ins.message_id, ch, ins.recipient_id, $10, $10 FROM ins JOIN {s}.preferences p "
                "ON p.recipient_id = ins.recipient_id, unnest(p.channels) ch WHERE ch = ANY($11::text[]) "
                "ON CONFLICT DO NOTHING) "
                f"UPDATE {s}.fanouts SET cursor = coalesce((SELECT max(subject_id) FROM batch), cursor), "
                "written = written + (SELECT count(*) FROM ins), "
                "done = (SELECT count(*) FROM batch) < $6 WHERE circular_id = $1 RETURNING written, done",
                job["circular_id"], job["source_event_id"], job["org_path"], prefix_like(job["org_path"]),
                job["cursor"], self.batch, job["title"], job["body"], job["created_at"], now, self.channels,
                job["title_en"], job["body_en"])
            assert row is not None
            return BatchDone(job["circular_id"], row["written"], row["done"])

    async def drain(self, now: datetime) -> int:
        """Run batches until every circular is out; returns the batches run."""
        n = 0
        while await self.step(now) is not None:
            n += 1
        return n
