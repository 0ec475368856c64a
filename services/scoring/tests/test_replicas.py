"""Replicas of the scoring service sharing its durable consumers, through real JetStream and
Postgres."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

from nats.js import JetStreamContext
from scoring_support import Producer, Scoring
from test_projection import T0, _interaction, _org_and_cadre
from test_rebuild import _dated, _points
from tuanlian.scoring.adapters.rebuild import Rebuild
from tuanlian.scoring.app import SPEC
from tuanlian.shared.contracts import contacts as c
from tuanlian.shared.contracts import wishes as w
from tuanlian.shared.service import build_runtime
from tuanlian.shared.settings import Settings
from tuanlian.shared.streams import declare_stream, producer_stream
from tuanlian.shared.testing import wait_until

CADRES = [f"c{i}" for i in range(1, 7)]


@asynccontextmanager
async def _replica(settings: Settings, batches: list[int]) -> AsyncIterator[Scoring]:
    """A scoring service of its own on the shared database and streams; ``batches`` counts the
    batches its projections wrote."""
    runtime = build_runtime(SPEC, settings)
    await runtime.start()
    for late in runtime.late:
        state = late.consumer.ahead.state  # type: ignore[union-attr]
        write = state.write

        async def counted(*args: Any, _write: Any = write, **kw: Any) -> Any:
            batches.append(1)
            return await _write(*args, **kw)

        state.write = counted  # type: ignore[method-assign]
    try:
        yield Scoring(runtime, None, settings.home)  # type: ignore[arg-type]
    finally:
        await runtime.stop()


async def _states(replica: Scoring) -> list[str]:
    return [late.state for late in replica.runtime.late]


async def _history(contacts: Producer, wishes: Producer, rng: random.Random,
                   halfway: Callable[[int], Awaitable[None]]) -> int:
    """Links, interactions, confirmations, a transfer and an org move, wishes and ratings;
    ``halfway`` is called with the number of events published so far, halfway through."""
    await _org_and_cadre(contacts, "c1")
    await contacts.emit("org-o2", c.OrgCreated(org_id="o2", parent_id="root", name="二支部", org_type=c.OrgType.branch,
                                               depth=2, is_leadership_organ=False, org_path="/root/o2"), T0)
    n = 3
    paths = {"c1": "/root/o1"}
    for cadre in CADRES[1:]:
        paths[cadre] = rng.choice(["/root/o1", "/root/o2"])
        await contacts.emit(f"cadre-{cadre}", c.CadreRegistered(
            cadre_id=cadre, org_id=paths[cadre].rsplit("/", 1)[1], org_path=paths[cadre],
            kind=rng.choice(list(c.CadreKind)), in_leadership_organ=False), T0)
        n += 1
    for i in range(150):
        cadre = rng.choice(CADRES)
        youths = rng.sample([f"y{k}" for k in range(12)], rng.randint(1, 3))
        at = T0 + timedelta(days=rng.randint(0, 40), hours=rng.randint(0, 12))
        roll = rng.random()
        if roll < 0.15:
            await contacts.emit(f"link-{cadre}-{youths[0]}", c.ContactLinkAccepted(
                link_id=f"{cadre}-{youths[0]}", cadre_id=cadre, youth_id=youths[0], org_path=paths[cadre]), at)
        elif roll < 0.8:
            await contacts.emit(f"interaction-i{i}", _interaction(f"i{i}", youths, rng.random() < 0.5, at, cadre,
                                                                  paths[cadre]), at)
            if rng.random() < 0.4:
                await contacts.emit(f"interaction-i{i}", c.InteractionConfirmed(
                    interaction_id=f"i{i}", cadre_id=cadre, youth_id=youths[0], org_path=paths[cadre]), at)
                n += 1
        elif roll < 0.9:
            await wishes.emit(f"wish-w{i}", w.WishConfirmed(wish_id=f"w{i}", youth_id=youths[0], cadre_id=cadre,
                                                            org_path=paths[cadre], from_pool=False,
                                                            days_to_fulfil=3), at)
        else:
            await wishes.emit(f"rating-r{i}", w.CadreRated(rating_id=f"r{i}", cadre_id=cadre, org_path=paths[cadre],
                                                           score=rng.randint(1, 5), period="2026Q1"), at)
        n += 1
        if i == 75:
            await halfway(n)
        if i == 60:  # a transfer, its boards re-filed by the fold
            await contacts.emit("cadre-c1", c.CadreTransferred(cadre_id="c1", from_org_id="o1", to_org_id="o2",
                                                               old_path="/root/o1", org_path="/root/o2",
                                                               in_leadership_organ=False), at)
            paths["c1"] = "/root/o2"
            n += 1
        if i == 100:  # an org move: its cadres' places rewritten by SQL in the batch's transaction
            await contacts.emit("org-o2", c.OrgMoved(org_id="o2", old_parent_id="root", new_parent_id="o1",
                                                     old_path="/root/o2", new_path="/root/o1/o2", depth=3), at)
            paths = {k: "/root/o1/o2" if v == "/root/o2" else v for k, v in paths.items()}
            n += 1
    return n


async def test_one_replica_projects_at_a_time_and_another_takes_over_where_it_stopped(
    database_url: str, nats_url: str, js: JetStreamContext, tmp_path: Path
) -> None:
    """Two replicas (``http_workers`` > 1, or two hosts) of the scoring service: one applies, the
    other stands by and takes over when the first stops; the log reads forward in stream order,
    and a rebuild from the streams dates every row as they did, and files the wishes credited
    while a transfer or a move was being applied where they were filed (the wishes consumer
    reads the cadres' places the contacts consumer writes)."""
    for producer in ("contacts", "wishes"):
        await declare_stream(js, producer_stream(producer), storage="memory")
    # Small batches: replicas fetching side by side would interleave their sequences.
    settings = Settings(home=tmp_path, database_url=database_url, nats_url=nats_url, stream_storage="memory",
                        retry_base_delay=0.05, projector_batch=8)
    contacts, wishes = Producer(js, "contacts"), Producer(js, "wishes")
    one: list[int] = []
    two: list[int] = []
    async with AsyncExitStack() as first_stops, AsyncExitStack() as both:
        first = await first_stops.enter_async_context(_replica(settings, one))
        await wait_until(lambda: _states(first), until=lambda s: s == ["bound", "bound"], message="first bound")
        second = await both.enter_async_context(_replica(settings, two))
        await wait_until(lambda: _states(second), until=lambda s: s == ["standby", "standby"],
                         message="second standing by")

        async def halfway(n: int) -> None:
            await first.applied(n)
            assert await _states(second) == ["standby", "standby"]
            assert len(one) > 3 and two == []
            await first_stops.aclose()  # its sessions, and the locks, end

        n = await _history(contacts, wishes, random.Random(7), halfway)
        await second.applied(n)
        assert await _states(second) == ["bound", "bound"] and len(two) > 3
        async with second.runtime.db.connection() as conn:
            # Each durable's log rows, in the order they were written, cover increasing sequences.
            logs = await conn.fetch("SELECT consumer, array_agg(through_seq ORDER BY id) AS seqs "
                                    "FROM scoring_proj.applied_log GROUP BY consumer")
            rebuilt = await Rebuild(conn, js).run()
        assert len(logs) == 2 and all(r["seqs"] == sorted(r["seqs"]) for r in logs)
        assert await _dated(second, rebuilt.schema) == await _dated(second, rebuilt.previous)
        assert await _points(second, rebuilt.schema) == await _points(second, rebuilt.previous)
