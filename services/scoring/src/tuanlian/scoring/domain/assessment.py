"""年中/年终考核: a cadre passes when the period's compliance is met; a cadre who fails cannot be
nominated for excellence awards (不合格不能参评). Signals are shown, never decide."""

from __future__ import annotations

from dataclasses import dataclass

from tuanlian.scoring.domain.compliance import Compliance, Verdict, close_period
from tuanlian.scoring.domain.signals import Signal


@dataclass(frozen=True)
class Assessment:
    cadre_id: str
    passed: bool
    eligible_for_excellence: bool
    failed_checks: list[str]
    signals: list[Signal]


def assess(c: Compliance, signals: list[Signal]) -> Assessment:
    closed = close_period(c)
    failed = [k.name for k in closed.checks if k.verdict is Verdict.missed]
    passed = not failed
    return Assessment(c.cadre_id, passed, passed, failed, signals)
