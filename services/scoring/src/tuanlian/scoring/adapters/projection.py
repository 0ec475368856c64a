"""Scoring's projection of contacts and wishes events: the points ledger (个人积分) and the facts
behind activity levels, compliance, leaderboards and circulars.

Every ledger entry names its rule, the rule-set version in force for the cadre's org on the day
(or the rebuild's explicit override) and its source event ids. Confirmations, disputes and
corrections arrive later and add compensating entries; nothing already written is changed.
"""

from __future__ import annotations

import asyncio
import functools
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, date, datetime, time
from operator import itemgetter
from typing import Any
from uuid import UUID

import asyncpg
import structlog
from tuanlian.scoring.adapters.queries import group_metric, move_subtree, subtree
from tuanlian.scoring.adapters.state import TABLES, State
from tuanlian.scoring.domain import scoring as rules
from tuanlian.scoring.domain.periods import CHINA, PeriodKind, china_day, period_of
from tuanlian.scoring.domain.rules import DEFAULT_RULESET, RuleSet, UnknownRuleSet, ruleset
from tuanlian.shared.auth import path_covers
from tuanlian.shared.consumer import EventConsumer, Handler, ProjectionTx
from tuanlian.shared.contracts import contacts as c
from tuanlian.shared.contracts import wishes as w
from tuanlian.shared.contracts.contacts import OrgRules
from tuanlian.shared.events import DomainEvent, Envelope

log = structlog.get_logger("tuanlian.scoring")

# Events whose handlers write SQL in the batch's transaction: never applied ahead of it. (A
# transfer moves the cadre's boards too, but through State.refile: in memory, and by the next
# fold for the boards already in Postgres.)
SQL_IN_TRANSACTION = {"OrgMoved", "OrgMerged"}
# ~0.5 ms of applying between turns of the event loop: a batch being written (this consumer's or
# the other's) waits at most that long for each of its statements' replies.
_YIELD_EVERY = 8
_DEFAULT_RULES = OrgRules()  # read only; building one per event (pydantic defaults) was ~7% of the time
# Raised as they are from a batch: the database's own errors and the infrastructure's.
_PASS_THROUGH = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)


class ProjectionFailed(asyncpg.exceptions.DataError):
    """An event the projector could not apply (a bug or an impossible event).

    Events are applied when the batch flushes, not in their handler call; the consumer runtime
    treats an error of the flush like a handler's (it applies the batch again one event per
    transaction, charges the one that fails, and in the end dead-letters it), which is why this
    is a database error class.
    """


def noon(day: date) -> datetime:
    """An instant for a dated fact (an activity's day) that falls on that day in China."""
    return datetime.combine(day, time(12), tzinfo=CHINA)


def _superseded(row: dict[str, Any], until: Any) -> dict[str, Any]:
    """The version of an interaction a correction replaces, as a circular's signals read it, and
    the instant it stopped being current. Instants in UTC: a row read back from Postgres and one
    kept in memory give the same document."""
    return {"day": row["day"].isoformat(), "occurred_at": row["occurred_at"].astimezone(UTC).isoformat(),
            "recorded_at": row["recorded_at"].astimezone(UTC).isoformat(), "summary_hash": row["summary_hash"],
            "until": until}


@functools.lru_cache(maxsize=4096)
def _month_key(day: date) -> str:
    return period_of(day, PeriodKind.month).key


@functools.lru_cache(maxsize=65536)
def _ancestors(org_path: str) -> tuple[str, ...]:
    return tuple(rules.ancestors(org_path))


@functools.lru_cache(maxsize=256)
def _fields(cls: Any) -> tuple[tuple[str, ...], tuple[str, ...], bool]:
    """(cadre id fields, org id fields, has org_path) of an event class (probing a pydantic model
    for a missing attribute is slow)."""
    names = set(getattr(cls, "model_fields", {}))
    cadres = tuple(a for a in ("cadre_id", "organiser_cadre_id", "claimant_id", "secretary_cadre_id") if a in names)
    orgs = tuple(a for a in ("org_id", "to_org_id", "organiser_org_id", "claimant_id") if a in names)
    return cadres, orgs, "org_path" in names


# Rows whose org path follows an org moved or merged (and period_points, the boards).
PATH_TABLES = ("orgs", "cadres", "org_rules", "ballots")
# The most rows of one of them a live org move reads back into memory (``_reread_moved``).
MOVED_IN_MEMORY = 20_000


def rewrite_sql(schema: str) -> list[str]:
    """Statements moving every path under $1 to start with $2 instead (OrgMoved / OrgMerged). The
    subtree as an index range: a test no index serves scanned every table whole, inside the
    contacts consumer's transaction. The boards and the credits not folded yet are left to the
    next fold (``folding.apply_moves``): moving them here waited for the fold under way."""
    return [move_subtree(schema, t) for t in PATH_TABLES] + [
        f"INSERT INTO {schema}.board_moves (old_path, org_path) VALUES ($1::text, $2::text)",
    ] + [
        f"INSERT INTO {schema}.cadre_paths (cadre_id, org_path, kind, org_type, applied_at) "
        "SELECT cadre_id, org_path, kind, org_type, "
        f"coalesce($3::timestamptz, clock_timestamp()) FROM {schema}.cadres "
        f"WHERE {subtree('org_path', '$2::text')} AND $1::text IS NOT NULL",
        f"INSERT INTO {schema}.org_history (org_id, org_path, name, org_type, closed, applied_at) "
        "SELECT org_id, org_path, name, org_type, closed, "
        f"coalesce($3::timestamptz, clock_timestamp()) FROM {schema}.orgs "
        f"WHERE {subtree('org_path', '$2::text')} AND $1::text IS NOT NULL",
    ]


class Projector:
    """One consumer's handlers over one projection schema."""

    def __init__(self, state: State, *, ruleset_override: str | None = None) -> None:
        self.state = state
        self.override = ruleset(ruleset_override) if ruleset_override else None
        self._parsed: dict[str, OrgRules] = {}
        # (org path, day) → rules in force; valid while the org_rules rows in memory are unchanged.
        self._in_force: dict[tuple[str | None, date], OrgRules] = {}
        self._in_force_epoch = -1
        self._names: set[str] = set()
        state.on_switch.append(self._switched)

    @property
    def s(self) -> str:
        return self.state.schema

    def _switched(self, state: State) -> None:
        # The version now serving may have been rebuilt under an explicit rule set: keep to it.
        self.override = ruleset(state.ruleset_override) if state.ruleset_override else None

    # -- rules in force ------------------------------------------------------------------------

    async def org_rules(self, org_path: str | None, day: date) -> OrgRules:
        if self.state.rules_epoch != self._in_force_epoch:
            self._in_force.clear()
            self._in_force_epoch = self.state.rules_epoch
        found = self._in_force.get((org_path, day))
        if found is None:
            for path in _ancestors(org_path) if org_path else ():
                await self.state.get("org_rules", path)  # into memory (read only when not there yet)
            _known, found = self._rules_in_memory(org_path, day)
            found = self._in_force[(org_path, day)] = found or _DEFAULT_RULES
        return found

    async def ruleset_for(self, org_path: str | None, day: date) -> RuleSet:
        if self.override is not None:
            return self.override
        name = (await self.org_rules(org_path, day)).scoring_ruleset
        try:
            return ruleset(name)
        except UnknownRuleSet:
            log.warning("org names an unknown scoring rule set; scoring by the default", ruleset=name)
            return ruleset(DEFAULT_RULESET)

    # -- crediting ------------------------------------------------------------------------------

    async def owner_meta(self, owner_id: str, owner_kind: str, fallback_path: str) -> tuple[Any, ...]:
        if owner_kind == "org":
            org = await self.state.get("orgs", owner_id)
            return ("org", org["org_path"] if org else fallback_path, None, org["org_type"] if org else None)
        cadre = await self.state.get("cadres", owner_id)
        if cadre is None:
            return ("cadre", fallback_path, None, None)
        return ("cadre", cadre["org_path"], cadre["kind"], cadre["org_type"])

    async def credit(self, owner_id: str, points: int, rule: str, rs: RuleSet | str, sources: list[UUID],
                     at: datetime, org_path: str, *, owner_kind: str = "cadre", youth_id: str | None = None,
                     ref: str | None = None) -> None:
        if not points:
            return
        meta = await self.owner_meta(owner_id, owner_kind, org_path)
        version = rs if isinstance(rs, str) else rs.version
        self.state.add_ledger(owner_id, owner_kind, meta[1], points, rule, version, sources, youth_id, ref, at)
        self.state.add_period_points(owner_id, meta, china_day(at), points)

    # -- handlers ---------------------------------------------------------------------------------

    def handlers(self, names: set[str]) -> dict[str, Handler]:
        """The consumer's handlers. Each only queues its event; the whole batch is applied in the
        transaction's ``before_flush`` hook: first every row the batch needs is read (one
        statement per table, not a round trip per event), then the events are applied in order
        in memory, then the changes are written (a few statements per table)."""
        out: dict[str, Handler] = {}
        # Rows this consumer does not write (the contacts consumer does: orgs, rules, cadres…) are
        # read afresh every batch, or a rule change or a transfer would go unseen here.
        self._names |= names
        self.state.volatile = set() if self._names & CONTACTS_EVENTS else set(TABLES) - {"ballots"}
        for name in names:
            method = getattr(self, f"on_{name}")

            async def handler(tx: ProjectionTx, env: Envelope, e: DomainEvent, _m: Any = method,
                              _n: str = name) -> None:
                await self.state.begin(tx)
                self.state.pending.append((_n, _m, env, e, self.state.stamp))
                tx.before_flush(self._flush)

            out[name] = handler
        return out

    async def _flush(self, tx: ProjectionTx) -> None:
        # Live, a batch applied here yields as one applied ahead does: the wishes consumer's
        # batches (never applied ahead) held the loop ~0.2 s, stalling the contacts consumer's
        # statements. A rebuild's transaction is the only task running; it does not.
        await self.apply_pending(tx, yield_every=0 if self.state.authoritative else _YIELD_EVERY)
        await self.state.write(tx, rows=not self.state.bulk, release=True)

    async def apply_pending(self, tx: ProjectionTx, *, yield_every: int = 0) -> None:
        """Apply the events the handlers queued, in memory (a flush's first half: a rebuild
        applies a chunk so ahead of its transaction)."""
        items, self.state.pending = self.state.pending, []
        try:
            await self.apply(tx, items, yield_every=yield_every)
        except BaseException:
            self.state.clear()  # rows half changed by the failed batch: read afresh next time
            raise

    # -- applying the next batch ahead of its transaction (先行应用, see AppliesAhead) ------------

    def applies_ahead(self, events: Sequence[tuple[Envelope, DomainEvent]]) -> bool:
        """Only a live consumer that is its rows' only writer (the contacts consumer: the wishes
        consumer reads rows the other writes, afresh every batch), on memory a committed batch
        left, and no event that changes rows with SQL in the transaction."""
        st = self.state
        return (not st.bulk and not st.authoritative and not st.volatile and st.committed()
                and not any(env.event_type in SQL_IN_TRANSACTION for env, _e in events))

    def memory_epoch(self) -> int:
        return self.state.epoch

    async def apply_ahead(self, conn: asyncpg.Connection, events: Sequence[tuple[Envelope, DomainEvent]]) -> None:
        """Apply ``events`` in memory, reading missing rows on ``conn`` (outside any transaction:
        the rows this consumer changed and has not committed yet are all in memory)."""
        tx = ProjectionTx(conn)
        self.state.lend(tx)
        try:
            await self.apply(tx, [(env.event_type, getattr(self, f"on_{env.event_type}"), env, e, None)
                                  for env, e in events], yield_every=_YIELD_EVERY)
        finally:
            self.state.lend(None)

    async def adopt(self, tx: ProjectionTx, epoch: int) -> bool:
        if not await self.state.adopt(tx, epoch):
            return False
        tx.before_flush(self._flush)  # writes what was applied ahead
        return True

    def abandon(self) -> None:
        self.state.abandon()

    async def apply(self, tx: ProjectionTx, items: list[tuple[Any, ...]], *, yield_every: int = 0) -> None:
        """Apply queued events (name, bound handler, envelope, event, stamp) in order; with
        ``yield_every``, hand the event loop back that often (a batch being applied must not hold
        up the statements of a batch being written)."""
        if not items:
            return
        if not self.state.authoritative:
            await self._prefetch(tx, items)
        for n, (_name, method, env, e, stamp) in enumerate(items, start=1):
            if yield_every and n % yield_every == 0:
                await asyncio.sleep(0)
            self.state.stamp = stamp
            try:
                await method(tx, env, e)
            except _PASS_THROUGH:
                raise
            except Exception as exc:
                raise ProjectionFailed(f"{env.event_type} {env.event_id} fails to apply: "
                                       f"{type(exc).__name__}: {exc}") from exc

    # -- reading a batch's rows at once -----------------------------------------------------------

    async def _prefetch(self, tx: ProjectionTx, items: list[tuple[Any, ...]]) -> None:
        """Read the rows the batch's events will ask for. Only a hint: a row not read here is read
        when asked for, a row read for nothing costs nothing but the read."""
        wanted: dict[str, set[tuple[Any, ...]]] = defaultdict(set)
        for name, _m, _env, e, _s in items:
            self._wants(name, e, wanted)
        await self.state.prefetch(tx.conn, wanted)
        # Keys that depend on rows just read (an old interaction's cap slots, a five-ones period).
        wanted = defaultdict(set)
        for name, _m, _env, e, _s in items:
            self._wants_next(name, e, wanted)
        if wanted:
            await self.state.prefetch(tx.conn, wanted)

    def _wants(self, name: str, e: Any, wanted: dict[str, set[tuple[Any, ...]]]) -> None:
        cadre_fields, org_fields, has_path = _fields(e.__class__)
        if has_path and e.org_path:
            for a in _ancestors(e.org_path):
                wanted["org_rules"].add((a,))
        for attr in cadre_fields:
            v = getattr(e, attr)
            if v:
                wanted["cadres"].add((v,))
        for attr in org_fields:
            v = getattr(e, attr)
            if v:
                wanted["orgs"].add((v,))
        if name in ("ContactLinkAccepted", "ContactLinkEnded"):
            wanted["links"].add((e.link_id,))
            if name == "ContactLinkAccepted":
                wanted["scored_youths"].add((e.cadre_id, e.youth_id))
        elif name in ("GroupLinkAdded", "GroupLinkEnded"):
            wanted["groups"].add((e.cadre_id, e.group_org_id))
        elif name.startswith("Interaction"):
            wanted["interactions"].add((e.interaction_id,))
            if name in ("InteractionLogged", "InteractionCorrected"):
                month = _month_key(china_day(e.occurred_at))
                for y in e.youth_ids:
                    wanted["pair_months"].add((e.cadre_id, y, month))
        elif name.startswith("Activity"):
            wanted["activities"].add((e.activity_id,))

    def _wants_next(self, name: str, e: Any, wanted: dict[str, set[tuple[Any, ...]]]) -> None:
        st = self.state
        if name == "InteractionCorrected":
            _, old = st.cached("interactions", e.interaction_id)
            if old is not None:
                month = period_of(old["day"], PeriodKind.month).key
                for y in old["youths"]:
                    wanted["pair_months"].add((old["cadre_id"], y, month))
        elif name.startswith("Activity"):
            if name == "ActivityCorrected":
                _, old = st.cached("activities", e.activity_id)
                if old is not None:
                    wanted["cadres"].add((old["owner_id"],))
                    if old["period_key"]:
                        wanted["five_ones"].add((old["owner_id"], old["period_key"]))
            owner = e.organiser_org_id if e.collective or not e.organiser_cadre_id else e.organiser_cadre_id
            is_org = owner == e.organiser_org_id
            _, cadre = st.cached("cadres", owner) if not is_org else (True, None)
            known, org_rules = self._rules_in_memory(e.org_path, e.occurred_on)
            if known and org_rules is not None:
                period, _due = rules.five_ones_period(
                    org_rules, rules.five_ones_rule_key(cadre["kind"] if cadre else None, is_org), e.occurred_on)
                wanted["five_ones"].add((owner, period.key))

    def _rules_in_memory(self, org_path: str | None, day: date) -> tuple[bool, OrgRules | None]:
        records: list[rules.RulesRecord] = []
        for path in _ancestors(org_path) if org_path else ():
            known, row = self.state.cached("org_rules", path)
            if not known:
                return False, None
            for rec in (row or {}).get("records", []):
                parsed = self._parsed.get(rec["sid"])
                if parsed is None:
                    parsed = self._parsed[rec["sid"]] = OrgRules.model_validate(rec["rules"])
                records.append(rules.RulesRecord(path, date.fromisoformat(rec["effective_from"]), parsed))
        return True, rules.effective_rules(records, org_path, day) if records else _DEFAULT_RULES

    # organisations

    def _put_org(self, org: dict[str, Any]) -> None:
        self.state.put("orgs", org)
        self.state.add_org_version(org)

    async def on_OrgCreated(self, tx: ProjectionTx, env: Envelope, e: Any) -> None:
        self._put_org({"org_id": e.org_id, "org_path": e.org_path, "name": e.name, "org_type": e.org_type.value,
                       "depth": e.depth, "is_leadership_organ": e.is_leadership_organ, "closed": False})

    async def on_OrgRenamed(self, tx: ProjectionTx, env: Envelope, e: Any) -> None:
        org = await self.state.get("orgs", e.org_id)
        if org is not None:
            self._put_org({**org, "name": e.name})

    async def on_OrgClosed(self, tx: ProjectionTx, env: Envelope, e: Any) -> None:
        org = await self.state.get("orgs", e.org_id)
        if org is not None:
            self._put_org({**org, "closed": True})

    async def _rewrite(self, tx: ProjectionTx, old: str, new: str, *, merged: bool = False) -> None:
        """Every path under ``old`` to start with ``new`` instead. A merged org's own rules row
        goes: its members follow the target's from now on (contacts keeps rules by org, and the
        merged org is on no one's path any more), and the target's rules row has that path
        already (``on_OrgMerged`` has kept its records there, as replaced)."""
        st = self.state
        if not st.authoritative:
            # Many rows at once: write what memory holds, let SQL move the paths, and read the
            # rows with paths afresh. The others (interactions, pair months, links…) hold no path
            # and stay: the batch after a move read them all again (bench mix, two moves in 30,000
            # events, alternating runs: 4.5-7.1 s a run when all were dropped, 4.1-5.8 s now).
            await st.write(tx)
            if merged:
                await tx.conn.execute(f"DELETE FROM {self.s}.org_rules WHERE org_path = $1", old)
            for sql in rewrite_sql(self.s):
                await tx.conn.execute(sql, old, new, *((st.instant,) if "$3" in sql else ()))
            # A merge's cadres change org afterwards, by SQL again (on_OrgMerged): dropped.
            if merged or not await self._reread_moved(tx, old, new):
                for table in PATH_TABLES:
                    st.forget(table)
            return
        # Every row is in memory and none in Postgres yet (a rebuild's): the same, there.
        def moved(path: str) -> str | None:
            return new + path[len(old):] if path_covers(old, path) else None

        if merged:
            st.drop("org_rules", old)
        for table, rows in st.under(old, PATH_TABLES).items():
            for row in rows:
                if table == "org_rules":
                    st.drop(table, row["org_path"])  # keyed by its path
                st.put(table, {**row, "org_path": moved(row["org_path"])})
        st.move_credits(old, moved)
        moved_rows = st.under(new, ("cadres", "orgs"))
        for cadre in sorted(moved_rows.get("cadres", []), key=itemgetter("cadre_id")):
            st.add_cadre_path(cadre["cadre_id"], cadre["org_path"], cadre["kind"], cadre["org_type"])
        for org in sorted(moved_rows.get("orgs", []), key=itemgetter("org_id")):
            st.add_org_version(org)

    async def _reread_moved(self, tx: ProjectionTx, old: str, new: str) -> bool:
        """The moved rows read again as this transaction now holds them, and the rules rows keyed
        by the old paths known gone, in place of dropping every row with a path from memory. The
        memory then still is Postgres's once the batch commits, and the next batch may be applied
        ahead of that commit: it reads its misses outside the transaction, where the moved rows
        are still as they were, but finds every one of them in memory. Dropping them kept the
        batch after every move from being applied ahead (the bench mix: 4 of its ~9 contacts
        batches in a run, 2 of them after a move). False when the subtree holds more than
        ``MOVED_IN_MEMORY`` rows of a table: those are dropped instead."""
        read: dict[str, list[dict[str, Any]]] = {}
        for table in PATH_TABLES:
            spec = TABLES[table]
            found = await tx.conn.fetch(
                f"SELECT {', '.join(spec.columns)} FROM {self.s}.{table} WHERE {subtree('org_path', '$1::text')} "
                "LIMIT $2", new, MOVED_IN_MEMORY + 1)
            if len(found) > MOVED_IN_MEMORY:
                return False
            read[table] = [dict(r) for r in found]
        for table, rows in read.items():
            gone = [(old + r["org_path"][len(new):],) for r in rows] if table == "org_rules" else []
            self.state.refresh(table, rows, gone)
        return True

    async def on_OrgMoved(self, tx: ProjectionTx, env: Envelope, e: Any) -> None:
        await self._rewrite(tx, e.old_path, e.new_path)
        org = await self.state.get("orgs", e.org_id)
        if org is not None:
            self.state.put("orgs", {**org, "depth": e.depth})

    async def on_OrgMerged(self, tx: ProjectionTx, env: Envelope, e: Any) -> None:
        # The merged org's rules row goes (below); its records stay readable as of before the
        # merge, replaced in the target's row (as-of reads pick an org's records by its id).
        gone = await self.state.get("org_rules", e.old_path)
        if gone is not None:
            target = await self.state.get("org_rules", e.into_path) or {"org_path": e.into_path, "records": []}
            until = self.state.known_since()
            self.state.put("org_rules", {**target, "replaced": [
                *(target.get("replaced") or ()), *(gone["replaced"] or ()),
                *({**r, "until": until} for r in gone["records"])]})
        # Rows in memory are written (and forgotten) by the rewrite first: the UPDATE then finds
        # every cadre in Postgres, and nothing written later from memory undoes it.
        await self._rewrite(tx, e.old_path, e.into_path, merged=True)
        if not self.state.authoritative:
            await tx.conn.execute(f"UPDATE {self.s}.cadres SET org_id = $2 WHERE org_id = $1", e.org_id, e.into_org_id)
            return
        for cadre in self.state.known("cadres"):
            if cadre["org_id"] == e.org_id:
                self.state.put("cadres", {**cadre, "org_id": e.into_org_id})

    async def on_OrgRulesSet(self, tx: ProjectionTx, env: Envelope, e: Any) -> None:
        row = await self.state.get("org_rules", e.org_path) or {}
        now = self.state.known_since()
        records, replaced = [], list(row.get("replaced") or ())
        for r in row.get("records", ()):
            if r["org_id"] == e.org_id and r["effective_from"] == e.effective_from.isoformat():
                replaced.append({**r, "until": now})  # as-of reads still find the rules it had
            else:
                records.append(r)
        records.append({"org_id": e.org_id, "effective_from": e.effective_from.isoformat(),
                        "sid": str(env.event_id), "rules": e.rules.model_dump(mode="json"), "known_at": now})
        self.state.put("org_rules", {"org_path": e.org_path, "records": records, "replaced": replaced or None})

    # cadres

    async def on_CadreRegistered(self, tx: ProjectionTx, env: Envelope, e: Any) -> None:
        org = await self.state.get("orgs", e.org_id)
        old = await self.state.get("cadres", e.cadre_id)
        self.state.put("cadres", {
            "cadre_id": e.cadre_id, "org_id": e.org_id, "org_path": e.org_path,
            "org_type": org["org_type"] if org else None, "kind": e.kind.value,
            "in_leadership_organ": e.in_leadership_organ, "active": True,
            "linked_youths": old["linked_youths"] if old else 0,
            "last_online": old["last_online"] if old else None,
            "last_face_to_face": old["last_face_to_face"] if old else None,
        })
        self.state.add_cadre_path(e.cadre_id, e.org_path, e.kind.value, org["org_type"] if org else None)
        if old is None:  # the day the cadre joined: a period closed before is not theirs to be assessed on
            self.state.add_fact(e.cadre_id, "registered", 1, china_day(env.occurred_at), env.event_id)
        # The streams are read apart: a wishes batch may have credited the cadre, unknown then,
        # and the fold opened its boards with no kind, at the wish's place. They follow the row.
        self.state.refile(e.cadre_id, e.org_path, org["org_type"] if org else None, e.kind.value)

    async def on_CadreTransferred(self, tx: ProjectionTx, env: Envelope, e: Any) -> None:
        cadre = await self.state.get("cadres", e.cadre_id)
        if cadre is None:
            return
        org = await self.state.get("orgs", e.to_org_id)
        org_type = org["org_type"] if org else None
        self.state.put("cadres", {**cadre, "org_id": e.to_org_id, "org_path": e.org_path, "org_type": org_type,
                                  "in_leadership_organ": e.in_leadership_organ})
        self.state.add_cadre_path(e.cadre_id, e.org_path, cadre["kind"], org_type)
        # Rankings follow the cadre: their periods are filed under the new place in the tree.
        self.state.refile(e.cadre_id, e.org_path, org_type)

    async def on_CadreDeactivated(self, tx: ProjectionTx, env: Envelope, e: Any) -> None:
        cadre = await self.state.get("cadres", e.cadre_id)
        if cadre is not None:
            self.state.put("cadres", {**cadre, "active": False})

    async def on_GroupLinkAdded(self, tx: ProjectionTx, env: Envelope, e: Any) -> None:
        g = await self.state.get("groups", e.cadre_id, e.group_org_id)
        if g is not None and g["active"]:
            return
        self.state.put("groups", {"cadre_id": e.cadre_id, "group_org_id": e.group_org_id,
                                  "group_org_type": e.group_org_type.value, "active": True})
        # The groups covered on a past day (a closed period's compliance) are summed from these.
        self.state.add_fact(e.cadre_id, group_metric(e.group_org_type.value), 1, china_day(env.occurred_at),
                            env.event_id, e.group_org_id)

    async def on_GroupLinkEnded(self, tx: ProjectionTx, env: Envelope, e: Any) -> None:
        g = await self.state.get("groups", e.cadre_id, e.group_org_id)
        if g is not None and g["active"]:
            self.state.put("groups", {**g, "active": False})
            self.state.add_fact(e.cadre_id, group_metric(g["group_org_type"]), -1, china_day(env.occurred_at),
                                env.event_id, e.group_org_id)

    # contact links

    async def on_ContactLinkAccepted(self, tx: ProjectionTx, env: Envelope, e: Any) -> None:
        link = await self.state.get("links", e.link_id)
        if link is not None and link["active"]:
            return
        day = china_day(env.occurred_at)
        cadre = await self.state.get("cadres", e.cadre_id)
        linked = (cadre["linked_youths"] if cadre else 0) + 1
        if cadre is not None:
            self.state.put("cadres", {**cadre, "linked_youths": linked})
        self.state.put("links", {"link_id": e.link_id, "cadre_id": e.cadre_id, "youth_id": e.youth_id, "active": True})
        self.state.add_fact(e.cadre_id, "linked", 1, day, env.event_id, e.youth_id)
        org_rules = await self.org_rules(e.org_path, day)
        quota = rules.contact_quota(org_rules, cadre["kind"] if cadre else None,
                                    bool(cadre and cadre["in_leadership_organ"]))
        scored = await self.state.get("scored_youths", e.cadre_id, e.youth_id)
        rs = await self.ruleset_for(e.org_path, day)
        points = rules.link_points(rs, youth_scored_before=scored is not None, linked_now=linked, quota=quota)
        if points:
            self.state.put("scored_youths", {"cadre_id": e.cadre_id, "youth_id": e.youth_id})
            await self.credit(e.cadre_id, points, "link_accepted", rs, [env.event_id], env.occurred_at,
                              e.org_path, youth_id=e.youth_id, ref=e.link_id)

    async def on_ContactLinkEnded(self, tx: ProjectionTx, env: Envelope, e: Any) -> None:
        link = await self.state.get("links", e.link_id)
        if link is None or not link["active"]:
            return
        self.state.put("links", {**link, "active": False})
        cadre = await self.state.get("cadres", e.cadre_id)
        if cadre is not None:
            self.state.put("cadres", {**cadre, "linked_youths": max(cadre["linked_youths"] - 1, 0)})
        self.state.add_fact(e.cadre_id, "linked", -1, china_day(env.occurred_at), env.event_id, e.youth_id)

    # interactions

    async def _score_interaction(self, env: Envelope, e: Any, kept: dict[str, str],
                                 old: dict[str, Any] | None = None) -> dict[str, Any]:
        """Score a logged (or corrected) interaction; ``kept`` is each youth's earlier word, ``old``
        the row corrected (known since it was first applied)."""
        day = china_day(e.occurred_at)
        month = _month_key(day)
        rs = await self.ruleset_for(e.org_path, day)
        youths: dict[str, Any] = {}
        for youth_id in dict.fromkeys(e.youth_ids):
            pm = await self.state.get("pair_months", e.cadre_id, youth_id, month)
            by_day: dict[str, int] = dict(pm["by_day"]) if pm else {}
            base = rules.interaction_base(rs, online=e.online, used_today=by_day.get(day.isoformat(), 0),
                                          used_month=sum(by_day.values()))
            status = rules.Status(kept.get(youth_id, "logged"))
            value = rules.interaction_value(rs, base, status)
            if base:
                by_day[day.isoformat()] = by_day.get(day.isoformat(), 0) + 1
                self.state.put("pair_months", {"cadre_id": e.cadre_id, "youth_id": youth_id, "month": month,
                                               "by_day": by_day})
            rule = "interaction_online" if e.online else "interaction_offline"
            await self.credit(e.cadre_id, value, rule, rs, [env.event_id], e.occurred_at, e.org_path,
                              youth_id=youth_id, ref=e.interaction_id)
            youths[youth_id] = {"base": base, "status": status.value, "credited": value}
            self.state.add_fact(e.cadre_id, "youth_contact", 1, day, env.event_id, youth_id)
        # One fact counts the interaction and its kind: interactions are ``online`` plus
        # ``face_to_face`` (a separate ``interaction`` count was a quarter of a replay's facts).
        self.state.add_fact(e.cadre_id, "online" if e.online else "face_to_face", 1, day, env.event_id)
        cadre = await self.state.get("cadres", e.cadre_id)
        if cadre is not None:
            field = "last_online" if e.online else "last_face_to_face"
            if cadre[field] is None or cadre[field] < day:
                self.state.put("cadres", {**cadre, field: day})
        row = {"interaction_id": e.interaction_id, "cadre_id": e.cadre_id, "day": day,
               "occurred_at": e.occurred_at, "recorded_at": env.recorded_at or env.occurred_at,
               "online": e.online, "channel": e.channel.value, "summary_hash": e.summary_hash,
               "summary_length": e.summary_length, "ruleset": rs.version, "source_event_id": env.event_id,
               "youths": youths, "known_at": self.state.known_since(), "revised_at": None, "earlier": None}
        if old is not None:
            # The versions it replaces stay readable as of the instants they were current.
            now = self.state.known_since()
            row.update(known_at=old["known_at"], revised_at=now,
                       earlier=[*(old["earlier"] or ()), _superseded(old, now)])
        self.state.put("interactions", row)
        return row

    async def on_InteractionLogged(self, tx: ProjectionTx, env: Envelope, e: Any) -> None:
        if await self.state.get("interactions", e.interaction_id) is None:
            await self._score_interaction(env, e, {})

    async def _youth_word(self, env: Envelope, e: Any, status: rules.Status) -> None:
        row = await self.state.get("interactions", e.interaction_id)
        if row is None or e.youth_id not in row["youths"]:
            return
        y = dict(row["youths"][e.youth_id])
        if y["status"] == status.value:
            return
        rs = ruleset(row["ruleset"]) if self.override is None else self.override
        target = rules.interaction_value(rs, y["base"], status)
        delta = rules.compensation(target, y["credited"])
        await self.credit(e.cadre_id, delta, f"interaction_{status.value}", row["ruleset"],
                          [row["source_event_id"], env.event_id], row["occurred_at"], e.org_path,
                          youth_id=e.youth_id, ref=e.interaction_id)
        day = row["day"]
        if y["status"] != "logged":
            self.state.add_fact(e.cadre_id, y["status"], -1, day, env.event_id, e.youth_id)
        self.state.add_fact(e.cadre_id, status.value, 1, day, env.event_id, e.youth_id)
        y.update(status=status.value, credited=target)
        self.state.put("interactions", {**row, "youths": {**row["youths"], e.youth_id: y}})

    async def on_InteractionConfirmed(self, tx: ProjectionTx, env: Envelope, e: Any) -> None:
        await self._youth_word(env, e, rules.Status.confirmed)

    async def on_InteractionDisputed(self, tx: ProjectionTx, env: Envelope, e: Any) -> None:
        await self._youth_word(env, e, rules.Status.disputed)

    async def on_InteractionCorrected(self, tx: ProjectionTx, env: Envelope, e: Any) -> None:
        old = await self.state.get("interactions", e.interaction_id)
        kept: dict[str, str] = {}
        if old is not None:
            month = period_of(old["day"], PeriodKind.month).key
            # By youth id: the document's key order is not its own (a row read back from jsonb has
            # its keys sorted, one kept in memory has them as logged), the entries' order would be.
            for youth_id, y in sorted(old["youths"].items()):
                # Undo the old record in full: its points, its cap slot and its counts.
                await self.credit(old["cadre_id"], -y["credited"], "interaction_corrected", old["ruleset"],
                                  [old["source_event_id"], env.event_id], old["occurred_at"], e.org_path,
                                  youth_id=youth_id, ref=e.interaction_id)
                if y["base"]:
                    pm = await self.state.get("pair_months", old["cadre_id"], youth_id, month)
                    if pm is not None:
                        by_day = dict(pm["by_day"])
                        by_day[old["day"].isoformat()] = max(by_day.get(old["day"].isoformat(), 1) - 1, 0)
                        self.state.put("pair_months", {**pm, "by_day": by_day})
                self.state.add_fact(old["cadre_id"], "youth_contact", -1, old["day"], env.event_id, youth_id)
                if y["status"] != "logged":
                    self.state.add_fact(old["cadre_id"], y["status"], -1, old["day"], env.event_id, youth_id)
                kept[youth_id] = y["status"]
            self.state.add_fact(old["cadre_id"], "online" if old["online"] else "face_to_face", -1, old["day"],
                                env.event_id)
        new = await self._score_interaction(env, e, kept, old)
        for youth_id, y in new["youths"].items():
            if y["status"] != "logged":
                self.state.add_fact(e.cadre_id, y["status"], 1, new["day"], env.event_id, youth_id)

    # activities (五个一)

    async def _activity(self, env: Envelope, e: Any) -> None:
        collective = bool(e.collective)
        owner = e.organiser_org_id if collective or not e.organiser_cadre_id else e.organiser_cadre_id
        owner_kind = "org" if owner == e.organiser_org_id else "cadre"
        day = e.occurred_on
        at = noon(day)
        cadre = await self.state.get("cadres", owner) if owner_kind == "cadre" else None
        org_rules = await self.org_rules(e.org_path, day)
        period, _due = rules.five_ones_period(org_rules, rules.five_ones_rule_key(cadre["kind"] if cadre else None,
                                                                                  owner_kind == "org"), day)
        rs = await self.ruleset_for(e.org_path, day)
        required = rules.five_ones_required(org_rules, owner_kind == "org")
        kind = e.kind.value if e.kind.value in required else None
        self.state.add_fact(owner, "activity", 1, day, env.event_id)
        if e.campaign_id:  # recorded for a campaign: circulars count who took part (全团集中活动)
            self.state.add_fact(owner, "campaign", 1, day, env.event_id, e.campaign_id)
        # 002's duties of a county committee's organ: the weeks with a grassroots day ("4+1"), the
        # cadres posted ("8+4"), the youths an open day brought in (专题开放日).
        if e.kind is c.ActivityKind.grassroots_day_4_1:
            self.state.add_fact(owner, "grassroots_day", 1, day, env.event_id)
        elif e.kind is c.ActivityKind.posting_8_4:
            self.state.add_fact(owner, "posting", 1, day, env.event_id)
        elif e.kind is c.ActivityKind.open_day and owner_kind == "org" and e.headcount:
            self.state.add_fact(owner, "open_day_youths", e.headcount, day, env.event_id)
        points = 0
        if kind is not None:
            fo = await self.state.get("five_ones", owner, period.key)
            kinds: dict[str, int] = dict(fo["kinds"]) if fo else {}
            bonus = fo["bonus"] if fo else 0
            points, completes = rules.five_ones_points(rs, [k for k, n in kinds.items() if n > 0], kind, required)
            kinds[kind] = kinds.get(kind, 0) + 1
            await self.credit(owner, points, "five_ones_activity", rs, [env.event_id], at, e.org_path,
                              owner_kind=owner_kind, ref=e.activity_id)
            self.state.add_fact(owner, "five_ones", 1, day, env.event_id)
            if completes and not bonus:
                bonus = rs.five_ones.all_kinds_bonus
                await self.credit(owner, bonus, "five_ones_all_kinds", rs, [env.event_id], at, e.org_path,
                                  owner_kind=owner_kind, ref=period.key)
            self.state.put("five_ones", {"owner_id": owner, "period_key": period.key, "kinds": kinds, "bonus": bonus})
        self.state.put("activities", {"activity_id": e.activity_id, "owner_id": owner, "kind": e.kind.value,
                                      "collective": collective, "occurred_on": day,
                                      "period_key": period.key if kind else None, "points": points,
                                      "ruleset": rs.version, "campaign_id": e.campaign_id,
                                      "headcount": e.headcount})

    async def on_ActivityRecorded(self, tx: ProjectionTx, env: Envelope, e: Any) -> None:
        if await self.state.get("activities", e.activity_id) is None:
            await self._activity(env, e)

    async def on_ActivityCorrected(self, tx: ProjectionTx, env: Envelope, e: Any) -> None:
        old = await self.state.get("activities", e.activity_id)
        if old is not None:
            owner, day = old["owner_id"], old["occurred_on"]
            owner_kind = "cadre" if await self.state.get("cadres", owner) else "org"
            at = noon(day)
            await self.credit(owner, -old["points"], "activity_corrected", old["ruleset"], [env.event_id], at,
                              e.org_path, owner_kind=owner_kind, ref=e.activity_id)
            self.state.add_fact(owner, "activity", -1, day, env.event_id)
            if old["campaign_id"]:
                self.state.add_fact(owner, "campaign", -1, day, env.event_id, old["campaign_id"])
            if old["kind"] == c.ActivityKind.grassroots_day_4_1.value:
                self.state.add_fact(owner, "grassroots_day", -1, day, env.event_id)
            elif old["kind"] == c.ActivityKind.posting_8_4.value:
                self.state.add_fact(owner, "posting", -1, day, env.event_id)
            elif old["kind"] == c.ActivityKind.open_day.value and owner_kind == "org" and old["headcount"]:
                self.state.add_fact(owner, "open_day_youths", -old["headcount"], day, env.event_id)
            if old["period_key"]:
                self.state.add_fact(owner, "five_ones", -1, day, env.event_id)
                fo = await self.state.get("five_ones", owner, old["period_key"])
                if fo is not None:
                    kinds = dict(fo["kinds"])
                    kinds[old["kind"]] = max(kinds.get(old["kind"], 1) - 1, 0)
                    bonus = fo["bonus"]
                    if bonus and kinds[old["kind"]] == 0:
                        # The period no longer has all five kinds: the bonus goes too.
                        await self.credit(owner, -bonus, "five_ones_all_kinds_withdrawn", old["ruleset"],
                                          [env.event_id], at, e.org_path, owner_kind=owner_kind,
                                          ref=old["period_key"])
                        bonus = 0
                    self.state.put("five_ones", {**fo, "kinds": kinds, "bonus": bonus})
        await self._activity(env, e)

    # campaigns (全团集中活动)

    async def on_CampaignOpened(self, tx: ProjectionTx, env: Envelope, e: Any) -> None:
        self.state.put("campaigns", {"campaign_id": e.campaign_id, "org_id": e.org_id, "key": e.key, "name": e.name,
                                     "starts_on": e.starts_on, "ends_on": e.ends_on,
                                     "known_at": self.state.known_since()})

    # spot checks (真实度抽查)

    async def on_SpotCheckItemRecorded(self, tx: ProjectionTx, env: Envelope, e: Any) -> None:
        day = china_day(env.occurred_at)
        self.state.add_fact(e.cadre_id, "spot_checked", 1, day, env.event_id)
        if e.outcome is c.SpotCheckOutcome.fabricated:
            rs = await self.ruleset_for(e.org_path, day)
            await self.credit(e.cadre_id, rs.spot_check.fabricated, "spot_check_fabricated", rs, [env.event_id],
                              env.occurred_at, e.org_path, ref=e.item)
            self.state.add_flag(e.cadre_id, "fabricated", e.item, env.event_id, day)
            self.state.add_fact(e.cadre_id, "spot_fabricated", 1, day, env.event_id)

    # wishes (微心愿、心愿池)

    async def on_WishRaised(self, tx: ProjectionTx, env: Envelope, e: Any) -> None:
        self.state.add_fact(e.cadre_id, "wish_raised", 1, china_day(env.occurred_at), env.event_id, e.youth_id)

    async def on_WishConfirmed(self, tx: ProjectionTx, env: Envelope, e: Any) -> None:
        day = china_day(env.occurred_at)
        self.state.add_fact(e.cadre_id, "wish_fulfilled", 1, day, env.event_id, e.youth_id)
        rs = await self.ruleset_for(e.org_path, day)
        kind = e.claimant_kind.value if e.claimant_kind else None
        points, rule = rules.wish_points(rs, from_pool=e.from_pool, claimant_kind=kind)
        owner, owner_kind = e.cadre_id, "cadre"
        if e.from_pool and e.claimant_id:
            owner, owner_kind = e.claimant_id, "org" if kind == "org" else "cadre"
        await self.credit(owner, points, rule, rs, [env.event_id], env.occurred_at, e.org_path,
                          owner_kind=owner_kind, youth_id=e.youth_id, ref=e.wish_id)

    # Youth Voice (青年之声)

    async def on_VoicePosted(self, tx: ProjectionTx, env: Envelope, e: Any) -> None:
        self.state.add_fact(e.cadre_id or e.org_id, "voice_posted", 1, china_day(env.occurred_at), env.event_id)

    async def on_VoiceAnswered(self, tx: ProjectionTx, env: Envelope, e: Any) -> None:
        if not e.cadre_id:
            return
        day = china_day(env.occurred_at)
        self.state.add_fact(e.cadre_id, "voice_answered", 1, day, env.event_id)
        if e.in_time:
            self.state.add_fact(e.cadre_id, "voice_in_time", 1, day, env.event_id)
        if e.answered_by == e.cadre_id:
            rs = await self.ruleset_for(e.org_path, day)
            points, rule = rules.voice_points(rs, e.in_time)
            await self.credit(e.cadre_id, points, rule, rs, [env.event_id], env.occurred_at, e.org_path,
                              youth_id=e.youth_id, ref=e.post_id)

    # ratings and ballots (评价、满意度测评)

    async def on_CadreRated(self, tx: ProjectionTx, env: Envelope, e: Any) -> None:
        day = china_day(env.occurred_at)
        self.state.add_fact(e.cadre_id, "rating_count", 1, day, env.event_id)
        self.state.add_fact(e.cadre_id, "rating_sum", e.score, day, env.event_id)
        rs = await self.ruleset_for(e.org_path, day)
        await self.credit(e.cadre_id, rules.rating_points(rs, e.score), "rating", rs, [env.event_id],
                          env.occurred_at, e.org_path, ref=e.rating_id)

    async def on_BallotClosed(self, tx: ProjectionTx, env: Envelope, e: Any) -> None:
        self.state.put("ballots", {"ballot_id": e.ballot_id, "cadre_id": e.secretary_cadre_id,
                                   "org_path": e.org_path, "year": e.year, "eligible": e.eligible,
                                   "turnout": e.turnout, "published": e.published, "satisfied": e.satisfied,
                                   "basically_satisfied": e.basically_satisfied, "unsatisfied": e.unsatisfied,
                                   "reelection_flag": e.reelection_flag, "known_at": self.state.known_since()})


CONTACTS_EVENTS = {
    "OrgCreated", "OrgRenamed", "OrgClosed", "OrgMoved", "OrgMerged", "OrgRulesSet", "CadreRegistered",
    "CadreTransferred", "CadreDeactivated", "GroupLinkAdded", "GroupLinkEnded", "ContactLinkAccepted",
    "ContactLinkEnded", "InteractionLogged", "InteractionConfirmed", "InteractionDisputed",
    "InteractionCorrected", "ActivityRecorded", "ActivityCorrected", "SpotCheckItemRecorded", "CampaignOpened",
}
WISHES_EVENTS = {"WishRaised", "WishConfirmed", "VoicePosted", "VoiceAnswered", "CadreRated", "BallotClosed"}
assert CONTACTS_EVENTS <= {t.event_type for t in c.CONTACTS.types()}
assert WISHES_EVENTS <= {t.event_type for t in w.WISHES.types()}

PROJECTION_SCHEMA = "scoring_proj"


def attach(consumer: EventConsumer, proj: Projector, names: set[str], *, ahead: bool = True) -> None:
    """Make ``proj`` the projection of ``consumer``, for the events ``names``: its handlers, its
    batches applied ahead (unless ``ahead`` is false), and, when it follows the version serving,
    the aggregate positions kept per version (a rebuild's swap then hands none over)."""
    consumer.handlers = proj.handlers(names)
    consumer.ahead = proj if ahead else None
    if proj.state.versions is not None:
        consumer.version_of = proj.state.serving_schema


def projector(schema: str, consumer: str, *, versions: str | None = None, **kw: Any) -> Projector:
    """A live consumer's projector; with ``versions`` it follows the version serving."""
    return Projector(State(schema, consumer, versions=versions), **kw)
