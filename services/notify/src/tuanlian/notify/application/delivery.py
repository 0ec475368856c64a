"""The delivery worker (推送): claims due deliveries, honours quiet hours and digests, retries.

Deliveries are claimed with ``FOR UPDATE SKIP LOCKED`` and leased (``next_attempt_at`` pushed
forward) in a short transaction, then sent outside it: replicas never take the same row, and a
worker killed mid-send leaves a row that comes back when its lease ends.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import NAMESPACE_URL, uuid5

import asyncpg
import structlog
from tuanlian.notify.adapters.channels import Channel, DeliveryFailed, Outgoing
from tuanlian.notify.domain.delivery import Backoff, TokenBucket, quiet_release
from tuanlian.notify.domain.templates import template
from tuanlian.notify.settings import NotifySettings
from tuanlian.shared import league_calendar as cal
from tuanlian.shared.db import Database

log = structlog.get_logger("tuanlian.notify.delivery")
LEASE = timedelta(minutes=2)


@dataclass
class RunReport:
    sent: int = 0
    failed: int = 0
    dead: int = 0
    held: int = 0
    digested: int = 0


class DeliveryWorker:
    def __init__(self, db: Database, schema: str, channels: Mapping[str, Channel],
                 settings: NotifySettings) -> None:
        self.db, self.s, self.channels, self.settings = db, schema, channels, settings
        self.backoff = Backoff(settings.retry_base_seconds, settings.retry_cap_seconds, settings.max_attempts)
        self.buckets = {
            "webhook": TokenBucket(settings.webhook_rate, settings.webhook_burst),
            "email": TokenBucket(settings.email_rate, settings.email_burst),
        }

    async def run_once(self, now: datetime) -> RunReport:
        report = RunReport()
        await self.collect_digests(now, report)
        for name, channel in self.channels.items():
            granted = await self._take(name, now, self.settings.claim_batch)
            if granted == 0:
                continue
            rows = await self._claim(name, now, granted)
            used = 0
            for row in rows:
                used += await self._handle(channel, row, now, report)
            if granted > used:
                await self._refund(name, granted - used)
        return report

    async def _take(self, channel: str, now: datetime, wanted: int) -> int:
        """Sends ``channel`` may make now. The bucket is one row shared by every replica: the
        gateway's limit is the deployment's, not each replica's."""
        bucket = self.buckets[channel]
        async with self.db.transaction() as conn:
            await conn.execute(f"INSERT INTO {self.s}.rate_buckets (channel, tokens, at) VALUES ($1, $2, $3) "
                               "ON CONFLICT DO NOTHING", channel, bucket.burst, now)
            row = await conn.fetchrow(f"SELECT tokens, at FROM {self.s}.rate_buckets WHERE channel = $1 FOR UPDATE",
                                      channel)
            assert row is not None
            shared = TokenBucket(bucket.rate, bucket.burst, row["tokens"], row["at"])
            granted = shared.take(max(now, row["at"]), wanted)
            await conn.execute(f"UPDATE {self.s}.rate_buckets SET tokens = $2, at = $3 WHERE channel = $1",
                               channel, shared.tokens, shared.at)
        return granted

    async def _refund(self, channel: str, unused: int) -> None:
        async with self.db.connection() as conn:
            await conn.execute(f"UPDATE {self.s}.rate_buckets SET tokens = least($3, tokens + $2) WHERE channel = $1",
                               channel, float(unused), self.buckets[channel].burst)

    async def _claim(self, channel: str, now: datetime, limit: int) -> list[asyncpg.Record]:
        s = self.s
        async with self.db.transaction() as conn:
            return list(await conn.fetch(
                f"WITH c AS (SELECT message_id, channel FROM {s}.deliveries WHERE status = 'pending' "
                "AND channel = $1 AND next_attempt_at <= $2 ORDER BY next_attempt_at LIMIT $3 "
                f"FOR UPDATE SKIP LOCKED), leased AS (UPDATE {s}.deliveries d SET next_attempt_at = $2 + $4::interval "
                "FROM c WHERE d.message_id = c.message_id AND d.channel = c.channel RETURNING d.*) "
                "SELECT l.message_id, l.channel, l.recipient_id, l.attempts, "
                "coalesce(l.title, i.title) AS title, coalesce(l.body, i.body) AS body, "
                "coalesce(i.kind, 'digest') AS kind, coalesce(i.urgent, true) AS urgent, "
                "p.email, p.quiet_enabled, p.quiet_start, p.quiet_end, coalesce(p.digest, false) AS digest "
                f"FROM leased l LEFT JOIN {s}.inbox i ON i.message_id = l.message_id "
                f"LEFT JOIN {s}.preferences p ON p.recipient_id = l.recipient_id",
                channel, now, limit, LEASE))

    async def _handle(self, channel: Channel, row: asyncpg.Record, now: datetime, report: RunReport) -> int:
        """Hold, digest or send one delivery; returns the sends it used (for the rate limit)."""
        if not row["urgent"]:
            if row["digest"]:
                await self._update(row, now, status="digest", held_reason="daily digest")
                report.digested += 1
                return 0
            if row["quiet_enabled"] is not False:
                release = quiet_release(now, row["quiet_start"] or self.settings.quiet_start,
                                        row["quiet_end"] or self.settings.quiet_end)
                if release is not None:
                    await self._update(row, now, next_attempt_at=release, held_reason="quiet hours")
                    report.held += 1
                    return 0
        out = Outgoing(str(row["message_id"]), row["recipient_id"], row["kind"], row["title"], row["body"],
                       row["urgent"], row["email"] if channel.name == "email" else None)
        attempts = row["attempts"] + 1
        try:
            await channel.send(out)
        except Exception as exc:  # one delivery's failure, whatever it is, must not stop the claim
            reason = str(exc) if isinstance(exc, DeliveryFailed) else f"{type(exc).__name__}: {exc}"
            if not isinstance(exc, DeliveryFailed):
                log.error("channel failed unexpectedly", channel=channel.name, message_id=out.message_id,
                          error=reason)
            if self.backoff.exhausted(attempts):
                await self._update(row, now, status="dead", attempts=attempts, last_error=reason)
                log.error("delivery dead", channel=channel.name, message_id=out.message_id, attempts=attempts,
                          reason=reason)
                report.dead += 1
            else:
                await self._update(row, now, attempts=attempts, last_error=reason,
                                   next_attempt_at=now + self.backoff.delay(attempts))
                report.failed += 1
            return 1
        await self._update(row, now, status="sent", attempts=attempts, sent_at=now, held_reason=None)
        report.sent += 1
        return 1

    async def _update(self, row: asyncpg.Record, now: datetime, **changes: Any) -> None:
        changes.setdefault("next_attempt_at", now)
        changes["updated_at"] = now
        cols = list(changes)
        sets = ", ".join(f"{c} = ${i + 3}" for i, c in enumerate(cols))
        async with self.db.connection() as conn:
            await conn.execute(f"UPDATE {self.s}.deliveries SET {sets} WHERE message_id = $1 AND channel = $2",
                               row["message_id"], row["channel"], *changes.values())

    async def collect_digests(self, now: datetime, report: RunReport) -> None:
        """One message a day per recipient and channel, after quiet hours end (每日汇总)."""
        day = cal.local_date(now)
        cutoff = cal.local_at(day, self.settings.quiet_end)
        if now < cutoff:
            return
        s = self.s
        async with self.db.transaction() as conn:
            groups = await conn.fetch(
                f"SELECT d.recipient_id, d.channel, array_agg(d.message_id) AS ids, array_agg(i.title) AS titles, "
                f"(SELECT lang FROM {s}.preferences p WHERE p.recipient_id = d.recipient_id) AS lang "
                f"FROM {s}.deliveries d JOIN {s}.inbox i ON i.message_id = d.message_id "
                "WHERE d.status = 'digest' AND d.updated_at < $1 GROUP BY d.recipient_id, d.channel", cutoff)
            for g in groups:
                digest_id = uuid5(NAMESPACE_URL, f"digest/{g['recipient_id']}/{g['channel']}/{day}")
                fresh = await conn.fetchval(
                    f"INSERT INTO {s}.digests (recipient_id, channel, day, message_id) VALUES ($1, $2, $3, $4) "
                    "ON CONFLICT DO NOTHING RETURNING true", g["recipient_id"], g["channel"], day, digest_id)
                if not fresh:
                    continue  # today's digest went out already; these wait for tomorrow's
                lines = "\n".join(f"· {t}" for t in g["titles"])
                title, body = template("digest").render(g["lang"] or "zh", count=len(g["ids"]), lines=lines)
                await conn.execute(
                    f"INSERT INTO {s}.deliveries (message_id, channel, recipient_id, next_attempt_at, title, body, "
                    "updated_at) VALUES ($1, $2, $3, $4, $5, $6, $4)", digest_id, g["channel"], g["recipient_id"],
                    now, title, body)
                await conn.execute(
                    f"UPDATE {s}.deliveries SET status = 'digested', held_reason = $3, updated_at = $4 "
                    "WHERE channel = $1 AND message_id = ANY($2::uuid[])",
                    g["channel"], g["ids"], f"in digest {digest_id}", now)
