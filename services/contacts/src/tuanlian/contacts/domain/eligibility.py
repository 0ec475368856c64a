"""不合格不能参评 (000): a cadre whose latest assessment failed cannot be nominated for excellence
awards (最美青春故事). Pure: the caller reads the latest assessment scoring published."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from tuanlian.shared.errors import RuleViolation


@dataclass(frozen=True)
class LatestAssessment:
    assessment_id: str
    period_kind: str
    period_start: date
    period_end: date
    passed: bool
    eligible_for_excellence: bool

    @property
    def period(self) -> str:
        return f"{self.period_kind} {self.period_start.isoformat()}–{self.period_end.isoformat()}"


def is_newer(candidate: LatestAssessment, current: LatestAssessment | None) -> bool:
    """The latest assessment is the one of the latest period (a re-assessment of the same period wins)."""
    return current is None or candidate.period_end >= current.period_end


def ensure_may_be_nominated(cadre_id: str, latest: LatestAssessment | None) -> None:
    """No assessment yet: nothing stands in the way. The latest one ineligible: refused (422)."""
    if latest is None or latest.eligible_for_excellence:
        return
    outcome = "failed" if not latest.passed else "was found not eligible for excellence awards"
    raise RuleViolation(
        f"cadre {cadre_id} {outcome} in the assessment of {latest.period} and cannot be nominated (不合格不能参评)",
        field="cadre_id",
        assessment_id=latest.assessment_id,
        period_kind=latest.period_kind,
        period_start=latest.period_start.isoformat(),
        period_end=latest.period_end.isoformat(),
    )
