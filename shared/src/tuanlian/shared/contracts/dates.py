"""Dates and instants people type (活动日期, 起止日期, 截止时间…), bounded to the years 1900–2099.

Python's dates run from year 1 to 9999 and Postgres's further, but asyncpg writes ``date.min``
and ``date.max`` as ``-infinity`` and ``infinity``, and a period key of a year with more or fewer
than four digits is no key. An activity dated 0001-01-01 was accepted, became a credit with no
period, and scoring's fold failed on it at every try, so no leaderboard moved again. Commands
take these types (a clear 422), and so do the events (a consumer refuses such an event as
unreadable instead of projecting it)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated

from pydantic import AfterValidator, Field

EARLIEST = date(1900, 1, 1)
LATEST = date(2099, 12, 31)


def _within(v: datetime) -> datetime:
    # The local date first: turning 0001-01-01T00:00+14:00 to UTC overflows.
    if not EARLIEST <= v.date() <= LATEST or (
        v.tzinfo is not None and not EARLIEST <= v.astimezone(UTC).date() <= LATEST
    ):
        raise ValueError(f"must lie between {EARLIEST} and {LATEST}")
    return v


CivilDate = Annotated[date, Field(ge=EARLIEST, le=LATEST)]
CivilDateTime = Annotated[datetime, AfterValidator(_within)]
