"""Anti-fraud signals (真实度): shown beside the numbers for a person to look at, never penalties.

Each signal is computed from facts the projection keeps (no summaries: only their hashes).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from tuanlian.scoring.domain.periods import CHINA


@dataclass(frozen=True)
class LoggedInteraction:
    occurred_at: datetime
    recorded_at: datetime
    summary_hash: str


@dataclass(frozen=True)
class YouthWord:
    """The youths' word on a cadre's interactions of a period: contacts logged (a youth of an
    interaction each), confirmed, disputed."""

    contacts: int = 0
    confirmed: int = 0
    disputed: int = 0


@dataclass(frozen=True)
class Signal:
    code: str
    count: int
    detail: str


@dataclass(frozen=True)
class SignalThresholds:
    burst_size: int = 10  # this many interactions recorded within burst_minutes
    burst_minutes: int = 10
    identical_summaries: int = 5
    night_start_hour: int = 0  # implausible hours (local time): [start, end)
    night_end_hour: int = 5
    unconfirmed_share: float = 0.8
    unconfirmed_min: int = 10
    disputed_share: float = 0.2
    disputed_min: int = 3


def detect(
    xs: Sequence[LoggedInteraction], word: YouthWord, failed_spot_checks: int,
    t: SignalThresholds = SignalThresholds(),
) -> list[Signal]:
    out: list[Signal] = []
    recorded = sorted(x.recorded_at for x in xs)
    window = t.burst_minutes * 60
    worst, j = 0, 0
    for i, at in enumerate(recorded):
        while (at - recorded[j]).total_seconds() > window:
            j += 1
        worst = max(worst, i - j + 1)
    if worst >= t.burst_size:
        out.append(Signal("burst", worst, f"{worst} interactions recorded within {t.burst_minutes} min"))
    same = Counter(x.summary_hash for x in xs)
    repeated = sum(n for n in same.values() if n >= 2)
    if same and max(same.values()) >= t.identical_summaries:
        out.append(Signal("identical_summaries", repeated, f"up to {max(same.values())} with the same summary"))
    night = sum(1 for x in xs if t.night_start_hour <= x.occurred_at.astimezone(CHINA).hour < t.night_end_hour)
    if night:
        out.append(Signal("implausible_hours", night, f"between {t.night_start_hour}:00 and {t.night_end_hour}:00"))
    youths, disputed = word.contacts, word.disputed
    unconfirmed = youths - word.confirmed - disputed
    if youths >= t.unconfirmed_min and unconfirmed / youths >= t.unconfirmed_share:
        out.append(Signal("never_confirmed", unconfirmed, f"{unconfirmed} of {youths} youth contacts unconfirmed"))
    if disputed >= t.disputed_min and youths and disputed / youths >= t.disputed_share:
        out.append(Signal("disputed", disputed, f"{disputed} of {youths} youth contacts disputed"))
    if failed_spot_checks:
        out.append(Signal("failed_spot_checks", failed_spot_checks, "spot checks found fabricated records"))
    return out
