"""Event contracts published by the scoring service on the ``SCORING`` stream: circulars
(月度/季度通报) and assessment results. Numbers are in the documents scoring serves; the events say
that they exist, where, and at which source positions they were computed."""

from __future__ import annotations

from datetime import date
from enum import StrEnum

from tuanlian.shared.events import ContractRegistry, DomainEvent

SCORING = ContractRegistry("scoring")


class PeriodKind(StrEnum):
    day = "day"
    month = "month"
    quarter = "quarter"
    half_year = "half_year"
    year = "year"


@SCORING.register
class CircularPublished(DomainEvent):
    """A numbered, immutable circular for an org subtree; notify fans it out to the subtree."""

    event_type = "CircularPublished"
    stream_type = "circular"
    circular_id: str
    number: str  # e.g. "2026-Q3-007"
    org_id: str
    org_path: str
    period_kind: PeriodKind
    period_start: date
    period_end: date
    title: str
    positions: dict[str, int]  # source stream → last global position included


@SCORING.register
class AssessmentCompleted(DomainEvent):
    """Mid-year or year-end assessment of a cadre (年中/年终考核); failing → not eligible for awards."""

    event_type = "AssessmentCompleted"
    stream_type = "assessment"
    assessment_id: str
    cadre_id: str
    org_path: str
    period_kind: PeriodKind
    period_start: date
    period_end: date
    passed: bool
    eligible_for_excellence: bool
