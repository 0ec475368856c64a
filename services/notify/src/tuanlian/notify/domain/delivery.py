"""Delivery policy (送达策略): quiet hours, retry backoff and per-channel rate limits. Pure."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from tuanlian.shared.league_calendar import SHANGHAI

DEFAULT_QUIET = (time(22, 0), time(8, 0))


def quiet_release(
    now: datetime, start: time = DEFAULT_QUIET[0], end: time = DEFAULT_QUIET[1], tz: ZoneInfo = SHANGHAI
) -> datetime | None:
    """When a non-urgent message may go out if ``now`` falls in quiet hours (免打扰), else ``None``.

    The window may wrap midnight (22:00–08:00); the release is the next ``end`` in local time.
    """
    local = now.astimezone(tz)
    t = local.time()
    inside = (start <= t or t < end) if start > end else (start <= t < end)
    if not inside:
        return None
    release = local.replace(hour=end.hour, minute=end.minute, second=0, microsecond=0)
    if release <= local:
        release += timedelta(days=1)
    return release


@dataclass(frozen=True)
class Backoff:
    """Exponential retry delays per channel (重试退避), dead after ``max_attempts``."""

    base_seconds: float = 30.0
    cap_seconds: float = 3600.0
    max_attempts: int = 6

    def delay(self, attempts: int) -> timedelta:
        """Wait after the ``attempts``-th failed attempt (1-based)."""
        return timedelta(seconds=min(self.cap_seconds, self.base_seconds * 2 ** (attempts - 1)))

    def exhausted(self, attempts: int) -> bool:
        return attempts >= self.max_attempts


@dataclass
class TokenBucket:
    """Per-channel rate limit (限流): ``rate`` sends per second, bursts up to ``burst``."""

    rate: float
    burst: float
    _tokens: float = field(default=-1.0)
    _at: datetime | None = None

    def take(self, now: datetime, wanted: int) -> int:
        """How many of ``wanted`` sends may go now; those are consumed."""
        if self._at is None:
            self._tokens = self.burst
        else:
            elapsed = max(0.0, (now - self._at).total_seconds())
            self._tokens = min(self.burst, self._tokens + elapsed * self.rate)
        self._at = now
        granted = min(wanted, int(self._tokens))
        self._tokens -= granted
        return granted

    @property
    def tokens(self) -> float:
        return self._tokens

    @property
    def at(self) -> datetime | None:
        return self._at

    def refund(self, unused: int) -> None:
        """Give back what was granted but not sent (held, digested, nothing to claim)."""
        self._tokens = min(self.burst, self._tokens + unused)


def mask_address(address: str) -> str:
    """What notify keeps of a delivery address: enough to recognise it, not to use it."""
    if "@" in address:
        local, _, domain = address.partition("@")
        return f"{local[:1]}***@{domain}"
    digits = [c for c in address if c.isdigit()]
    if len(digits) >= 7:
        return f"{''.join(digits[:3])}****{''.join(digits[-4:])}"
    return "***"
