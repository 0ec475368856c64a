"""Ranking with ties (排名): competition ranking, "1, 2, 2, 4", and rank change."""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from tuanlian.shared.contracts.contacts import OrgType

K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True)
class Ranked(Generic[K]):
    key: K
    score: float
    rank: int


def points_per_cadre(points: int, cadres: int) -> float:
    """What organisations are ranked by (人均积分), in the daily ranking and in circulars alike."""
    return round(points / cadres, 2) if cadres else 0.0


def rank(scores: Sequence[tuple[K, float]], *, offset_rank: int = 1, ahead: int = 0) -> list[Ranked[K]]:
    """Rank by score, highest first; equal scores share a rank and the next rank skips.

    Ties are ordered by key so the listing is stable. ``ahead`` (rows with a strictly higher
    score that are not in ``scores``) lets a page of a longer list carry its true ranks.
    """
    ordered = sorted(scores, key=lambda s: (-s[1], str(s[0])))
    out: list[Ranked[K]] = []
    for i, (key, score) in enumerate(ordered):
        if i and score == ordered[i - 1][1]:
            r = out[-1].rank
        else:
            r = offset_rank + ahead + i
        out.append(Ranked(key, score, r))
    return out


def rank_change(current: int | None, previous: int | None) -> int | None:
    """Places gained since the previous ranking (positive = moved up); None when new."""
    if current is None or previous is None:
        return None
    return previous - current


def peer_level(children: Iterable[Mapping[str, Any]]) -> OrgType | None:
    """The level an org's ranking of organisations compares when none is named (同级比较): the
    one most of its open direct sub-organisations have (a 团市委's 区县团委, say, beside one
    高校团委), the higher level on a tie; None when it has no open sub-organisation."""
    levels = Counter(OrgType(c["org_type"]) for c in children if not c.get("closed") and c.get("org_type"))
    if not levels:
        return None
    order = list(OrgType)
    return max(levels, key=lambda t: (levels[t], -order.index(t)))
