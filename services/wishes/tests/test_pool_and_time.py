"""心愿池 and the clock: auto-release, review, partners, claims that lapse, pledges, expiry; org rules."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

from tuanlian.shared.auth import Role
from tuanlian.shared.contracts.contacts import OrgMoved, OrgRules, OrgRulesSet, OrgType, ServiceLimits
from tuanlian.shared.testing import stream_messages, wait_until
from wishes_support import Harness

CITY, BRANCH = "/city", "/city/b1"


async def _wish(h: Harness, youth: str, cadre: str, text: str = "需要一台二手电脑学习编程") -> str:
    await h.contacts.link(cadre, youth, BRANCH)
    await h.until_linked(cadre, youth)
    w = await h.call("POST", "/wishes", h.auth(Role.youth, youth), 201,
                     json={"cadre_id": cadre, "category": "study", "text": text})
    return str(w["wish_id"])


async def test_untouched_wish_goes_to_the_pool_is_listed_claimed_lapses_and_is_fulfilled(harness: Harness) -> None:
    h = harness
    await h.contacts.org("city", CITY, OrgType.city)
    await h.contacts.publish("org-city", OrgRulesSet(
        org_id="city", org_path=CITY, effective_from=date(2020, 1, 1),
        rules=OrgRules(limits=ServiceLimits(wish_untouched_days=3, wish_claim_days=5))))
    await wait_until(lambda: h.rows("SELECT 1 FROM wishes.org_rules"), message="rules projected")
    wid = await _wish(h, "y1", "c1", "张三的电话13800138000，想要电脑")
    admin = h.auth(Role.org_admin, "a1", CITY)
    now = datetime.now(UTC)

    # Two days untouched: not due under the city's 3-day rule; four days: released, once only.
    assert not await h.service.scheduler.tick(now + timedelta(days=2))
    assert (await h.service.scheduler.tick(now + timedelta(days=4)))["released"] == 1
    assert not await h.service.scheduler.tick(now + timedelta(days=4))
    [row] = await h.rows("SELECT state FROM wishes.wishes")
    assert row["state"] == "awaiting_review"

    partner = (await h.call("POST", "/partners", admin, 201,
                            json={"name": "江城科技", "kind": "company", "org_id": "city"}))["partner_id"]
    p = h.auth(Role.partner, partner, CITY)
    assert await h.call("GET", "/pool", p) == []  # not listed before review
    await h.call("POST", f"/pool/{wid}/claim", p, 403)
    await h.call("POST", f"/pool/{wid}/review", admin, json={"approved": True, "public_text": "想要一台电脑学习编程"})
    [listed] = await h.call("GET", "/pool", p)
    assert listed["public_text"] == "想要一台电脑学习编程"
    assert "youth_id" not in listed and "13800138000" not in json.dumps(listed)

    other = h.auth(Role.cadre, "c7", CITY)
    await h.call("POST", f"/pool/{wid}/pledges", other, json={"amount_yuan": 100})
    claim = await h.call("POST", f"/pool/{wid}/claim", p)
    assert claim["state"] == "claimed"
    r = await h.call("POST", f"/pool/{wid}/claim", other, 409)  # one active claim at a time
    assert r["current"] == "claimed"
    # Past the 5-day claim deadline the claim lapses back to the pool.
    done = await h.service.scheduler.tick(datetime.fromisoformat(claim["claim_deadline"]) + timedelta(minutes=1))
    assert done["claims_lapsed"] == 1
    again = await h.call("POST", f"/pool/{wid}/claim", other)
    await h.call("POST", f"/wishes/{wid}/fulfil", p, 403, json={"evidence": "x"})
    await h.call("POST", f"/wishes/{wid}/fulfil", other, json={"evidence": "电脑已送到"})
    await h.call("POST", f"/wishes/{wid}/confirm", h.auth(Role.youth, "y1"))
    assert again["claim_id"]

    async def confirmed() -> list[dict[str, object]]:
        return [json.loads(m.data)["payload"]
                for m in await stream_messages(h.js, "WISHES", "wishes.events.wish.WishConfirmed")]

    [c] = await wait_until(confirmed)
    assert c["from_pool"] is True and c["claimant_kind"] == "cadre" and c["claimant_id"] == "c7"
    [row] = await h.rows("SELECT pledged_yuan, claimed_at FROM wishes.wishes")
    assert row["pledged_yuan"] == 100 and row["claimed_at"] is not None


async def test_expiry_withdrawal_decline_and_org_moves(harness: Harness) -> None:
    h = harness
    w1 = await _wish(h, "y1", "c1")
    w2 = await _wish(h, "y2", "c1")
    w3 = await _wish(h, "y3", "c1")
    cadre = h.auth(Role.cadre, "c1", BRANCH)
    await h.call("POST", f"/wishes/{w1}/decline", cadre, 422, json={"reason": ""})
    assert (await h.call("POST", f"/wishes/{w1}/decline", cadre, json={"reason": "超出能力"}))["state"] == "declined"
    assert (await h.call("POST", f"/wishes/{w2}/withdraw", h.auth(Role.youth, "y2")))["state"] == "withdrawn"
    await h.call("POST", f"/wishes/{w3}/accept", cadre)
    await h.call("POST", f"/wishes/{w3}/release", cadre)
    done = await h.service.scheduler.tick(datetime.now(UTC) + timedelta(days=91))  # default expiry 90 days
    assert done["expired"] == 1
    states = {r["wish_id"]: r["state"] for r in await h.rows("SELECT wish_id, state FROM wishes.wishes")}
    assert states == {w1: "declined", w2: "withdrawn", w3: "expired"}

    await h.contacts.publish("org-b1", OrgMoved(org_id="b1", old_parent_id="city", new_parent_id="town",
                                                old_path=BRANCH, new_path="/town/b1", depth=1))
    await wait_until(lambda: h.rows("SELECT 1 FROM wishes.wishes WHERE org_path = '/town/b1'"),
                     until=lambda r: len(r) == 3, message="paths rewritten")
    assert await h.rows("SELECT 1 FROM wishes.pairs WHERE org_path LIKE '/city%'") == []


async def test_two_replicas_ticking_at_once_emit_each_transition_once(harness: Harness) -> None:
    import asyncio

    from tuanlian.wishes.application.service import WishesService

    h = harness
    ids = [await _wish(h, f"y{i}", "c1") for i in range(4)]
    runtime = h.app.state.runtime
    replica = WishesService(runtime.db, runtime.store)  # a second process's handlers on the same schema
    later = datetime.now(UTC) + timedelta(days=8)
    first, second = await asyncio.gather(h.service.scheduler.tick(later), replica.scheduler.tick(later))
    assert first["released"] + second["released"] == 4
    again = await replica.scheduler.tick(later)
    assert not again
    released = await h.rows("SELECT stream_id FROM wishes.events WHERE event_type = 'WishReleasedToPool'")
    assert sorted(r["stream_id"] for r in released) == sorted(f"wish-{i}" for i in ids)


async def test_pledges_stop_at_what_the_wish_needs(harness: Harness) -> None:
    h = harness
    await h.contacts.link("c1", "y1", BRANCH)
    await h.until_linked("c1", "y1")
    youth = h.auth(Role.youth, "y1")
    w = await h.call("POST", "/wishes", youth, 201, json={
        "cadre_id": "c1", "category": "study", "text": "想要一套考研资料", "estimated_value_yuan": 300})
    wid = w["wish_id"]
    await h.call("POST", f"/wishes/{wid}/release", h.auth(Role.cadre, "c1", BRANCH))
    await h.call("POST", f"/pool/{wid}/review", h.auth(Role.org_admin, "a1", CITY), json={"approved": True})

    donor = h.auth(Role.cadre, "c7", CITY)
    await h.call("POST", f"/pool/{wid}/pledges", donor, json={"amount_yuan": 200})
    over = await h.call("POST", f"/pool/{wid}/pledges", donor, 422, json={"amount_yuan": 1_000_000})
    assert over["field"] == "amount_yuan" and over["remaining_yuan"] == 100, over
    await h.call("POST", f"/pool/{wid}/pledges", donor, json={"amount_yuan": 100})
    full = await h.call("POST", f"/pool/{wid}/pledges", donor, 409, json={"amount_yuan": 1})
    assert "fully pledged" in full["detail"] and full["needs_yuan"] == 300
    [row] = await h.rows("SELECT pledged_yuan FROM wishes.wishes WHERE wish_id = $1", wid)
    assert row["pledged_yuan"] == 300
    assert len(await h.rows("SELECT 1 FROM wishes.pledges WHERE wish_id = $1", wid)) == 2
    # An estimate the value columns cannot hold is refused whatever the org's cap.
    r = await h.call("POST", "/wishes", youth, 422, json={
        "cadre_id": "c1", "category": "study", "text": "想要一套考研资料", "estimated_value_yuan": 2**31})
    assert r["detail"][0]["loc"] == ["body", "estimated_value_yuan"]
