"""Rule sets (实施细则) and the "no escalation down the tree" check (不能层层加码, 000).

Pure. A lower organisation inherits its parent's rules and may keep or relax them: quotas and
five-ones counts not higher, five-ones periods not shorter, rhythm not tighter. The effective
rules of an org on a date are its own rule set of that date clamped by its parent's effective
rules, so a parent that relaxes later relaxes its whole subtree without rewriting anyone's history.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from tuanlian.shared.contracts.contacts import (
    AssessmentPlan,
    CircularPlan,
    FiveOnesPeriod,
    FiveOnesRule,
    OrgRules,
)

# Longer period = fewer activities per month = more relaxed.
PERIOD_MONTHS = {FiveOnesPeriod.month: 1, FiveOnesPeriod.two_months: 2, FiveOnesPeriod.quarter: 3}
_QUOTA_GROUPS = ("contact_quotas", "group_coverage_school", "group_coverage_department")


@dataclass(frozen=True)
class RuleVersion:
    """One rule set an org adopted, from ``effective_from`` on."""

    effective_from: date
    rules: OrgRules
    preset: str | None = None


@dataclass(frozen=True)
class Escalation:
    """One place where a lower org asked more than its parent allows."""

    field: str
    value: object
    limit: object

    def describe(self) -> str:
        return f"{self.field} = {self.value} exceeds the parent's limit {self.limit}"


# 002's duties of a county committee that are on or off ("4+1", "8+4"); the open day's number is
# a quota like the others.
_DUTY_FLAGS = ("grassroots_day_each_week", "postings_each_year")


def escalations(child: OrgRules, parent: OrgRules) -> list[Escalation]:
    """Every rule in ``child`` stricter than in ``parent`` (empty when the child keeps or relaxes)."""
    found: list[Escalation] = []
    for group in _QUOTA_GROUPS:
        mine, theirs = getattr(child, group), getattr(parent, group)
        for name in type(mine).model_fields:
            if getattr(mine, name) > getattr(theirs, name):
                found.append(Escalation(f"{group}.{name}", getattr(mine, name), getattr(theirs, name)))
    for key, rule in sorted(child.five_ones.items()):
        limit = parent.five_ones.get(key)
        if limit is None:
            if rule.count > 0:
                found.append(Escalation(f"five_ones.{key}", _fmt(rule), "no requirement"))
            continue
        if rule.count > limit.count:
            found.append(Escalation(f"five_ones.{key}.count", rule.count, limit.count))
        if rule.count > 0 and PERIOD_MONTHS[rule.period] < PERIOD_MONTHS[limit.period]:
            found.append(Escalation(f"five_ones.{key}.period", rule.period.value, limit.period.value))
    r, p = child.rhythm, parent.rhythm
    if r.online_silence_days < p.online_silence_days:
        found.append(Escalation("rhythm.online_silence_days", r.online_silence_days, p.online_silence_days))
    for flag in ("activity_each_quarter", "face_to_face_each_year"):
        if getattr(r, flag) and not getattr(p, flag):
            found.append(Escalation(f"rhythm.{flag}", True, False))
    d, pd = child.organ_duties, parent.organ_duties
    for flag in _DUTY_FLAGS:
        if getattr(d, flag) and not getattr(pd, flag):
            found.append(Escalation(f"organ_duties.{flag}", True, False))
    if d.open_day_youths_each_quarter > pd.open_day_youths_each_quarter:
        found.append(Escalation("organ_duties.open_day_youths_each_quarter", d.open_day_youths_each_quarter,
                                pd.open_day_youths_each_quarter))
    return found


def clamp(child: OrgRules, parent: OrgRules) -> OrgRules:
    """``child`` with every escalation cut back to the parent's limit."""
    update: dict[str, object] = {}
    for group in _QUOTA_GROUPS:
        mine, theirs = getattr(child, group), getattr(parent, group)
        update[group] = mine.model_copy(
            update={n: min(getattr(mine, n), getattr(theirs, n)) for n in type(mine).model_fields}
        )
    five: dict[str, FiveOnesRule] = {}
    for key, rule in child.five_ones.items():
        limit = parent.five_ones.get(key)
        if limit is None:
            continue
        period = max(rule.period, limit.period, key=PERIOD_MONTHS.__getitem__)
        five[key] = FiveOnesRule(count=min(rule.count, limit.count), period=period)
    update["five_ones"] = five
    r, p = child.rhythm, parent.rhythm
    update["rhythm"] = r.model_copy(
        update={
            "online_silence_days": max(r.online_silence_days, p.online_silence_days),
            "activity_each_quarter": r.activity_each_quarter and p.activity_each_quarter,
            "face_to_face_each_year": r.face_to_face_each_year and p.face_to_face_each_year,
        }
    )
    d, pd = child.organ_duties, parent.organ_duties
    update["organ_duties"] = d.model_copy(
        update={**{flag: getattr(d, flag) and getattr(pd, flag) for flag in _DUTY_FLAGS},
                "open_day_youths_each_quarter": min(d.open_day_youths_each_quarter, pd.open_day_youths_each_quarter)}
    )
    return child.model_copy(update=update)


def own_rules_at(history: Sequence[RuleVersion], on: date) -> RuleVersion | None:
    """The org's own rule set in force on ``on`` (the latest that had started)."""
    current = None
    for version in sorted(history, key=lambda v: v.effective_from):
        if version.effective_from <= on:
            current = version
    return current


def effective_rules(chain: Sequence[Sequence[RuleVersion]], on: date) -> tuple[OrgRules, int | None]:
    """Rules in force on ``on`` for the last org of ``chain`` (root first, each org's own history).

    Returns the rules and the index in ``chain`` of the org whose own rule set is the base
    (``None``: nobody set any, the national defaults apply). Circular and assessment plans are
    not inherited: circulating or assessing a subtree is the act of the org that set them (a
    团市委's quarterly circular ranks its 市属团组织; they do not each issue one).
    """
    rules, source = OrgRules(), None
    for index, history in enumerate(chain):
        own = own_rules_at(history, on)
        if own is not None:
            rules = own.rules if source is None else clamp(own.rules, rules)
            source = index
    if source is not None and source != len(chain) - 1:
        rules = rules.model_copy(update={"circulars": CircularPlan(), "assessments": AssessmentPlan()})
    return rules, source


def _fmt(rule: FiveOnesRule) -> str:
    return f"{rule.count} per {rule.period.value}"
