"""Tuanlian's default scoring rules (个人积分). These are Tuanlian's defaults, not an official table.

Pure functions of facts already known to the projection; every entry names the rule and the
rule-set version that produced it, so a ledger line can always be explained.
"""

from __future__ import annotations

from dataclasses import dataclass

from tuanlian.shared.contracts.contacts import CadreKind

RULESET_VERSION = "default-2026.1"


@dataclass(frozen=True)
class DefaultRules:
    link_accepted: int = 1
    interaction_online: int = 1
    interaction_offline: int = 3
    max_scoring_interactions_per_youth_per_day: int = 1
    max_scoring_interactions_per_youth_per_month: int = 4
    full_quota: int = 100  # 专职、挂职、领导机关兼职团干部 ≥100 (Meizhou 002)
    part_time_quota: int = 10  # 其他兼职团干部 ≥10

    def quota(self, kind: CadreKind | str | None, in_leadership_organ: bool) -> int:
        if kind in (CadreKind.full_time, CadreKind.seconded, "full_time", "seconded") or in_leadership_organ:
            return self.full_quota
        return self.part_time_quota

    def link_points(self, linked_before: int, quota: int) -> int:
        """+1 per accepted youth, none past the quota."""
        return self.link_accepted if linked_before < quota else 0

    def interaction_points(self, online: bool, same_day: int, same_month: int) -> int:
        """Points for one youth in one interaction, given how often the pair already scored."""
        if same_day >= self.max_scoring_interactions_per_youth_per_day:
            return 0
        if same_month >= self.max_scoring_interactions_per_youth_per_month:
            return 0
        return self.interaction_online if online else self.interaction_offline


RULES = DefaultRules()
