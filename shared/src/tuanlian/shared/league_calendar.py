"""The League calendar (团务日历): periods, report deadlines and working days.

Shared by contacts (whether a work report came in on time) and notify (when to remind): both
read an org's ``ReportDeadlines`` the same way, here.

Working days come from ``chinese-calendar`` (maintained from the State Council's yearly holiday
notices, adjusted working days included); version 1.11 covers 2004 to 2026. A year it does not
cover raises :class:`CalendarNotCovered` rather than guessing.
"""

from __future__ import annotations

import calendar as _cal
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import NamedTuple
from zoneinfo import ZoneInfo

import chinese_calendar
from tuanlian.shared.contracts.contacts import OrgRules

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


def today() -> date:
    """Today in China: League days (due dates, the rules in force, "no activity in the future")
    are Beijing's; from 00:00 to 08:00 there UTC is still on the day before."""
    return datetime.now(SHANGHAI).date()


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


REPORT_NAMES = {
    "quarterly": ("第{n}季度“五个一”工作报告", "Q{n} five-ones report"),
    "half_year": ("{n}半年工作报告", "half-year report (H{n})"),
    "annual": ("年度工作报告", "annual report"),
}
_REPORT_KEY = re.compile(r"^(?P<year>\d{4})-(?:Q(?P<q>[1-4])|H(?P<h>[12])|(?P<annual>annual))$")


class ReportDue(NamedTuple):
    """One report upward an org's rules ask for (上报): its key (``2026-Q4``, ``2026-H2``,
    ``2026-annual``), due date and names."""

    key: str
    due: date
    name: str
    name_en: str


def _match(key: str) -> re.Match[str]:
    m = _REPORT_KEY.match(key)
    if m is None:
        raise ValueError(f"not a report key: {key!r} (2026-Q4, 2026-H2 or 2026-annual)")
    return m


def report_names(key: str) -> tuple[str, str]:
    """The report's name in Chinese and English (``2026-Q4`` → 第4季度“五个一”工作报告)."""
    m = _match(key)
    if m["q"]:
        zh, en = REPORT_NAMES["quarterly"]
        return zh.format(n=m["q"]), en.format(n=m["q"])
    if m["h"]:
        zh, en = REPORT_NAMES["half_year"]
        return zh.format(n="上" if m["h"] == "1" else "下"), en.format(n=m["h"])
    return REPORT_NAMES["annual"]


def report_keys(year: int) -> list[str]:
    """Every report key of ``year``, quarterly, half-yearly, annual."""
    return [f"{year}-Q{q}" for q in range(1, 5)] + [f"{year}-H1", f"{year}-H2", f"{year}-annual"]


def report_deadlines(rules: OrgRules, year: int) -> list[ReportDue]:
    """Every report ``rules`` ask for in ``year`` (CalendarNotCovered if one's date cannot be told)."""
    return [due for key in report_keys(year) if (due := report_owed(rules, key)) is not None]


def rules_day(year: int) -> date:
    """The day whose rules say which reports an org owes in ``year`` (and when): 1 January. A rule
    set adopted within the year changes the reports from the next year on."""
    return date(year, 1, 1)


def report_owed(rules: OrgRules, key: str) -> ReportDue | None:
    """The report ``key`` names, if ``rules`` (those in force on ``rules_day`` of its year) ask for
    it; None if they do not. Raises ValueError for a string that is no report key."""
    m, r = _match(key), rules.reports
    year = int(m["year"])
    due: date | None = None
    if m["q"]:
        if r.quarterly_five_ones_day:
            due = quarterly_report_due(year, int(m["q"]), r.quarterly_five_ones_day)
    elif m["h"]:
        if r.half_year:
            due = half_year_report_due(year, int(m["h"]))
    elif r.annual_after_national_day_working_days:
        due = annual_report_due(year, r.annual_after_national_day_working_days)
    return None if due is None else ReportDue(key, due, *report_names(key))


def report_period(key: str) -> Period:
    """The period a report key covers (the quarter, the half year, the year)."""
    m = _match(key)
    year = int(m["year"])
    if m["q"]:
        return period_of("quarter", date(year, int(m["q"]) * 3, 1))
    if m["h"]:
        return period_of("half_year", date(year, int(m["h"]) * 6, 1))
    return Period(key, date(year, 1, 1), date(year, 12, 31))
