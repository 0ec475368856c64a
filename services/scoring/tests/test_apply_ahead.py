"""A batch applied ahead of its transaction (先行应用) is kept only on memory Postgres still holds.

The live projector applies batch N+1 in memory while batch N's statements run. If N then fails,
or another writer committed in between, or a rebuilt version was swapped in, what N+1 applied
rests on rows that are not Postgres's: it must be dropped and N+1 applied afresh.

A failed batch comes back after the ones behind it (order holds per aggregate, not across them),
so the history of the end-to-end test is one whose outcome does not depend on the order of
different aggregates: orgs and cadres first, then links, interactions with a youth each, and
their confirmations or disputes.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

import asyncpg
from nats.js import JetStreamContext
from scoring_support import Producer
from test_batching import COMPARED, T0, Counting, _apply, _fold, _tables
from tuanlian.scoring.adapters.projection import CONTACTS_EVENTS, Projector, attach
from tuanlian.scoring.adapters.state import State
from tuanlian.shared.consumer import EventConsumer, ProjectionTx
from tuanlian.shared.contracts import contacts as c
from tuanlian.shared.contracts.contacts import CONTACTS
from tuanlian.shared.db import Database, connect_raw
from tuanlian.shared.events import DomainEvent, Envelope, new_id
from tuanlian.shared.migrations import load_migrations, migrate
from tuanlian.shared.streams import declare_stream, producer_stream
from tuanlian.shared.testing import running_consumers, wait_until


class _FailsOnce(State):
    """The real state, except that the first batch whose successor is applied ahead during its
    writes then fails them (the connection drops halfway through)."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.next_applied = asyncio.Event()
        self.failed = self.sends = 0

    async def write(self, tx: ProjectionTx, *, rows: bool = True, fold_now: bool = False,
                    release: bool = False) -> None:
        if release:
            self.next_applied.clear()
        await super().write(tx, rows=rows, fold_now=fold_now, release=release)

    async def _send(self, conn: Any, taken: Any, fold_now: bool) -> None:
        self.sends += 1
        if not self.failed and self.sends > 2:  # once the orgs and cadres are in
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.next_applied.wait(), 1.0)
                self.failed += 1
                raise asyncpg.exceptions.ConnectionDoesNotExistError("injected: connection lost mid-batch")
        await super()._send(conn, taken, fold_now)


class _Watching(Counting):
    async def apply_ahead(self, conn: Any, events: Any) -> None:
        await super().apply_ahead(conn, events)
        assert isinstance(self.state, _FailsOnce)
        self.state.next_applied.set()


def _history(n: int = 200) -> list[tuple[str, DomainEvent, datetime]]:
    rnd = random.Random(5)
    out: list[tuple[str, DomainEvent, datetime]] = []
    for o in ("o0", "o1"):
        out.append((f"org-{o}", c.OrgCreated(org_id=o, parent_id="r", name=o, org_type=c.OrgType.branch, depth=2,
                                             is_leadership_organ=False, org_path=f"/r/{o}"), T0))
    cadres = {f"c{i}": f"o{i % 2}" for i in range(4)}
    for cid, org in cadres.items():
        out.append((f"cadre-{cid}", c.CadreRegistered(cadre_id=cid, org_id=org, org_path=f"/r/{org}",
                                                      in_leadership_organ=False, kind=c.CadreKind.full_time), T0))
    logged: list[tuple[str, str, str]] = []
    for i in range(n):
        at = T0 + timedelta(hours=5 * i)
        cid = rnd.choice(list(cadres))
        org_path = f"/r/{cadres[cid]}"
        r = rnd.random()
        if r < 0.25:
            out.append((f"link-l{i}", c.ContactLinkAccepted(link_id=f"l{i}", cadre_id=cid, youth_id=f"y{i}",
                                                            org_path=org_path), at))
        elif r < 0.7 or not logged:
            logged.append((f"i{i}", cid, f"y{i}"))
            out.append((f"interaction-i{i}", c.InteractionLogged(
                interaction_id=f"i{i}", cadre_id=cid, org_path=org_path, youth_ids=[f"y{i}"],
                channel=c.Channel.wechat, online=rnd.random() < 0.6, occurred_at=at, summary_length=30,
                summary_hash=f"h{i}"), at))
        else:
            iid, icid, y = logged.pop(rnd.randrange(len(logged)))
            word: Any = c.InteractionConfirmed if rnd.random() < 0.8 else c.InteractionDisputed
            out.append((f"interaction-{iid}", word(interaction_id=iid, cadre_id=icid, youth_id=y,
                                                   org_path=f"/r/{cadres[icid]}"), at))
    return out


async def test_a_batch_failing_after_the_next_was_applied_ahead_loses_nothing(
    database_url: str, nats_url: str, js: JetStreamContext, db: Database
) -> None:
    for producer in ("contacts", "wishes"):
        await declare_stream(js, producer_stream(producer), storage="memory")
    contacts = _history()
    pub = Producer(js, "contacts")
    for stream_id, e, at in contacts:
        await pub.emit(stream_id, e, at, getattr(e, "org_path", None))
    conn = await connect_raw(database_url)
    try:
        for service in ("sa", "scoring"):
            await migrate(conn, service, load_migrations("tuanlian.scoring.migrations", service))
    finally:
        await conn.close()
    await _apply(js, db, "sa", 1, {"contacts": len(contacts), "wishes": 0})  # the reference

    cons = EventConsumer(service="scoring", name="points", producer="contacts", contracts=CONTACTS, db=db,
                         schema="scoring", handlers={}, batch_size=16, retry_base_delay=0.05)
    proj = _Watching(_FailsOnce("scoring_proj", cons.durable, versions="scoring.projection_versions"))
    attach(cons, proj, CONTACTS_EVENTS)
    async with running_consumers(nats_url, js, cons):
        async def inbox() -> int:
            async with db.connection() as c2:
                return int(await c2.fetchval("SELECT count(*) FROM scoring.consumer_inbox"))

        await wait_until(inbox, until=lambda n: n == len(contacts), timeout=60, message="every event applied")
    await _fold(db, "scoring")
    assert isinstance(proj.state, _FailsOnce) and proj.state.failed == 1
    # The batch applied ahead during the failed one was dropped; others were kept.
    assert proj.dropped >= 1 and proj.kept >= 1, (proj.dropped, proj.kept)
    reference, got = await _tables(db, "sa_proj"), await _tables(db, "scoring_proj")
    assert len(reference["ledger"]) > 100
    for table in COMPARED:
        assert got[table] == reference[table], table


class _Breakable(State):
    broken = False

    async def _send(self, conn: Any, taken: Any, fold_now: bool) -> None:
        if self.broken:
            raise asyncpg.exceptions.ConnectionDoesNotExistError("injected")
        await super()._send(conn, taken, fold_now)


async def _committed_state(db: Database) -> _Breakable:
    """A live state that has committed one batch, with a row in memory."""
    state = _Breakable("scoring_proj", "points", versions="scoring.projection_versions")
    async with db.transaction() as conn:
        tx = ProjectionTx(conn)
        await state.begin(tx)
        state.put("orgs", {"org_id": "o1", "org_path": "/o1", "name": "一支部", "org_type": "branch", "depth": 1,
                           "is_leadership_organ": False, "closed": False})
        await state.write(tx)
    return state


async def _adopts(db: Database, state: State, epoch: int) -> bool:
    async with db.transaction() as conn:
        kept = await state.adopt(ProjectionTx(conn), epoch)
        if kept:
            await state.write(ProjectionTx(conn))
        return kept


async def test_memory_applied_ahead_is_kept_only_while_postgres_holds_it(database_url: str, db: Database) -> None:
    conn = await connect_raw(database_url)
    try:
        await migrate(conn, "scoring", load_migrations("tuanlian.scoring.migrations", "scoring"))
    finally:
        await conn.close()
    state = await _committed_state(db)
    assert state.committed()
    assert await _adopts(db, state, state.epoch)  # nothing happened in between: kept

    # A batch whose move rewrote rows with SQL (dropping the memory) lets no batch be applied
    # ahead of its commit: those rows, uncommitted, would be read as they were before it.
    async with db.transaction() as conn:
        tx = ProjectionTx(conn)
        await state.begin(tx)
        state.clear()
        await state.write(tx)
        assert not state.committed()
    async with db.transaction() as conn:
        tx = ProjectionTx(conn)
        await state.begin(tx)
        await state.write(tx)
        assert state.committed()

    # Another replica of the consumer committed a batch since: its generation is in the row.
    async with db.connection() as c2:
        await c2.execute("UPDATE scoring_proj.projector_gen SET gen = gen + 1 WHERE consumer = 'points'")
    assert not await _adopts(db, state, state.epoch)

    # The memory was dropped while the batch was applied ahead (the batch before it failed).
    state = await _committed_state(db)
    epoch = state.epoch
    state.clear()
    assert not await _adopts(db, state, epoch)

    # The batch before it failed while writing, after it had taken its writes out of memory (its
    # rows in memory are not Postgres's, and no buffer is left to tell).
    state = await _committed_state(db)
    epoch = state.epoch
    with contextlib.suppress(asyncpg.exceptions.ConnectionDoesNotExistError):
        async with db.transaction() as conn:
            tx = ProjectionTx(conn)
            assert await state.adopt(tx, epoch)
            state.put("orgs", {"org_id": "o2", "org_path": "/o2", "name": "二支部", "org_type": "branch",
                               "depth": 1, "is_leadership_organ": False, "closed": False})
            state.broken = True
            await state.write(tx)
    assert not await _adopts(db, state, epoch)

    # A rebuilt version was swapped in meanwhile.
    state = await _committed_state(db)
    async with db.connection() as c3:
        await c3.execute("UPDATE scoring.projection_versions SET schema_name = 'scoring_proj_v9' "
                         "WHERE status = 'current'")
    assert not await _adopts(db, state, state.epoch)


async def test_a_live_batch_applied_in_its_transaction_hands_the_loop_back(database_url: str, db: Database) -> None:
    """A batch not applied ahead (the wishes consumer's, always) is applied in its transaction a
    few events at a time, so the other consumer's batch gets its statements' replies meanwhile."""
    conn = await connect_raw(database_url)
    try:
        await migrate(conn, "scoring", load_migrations("tuanlian.scoring.migrations", "scoring"))
    finally:
        await conn.close()
    proj = Projector(State("scoring_proj", "points", versions="scoring.projection_versions"))
    handlers = proj.handlers(CONTACTS_EVENTS)
    versions: dict[str, int] = defaultdict(int)
    seen: list[int] = []  # ledger entries applied so far, at each turn of the event loop

    async def ticker() -> None:
        while True:
            seen.append(len(proj.state.ledger))
            await asyncio.sleep(0)

    async with db.transaction() as conn:
        tx = ProjectionTx(conn)
        for sid, event, at in _history(60):
            versions[sid] += 1
            env = Envelope(event_id=new_id(), event_type=event.event_type, schema_version=event.schema_version,
                           producer="contacts", stream_type=event.stream_type, stream_id=sid,
                           stream_version=versions[sid], occurred_at=at, recorded_at=at,
                           payload=event.model_dump(mode="json"))
            await handlers[env.event_type](tx, env, event)
        task = asyncio.create_task(ticker())
        try:
            await tx.flush()
        finally:
            task.cancel()
        written = await conn.fetchval("SELECT count(*) FROM scoring_proj.ledger")
    assert written > 16
    assert any(0 < n < written for n in seen), seen  # seen halfway through, not only before and after


async def test_after_a_live_org_move_the_next_batch_is_applied_ahead_on_the_moved_rows(
    database_url: str, db: Database
) -> None:
    """A live org move rewrites paths with SQL in its batch's transaction, and reads the moved rows
    back into memory there. The batch after it may then be applied ahead, before that commit: it
    reads its misses outside the transaction, where the rows are still as they were, but finds
    the moved ones in memory at their new places, and the rules row keyed by the old path gone."""
    conn = await connect_raw(database_url)
    try:
        await migrate(conn, "scoring", load_migrations("tuanlian.scoring.migrations", "scoring"))
    finally:
        await conn.close()
    state = State("scoring_proj", "points", versions="scoring.projection_versions")
    projector = Projector(state)
    async with db.transaction() as conn:
        await state.begin(ProjectionTx(conn))
        for org, path in (("o1", "/r/o1"), ("o2", "/r/o2")):
            state.put("orgs", {"org_id": org, "org_path": path, "name": org, "org_type": "branch", "depth": 2,
                               "is_leadership_organ": False, "closed": False})
        state.put("cadres", {"cadre_id": "c1", "org_id": "o1", "org_path": "/r/o1", "org_type": "branch",
                             "kind": "full_time", "in_leadership_organ": False, "active": True, "linked_youths": 0,
                             "last_online": None, "last_face_to_face": None})
        state.put("org_rules", {"org_path": "/r/o1", "records": [], "replaced": None})
        await state.write(ProjectionTx(conn))
    assert state.committed()
    async with db.transaction() as conn:  # the move's batch, not committed while the next is applied ahead
        tx = ProjectionTx(conn)
        await state.begin(tx)
        await projector._rewrite(tx, "/r/o1", "/r/o2/o1")
        await state.write(tx, release=True)
        assert projector.applies_ahead([])
        async with db.connection() as outside:
            assert await outside.fetchval("SELECT org_path FROM scoring_proj.cadres WHERE cadre_id = 'c1'") == "/r/o1"
            state.lend(ProjectionTx(outside))
            cadre, org = await state.get("cadres", "c1"), await state.get("orgs", "o1")
            old_rules, new_rules = await state.get("org_rules", "/r/o1"), await state.get("org_rules", "/r/o2/o1")
            state.lend(None)
        assert (cadre or {}).get("org_path") == "/r/o2/o1" and (org or {}).get("org_path") == "/r/o2/o1"
        assert old_rules is None and new_rules is not None
    assert await _adopts(db, state, state.epoch)
