"""满意度测评 ("背靠背"): the annual anonymous ballot of a branch's members on its secretary.

The aggregate holds only opening and closing; votes are never events. The tallies handed to
``close`` come from counters that no record ties to a voter (see adapters/ballots.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from tuanlian.shared.contracts.contacts import ServiceLimits
from tuanlian.shared.contracts.wishes import BallotClosed, BallotOpened
from tuanlian.shared.errors import IllegalTransition, RuleViolation
from tuanlian.wishes.domain.timed import TimedAggregate


class Choice(StrEnum):
    satisfied = "satisfied"  # 满意
    basically_satisfied = "basically_satisfied"  # 基本满意
    unsatisfied = "unsatisfied"  # 不满意


@dataclass(frozen=True)
class Tally:
    satisfied: int
    basically_satisfied: int
    unsatisfied: int

    @property
    def turnout(self) -> int:
        return self.satisfied + self.basically_satisfied + self.unsatisfied


class Ballot(TimedAggregate):
    stream_type = "ballot"
    label = "ballot"

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.state = "open"
        self.branch_org_id = ""
        self.org_path = ""
        self.secretary_cadre_id = ""
        self.year = 0
        self.eligible = 0
        self.closes_at = self.at

    @classmethod
    def open(cls, ballot_id: str, branch_org_id: str, org_path: str, secretary_cadre_id: str, year: int,
             eligible: int, closes_at: datetime, now: datetime) -> Ballot:
        if eligible < 1:
            raise RuleViolation("the branch has no members to vote", field="branch_org_id")
        if closes_at <= now:
            raise RuleViolation("the ballot must close in the future", field="closes_at")
        b = cls(ballot_id)
        b._emit(now, BallotOpened(
            ballot_id=ballot_id, branch_org_id=branch_org_id, org_path=org_path,
            secretary_cadre_id=secretary_cadre_id, year=year, eligible=eligible, closes_at=closes_at,
        ))
        return b

    def ensure_open(self, now: datetime) -> None:
        if self.state != "open" or now >= self.closes_at:
            raise IllegalTransition("the ballot is closed", current="closed")

    def close(self, tally: Tally, limits: ServiceLimits, now: datetime, early: bool = False) -> None:
        """Close by an admin (``early``) or at ``closes_at``; publish only above the minimum turnout."""
        if self.state != "open":
            raise IllegalTransition("the ballot is already closed", current=self.state)
        if not early and now < self.closes_at:
            raise IllegalTransition("the ballot is still open", current=self.state)
        published = tally.turnout >= limits.ballot_min_turnout * self.eligible
        self._emit(now, BallotClosed(
            ballot_id=self.id, branch_org_id=self.branch_org_id, org_path=self.org_path,
            secretary_cadre_id=self.secretary_cadre_id, year=self.year, eligible=self.eligible,
            turnout=tally.turnout, published=published,
            satisfied=tally.satisfied if published else None,
            basically_satisfied=tally.basically_satisfied if published else None,
            unsatisfied=tally.unsatisfied if published else None,
            reelection_flag=published and tally.unsatisfied * 2 > tally.turnout,
        ))

    def when_BallotOpened(self, e: BallotOpened) -> None:
        self.branch_org_id, self.org_path, self.secretary_cadre_id = e.branch_org_id, e.org_path, e.secretary_cadre_id
        self.year, self.eligible, self.closes_at = e.year, e.eligible, e.closes_at

    def when_BallotClosed(self, _e: BallotClosed) -> None:
        self.state = "closed"
