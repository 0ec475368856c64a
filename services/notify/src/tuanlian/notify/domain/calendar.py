"""The League calendar (团务日历): periods, report deadlines and working days.

Working days come from ``chinese-calendar`` (maintained from the State Council's yearly holiday
notices, adjusted working days included); version 1.11 covers 2004 to 2026. A year it does not
cover raises :class:`CalendarNotCovered` rather than guessing.
"""

from __future__ import annotations

import calendar as _cal
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import chinese_calendar

SHANGHAI = ZoneInfo("Asia/Shanghai")


class CalendarNotCovered(LookupError):
    """The holiday calendar does not know this year yet (法定节假日安排未收录)."""


@dataclass(frozen=True)
class Period:
    """A reporting or activity period (考核周期), both ends inclusive."""

    label: str
    start: date
    end: date


def local_at(day: date, at: time = time(9, 0)) -> datetime:
    """``day`` at ``at`` Beijing time, as an aware datetime."""
    return datetime.combine(day, at, tzinfo=SHANGHAI)


def local_date(moment: datetime) -> date:
    return moment.astimezone(SHANGHAI).date()


def _month_end(year: int, month: int) -> date:
    return date(year, month, _cal.monthrange(year, month)[1])


def period_of(kind: str, day: date) -> Period:
    """The calendar-aligned period of ``kind`` (month / two_months / quarter / half_year) holding ``day``."""
    span = {"month": 1, "two_months": 2, "quarter": 3, "half_year": 6}[kind]
    first_month = (day.month - 1) // span * span + 1
    last_month = first_month + span - 1
    index = (day.month - 1) // span + 1
    label = {
        "month": f"{day.year}-{day.month:02d}",
        "two_months": f"{day.year}-B{index}",
        "quarter": f"{day.year}-Q{index}",
        "half_year": f"{day.year}-H{index}",
    }[kind]
    return Period(label, date(day.year, first_month, 1), _month_end(day.year, last_month))


def periods_between(kind: str, first: date, last: date) -> list[Period]:
    """Every period of ``kind`` touching ``[first, last]``, in order."""
    out: list[Period] = []
    day = first
    while day <= last:
        p = period_of(kind, day)
        out.append(p)
        day = p.end + timedelta(days=1)
    return out


def national_day_holiday_end(year: int) -> date:
    """Last day of the National Day holiday (国庆节假期) of ``year``."""
    day = date(year, 10, 1)
    try:
        if chinese_calendar.get_holiday_detail(day)[1] != chinese_calendar.Holiday.national_day.value:
            raise CalendarNotCovered(f"no National Day holiday recorded for {year}")
        while True:
            nxt = day + timedelta(days=1)
            on_holiday, _name = chinese_calendar.get_holiday_detail(nxt)
            # The holiday may merge with Mid-Autumn (2023, 2025): any holiday run continues it.
            if not on_holiday or chinese_calendar.is_workday(nxt):
                return day
            day = nxt
    except NotImplementedError as exc:
        raise CalendarNotCovered(f"chinese-calendar has no holiday data for {year}") from exc


def working_days_after(day: date, n: int) -> date:
    """The ``n``-th working day after ``day`` (adjusted working weekends count, holidays do not)."""
    found = 0
    current = day
    try:
        while found < n:
            current += timedelta(days=1)
            if chinese_calendar.is_workday(current):
                found += 1
    except NotImplementedError as exc:
        raise CalendarNotCovered(f"chinese-calendar has no data for {current}") from exc
    return current


def annual_report_due(year: int, working_days: int) -> date:
    """004: the annual report is due ``working_days`` working days after the National Day holiday."""
    return working_days_after(national_day_holiday_end(year), working_days)


def quarterly_report_due(year: int, quarter: int, day_of_month: int) -> date:
    """000: five-ones report mid-month in the last month of each quarter."""
    return date(year, quarter * 3, day_of_month)


def half_year_report_due(year: int, half: int) -> date:
    """002: half-year report, due on the last day of June and of December."""
    return _month_end(year, 6 if half == 1 else 12)


def month_day(year: int, mm_dd: str) -> date:
    month, day = (int(x) for x in mm_dd.split("-"))
    return date(year, month, day)
