"""The projection's working state: rows kept in memory across a batch, written once per table.

Handlers read rows through :class:`State` (a miss reads Postgres once) and change them in
memory; before the batch's transaction commits, every changed row is upserted and every
appended ledger entry or fact is copied in, a few statements per batch instead of several per
event. Across batches the memory stays valid only while this consumer is the only writer: each
batch stamps a generation in ``projector_gen`` and a batch that finds another stamp (a rolled
back batch, another replica) starts from Postgres again. A rebuild owns its fresh schema, so its
state is authoritative: a miss means "no such row" and Postgres is never read.
"""

from __future__ import annotations

import asyncio
import functools
import random
import weakref
from collections import defaultdict
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from operator import itemgetter
from typing import Any
from uuid import UUID

import asyncpg
import orjson
from tuanlian.scoring.adapters.folding import BOARD_COLUMNS, fold, fold_in_memory
from tuanlian.scoring.adapters.orgtree import OrgTreeIndex
from tuanlian.shared.consumer import ProjectionTx


@dataclass(frozen=True)
class TableSpec:
    name: str
    key: tuple[str, ...]
    columns: tuple[str, ...]  # key columns first
    #: jsonb columns: their documents are serialised when a batch's writes are taken from memory,
    #: before a batch applied ahead can change them (``_upsert`` checks this against the catalogue).
    json: tuple[str, ...] = ()

    @functools.cached_property
    def key_of(self) -> Callable[[Row], tuple[Any, ...]]:
        """A row's key, as the rows in memory are keyed (a tuple even for one column)."""
        if len(self.key) > 1:
            return itemgetter(*self.key)
        column = self.key[0]
        return lambda row: (row[column],)

    @functools.cached_property
    def pathed(self) -> bool:
        """Whether rows have an org path (an org move rewrites them)."""
        return "org_path" in self.columns

    @functools.cached_property
    def values_of(self) -> Callable[[Row], tuple[Any, ...]]:
        """A row's values in ``columns`` order (every table has two columns or more)."""
        return itemgetter(*self.columns)

    def select(self, schema: str) -> str:
        where = " AND ".join(f"{c} = ${i}" for i, c in enumerate(self.key, start=1))
        return f"SELECT {', '.join(self.columns)} FROM {schema}.{self.name} WHERE {where}"

    def select_many(self, schema: str) -> str:
        """Every row whose key is among the ``unnest``-ed key arrays (one array per key column)."""
        arrays = ", ".join(f"${i}::text[]" for i in range(1, len(self.key) + 1))
        keys = ", ".join(self.key)
        return (f"SELECT {', '.join(self.columns)} FROM {schema}.{self.name} "
                f"WHERE ({keys}) IN (SELECT * FROM unnest({arrays}))")


TABLES = {
    t.name: t
    for t in (
        TableSpec("orgs", ("org_id",), ("org_id", "org_path", "name", "org_type", "depth",
                                        "is_leadership_organ", "closed")),
        TableSpec("org_rules", ("org_path",), ("org_path", "records", "replaced"), json=("records", "replaced")),
        TableSpec("cadres", ("cadre_id",), ("cadre_id", "org_id", "org_path", "org_type", "kind",
                                            "in_leadership_organ", "active", "linked_youths",
                                            "last_online", "last_face_to_face")),
        TableSpec("links", ("link_id",), ("link_id", "cadre_id", "youth_id", "active")),
        TableSpec("scored_youths", ("cadre_id", "youth_id"), ("cadre_id", "youth_id")),
        TableSpec("groups", ("cadre_id", "group_org_id"), ("cadre_id", "group_org_id", "group_org_type", "active")),
        TableSpec("pair_months", ("cadre_id", "youth_id", "month"), ("cadre_id", "youth_id", "month", "by_day"),
                  json=("by_day",)),
        TableSpec("interactions", ("interaction_id",), ("interaction_id", "cadre_id", "day", "occurred_at",
                                                        "recorded_at", "online", "channel", "summary_hash",
                                                        "summary_length", "ruleset", "source_event_id", "youths",
                                                        "known_at", "revised_at", "earlier"),
                  json=("youths", "earlier")),
        TableSpec("activities", ("activity_id",), ("activity_id", "owner_id", "kind", "collective",
                                                   "occurred_on", "period_key", "points", "ruleset", "campaign_id",
                                                   "headcount")),
        TableSpec("five_ones", ("owner_id", "period_key"), ("owner_id", "period_key", "kinds", "bonus"), json=("kinds",)),
        TableSpec("ballots", ("ballot_id",), ("ballot_id", "cadre_id", "org_path", "year", "eligible", "turnout",
                                              "published", "satisfied", "basically_satisfied", "unsatisfied",
                                              "reelection_flag", "known_at")),
        TableSpec("campaigns", ("campaign_id",), ("campaign_id", "org_id", "key", "name", "starts_on", "ends_on",
                                                  "known_at")),
    )
}
LEDGER_COLUMNS = ("owner_id", "owner_kind", "org_path", "points", "rule", "ruleset_version",
                  "source_event_ids", "youth_id", "ref", "occurred_at")
FACT_COLUMNS = ("owner_id", "metric", "subject", "n", "occurred_on", "source_event_id")
FLAG_COLUMNS = ("owner_id", "code", "ref", "source_event_id", "occurred_on")
PATH_COLUMNS = ("cadre_id", "org_path", "kind", "org_type")
ORG_COLUMNS = ("org_id", "org_path", "name", "org_type", "closed")
DELTA_COLUMNS = ("owner_id", "day", "owner_kind", "org_path", "cadre_kind", "org_type", "points")
JSON_TYPES = ("json", "jsonb")
# Tables whose rows record the instant they were first applied (``State.known_since``), and the
# placeholder a live batch's rows hold until its instant is taken.
_KNOWN_AT = frozenset({"interactions", "ballots", "org_rules", "campaigns"})
_PENDING: Any = object()
# Column types per (schema, table), read from the catalogue once: the upserts send one array per column.
_TYPES: dict[tuple[str, str], dict[str, str]] = {}


async def column_types(conn: Any, schema: str, table: str) -> dict[str, str]:
    key = (schema, table)
    if key not in _TYPES:
        rows = await conn.fetch(
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped", f"{schema}.{table}")
        _TYPES[key] = {r[0]: r[1] for r in rows}
    return _TYPES[key]


# Connections prepared by accept_json_text.
_JSON_TEXT: weakref.WeakSet[Any] = weakref.WeakSet()


async def accept_json_text(conn: Any) -> None:
    """Let ``conn`` copy rows whose JSON documents are already text (as ``_take`` serialises
    them) straight into json and jsonb columns. asyncpg has no binary encoder for those types, so
    without this a table with JSON columns is filled through a staging table and an
    ``INSERT … SELECT ::jsonb``, every row written twice (a rebuild's 550,000 interactions: ~10 s).
    Reads on ``conn`` still decode documents."""
    await conn.set_type_codec("jsonb", schema="pg_catalog", format="binary",
                              encoder=_jsonb_from_text, decoder=_jsonb_to_value)
    await conn.set_type_codec("json", schema="pg_catalog", format="binary", encoder=str.encode,
                              decoder=orjson.loads)
    _JSON_TEXT.add(conn)


def _jsonb_from_text(text: str) -> bytes:
    return b"\x01" + text.encode()  # jsonb's binary format: a version byte, then the text


def _jsonb_to_value(data: bytes) -> Any:
    return orjson.loads(data[1:])


async def copy_into_empty(conn: Any, schema: str, table: str, columns: Sequence[str],
                          records: Iterable[Any] | AsyncIterable[Any],
                          copied: Callable[[], Coroutine[Any, Any, None]] | None = None) -> None:
    """COPY into a table that holds no row yet, its indexes dropped first and built again after,
    in the caller's transaction: one sorted build each instead of an insert per row (a rebuild's
    650,000 period points into their three secondary indexes: ~8 s of Postgres's time, ~5 s this
    way). The primary key too: rows come in the order memory holds them (by owner, not by period),
    and inserting them into the key one by one cost ~1-2 s more of Postgres's time than adding the
    key after (686,000 board rows). Nothing else may be using the table (DROP INDEX locks it).
    ``copied`` runs while the indexes are built (a rebuild lets go of the rows then)."""
    # Each index as the statements that drop it and make it again: a key (primary or unique) as
    # its constraint, and first, so that the others are built on a table that has it.
    indexes = await conn.fetch(
        "SELECT CASE WHEN c.oid IS NULL THEN format('DROP INDEX %s', i.indexrelid::regclass) "
        "ELSE format('ALTER TABLE %s DROP CONSTRAINT %I', i.indrelid::regclass, c.conname) END AS drop, "
        "CASE WHEN c.oid IS NULL THEN pg_get_indexdef(i.indexrelid) "
        "ELSE format('ALTER TABLE %s ADD CONSTRAINT %I %s', i.indrelid::regclass, c.conname, "
        "pg_get_constraintdef(c.oid)) END AS make "
        "FROM pg_index i LEFT JOIN pg_constraint c ON c.conindid = i.indexrelid AND c.conrelid = i.indrelid "
        "AND c.contype IN ('p', 'u') WHERE i.indrelid = $1::regclass ORDER BY c.oid IS NULL, 1",
        f"{schema}.{table}")
    for ix in indexes:
        await conn.execute(ix["drop"])
    await conn.copy_records_to_table(table, schema_name=schema, columns=list(columns), records=records)
    async with asyncio.TaskGroup() as both:
        both.create_task(_build(conn, indexes))
        if copied is not None:
            both.create_task(copied())  # while Postgres builds the indexes


async def _build(conn: Any, indexes: Sequence[Any]) -> None:
    if indexes:
        await conn.execute("SET LOCAL maintenance_work_mem = '256MB'")  # each sort in memory
        for ix in indexes:
            await conn.execute(ix["make"])


async def _let_go(rows: list[Any] | dict[Any, Any]) -> None:
    """Free rows a slice at a time: the other lanes' COPYs go on meanwhile."""
    while rows:
        if isinstance(rows, dict):
            for _ in range(min(len(rows), 20_000)):
                rows.popitem()
        else:
            del rows[-20_000:]
        await asyncio.sleep(0)


def columns_of(rows: list[tuple[Any, ...]]) -> list[list[Any]]:
    return [list(col) for col in zip(*rows, strict=True)]

Row = dict[str, Any]
_ABSENT: Any = object()  # not in memory (None in memory: known to have no row)


class State:
    """Rows of one projection schema as one consumer sees them."""

    def __init__(self, schema: str, consumer: str, *, authoritative: bool = False, max_rows: int = 500_000,
                 versions: str | None = None, stamped: bool = False, bulk: bool = False):
        self.schema = schema
        # A rebuild's state (``bulk``) keeps changed rows and period points in memory across its
        # transactions and writes them once, with COPY, at the end (``write(tx, rows=True)``);
        # each transaction writes only the appended ledger entries, facts, flags and paths.
        self.bulk = bulk
        # A rebuild's tables no row has been written to yet (its schema starts empty): they are
        # filled with a plain COPY, no conflict to look for.
        self._empty: set[str] = set(TABLES) if bulk else set()
        # Whether credits were written as period deltas (and so may be folded into the boards).
        self._deltas_written = False
        self.consumer = consumer
        self.authoritative = authoritative
        self.max_rows = max_rows
        # ``<service schema>.projection_versions``: a live consumer follows the serving version
        # (a rebuild swaps it); None for a rebuild, which owns one fixed schema.
        self.versions = versions
        self.ruleset_override: str | None = None
        self.on_switch: list[Any] = []
        # A rebuild stamps each row with its event's instant (``stamp``: when the version it
        # replaces applied it, see ``adapters/stamps.py``); a live batch stamps all of its rows
        # with one instant (``applied_at``) and records it in ``applied_log`` for the rebuilds.
        self.stamped = stamped
        self.stamp: datetime | None = None
        self.applied_at: datetime | None = None
        self._rows: dict[str, dict[tuple[Any, ...], Row | None]] = defaultdict(dict)
        self._dirty: dict[str, set[tuple[Any, ...]]] = defaultdict(set)
        self.ledger: list[tuple[Any, ...]] = []
        self.facts: list[tuple[Any, ...]] = []
        self.flags: list[tuple[Any, ...]] = []
        self.cadre_paths: list[tuple[Any, ...]] = []
        self.org_history: list[tuple[Any, ...]] = []
        # owner → China day → [points, owner_kind, org_path as credited], days in the order first
        # credited, and owner → [cadre kind, org type] as last known: written to period_deltas,
        # whose fold files them at the owner's row's place (the first credit's for an owner with
        # no row), whatever the batch size. By owner: a transfer re-files one owner's credits.
        self.period_delta: dict[str, dict[date, list[Any]]] = {}
        self._owner_kinds: dict[str, list[Any]] = {}
        # Where the rows with a path (their keys, by table) and the owners with credits (or once
        # with credits, re-filed since) are in the org tree: an org move re-files its subtree
        # only (``under``, ``move_credits``). Kept only while the state is authoritative:
        # otherwise moves go through SQL, and a live batch would pay for an index nothing reads.
        self._rows_at = OrgTreeIndex()
        self._credits_at = OrgTreeIndex()
        # owner → (org path, org type): boards and credits already in Postgres to move with their
        # owner, by the next fold (``refile``, ``_queue_moves``).
        self.refiled: dict[str, tuple[str, str | None, str | None]] = {}
        # Events of the open batch not yet applied (the projector applies them all at once, after
        # reading every row they need in one statement per table).
        self.pending: list[tuple[Any, ...]] = []
        # Tables another consumer writes: their rows in memory are dropped at every batch.
        self.volatile: set[str] = set()
        # Changes whenever org_rules rows in memory may have changed (memos of rules in force).
        self.rules_epoch = 0
        # Changes whenever the rows in memory are dropped: a batch applied ahead on them is void.
        self.epoch = 0
        self._begun_epoch = -1  # the epoch as the current transaction began with it
        self._tx: ProjectionTx | None = None
        self._gen: int | None = None
        self._committed_gen: int | None = None

    # -- batch boundaries -------------------------------------------------------------------

    async def begin(self, tx: ProjectionTx) -> None:
        """Called by every handler; the first call in a new transaction checks the generation."""
        if tx is self._tx:
            return
        self._tx = tx
        self._discard_pending()
        for table in self.volatile:
            if self._rows.pop(table, None) is not None and table == "org_rules":
                self.rules_epoch += 1
        current = await self._serving(tx)
        if current is not None and current[0] != self.schema:
            # A rebuilt version was swapped in: forget the old one's rows, write to the new.
            self.schema, self.ruleset_override = current
            self.clear()
            self._committed_gen = None
            for hook in self.on_switch:
                hook(self)
        if not self.authoritative and not self.bulk and not await self._stamp_generation(tx):
            self.clear()
        self._begun_epoch = self.epoch
        await self._take_instant(tx)

    async def adopt(self, tx: ProjectionTx, epoch: int) -> bool:
        """Begin ``tx`` keeping a batch applied ahead (先行应用) in memory, if that memory is still
        what Postgres holds: nothing cleared it since ``epoch`` (a batch before it failed), the
        same version serves, and no other batch committed since this consumer's last (the
        generation). False leaves the transaction to be begun again by :meth:`begin`."""
        self._tx = tx
        current = await self._serving(tx)
        if self.epoch != epoch or (current is not None and current[0] != self.schema):
            return False
        self._begun_epoch = self.epoch
        if not await self._stamp_generation(tx):
            return False
        await self._take_instant(tx)
        return True

    async def _take_instant(self, tx: ProjectionTx) -> None:
        """The instant a live batch stamps its rows with, taken once it holds its append-only
        tables: a circular freezing them (SHARE) waits for this batch or this batch for it, so
        the instant falls on the same side of the circular's as the batch's commit does.

        A consumer that reads rows another one writes (the wishes consumer reads the cadres'
        places) also holds ``cadre_paths``, which every batch of the writer holds from its
        instant to its commit, against the writer (SHARE ROW EXCLUSIVE): the writer's batches
        with an earlier instant have committed before this one reads, and none with a later
        instant commits before this one has. What it reads is then what a rebuild, applying
        in the order of the instants, gives it (before, a wish credited while an org move was
        being applied kept the place it had read, and a rebuild filed it at the new one)."""
        if self.stamped:
            return
        s = self.schema
        await tx.conn.execute(f"LOCK TABLE {s}.ledger, {s}.facts, {s}.flags, {s}.cadre_paths IN ROW EXCLUSIVE MODE")
        if self.volatile:
            await tx.conn.execute(f"LOCK TABLE {s}.cadre_paths IN SHARE ROW EXCLUSIVE MODE")
        self.applied_at = await tx.conn.fetchval("SELECT clock_timestamp()")

    @property
    def instant(self) -> datetime | None:
        """What rows written by SQL in this batch are stamped with (an org move's paths)."""
        return self.stamp if self.stamped else self.applied_at

    async def _serving(self, tx: ProjectionTx) -> tuple[str, str | None] | None:
        if self.versions is None:
            return None
        if tx.version is not None and tx.version == self.schema:
            return self.schema, self.ruleset_override  # the runtime asked already, under its lock
        row = await tx.conn.fetchrow(
            f"SELECT schema_name, ruleset_override FROM {self.versions} WHERE status = 'current'"
        )
        return (row["schema_name"], row["ruleset_override"]) if row is not None else None

    async def serving_schema(self, conn: asyncpg.Connection) -> str | None:
        """The schema of the version serving (what ``EventConsumer.version_of`` asks)."""
        assert self.versions is not None
        return await conn.fetchval(f"SELECT schema_name FROM {self.versions} WHERE status = 'current'")

    async def _stamp_generation(self, tx: ProjectionTx) -> bool:
        """Lock this consumer's generation row for the transaction and draw the next; whether
        the rows in memory are still valid (the row holds the generation this state committed)."""
        stored = await tx.conn.fetchval(
            f"SELECT gen FROM {self.schema}.projector_gen WHERE consumer = $1 FOR UPDATE", self.consumer
        )
        self._gen = random.getrandbits(62)
        return stored is not None and stored == self._committed_gen and self._size() <= self.max_rows

    def committed(self) -> bool:
        """Memory holds every row the batch being written changed, and nothing else unwritten:
        nothing pending, no buffer left, and no rows changed by the batch's own SQL behind the
        memory's back (a move or a merge drops the memory: the rows it rewrote are uncommitted,
        and a batch applied ahead would read them as they were)."""
        return self._committed_gen is not None and self.epoch == self._begun_epoch and not (
            self.pending or self._dirty or self.ledger or self.facts or self.flags or self.cadre_paths
            or self.org_history or self.period_delta or self.refiled)

    def lend(self, tx: ProjectionTx | None) -> None:
        """Read misses through ``tx`` (a batch applied ahead reads outside the transaction)."""
        self._tx = tx

    def abandon(self) -> None:
        """Forget a batch applied ahead and every row in memory; the next :meth:`begin` starts afresh."""
        self._tx = None
        self.clear()

    def clear(self) -> None:
        self._rows.clear()
        self._rows_at.clear()
        self.rules_epoch += 1
        self.epoch += 1
        self._discard_pending()

    def _discard_pending(self) -> None:
        if self.bulk:
            # A rebuild's transaction that fails ends the rebuild: its changed rows stay for the end.
            self.pending.clear()
            return
        if self._dirty or self.ledger or self.facts or self.period_delta or self.refiled or self.pending:
            # A batch that never reached its flush (it raised): its rows in memory are suspect.
            self._rows.clear()
            self.rules_epoch += 1
            self.epoch += 1
        self.pending.clear()
        self._dirty.clear()
        self.ledger.clear()
        self.facts.clear()
        self.flags.clear()
        self.cadre_paths.clear()
        self.org_history.clear()
        self._forget_points()
        self.refiled.clear()

    def size(self) -> int:
        return self._size()

    def _size(self) -> int:
        return sum(len(v) for v in self._rows.values())

    # -- rows ---------------------------------------------------------------------------------

    async def get(self, table: str, *key: Any) -> Row | None:
        cache = self._rows[table]
        row = cache.get(key, _ABSENT)
        if row is not _ABSENT:
            return row
        row = None
        if not self.authoritative and self._tx is not None:
            spec = TABLES[table]
            # Straight on the connection: pending writes only touch rows already in memory.
            rec = await self._tx.conn.fetchrow(spec.select(self.schema), *key)
            row = dict(rec) if rec is not None else None
        cache[key] = row
        return row

    def cached(self, table: str, *key: Any) -> tuple[bool, Row | None]:
        """(known, row) from memory only."""
        row = self._rows[table].get(key, _ABSENT)
        if row is not _ABSENT:
            return True, row
        return self.authoritative, None

    async def prefetch(self, conn: Any, wanted: dict[str, set[tuple[Any, ...]]]) -> None:
        """Read every wanted row not in memory, one statement per table (a row not found is
        remembered as absent): the batch's handlers then find them all in memory."""
        if self.authoritative:
            return
        for table, keys in wanted.items():
            cache = self._rows[table]
            missing = [k for k in keys if k not in cache]
            if not missing:
                continue
            spec = TABLES[table]
            for k in missing:
                cache[k] = None
            arrays = [list(col) for col in zip(*missing, strict=True)]
            for rec in await conn.fetch(spec.select_many(self.schema), *arrays):
                row = dict(rec)
                cache[spec.key_of(row)] = row

    def put(self, table: str, row: Row) -> None:
        spec = TABLES[table]
        key = spec.key_of(row)
        if table == "org_rules":
            self.rules_epoch += 1
        rows = self._rows[table]
        if self.authoritative and spec.pathed:
            self._file(table, key, rows.get(key), row)
        rows[key] = row
        self._dirty[table].add(key)

    def _file(self, table: str, key: tuple[Any, ...], before: Row | None, after: Row | None) -> None:
        old = before["org_path"] if before else None
        new = after["org_path"] if after else None
        if old != new:
            if old is not None:
                self._rows_at.remove(table, old, key)
            if new is not None:
                self._rows_at.add(table, new, key)

    def refresh(self, table: str, rows: Iterable[Row], gone: Iterable[tuple[Any, ...]] = ()) -> None:
        """Rows as the batch's transaction holds them after its own SQL changed them (an org
        move): into memory as read, nothing to write; and the keys in ``gone`` known absent."""
        spec, cache = TABLES[table], self._rows[table]
        for key in gone:
            cache[key] = None
            self._dirty[table].discard(key)
        for row in rows:
            cache[spec.key_of(row)] = row
        if table == "org_rules":
            self.rules_epoch += 1

    def known(self, table: str) -> list[Row]:
        """The rows of ``table`` in memory: all there are, if the state is authoritative."""
        return [r for r in self._rows[table].values() if r is not None]

    def under(self, scope: str, tables: Sequence[str]) -> dict[str, list[Row]]:
        """The rows of each of ``tables`` at ``scope`` or below it in the org tree, found through
        the index (an authoritative state's rows: all there are)."""
        assert self.authoritative, "under() on a state that reads Postgres"
        found: dict[str, list[Row]] = {}
        for table, keys in self._rows_at.keys(tables, self._rows_at.under(scope)).items():
            rows = self._rows[table]
            found[table] = [r for key in keys if (r := rows.get(key)) is not None]
        return found

    def drop(self, table: str, *key: Any) -> None:
        """The row is gone: known absent from now on. Only for an authoritative state, whose rows
        reach Postgres at its end (a row written already would stay there)."""
        assert self.authoritative, "drop() on a state that reads Postgres"
        if table == "org_rules":
            self.rules_epoch += 1
        if TABLES[table].pathed:
            self._file(table, key, self._rows[table].get(key), None)
        self._rows[table][key] = None
        self._dirty[table].discard(key)

    def forget(self, table: str) -> None:
        """Drop a table's rows from memory (after SQL changed many of them at once)."""
        self._rows.pop(table, None)
        self.rules_epoch += 1
        self.epoch += 1
        self._dirty.pop(table, None)

    # -- appends --------------------------------------------------------------------------------

    def add_ledger(self, owner_id: str, owner_kind: str, org_path: str, points: int, rule: str,
                   ruleset: str, sources: list[UUID], youth_id: str | None, ref: str | None,
                   occurred_at: datetime) -> None:
        self.ledger.append((owner_id, owner_kind, org_path, points, rule, ruleset, sources, youth_id, ref,
                            occurred_at, *self._stamp()))

    def add_fact(self, owner_id: str, metric: str, n: int, day: date, source: UUID, subject: str | None = None) -> None:
        self.facts.append((owner_id, metric, subject, n, day, source, *self._stamp()))

    def add_flag(self, owner_id: str, code: str, ref: str | None, source: UUID, day: date) -> None:
        self.flags.append((owner_id, code, ref, source, day, *self._stamp()))

    def add_cadre_path(self, cadre_id: str, org_path: str, kind: str | None, org_type: str | None) -> None:
        """The cadre's place, kind and org level from now on (as-of queries read them back)."""
        self.cadre_paths.append((cadre_id, org_path, kind, org_type, *self._stamp()))

    def add_org_version(self, org: Row) -> None:
        """The org's place, name, level and state from now on (circulars as of an instant)."""
        self.org_history.append((*(org[c] for c in ORG_COLUMNS), *self._stamp()))

    def _stamp(self) -> tuple[Any, ...]:
        return (self.stamp,) if self.stamped else ()

    def add_period_points(self, owner_id: str, meta: tuple[Any, ...], day: date, points: int) -> None:
        """Points credited to an owner on a China day; ``meta`` is (owner kind, org path, cadre
        kind, org type) as the credit knew them."""
        days = self.period_delta.get(owner_id)
        if days is None:
            days = self.period_delta[owner_id] = {}
        d = days.get(day)
        if d is None:
            days[day] = [points, meta[0], meta[1]]
            if self.authoritative:
                self._credits_at.add("credits", meta[1], owner_id)
        else:
            d[0] += points
        if meta[2] is not None or meta[3] is not None:
            known = self._owner_kinds.setdefault(owner_id, [None, None])
            if meta[2] is not None:
                known[0] = meta[2]
            if meta[3] is not None:
                known[1] = meta[3]

    def refile(self, owner_id: str, org_path: str, org_type: str | None, cadre_kind: str | None = None) -> None:
        """Every board of the owner, of past periods too, under ``org_path`` and ``org_type`` from
        now on (调动: rankings follow the cadre). The credits in memory are re-filed here; what
        Postgres may already hold (always, live; a rebuild's once it wrote credits out) is moved
        by the next fold, which the batch's write asks for (``_queue_moves``)."""
        if owner_id in self.period_delta:
            for credit in self.period_delta[owner_id].values():
                credit[2] = org_path
            if self.authoritative:
                self._credits_at.add("credits", org_path, owner_id)
        known = self._owner_kinds.setdefault(owner_id, [None, None])
        known[1] = org_type
        if cadre_kind is not None:
            known[0] = cadre_kind
        if not self.authoritative or self._deltas_written:
            before = self.refiled.get(owner_id)
            self.refiled[owner_id] = (org_path, org_type, cadre_kind or (before[2] if before else None))

    def move_credits(self, scope: str, moved: Callable[[str], str | None]) -> None:
        """Re-file every credit in memory at ``scope`` or below, where ``moved`` says (an org moved
        or merged); for an authoritative state (the only one that keeps ``_credits_at``)."""
        assert self.authoritative, "move_credits() on a state that reads Postgres"
        for owner in self._credits_at.take("credits", self._credits_at.under(scope)):
            for credit in self.period_delta[owner].values():
                new = moved(credit[2])
                if new is not None:
                    credit[2] = new
                    self._credits_at.add("credits", new, owner)

    # -- writing ----------------------------------------------------------------------------------

    async def write(self, tx: ProjectionTx, *, rows: bool = True, fold_now: bool = False,
                    release: bool = False) -> None:
        """Write what the batch changed; ``rows=False`` (a rebuild's transactions) writes only the
        appended entries and keeps changed rows and period points for a later ``write``.
        ``fold_now`` also folds every credit into ``period_points``, in this transaction: a
        rebuild folds its own schema, which no folder serves yet.

        Everything is taken out of memory before the first statement is sent; with ``release``
        (the batch's last write) the runtime may then apply the next batch in memory while these
        statements run."""
        taken = self._take(rows)
        if release and tx.through is not None and tx.consumer is not None:
            taken.log = (tx.consumer, tx.through)
        if release:
            tx.release_memory()
        await self.send(tx.conn, taken, fold_now=fold_now)

    def take_appended(self) -> _Taken:
        """The ledger entries, facts, flags and paths appended since the last write, out of
        memory, for :meth:`send` (a rebuild's chunk; its rows and credits stay in memory)."""
        return self._take(False)

    async def send(self, conn: Any, taken: _Taken, *, fold_now: bool = False) -> None:
        """Write what was taken out of memory, in the caller's transaction."""
        try:
            await self._send(conn, taken, fold_now)
        except BaseException:
            # Its changes are in memory but not in Postgres, and nothing is left in the buffers
            # for the next begin() to notice: drop the rows now.
            self.clear()
            raise

    async def write_spread(self, conns: Sequence[Any]) -> None:
        """A rebuild's last write: what :meth:`write` sends, spread over ``conns``, each in a
        transaction of its own (Postgres writes them on as many cores), the largest tables
        first; and the boards: folded in memory by one lane while the others copy
        (:meth:`take_boards`) and copied in, or, if credits were written as deltas on the way,
        folded by SQL once every lane has committed.

        A table still empty streams its rows to COPY as they are read from memory, handing the
        event loop back now and then: one lane turns rows into records while the other's COPY
        runs, instead of every row being taken first (7 s of a 1M-event rebuild's end, during
        which no COPY moved). Nothing else changes the rows meanwhile: the rebuild waits.

        From here on memory is no longer authoritative: the rows of each table without a path
        are let go of once copied, while Postgres builds its indexes (freed at the end, they
        were 1.4 s of one core with the other idle); what the swap's last events need is read
        back from Postgres, as a live consumer reads it.
        """
        self.authoritative = False
        dirty, self._dirty = self._dirty, defaultdict(set)
        in_memory = not self._deltas_written
        rest = self._take(False) if in_memory else replace(self._take(False), deltas=self._take_points())
        jobs: list[tuple[int, Callable[[Any], Awaitable[None]]]] = [
            (len(keys), functools.partial(self._write_table, spec=TABLES[table], keys=keys))
            for table, keys in dirty.items()]

        async def the_rest(conn: Any) -> None:
            await self._send(conn, rest, fold_now=False)
            if in_memory:
                boards = await self.take_boards(owners_per_step=5_000)
                if boards:
                    await copy_into_empty(conn, self.schema, "period_points", BOARD_COLUMNS, boards,
                                          copied=functools.partial(_let_go, boards))

        # A board row per owner and day, and per owner and longer period: about the credits' count.
        jobs.append((sum(map(len, self.period_delta.values())) + len(rest.deltas), the_rest))
        lanes: list[list[Callable[[Any], Awaitable[None]]]] = [[] for _ in conns]
        load = [0] * len(conns)
        for n, job in sorted(jobs, key=lambda j: -j[0]):
            least = load.index(min(load))
            lanes[least].append(job)
            load[least] += n
        del jobs

        async def run(conn: Any, lane: list[Callable[[Any], Awaitable[None]]]) -> None:
            async with conn.transaction():
                while lane:
                    await lane.pop(0)(conn)  # its rows go with it

        try:
            async with asyncio.TaskGroup() as all_lanes:  # one failing cancels the others
                for conn, lane in zip(conns, lanes, strict=True):
                    all_lanes.create_task(run(conn, lane))
            if not in_memory:  # once every lane has committed: the fold reads the owners' rows
                async with conns[0].transaction():
                    await fold(conns[0], self.schema)
        except BaseException:
            self.clear()
            raise

    async def _write_table(self, conn: Any, *, spec: TableSpec, keys: set[tuple[Any, ...]]) -> None:
        held = self._rows[spec.name]
        if spec.name in self._empty and (not spec.json or conn in _JSON_TEXT):
            self._empty.discard(spec.name)
            # Nothing was read from a table still empty: every row held was put, so is to be
            # written. Taken in the order they were put, as COPY takes them: by key, each a
            # lookup in a dict of 550,000 (the interactions), was 15% of the write's Python.
            rows: Iterable[Row] = (r for r in held.values() if r is not None)
            await copy_into_empty(conn, self.schema, spec.name, spec.columns, _records(spec, rows),
                                  copied=None if spec.pathed else functools.partial(self._let_go, spec.name, keys))
        else:
            rows = (r for k in keys if (r := held[k]) is not None)
            await self._upsert(conn, spec=spec, cols=_columns_with_json_text(spec, [spec.values_of(r) for r in rows]))

    async def _let_go(self, table: str, keys: set[tuple[Any, ...]]) -> None:
        keys.clear()  # the dirty keys, which nothing else holds
        await _let_go(self._rows.pop(table, {}))

    def _take(self, rows: bool) -> _Taken:
        upserts: list[tuple[TableSpec, list[list[Any]]]] = []
        if rows:
            for table, keys in self._dirty.items():
                spec = TABLES[table]
                # In key order: two consumers writing the same rows lock them in the same order. A
                # rebuild's schema has no other writer (sorting its 550,000 interactions took ~2 s).
                held, values = self._rows[table], spec.values_of
                if table in _KNOWN_AT and not self.stamped:  # a rebuild's rows carry their stamps
                    self._date_known(held, keys)
                args = [values(r) for k in (keys if self.bulk else sorted(keys)) if (r := held[k]) is not None]
                if args:
                    upserts.append((spec, _columns_with_json_text(spec, args)))
            self._dirty = defaultdict(set)
        taken = _Taken(upserts, self.ledger, self.facts, self.flags, self.cadre_paths, self.org_history,
                       self._take_points() if rows else [], self.refiled, self._gen, self.applied_at)
        self.ledger, self.facts, self.flags, self.cadre_paths, self.org_history = [], [], [], [], []
        self.refiled = {}
        return taken

    def known_since(self) -> Any:
        """What a row first made by the event being applied records as the instant it was
        applied (``known_at``): the event's stamp in a rebuild; in a live batch the batch's
        instant, not taken yet while a batch is applied ahead, so filled in when it is written."""
        return self.stamp if self.stamped else _PENDING

    def _date_known(self, held: dict[tuple[Any, ...], Row | None], keys: Iterable[tuple[Any, ...]]) -> None:
        """Fill the batch's instant in where a row (or a version or record it holds) waits for it:
        ``known_at``, a corrected interaction's ``revised_at`` and the ``until`` of the versions or
        records it replaced."""
        at = self.applied_at
        for k in keys:
            row = held[k]
            if row is None:
                continue
            if row.get("known_at") is _PENDING:
                row["known_at"] = at
            if row.get("revised_at") is _PENDING:
                row["revised_at"] = at
            for docs in (row.get("earlier"), row.get("records"), row.get("replaced")):
                for doc in docs or ():
                    if doc.get("known_at") is _PENDING:
                        doc["known_at"] = at
                    if doc.get("until") is _PENDING:
                        doc["until"] = at

    async def _send(self, conn: Any, taken: _Taken, fold_now: bool) -> None:
        s = self.schema
        # A rebuild's rows carry their stamps; a live batch's get its instant here.
        live = not self.stamped and taken.applied_at is not None
        at = ("applied_at",) if self.stamped or live else ()
        for spec, cols in taken.upserts:
            await self._upsert(conn, spec=spec, cols=cols)
        for table, columns, rows in (("ledger", LEDGER_COLUMNS, taken.ledger), ("facts", FACT_COLUMNS, taken.facts),
                                     ("flags", FLAG_COLUMNS, taken.flags),
                                     ("cadre_paths", PATH_COLUMNS, taken.cadre_paths),
                                     ("org_history", ORG_COLUMNS, taken.org_history)):
            if rows:
                await conn.copy_records_to_table(table, schema_name=s, columns=columns + at,
                                                 records=((*r, taken.applied_at) for r in rows) if live else rows)
        if taken.log is not None:
            await conn.execute(f"INSERT INTO {s}.applied_log (consumer, through_seq, applied_at) VALUES ($1, $2, $3)",
                               *taken.log, taken.applied_at)
        await self._send_points(conn, taken.deltas)
        if taken.refiled:
            await self._queue_moves(conn, taken.refiled)
        if fold_now:
            await fold(conn, s)
        if not self.authoritative and taken.gen is not None:
            await conn.execute(
                f"INSERT INTO {s}.projector_gen (consumer, gen) VALUES ($1, $2) "
                "ON CONFLICT (consumer) DO UPDATE SET gen = EXCLUDED.gen",
                self.consumer,
                taken.gen,
            )
        # The memory is valid once this transaction commits; if it does not, the next batch
        # finds another generation in Postgres and starts afresh.
        self._committed_gen = taken.gen

    async def _queue_moves(self, conn: Any, refiled: dict[str, tuple[str, str | None, str | None]]) -> None:
        """The boards of transferred owners to follow them, folded already or not (this batch's
        credits were re-filed in memory): moved by the next fold (``folding.apply_moves``), which
        this transaction does not wait for."""
        owners, paths, types, kinds = columns_of([(o, *place) for o, place in refiled.items()])
        await conn.execute(
            f"INSERT INTO {self.schema}.board_moves (owner_id, org_path, org_type, cadre_kind) "
            "SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])", owners, paths, types, kinds)

    async def take_boards(self, owners_per_step: int = 0) -> list[tuple[Any, ...]] | None:
        """Every credit, folded here into ``period_points`` rows (:func:`fold_in_memory`) and
        forgotten, if memory holds them all: none was ever written as a period delta (a rebuild
        whose rows outgrew ``max_rows`` wrote them out). None otherwise.

        With ``owners_per_step``, the event loop is handed back after each slice of that many
        owners: in a rebuild's last write the fold (~2 s of Python on a million events) then
        runs while the other tables' COPYs go on, instead of before them with Postgres idle."""
        if self._deltas_written:
            return None
        owners = list(self.period_delta.items())
        step = owners_per_step or max(len(owners), 1)
        boards: list[tuple[Any, ...]] = []
        for start in range(0, len(owners), step):
            part = owners[start:start + step]
            self._at_owners_places(part)
            boards += fold_in_memory(part, self._owner_kinds)
            if owners_per_step:
                await asyncio.sleep(0)
        self._forget_points()
        return boards

    def _at_owners_places(self, owners: Iterable[tuple[str, dict[date, list[Any]]]]) -> None:
        """Each owner's credits at its place, kind and org level as its row has them, where there
        is one: what the SQL fold files them under (``folding``). A rebuild's credits are there
        already, but for those made before their owner's row existed."""
        cadres, orgs = self._rows["cadres"], self._rows["orgs"]
        for owner, credits in owners:
            owner_kind = next(iter(credits.values()))[1]
            row = (cadres if owner_kind == "cadre" else orgs).get((owner,))
            if row is None:
                continue
            for credit in credits.values():
                credit[2] = row["org_path"]
            known = self._owner_kinds.setdefault(owner, [None, None])
            if owner_kind == "cadre" and row["kind"] is not None:
                known[0] = row["kind"]
            if row["org_type"] is not None:
                known[1] = row["org_type"]

    def _take_points(self) -> list[tuple[Any, ...]]:
        # Deltas that cancel out are kept too: the owner is on the board with 0 whether the
        # entries came in one batch or two (and as-of recomputation agrees).
        kinds, none = self._owner_kinds, (None, None)
        deltas = [(owner, day, d[1], d[2], *kinds.get(owner, none), d[0])
                  for owner, days in self.period_delta.items() for day, d in days.items()]
        self._forget_points()
        return deltas

    def _forget_points(self) -> None:
        self.period_delta, self._owner_kinds, self._credits_at = {}, {}, OrgTreeIndex()

    async def _send_points(self, conn: Any, deltas: list[tuple[Any, ...]]) -> None:
        if deltas:
            self._deltas_written = True
            await conn.copy_records_to_table("period_deltas", schema_name=self.schema, columns=DELTA_COLUMNS,
                                             records=deltas)

    async def _upsert(self, conn: Any, *, spec: TableSpec, cols: list[list[Any]]) -> None:
        """Insert or update many rows: one statement of arrays (a batch), or COPY into a staging
        table and one INSERT … SELECT (a rebuild's end: hundreds of thousands of rows); a rebuild's
        table no row was written to yet is simply copied into if it has no JSON column. ``cols``
        holds one list per column, JSON documents as text (``_columns_with_json_text``)."""
        s, table, columns, key = self.schema, spec.name, spec.columns, spec.key
        types = await column_types(conn, s, table)
        json_cols = tuple(c for c in columns if types[c] in JSON_TYPES)
        if json_cols != spec.json:
            raise RuntimeError(f"TableSpec {table!r} names JSON columns {spec.json}, the schema has {json_cols}")
        values = ", ".join(f"{c}::{types[c]}" if c in json_cols else c for c in columns)
        sets = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns if c not in key)
        action = f"DO UPDATE SET {sets}" if sets else "DO NOTHING"
        tail = f"ON CONFLICT ({', '.join(key)}) {action}"
        empty = table in self._empty
        self._empty.discard(table)
        if empty and not json_cols:
            await copy_into_empty(conn, s, table, columns, zip(*cols, strict=True))
            return
        if empty:
            tail = ""
        if len(cols[0]) < 5000:
            arrays = ", ".join(f"${i}::{'text' if c in json_cols else types[c]}[]"
                               for i, c in enumerate(columns, start=1))
            await conn.execute(
                f"INSERT INTO {s}.{table} AS t ({', '.join(columns)}) SELECT {values} "
                f"FROM unnest({arrays}) AS u({', '.join(columns)}) {tail}", *cols)
            return
        stage = f"_stage_{table}"
        staged = ", ".join(f"{c} {'text' if c in json_cols else types[c]}" for c in columns)
        await conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS {stage} ({staged}) ON COMMIT DROP")
        await conn.copy_records_to_table(stage, columns=list(columns), records=zip(*cols, strict=True))
        await conn.execute(f"INSERT INTO {s}.{table} AS t ({', '.join(columns)}) SELECT {values} FROM {stage} {tail}")
        await conn.execute(f"DROP TABLE {stage}")


@dataclass
class _Taken:
    """What one write sends, taken out of memory before its first statement."""

    upserts: list[tuple[TableSpec, list[list[Any]]]]  # one list per column
    ledger: list[tuple[Any, ...]]
    facts: list[tuple[Any, ...]]
    flags: list[tuple[Any, ...]]
    cadre_paths: list[tuple[Any, ...]]
    org_history: list[tuple[Any, ...]]
    deltas: list[tuple[Any, ...]]
    refiled: dict[str, tuple[str, str | None, str | None]]
    gen: int | None
    applied_at: datetime | None  # a live batch's instant, for every row (a rebuild's rows carry their own)
    log: tuple[str, int] | None = None  # (consumer, through sequence): the batch's applied_log row


async def _records(spec: TableSpec, rows: Iterable[Row]) -> AsyncIterator[Sequence[Any]]:
    """The rows' values in ``spec.columns`` order, JSON documents as text, for a COPY; the event
    loop is handed back every 2,000 rows (``write_spread``'s other lane goes on meanwhile)."""
    values = spec.values_of
    json_at = [i for i, c in enumerate(spec.columns) if c in spec.json]
    for n, row in enumerate(rows, start=1):
        if n % 2000 == 0:
            await asyncio.sleep(0)
        if json_at:
            record = list(values(row))
            for i in json_at:
                record[i] = _json_text(record[i])
            yield record
        else:
            yield values(row)


def _columns_with_json_text(spec: TableSpec, rows: list[tuple[Any, ...]]) -> list[list[Any]]:
    """The rows' columns (one array parameter each), JSON documents serialised now: asyncpg's JSON
    codec does not reach into arrays, and a document left in memory could change before the
    statement is sent."""
    cols = columns_of(rows)
    for i, c in enumerate(spec.columns):
        if c in spec.json:
            cols[i] = [_json_text(v) for v in cols[i]]
    return cols


def _json_text(value: Any) -> str | None:
    # orjson: the documents of a batch were ~5% of the projector's time with the json module.
    return None if value is None else orjson.dumps(value, default=str).decode()
