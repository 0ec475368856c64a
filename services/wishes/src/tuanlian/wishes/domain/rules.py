"""Org rules (实施细则) as wishes applies them: inherited down the tree, effective from a date.

An org without its own rule set uses its nearest ancestor's; before any rule set, the defaults.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime

from tuanlian.shared.contracts.contacts import FiveOnesPeriod, ServiceLimits


def ancestors(org_path: str) -> list[str]:
    """``/a/b/c`` → ``["/a", "/a/b", "/a/b/c"]`` (the org itself last)."""
    parts = [p for p in org_path.split("/") if p]
    return ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]


@dataclass(frozen=True)
class RuleSet:
    org_path: str
    effective_from: date
    limits: ServiceLimits


def limits_for(org_path: str, on: date, rule_sets: Iterable[RuleSet]) -> ServiceLimits:
    """The limits in force at ``org_path`` on ``on``: the nearest org with rules, its latest set."""
    chain = ancestors(org_path)
    depth = {p: i for i, p in enumerate(chain)}
    best: RuleSet | None = None
    for rs in rule_sets:
        if rs.org_path not in depth or rs.effective_from > on:
            continue
        if best is None or (depth[rs.org_path], rs.effective_from) > (depth[best.org_path], best.effective_from):
            best = rs
    return best.limits if best else ServiceLimits()


def rating_period(at: datetime, period: FiveOnesPeriod) -> str:
    """The rating period an instant falls in: ``2026-05`` / ``2026B3`` (two months) / ``2026Q2``."""
    if period is FiveOnesPeriod.month:
        return f"{at.year}-{at.month:02d}"
    if period is FiveOnesPeriod.two_months:
        return f"{at.year}B{(at.month - 1) // 2 + 1}"
    return f"{at.year}Q{(at.month - 1) // 3 + 1}"
