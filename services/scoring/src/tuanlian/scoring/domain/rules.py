"""Scoring rule sets as versioned data (积分规则). Tuanlian's defaults are not an official table.

A rule set is a YAML document validated here; each has a version name. An org chooses one in its
rules (``OrgRules.scoring_ruleset``) from an effective date; a ledger entry keeps the version that
earned it, and recomputing under another version is an explicit rebuild, never a rewrite.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

DEFAULT_RULESET = "default-2026.1"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class InteractionRules(_Frozen):
    """联系记录: points per youth per interaction and the caps against padding."""

    online: int = 1
    offline: int = 3
    confirmed_multiplier: Annotated[int, Field(ge=0)] = 2
    disputed_multiplier: Annotated[int, Field(ge=0)] = 0
    max_per_youth_per_day: Annotated[int, Field(ge=0)] = 1
    max_per_youth_per_month: Annotated[int, Field(ge=0)] = 4


class FiveOnesRules(_Frozen):
    """五个一: each activity, and a bonus for all five kinds within one period."""

    activity: int = 5
    all_kinds_bonus: int = 5


class WishRules(_Frozen):
    """微心愿: confirmed by the youth; a pool wish claimed and fulfilled (心愿池)."""

    fulfilled_confirmed: int = 5
    pool_claimed_fulfilled: int = 8


class VoiceRules(_Frozen):
    """青年之声: answered within the org's limit, or late."""

    in_time: int = 2
    late: int = 1


class RatingRules(_Frozen):
    high: int = 1
    low: int = -1


class SpotCheckRules(_Frozen):
    """真实度抽查: a fabricated record costs points and raises a flag."""

    fabricated: int = -20


class ActivityLevelWeights(_Frozen):
    """活跃度 weights (they sum to 100) and the look-back window."""

    contact_share: int = 40
    five_ones_progress: int = 30
    responsiveness: int = 20
    online_days: int = 10
    window_days: Annotated[int, Field(ge=1)] = 30

    @model_validator(mode="after")
    def _sum_to_100(self) -> ActivityLevelWeights:
        total = self.contact_share + self.five_ones_progress + self.responsiveness + self.online_days
        if total != 100:
            raise ValueError(f"activity level weights must sum to 100, not {total}")
        return self


class RuleSet(_Frozen):
    """One versioned scoring rule set."""

    version: str = Field(min_length=1, pattern=r"^[A-Za-z0-9._-]+$")
    link_accepted: int = 1
    interaction: InteractionRules = InteractionRules()
    five_ones: FiveOnesRules = FiveOnesRules()
    wish: WishRules = WishRules()
    voice: VoiceRules = VoiceRules()
    rating: RatingRules = RatingRules()
    spot_check: SpotCheckRules = SpotCheckRules()
    activity_level: ActivityLevelWeights = ActivityLevelWeights()

    @classmethod
    def from_yaml(cls, text: str) -> RuleSet:
        return cls.model_validate(yaml.safe_load(text))


class UnknownRuleSet(LookupError):
    pass


@cache
def _bundled() -> dict[str, RuleSet]:
    out: dict[str, RuleSet] = {}
    for entry in files("tuanlian.scoring.domain.rulesets").iterdir():
        if entry.name.endswith((".yaml", ".yml")):
            rs = RuleSet.from_yaml(entry.read_text(encoding="utf-8"))
            out[rs.version] = rs
    return out


_extra: dict[str, RuleSet] = {}


def register_ruleset(rs: RuleSet) -> None:
    """Make a rule set known to this process (tests, or a deployment's own directory)."""
    known = _bundled().get(rs.version) or _extra.get(rs.version)
    if known is not None and known != rs:
        raise ValueError(f"rule set {rs.version} already exists with other numbers: give it a new version")
    _extra[rs.version] = rs


def load_directory(path: Path) -> None:
    for p in sorted(path.glob("*.y*ml")):
        register_ruleset(RuleSet.from_yaml(p.read_text(encoding="utf-8")))


def ruleset(version: str | None) -> RuleSet:
    """The rule set of that version; an org naming an unknown one scores by the default."""
    name = version or DEFAULT_RULESET
    found = _extra.get(name) or _bundled().get(name)
    if found is None:
        raise UnknownRuleSet(f"no scoring rule set {name!r}")
    return found


def known_rulesets() -> list[str]:
    return sorted({*_bundled(), *_extra})
