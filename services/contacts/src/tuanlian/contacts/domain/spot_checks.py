"""真实度抽查: an administrator draws a random sample of a cadre's records and phones the youths.

The sample comes from a caller-supplied random source (``secrets.SystemRandom`` in service) so a
cadre cannot predict which records will be checked. A ``fabricated`` outcome is what scoring
penalises; ``unreachable`` may be followed by a real outcome on a later call, nothing else changes.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from tuanlian.shared.aggregate import Aggregate
from tuanlian.shared.contracts.contacts import (
    SpotCheckContactsRevealed,
    SpotCheckDrawn,
    SpotCheckItemRecorded,
    SpotCheckOutcome,
)
from tuanlian.shared.errors import IllegalTransition, RuleViolation

if TYPE_CHECKING:
    from tuanlian.contacts.domain.model import Cadre

MAX_SAMPLE = 50


class SpotCheck(Aggregate):
    """真实度抽查."""

    stream_type = "spot_check"
    label = "spot check"

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.cadre_id = ""
        self.org_path = ""
        self.items: list[str] = []
        self.outcomes: dict[str, SpotCheckOutcome] = {}

    @classmethod
    def draw(
        cls, spot_check_id: str, cadre: Cadre, population: list[str], size: int, rng: random.Random
    ) -> SpotCheck:
        if not 1 <= size <= MAX_SAMPLE:
            raise RuleViolation(f"draw between 1 and {MAX_SAMPLE} records", field="size")
        if not population:
            raise RuleViolation("the cadre has no interactions or activities in this period", field="period")
        items = rng.sample(sorted(population), min(size, len(population)))
        check = cls(spot_check_id)
        check._record(
            SpotCheckDrawn(
                spot_check_id=spot_check_id, cadre_id=cadre.id, org_path=cadre.org_path, items=items
            )
        )
        return check

    def reveal(self, youth_ids: list[str], revealed_to: str) -> None:
        """Audit that the phones were shown (the numbers themselves are never in an event)."""
        self._record(
            SpotCheckContactsRevealed(
                spot_check_id=self.id,
                cadre_id=self.cadre_id,
                org_path=self.org_path,
                youth_ids=sorted(set(youth_ids)),
                revealed_to=revealed_to,
            )
        )

    def record(self, item: str, outcome: SpotCheckOutcome) -> None:
        if item not in self.items:
            raise RuleViolation(f"{item} is not in this sample", field="item")
        current = self.outcomes.get(item)
        if current is not None and current is not SpotCheckOutcome.unreachable:
            raise IllegalTransition(f"{item} was already recorded as {current.value}", current=current.value)
        self._record(
            SpotCheckItemRecorded(
                spot_check_id=self.id,
                cadre_id=self.cadre_id,
                org_path=self.org_path,
                item=item,
                outcome=outcome,
            )
        )

    def when_SpotCheckDrawn(self, e: SpotCheckDrawn) -> None:
        self.cadre_id, self.org_path, self.items = e.cadre_id, e.org_path, e.items

    def when_SpotCheckItemRecorded(self, e: SpotCheckItemRecorded) -> None:
        self.outcomes[e.item] = e.outcome
