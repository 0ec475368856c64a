"""When the version a rebuild replaces had each event (应用时刻), so that the rebuilt version dates
its rows alike and answers "as of" any instant as the live one did.

A live batch stamps all of its rows with one instant and records it in ``applied_log`` beside the
last stream sequence it applied (migration 0009): a log row covers the events after the row before
it. A rebuild stamps an event with the instant of the first row at or past its sequence. An event
past the log (no consumer of that version had applied it when the rebuild read it) is stamped with
the instant it reached the bus; or, where a circular shows the live version did not have it by
then, just after that circular (each circular records the live consumers' positions); or, in the
swap, with the swap's instant (the old version never had it: the new one has it from then on).

The rebuild's own log says the same of every event it read (:meth:`Stamps.entries`, written into
the new version), so the rebuild after it stamps them alike again.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

_AFTER = timedelta(microseconds=1)

Log = tuple[list[int], list[datetime | None]]


@dataclass
class Stamps:
    """Stamps for the events of each producer, from the serving version's log and the circulars."""

    #: producer → (through sequences, non-decreasing; instants, None where stamped by the bus).
    applied: dict[str, Log] = field(default_factory=dict)
    #: producer → (positions, instants), both non-decreasing, one entry per circular.
    circulars: dict[str, tuple[list[int], list[datetime]]] = field(default_factory=dict)
    #: The instant for events past the log (the swap's); None: the bus's, after the circulars.
    beyond: datetime | None = None

    @classmethod
    async def load(cls, conn: Any, service_schema: str, version_schema: str,
                   consumers: dict[str, str]) -> Stamps:
        """``consumers``: producer → the live durable that applies it (the log's and the
        circulars' key)."""
        applied: dict[str, Log] = {}
        for r in await conn.fetch(f"SELECT consumer, through_seq, applied_at FROM {version_schema}.applied_log "
                                  "WHERE consumer = ANY($1::text[]) ORDER BY id", list(consumers.values())):
            throughs, instants = applied.setdefault(r["consumer"], ([], []))
            # A batch of redeliveries only can end below the batch before: what was covered stays
            # covered (the sequences stay sorted for the bisection).
            throughs.append(max(r["through_seq"], throughs[-1] if throughs else 0))
            instants.append(r["applied_at"])
        rows = await conn.fetch(f"SELECT as_of, positions FROM {service_schema}.circulars ORDER BY as_of")
        circulars: dict[str, tuple[list[int], list[datetime]]] = {}
        for producer, name in consumers.items():
            seen, positions, at = 0, [], []
            for r in rows:
                # A position lower than an earlier circular's (a consumer reset by hand) counts
                # as the earlier one: what was seen once stays seen.
                seen = max(seen, int((r["positions"] or {}).get(name, 0)))
                positions.append(seen)
                at.append(r["as_of"])
            if positions:
                circulars[producer] = (positions, at)
        return cls({p: applied[name] for p, name in consumers.items() if name in applied}, circulars)

    def knows(self, producer: str) -> bool:
        """Whether anything here can change a stamp of ``producer``'s (nothing to ask otherwise)."""
        return producer in self.applied or producer in self.circulars or self.beyond is not None

    def logged(self, producer: str) -> int:
        """The last sequence the log covers (0: none)."""
        log = self.applied.get(producer)
        return log[0][-1] if log else 0

    def stamp(self, producer: str, seq: int, at: datetime) -> datetime:
        """The instant for the event ``seq`` of ``producer``, which reached the bus at ``at``."""
        log = self.applied.get(producer)
        if log is not None:
            i = bisect.bisect_left(log[0], seq)
            if i < len(log[0]):
                logged = log[1][i]
                return logged if logged is not None else self._after_circulars(producer, seq, at)
        if self.beyond is not None:
            return self.beyond
        return self._after_circulars(producer, seq, at)

    def _after_circulars(self, producer: str, seq: int, at: datetime) -> datetime:
        mark = self.circulars.get(producer)
        if mark is None:
            return at
        positions, instants = mark
        i = bisect.bisect_left(positions, seq) - 1  # the latest circular whose position is before it
        if i >= 0 and instants[i] >= at:
            return instants[i] + _AFTER
        return at

    def entries(self, producer: str, first: int, last: int) -> list[tuple[int, datetime | None]]:
        """The log rows that say of ``first``..``last`` what :meth:`stamp` said: the rows used, the
        last one cut at ``last``, and past the log one row with :attr:`beyond`."""
        if last < first:
            return []
        throughs, instants = self.applied.get(producer, ([], []))
        out: list[tuple[int, datetime | None]] = []
        i = bisect.bisect_left(throughs, first)
        while i < len(throughs) and throughs[i] < last:
            out.append((throughs[i], instants[i]))
            i += 1
        out.append((last, instants[i] if i < len(throughs) else self.beyond))
        return out
