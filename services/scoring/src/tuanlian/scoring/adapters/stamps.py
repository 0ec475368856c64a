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

The log has a row per live batch: millions a day at national scale. It is read as the sequences
advance (:meth:`Stamps.cover`), a page at a time, never whole.
"""

from __future__ import annotations

import bisect
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

_AFTER = timedelta(microseconds=1)
PAGE = 20_000  # log rows read at a time

Log = tuple[list[int], list[datetime | None]]


@dataclass
class LogSource:
    """Where a producer's log rows are read from: the rows its live durable had written when the
    round began (later ones cover events the round does not read)."""

    table: str  # "<version schema>.applied_log"
    consumer: str
    max_id: int
    logged: int  # the last row's sequence: what the live consumers had applied
    after_id: int = 0  # the last row read
    high: int = 0  # the highest sequence read
    done: bool = False

    def anew(self) -> LogSource:
        """The same rows, to be read again from the start."""
        return LogSource(self.table, self.consumer, self.max_id, self.logged)


@dataclass
class Stamps:
    """Stamps for the events of each producer, from the serving version's log and the circulars."""

    #: producer → the log rows read and not passed yet: through sequences, increasing; instants,
    #: None where stamped by the bus.
    applied: dict[str, Log] = field(default_factory=dict)
    #: producer → (positions, instants), both non-decreasing, one entry per circular.
    circulars: dict[str, tuple[list[int], list[datetime]]] = field(default_factory=dict)
    #: The instant for events past the log (the swap's); None: the bus's, after the circulars.
    beyond: datetime | None = None
    #: producer → where the rest of its log is (none: ``applied`` holds all of it).
    sources: dict[str, LogSource] = field(default_factory=dict)

    @classmethod
    async def load(cls, conn: Any, service_schema: str, version_schema: str, consumers: dict[str, str]) -> Stamps:
        """``consumers``: producer → the live durable that applies it (the log's and the
        circulars' key). Reads where each log ends and the circulars, not the log's rows."""
        sources = {}
        for producer, name in consumers.items():
            last = await conn.fetchrow(f"SELECT id, through_seq FROM {version_schema}.applied_log "
                                       "WHERE consumer = $1 ORDER BY id DESC LIMIT 1", name)
            if last is not None:
                sources[producer] = LogSource(f"{version_schema}.applied_log", name, last["id"], last["through_seq"])
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
        return cls({p: ([], []) for p in sources}, circulars, sources=sources)

    async def cover(self, conn: Any, producer: str, first: int, last: int, *, one_page: bool = False) -> None:
        """Hold the log rows that stamp ``first``..``last`` (and let go of those before): read
        on through ``conn`` until a row reaches ``last`` or the log as the round found it ends
        (with ``one_page``, until a page has added a row)."""
        log, source = self.applied.get(producer), self.sources.get(producer)
        if log is None or source is None:
            return
        throughs, instants = log
        passed = bisect.bisect_left(throughs, first)
        del throughs[:passed], instants[:passed]
        held = len(throughs)
        while not source.done and (not throughs or throughs[-1] < last) and not (one_page and len(throughs) > held):
            rows = await conn.fetch(
                f"SELECT id, through_seq, applied_at FROM {source.table} WHERE consumer = $1 AND id > $2 "
                "AND id <= $3 AND through_seq >= $4 ORDER BY id LIMIT $5",
                source.consumer, source.after_id, source.max_id, first, PAGE)
            for r in rows:
                # A batch of redeliveries only can end below the batch before: what was covered
                # stays covered by the row that covered it first.
                if r["through_seq"] > source.high:
                    source.high = r["through_seq"]
                    throughs.append(r["through_seq"])
                    instants.append(r["applied_at"])
            if rows:
                source.after_id = rows[-1]["id"]
            source.done = len(rows) < PAGE

    def reading_anew(self, producer: str) -> Stamps:
        """A producer's stamps with its log to be read again from the start (for
        :meth:`paged_entries`, beside a reader holding this one's rows)."""
        source = self.sources.get(producer)
        return Stamps({producer: ([], [])} if source else {}, beyond=self.beyond,
                      sources={producer: source.anew()} if source else {})

    async def paged_entries(self, conn: Any, producer: str, first: int, last: int
                            ) -> AsyncIterator[list[tuple[int, datetime | None]]]:
        """:meth:`entries` of ``first``..``last``, a page of log rows at a time."""
        lo = first
        while lo <= last:
            await self.cover(conn, producer, lo, last, one_page=True)
            throughs = self.applied.get(producer, ([], []))[0]
            source = self.sources.get(producer)
            more = source is not None and not source.done and bool(throughs) and throughs[-1] < last
            hi = throughs[-1] if more else last
            yield self.entries(producer, lo, hi)
            lo = hi + 1

    def knows(self, producer: str) -> bool:
        """Whether anything here can change a stamp of ``producer``'s (nothing to ask otherwise)."""
        return producer in self.applied or producer in self.circulars or self.beyond is not None

    def logged(self, producer: str) -> int:
        """The last sequence the log covers (0: none)."""
        source = self.sources.get(producer)
        if source is not None:
            return source.logged
        log = self.applied.get(producer)
        return log[0][-1] if log and log[0] else 0

    def stamp(self, producer: str, seq: int, at: datetime) -> datetime:
        """The instant for the event ``seq`` of ``producer``, which reached the bus at ``at``
        (its log rows held: :meth:`cover`)."""
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
        """The log rows that say of ``first``..``last`` what :meth:`stamp` said (their log rows
        held): the rows used, the last one cut at ``last``, and past the log one row with
        :attr:`beyond`."""
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
