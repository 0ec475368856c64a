"""Compliance of a cadre with the org's rules for a period (达标): met / at risk / missed.

Each check carries its numbers. "At risk" means the period is still open and the cadre is behind
the pro-rata pace; "missed" that the period is over (or the cadre is out of time) and it is not met.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from enum import StrEnum

from tuanlian.scoring.domain.periods import Period


class Verdict(StrEnum):
    met = "met"
    at_risk = "at_risk"
    missed = "missed"


@dataclass(frozen=True)
class Check:
    name: str
    verdict: Verdict
    actual: float
    required: float
    detail: str = ""
    # The last day of the window the check measures, when that is not the period judged: the
    # five ones' two months, the quarter of "an activity each quarter", the year of "face to face
    # each year". One still open when the period closes is not missed by the close.
    window_end: date | None = None


def progress_check(name: str, actual: float, required: float, period: Period, today: date) -> Check:
    if actual >= required:
        return Check(name, Verdict.met, actual, required, window_end=period.end)
    share = period.elapsed_share(today)
    if share >= 1.0:
        return Check(name, Verdict.missed, actual, required, window_end=period.end)
    # Behind pace but with time left is a risk, not yet a miss.
    return Check(name, Verdict.at_risk, actual, required, f"{share:.0%} of {period.key} elapsed", period.end)


def state_check(name: str, actual: float, required: float) -> Check:
    """A standing requirement (youths linked, groups covered): met or at risk until the period closes."""
    return Check(name, Verdict.met if actual >= required else Verdict.at_risk, actual, required)


def silence_check(days_since_online: int | None, allowed: int) -> Check:
    """日常有声音: an online contact at least every ``allowed`` days."""
    if days_since_online is None:
        return Check("online_presence", Verdict.missed, 0, allowed, "no online contact yet")
    if days_since_online <= allowed // 2:
        v = Verdict.met
    elif days_since_online <= allowed:
        v = Verdict.at_risk
    else:
        v = Verdict.missed
    return Check("online_presence", v, days_since_online, allowed, "days since the last online contact")


def weekly_check(name: str, weeks_done: set[date], period: Period, at: date) -> Check:
    """Something due every week (the "4+1" grassroots day): each week (Monday to Sunday) that
    began in the period and has ended by ``at`` needs one; ``weeks_done`` are the Mondays of
    the weeks that had it. A week gone by without it cannot be made up: missed. The week under
    way is not due yet."""
    first = period.start + timedelta(days=(7 - period.start.weekday()) % 7)
    due = [first + timedelta(weeks=i) for i in range(((at - first).days + 1) // 7)] if first <= at else []
    done = sum(1 for monday in due if monday in weeks_done)
    verdict = Verdict.met if done == len(due) else Verdict.missed
    return Check(name, verdict, done, len(due), "weeks with one, of the weeks ended")


@dataclass(frozen=True)
class Compliance:
    cadre_id: str
    period: Period
    checks: list[Check] = field(default_factory=list)

    @property
    def verdict(self) -> Verdict:
        verdicts = {c.verdict for c in self.checks}
        if Verdict.missed in verdicts:
            return Verdict.missed
        if Verdict.at_risk in verdicts:
            return Verdict.at_risk
        return Verdict.met


def close_period(c: Compliance) -> Compliance:
    """At the period's close an unmet check is missed, unless the window it measures is still
    open then: at mid-year, "face to face each year" not yet done is at risk, not failed."""
    checks = [
        replace(k, verdict=Verdict.missed)
        if k.verdict is Verdict.at_risk and (k.window_end is None or k.window_end <= c.period.end) else k
        for k in c.checks
    ]
    return Compliance(c.cadre_id, c.period, checks)
