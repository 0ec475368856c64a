"""How many points a fact earns (个人积分), as pure functions of the rule set and prior facts.

The projection reads what it needs (caps already used, a youth's earlier status), asks these
functions, and writes ledger entries; later facts (a confirmation, a dispute, a correction)
never rewrite an entry but add a compensating one worth the difference.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from tuanlian.scoring.domain.periods import Period, PeriodKind, period_of
from tuanlian.scoring.domain.rules import RuleSet
from tuanlian.shared.contracts.contacts import OrgRules


class Status(StrEnum):
    """The youth's word on an interaction (青年确认/异议)."""

    logged = "logged"
    confirmed = "confirmed"
    disputed = "disputed"


def link_points(rs: RuleSet, *, youth_scored_before: bool, linked_now: int, quota: int) -> int:
    """+1 per youth who accepted, each youth once, none past the quota (不能层层加码 of numbers)."""
    if youth_scored_before or linked_now > quota:
        return 0
    return rs.link_accepted


def interaction_base(rs: RuleSet, *, online: bool, used_today: int, used_month: int) -> int:
    """Points one youth earns in one interaction before the youth's word on it.

    At most ``max_per_youth_per_day`` scoring interactions per pair per day, and nothing beyond
    ``max_per_youth_per_month`` in the month: contacting the same few over and over earns nothing.
    """
    r = rs.interaction
    if used_today >= r.max_per_youth_per_day or used_month >= r.max_per_youth_per_month:
        return 0
    return r.online if online else r.offline


def interaction_value(rs: RuleSet, base: int, status: Status) -> int:
    """What the entry is worth once the youth has spoken: ×2 confirmed, 0 disputed."""
    if status is Status.confirmed:
        return base * rs.interaction.confirmed_multiplier
    if status is Status.disputed:
        return base * rs.interaction.disputed_multiplier
    return base


def compensation(target: int, credited: int) -> int:
    """The compensating entry that brings what was credited to what is due."""
    return target - credited


def five_ones_required(rules: OrgRules, collective: bool) -> frozenset[str]:
    """``OrgRules.five_ones_required`` as the ledger names kinds (000's five by default, 001's own)."""
    return frozenset(k.value for k in rules.five_ones_required(collective))


def five_ones_points(rs: RuleSet, kinds_before: Iterable[str], kind: str,
                     required: frozenset[str]) -> tuple[int, bool]:
    """(points for this activity, whether it completes all the ``required`` kinds in the period → bonus)."""
    if kind not in required:
        return 0, False
    before = set(kinds_before) & required
    completes = kind not in before and before | {kind} == required
    return rs.five_ones.activity, completes


def wish_points(rs: RuleSet, *, from_pool: bool, claimant_kind: str | None) -> tuple[int, str]:
    """Points and rule for a confirmed wish; a pool wish scores for a claiming cadre or org."""
    if from_pool:
        if claimant_kind in ("cadre", "org"):
            return rs.wish.pool_claimed_fulfilled, "wish_pool_claimed_fulfilled"
        return 0, "wish_pool_fulfilled_by_partner"
    return rs.wish.fulfilled_confirmed, "wish_fulfilled_confirmed"


def voice_points(rs: RuleSet, in_time: bool) -> tuple[int, str]:
    return (rs.voice.in_time, "voice_answered_in_time") if in_time else (rs.voice.late, "voice_answered_late")


def rating_points(rs: RuleSet, score: int) -> int:
    if score >= 4:
        return rs.rating.high
    if score <= 2:
        return rs.rating.low
    return 0


# --- the org's rules (实施细则) as they apply to a cadre -------------------------------------------


@dataclass(frozen=True)
class RulesRecord:
    """An ``OrgRulesSet`` as scoring keeps it."""

    org_path: str
    effective_from: date
    rules: OrgRules


def ancestors(org_path: str) -> list[str]:
    """The path itself and every ancestor path, nearest first ("/a/b/c" → /a/b/c, /a/b, /a)."""
    parts = [p for p in org_path.split("/") if p]
    return ["/" + "/".join(parts[:i]) for i in range(len(parts), 0, -1)]


def effective_rules(records: Sequence[RulesRecord], org_path: str | None, day: date) -> OrgRules:
    """The rules in force for an org on a day: the nearest org up the tree that set rules
    effective by then, its latest setting; the League's defaults when none did."""
    if org_path:
        for path in ancestors(org_path):
            mine = [r for r in records if r.org_path == path and r.effective_from <= day]
            if mine:
                return max(mine, key=lambda r: r.effective_from).rules
    return OrgRules()


def contact_quota(rules: OrgRules, cadre_kind: str | None, in_leadership_organ: bool) -> int:
    """联系青年数: 专职/挂职/领导机关兼职 ≥100 by default, other part-time cadres ≥10."""
    q = rules.contact_quotas
    if cadre_kind == "full_time":
        return q.full_time
    if cadre_kind == "seconded":
        return q.seconded
    return q.part_time_leadership if in_leadership_organ else q.part_time


def five_ones_rule_key(cadre_kind: str | None, collective: bool) -> str:
    return "leadership_organ" if collective else (cadre_kind or "part_time")


def five_ones_period(rules: OrgRules, key: str, day: date) -> tuple[Period, int]:
    """The five-ones period containing ``day`` for this kind of cadre, and how many are due in it."""
    rule = rules.five_ones.get(key) or rules.five_ones.get("part_time")
    if rule is None:
        return period_of(day, PeriodKind.quarter), 5
    return period_of(day, PeriodKind(rule.period.value)), rule.count
