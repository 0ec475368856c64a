"""定期通报 and 年中、年底评估: which circulars and assessments an org's own rules call for by a day. Pure.

A plan is the org's own act: only the rules an org set itself count here, never inherited ones
(a 团市委's quarterly circular ranks its 市属团组织; the orgs below it do not each issue one).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, datetime, time, timedelta

from tuanlian.scoring.domain.periods import CHINA, Period, PeriodKind, period_of
from tuanlian.scoring.domain.scoring import RulesRecord
from tuanlian.shared.contracts.contacts import AssessmentPlan, CircularPlan, OrgRules

Plan = Callable[[OrgRules], CircularPlan | AssessmentPlan]
CIRCULARS: Plan = lambda rules: rules.circulars  # noqa: E731
ASSESSMENTS: Plan = lambda rules: rules.assessments  # noqa: E731
_KINDS = (PeriodKind.month, PeriodKind.quarter, PeriodKind.half_year, PeriodKind.year)


def plan_on(own: Sequence[RulesRecord], day: date, plan: Plan) -> CircularPlan | AssessmentPlan | None:
    """The plan of the org's own rules in force on ``day`` (None before it set any)."""
    started = [r for r in own if r.effective_from <= day]
    return plan(max(started, key=lambda r: r.effective_from).rules) if started else None


def periods_due(own: Sequence[RulesRecord], today: date, plan: Plan = CIRCULARS) -> list[Period]:
    """The closed periods ``plan`` calls for by ``today``: of each kind, the last two closed (a
    grace of up to 28 days can outlast the next month), where the plan in force on the period's
    last day names the kind and ``days_after_close`` full days have passed since."""
    due = []
    for kind in _KINDS:
        last = period_of(today, kind).previous()
        for period in (last.previous(), last):
            found = plan_on(own, period.end, plan)
            if found is not None and kind.value in found.periods and (today - period.end).days > found.days_after_close:
                due.append(period)
    return due


def closed_at(period: Period) -> datetime:
    """The instant the period closed: midnight after its last day, in China."""
    return datetime.combine(period.end + timedelta(days=1), time(0), tzinfo=CHINA)
