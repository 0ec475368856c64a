"""活跃度: a cadre's activity level, 0–100, generated from what the cadre did, not what they said.

Weights come from the rule set (Tuanlian's defaults: 40 contact share, 30 five-ones progress,
20 responsiveness, 10 online days).
"""

from __future__ import annotations

from dataclasses import dataclass

from tuanlian.scoring.domain.rules import ActivityLevelWeights


@dataclass(frozen=True)
class ActivityInputs:
    linked_youths: int
    youths_contacted_in_window: int
    five_ones_done: int
    five_ones_due: int
    voice_posts: int  # posts to the cadre that are due or answered
    voice_in_time: int
    wishes_due: int  # wishes raised to the cadre
    wishes_in_time: int  # fulfilled and confirmed
    online_days_in_window: int


def _share(part: int, whole: int) -> float:
    if whole <= 0:
        return 0.0
    return min(max(part, 0) / whole, 1.0)


def activity_level(w: ActivityLevelWeights, x: ActivityInputs) -> float:
    """0–100, rounded to one decimal. With nothing asked of the cadre, responsiveness is full."""
    contact = _share(x.youths_contacted_in_window, x.linked_youths)
    five = _share(x.five_ones_done, x.five_ones_due) if x.five_ones_due else 1.0
    asked = x.voice_posts + x.wishes_due
    responsive = _share(x.voice_in_time + x.wishes_in_time, asked) if asked else 1.0
    online = _share(x.online_days_in_window, w.window_days)
    level = (
        w.contact_share * contact
        + w.five_ones_progress * five
        + w.responsiveness * responsive
        + w.online_days * online
    )
    return round(level, 1)
