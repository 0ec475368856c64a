"""联系面: how a cadre's list is spread, and youths contacted by many cadres of one org.

002 and 004 ask for youths of different fields, grades, political status and family situations,
and warn against contacting the same few people over and over.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping

DIMENSIONS = ("field", "grade", "political_status", "family_situation")
UNKNOWN = "unknown"


def spread(youths: Iterable[Mapping[str, object]]) -> dict[str, dict[str, int]]:
    """Counts per value of each dimension over the linked youths (missing values as ``unknown``)."""
    counters: dict[str, Counter[str]] = {d: Counter() for d in DIMENSIONS}
    for y in youths:
        for d in DIMENSIONS:
            counters[d][str(y.get(d) or UNKNOWN)] += 1
    return {d: dict(sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))) for d, c in counters.items()}


def crowded(cadres_per_youth: Mapping[str, int], threshold: int) -> list[dict[str, object]]:
    """Youths linked to at least ``threshold`` cadres of the same org (most-contacted first)."""
    hits = [(y, n) for y, n in cadres_per_youth.items() if n >= threshold]
    return [{"youth_id": y, "cadres_of_same_org": n} for y, n in sorted(hits, key=lambda h: (-h[1], h[0]))]
