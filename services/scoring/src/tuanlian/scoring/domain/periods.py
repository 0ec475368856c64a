"""Periods of the League calendar (日、月、双月、季度、半年、年) and their arithmetic.

Every period is a closed range of dates in China time with a stable key ("2026-03-14", "2026-03",
"2026-B2", "2026-Q1", "2026-H1", "2026"), so projections can file points by period and
leaderboards can compare a period with the one before it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from enum import StrEnum
from zoneinfo import ZoneInfo

from tuanlian.shared.contracts.dates import EARLIEST, LATEST

CHINA = ZoneInfo("Asia/Shanghai")


class PeriodKind(StrEnum):
    day = "day"
    month = "month"
    two_months = "two_months"
    quarter = "quarter"
    half_year = "half_year"
    year = "year"


_MONTHS = {
    PeriodKind.month: 1,
    PeriodKind.two_months: 2,
    PeriodKind.quarter: 3,
    PeriodKind.half_year: 6,
    PeriodKind.year: 12,
}
_PREFIX = {PeriodKind.two_months: "B", PeriodKind.quarter: "Q", PeriodKind.half_year: "H"}


@dataclass(frozen=True, order=True)
class Period:
    start: date
    end: date  # inclusive
    kind: PeriodKind

    @property
    def key(self) -> str:
        k = self.kind
        if k is PeriodKind.day:
            return self.start.isoformat()
        if k is PeriodKind.month:
            return f"{self.start.year}-{self.start.month:02d}"
        if k is PeriodKind.year:
            return str(self.start.year)
        return f"{self.start.year}-{_PREFIX[k]}{(self.start.month - 1) // _MONTHS[k] + 1}"

    @property
    def name_zh(self) -> str:
        """As a League document names it: 2026年3月14日, 2026年3月, 2026年1–2月, 2026年第一季度,
        2026年上半年, 2026年."""
        y, m, k = self.start.year, self.start.month, self.kind
        if k is PeriodKind.day:
            return f"{y}年{m}月{self.start.day}日"
        if k is PeriodKind.month:
            return f"{y}年{m}月"
        if k is PeriodKind.two_months:
            return f"{y}年{m}–{self.end.month}月"
        if k is PeriodKind.quarter:
            return f"{y}年第{'一二三四'[(m - 1) // 3]}季度"
        if k is PeriodKind.half_year:
            return f"{y}年{'上' if m == 1 else '下'}半年"
        return f"{y}年"

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def contains(self, d: date) -> bool:
        return self.start <= d <= self.end

    def previous(self) -> Period:
        return period_of(self.start - timedelta(days=1), self.kind)

    def next(self) -> Period:
        return period_of(self.end + timedelta(days=1), self.kind)

    def elapsed_share(self, today: date) -> float:
        """How much of the period has passed by the end of ``today`` (0 before, 1 after)."""
        if today < self.start:
            return 0.0
        if today >= self.end:
            return 1.0
        return ((today - self.start).days + 1) / self.days


def _month_end(year: int, month: int) -> date:
    nxt = date(year + month // 12, month % 12 + 1, 1)
    return nxt - timedelta(days=1)


def period_of(d: date, kind: PeriodKind | str) -> Period:
    """The period of ``kind`` that contains day ``d``."""
    k = PeriodKind(kind)
    if k is PeriodKind.day:
        return Period(d, d, k)
    span = _MONTHS[k]
    first_month = (d.month - 1) // span * span + 1
    last_month = first_month + span - 1
    return Period(date(d.year, first_month, 1), _month_end(d.year, last_month), k)


def parse_period(kind: PeriodKind | str, key: str) -> Period:
    """The period a key names; ``ValueError`` with the expected shape when it does not parse."""
    k = PeriodKind(kind)
    try:
        if k is PeriodKind.day:
            p = period_of(date.fromisoformat(key), k)
        elif k is PeriodKind.year:
            p = period_of(date(int(key), 1, 1), k)
        elif k is PeriodKind.month:
            y, m = key.split("-")
            p = period_of(date(int(y), int(m), 1), k)
        else:
            y, rest = key.split("-")
            if rest[0] != _PREFIX[k]:
                raise ValueError(key)
            index = int(rest[1:])
            if not 1 <= index <= 12 // _MONTHS[k]:
                raise ValueError(key)
            p = period_of(date(int(y), (index - 1) * _MONTHS[k] + 1, 1), k)
    except (ValueError, IndexError) as exc:
        raise ValueError(f"{key!r} is not a {k.value} key (e.g. {period_of(date(2026, 4, 1), k).key})") from exc
    if p.key != key:
        raise ValueError(f"{key!r} is not a {k.value} key (e.g. {p.key})")
    if not (EARLIEST <= p.start and p.end <= LATEST):
        # The period before or after one of year 1 or 9999 does not exist (OverflowError).
        raise ValueError(f"{key!r} lies outside {EARLIEST.year}–{LATEST.year}")
    return p


_UTC8 = timezone(timedelta(hours=8))
_NO_DST_SINCE = datetime(1992, 1, 1, tzinfo=UTC)  # China has kept UTC+8 all year since 1991


@functools.lru_cache(maxsize=8192)  # a projector asks it of one event's instant two or three times
def china_day(at: datetime) -> date:
    """The calendar day in China an instant falls on (the League works on Beijing time)."""
    if at.tzinfo is not None and at >= _NO_DST_SINCE:
        return at.astimezone(_UTC8).date()  # a fixed offset: several times cheaper than the zone
    return at.astimezone(CHINA).date()


RANKING_KINDS = (PeriodKind.day, PeriodKind.month, PeriodKind.quarter, PeriodKind.year)
