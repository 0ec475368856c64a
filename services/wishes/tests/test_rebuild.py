"""`tuanlian wishes rebuild`: wishes' read model of contacts rebuilt from the CONTACTS stream alone
and swapped in under the running service (real Postgres, real NATS)."""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Any

import pytest
from tuanlian.shared.auth import Role
from tuanlian.shared.contracts.contacts import (
    CadreDeactivated,
    CadreTransferred,
    ContactLinkEnded,
    OrgMoved,
    OrgRules,
    OrgRulesSet,
    OrgType,
    YouthRegistered,
)
from tuanlian.shared.db import connect_raw
from tuanlian.shared.readmodel import Progress, RebuildError
from tuanlian.shared.testing import stream_messages, wait_until
from tuanlian.wishes.adapters.rebuild import READ_MODEL, read_model_rebuild
from wishes_support import Harness

CITY, BRANCH = "/city", "/city/b1"
# What each table is compared on: an org move's sequence number is the order it was applied in.
COLUMNS = {t: "*" for t in READ_MODEL} | {"org_moves": "org_id, old_path, new_path, moved_at"}


async def _model(h: Harness) -> dict[str, list[tuple[Any, ...]]]:
    return {t: sorted((tuple(r.values()) for r in await h.rows(f"SELECT {COLUMNS[t]} FROM wishes.{t}")), key=repr)
            for t in READ_MODEL}


async def _settled(h: Harness) -> None:
    """Until the live consumers have reached every contacts aggregate published so far."""
    want = dict(h.contacts.versions)

    async def behind() -> list[str]:
        seen = {r["stream_id"]: r["stream_version"] for r in await h.rows(
            "SELECT stream_id, max(stream_version) AS stream_version FROM wishes.consumer_positions "
            "GROUP BY stream_id")}
        return [s for s, v in want.items() if seen.get(s, 0) < v]

    await wait_until(behind, until=lambda b: not b, message="the live consumers reach every aggregate")


async def _history(h: Harness) -> str:
    """Orgs with rules, youths, cadres, links made and ended, a transfer taking an accepted wish
    along, a branch moved and a cadre deactivated; the wish's id."""
    await h.contacts.org("city", CITY, OrgType.city)
    await h.contacts.org("b1", BRANCH)
    await h.contacts.org("town", "/town", OrgType.city)
    await h.contacts.org("b2", "/town/b2")
    await h.contacts.publish("org-b1", OrgRulesSet(org_id="b1", org_path=BRANCH, effective_from=date(2026, 1, 1),
                                                   rules=OrgRules()))
    for y in ("y0", "y1", "y2"):
        await h.contacts.publish(f"youth-{y}", YouthRegistered(youth_id=y, org_id="b1", org_path=BRANCH))
    await h.contacts.cadre("c1", "b1", BRANCH)
    await h.contacts.cadre("c2", "b1", BRANCH)
    for c, y in (("c1", "y0"), ("c1", "y1"), ("c2", "y2")):
        await h.contacts.link(c, y, BRANCH)
    await h.until_linked("c1", "y0")
    wish = await h.call("POST", "/wishes", h.auth(Role.youth, "y0"), 201,
                        json={"cadre_id": "c1", "category": "daily_life", "text": "想要一把雨伞上学用"})
    await h.call("POST", f"/wishes/{wish['wish_id']}/accept", h.auth(Role.cadre, "c1", BRANCH))
    await h.contacts.publish("contact_link-c1-y1", ContactLinkEnded(link_id="c1-y1", cadre_id="c1", youth_id="y1",
                                                                    ended_by="c1"))
    await h.contacts.publish("cadre-c1", CadreTransferred(cadre_id="c1", from_org_id="b1", to_org_id="b2",
                                                          old_path=BRANCH, org_path="/town/b2",
                                                          in_leadership_organ=False))
    await h.contacts.publish("org-b1", OrgMoved(org_id="b1", old_parent_id="city", new_parent_id="town",
                                                old_path=BRANCH, new_path="/town/b1", depth=1))
    await h.contacts.publish("cadre-c2", CadreDeactivated(cadre_id="c2", org_path="/town/b1", reason="left"))
    await _settled(h)
    await wait_until(lambda: h.published("WishRelocated"), message="the accepted wish follows its cadre")
    return str(wish["wish_id"])


async def test_a_rebuild_mends_the_read_model_equals_what_the_consumers_made_and_reacts_to_nothing_twice(
    harness: Harness, database_url: str
) -> None:
    h = harness
    wish = await _history(h)
    live = await _model(h)
    assert len(live["pairs"]) == 3 and len(live["org_moves"]) == 1
    indexes = "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'wishes' ORDER BY indexname"
    before = await h.rows(indexes)
    published = len(await stream_messages(h.js, "WISHES"))
    # Damaged by hand (or by a consumer's bug): a link lost, an org filed at a wrong path.
    async with h.app.state.runtime.db.connection() as conn:
        await conn.execute("DELETE FROM wishes.pairs WHERE youth_id = 'y0'")
        await conn.execute("UPDATE wishes.orgs SET org_path = '/nowhere' WHERE org_id = 'b2'")
    assert await _model(h) != live

    seen: list[Progress] = []
    conn = await connect_raw(database_url)
    try:
        result = await read_model_rebuild(conn, h.js, batch=5, on_progress=lambda p: seen.append(p)).run()
    finally:
        await conn.close()
    assert await _model(h) == live
    assert await h.rows(indexes) == before  # named as the migrations named them
    assert result.left_to_live == 0 and result.rows["pairs"] == 3 and seen[-1].phase == "done"
    assert seen[-1].applied == result.applied and seen[-1].read == result.read
    assert [p.read for p in seen if p.phase == "replay"] == sorted(p.read for p in seen if p.phase == "replay")
    # The transfer's reaction (the accepted wish relocated) happened once, when it was first applied.
    assert len(await stream_messages(h.js, "WISHES")) == published
    assert len(await h.published("WishRelocated")) == 1
    # Nothing of the rebuild is left behind, and the service goes on on the rebuilt tables.
    assert await h.rows("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'wishes\\_%'") == []
    await h.contacts.link("c1", "y1", "/town/b2")
    await h.until_linked("c1", "y1")
    got = await h.call("GET", f"/wishes/{wish}", h.auth(Role.youth, "y0"))
    assert got["org_path"] == "/town/b2"


async def test_events_the_live_consumers_apply_during_the_rebuild_are_applied_by_its_swap(
    harness: Harness, database_url: str
) -> None:
    """Held back while the replay reads a new link, the live consumer applies it only once the
    replay is done; the swap, after it, finds it applied and applies it too."""
    h = harness
    await h.contacts.org("b1", BRANCH)
    await h.contacts.link("c1", "y0", BRANCH)
    await _settled(h)
    hold = await connect_raw(database_url)
    conn = await connect_raw(database_url)
    try:
        tx = hold.transaction()
        await tx.start()
        await hold.execute("LOCK TABLE wishes.consumer_positions IN EXCLUSIVE MODE")
        await h.contacts.link("c1", "y9", BRANCH)
        await wait_until(lambda: h.rows("SELECT 1 FROM pg_locks WHERE NOT granted "
                                        "AND relation = 'wishes.consumer_positions'::regclass"),
                         message="the live consumer waits")
        swapping = asyncio.Event()
        waited: list[int] = []

        def report(p: Progress) -> None:
            if p.phase == "swap":
                waited.append(p.waiting)
                swapping.set()

        job = asyncio.create_task(read_model_rebuild(conn, h.js, on_progress=report).run())
        await asyncio.wait_for(swapping.wait(), 30)
        await tx.rollback()  # the live batch queued first goes first, then the swap
        result = await asyncio.wait_for(job, 30)
    finally:
        await hold.close()
        await conn.close()
    # The org and the first link replayed, the new one waiting, then applied by the swap.
    assert waited == [1] and result.applied == 3 and result.left_to_live == 0
    assert {r["youth_id"] for r in await h.rows("SELECT youth_id FROM wishes.pairs WHERE linked")} == {"y0", "y9"}


async def test_a_rebuild_refuses_while_the_live_consumers_are_far_behind_and_leaves_the_model_as_it_was(
    harness: Harness, database_url: str
) -> None:
    h = harness
    await h.contacts.org("b1", BRANCH)
    await _settled(h)
    live = await _model(h)
    hold = await connect_raw(database_url)
    conn = await connect_raw(database_url)
    try:
        tx = hold.transaction()
        await tx.start()
        await hold.execute("LOCK TABLE wishes.consumer_positions IN EXCLUSIVE MODE")  # the consumers stand still
        for y in ("y1", "y2", "y3"):
            await h.contacts.link("c1", y, BRANCH)
        rebuild = read_model_rebuild(conn, h.js)
        rebuild.max_waiting = 2
        with pytest.raises(RebuildError, match="more than 2 events behind"):
            await rebuild.run()
        await tx.rollback()
        assert await conn.fetchval("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'wishes\\_%'") == 0
    finally:
        await hold.close()
        await conn.close()
    await h.until_linked("c1", "y3")
    assert (await _model(h))["orgs"] == live["orgs"]
