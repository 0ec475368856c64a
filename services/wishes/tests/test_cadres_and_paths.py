"""Cadres who leave or move, and org moves that overtake the events they rewrite (real NATS)."""

from __future__ import annotations

from tuanlian.shared.auth import Role
from tuanlian.shared.contracts.contacts import (
    CadreDeactivated,
    CadreTransferred,
    ContactLinkAccepted,
    OrgMoved,
    OrgType,
    YouthRegistered,
)
from tuanlian.shared.testing import wait_until
from wishes_support import Harness

CITY, BRANCH = "/city", "/city/b1"


async def _setup(h: Harness, youths: int) -> None:
    await h.contacts.org("city", CITY, OrgType.city)
    await h.contacts.org("b1", BRANCH)
    await h.contacts.cadre("c1", "b1", BRANCH)
    for i in range(youths):
        await h.contacts.link("c1", f"y{i}", BRANCH)
    await wait_until(lambda: h.rows("SELECT 1 FROM wishes.pairs"), until=lambda r: len(r) == youths)
    await wait_until(lambda: h.rows("SELECT 1 FROM wishes.cadres"), message="cadre projected")
    await wait_until(lambda: h.rows("SELECT 1 FROM wishes.orgs"), until=lambda r: len(r) == 2)


async def _raise(h: Harness, youth: str, cadre: str = "c1") -> str:
    w = await h.call("POST", "/wishes", h.auth(Role.youth, youth), 201,
                     json={"cadre_id": cadre, "category": "daily_life", "text": "想要一把雨伞上学用"})
    return str(w["wish_id"])


async def test_a_deactivated_cadres_wishes_go_to_the_pool_posts_to_the_org_and_ratings_stop(
        harness: Harness) -> None:
    h = harness
    await _setup(h, 4)
    await h.contacts.link("c2", "y9", BRANCH)
    await h.until_linked("c2", "y9")
    cadre, admin = h.auth(Role.cadre, "c1", BRANCH), h.auth(Role.org_admin, "a1", CITY)
    raised, started, fulfilled = await _raise(h, "y0"), await _raise(h, "y1"), await _raise(h, "y2")
    for step in ("accept", "start"):
        await h.call("POST", f"/wishes/{started}/{step}", cadre)
        await h.call("POST", f"/wishes/{fulfilled}/{step}", cadre)
    await h.call("POST", f"/wishes/{fulfilled}/fulfil", cadre, json={"evidence": "已送到"})
    # c1 also holds a claim on another cadre's pool wish.
    pooled = await _raise(h, "y9", "c2")
    await h.call("POST", f"/wishes/{pooled}/release", h.auth(Role.cadre, "c2", BRANCH))
    await h.call("POST", f"/pool/{pooled}/review", admin, json={"approved": True})
    await h.call("POST", f"/pool/{pooled}/claim", cadre)
    post = await h.call("POST", "/voice", h.auth(Role.youth, "y3"), 201,
                        json={"kind": "question", "text": "周末有活动吗", "cadre_id": "c1"})
    await h.call("POST", "/ratings", h.auth(Role.youth, "y3"), 201, json={"cadre_id": "c1", "score": 4})

    gone = await h.contacts.publish("cadre-c1", CadreDeactivated(cadre_id="c1", org_path=BRANCH, reason="调离团口"))

    def states(rows: list[dict[str, object]]) -> dict[object, object]:
        return {r["wish_id"]: (r["state"], r["state_reason"]) for r in rows}

    done = await wait_until(lambda: h.rows("SELECT wish_id, state, state_reason FROM wishes.wishes"),
                            until=lambda r: states(r)[raised][0] == "awaiting_review", message="released")
    assert states(done) == {
        raised: ("awaiting_review", "cadre_deactivated"),
        started: ("awaiting_review", "cadre_deactivated"),
        fulfilled: ("fulfilled", None),  # waits for the youth's word; nothing is left for the cadre to do
        pooled: ("pooled", None),  # c1's claim lapsed back to the pool
    }
    [p] = await h.rows("SELECT cadre_id, org_path, state FROM wishes.voice_posts")
    assert p == {"cadre_id": None, "org_path": BRANCH, "state": "open"}

    released = await wait_until(lambda: h.published("WishReleasedToPool"),
                                until=lambda r: len(r) == 3, message="releases published")
    mine = [e for e in released if e["payload"]["cadre_id"] == "c1"]
    assert len(mine) == 2 and all(e["payload"]["automatic"] and e["payload"]["reason"] == "cadre_deactivated"
                                  and e["causation_id"] == str(gone.event_id) for e in mine)
    [lapsed] = await wait_until(lambda: h.published("PoolClaimLapsed"))
    assert lapsed["payload"]["reason"] == "cadre_deactivated"
    [redirected] = await wait_until(lambda: h.published("VoicePostRedirected"))
    assert redirected["payload"]["cadre_id"] is None and redirected["payload"]["org_id"] == "b1"

    # The org's admins answer now; the cadre no longer can.
    await h.call("POST", f"/voice/{post['post_id']}/answer", cadre, 403, json={"text": "我来"})
    await h.call("POST", f"/voice/{post['post_id']}/answer", admin, json={"text": "周六有志愿活动"})
    # No new ratings, wishes or posts for a cadre who left (their links end after this event).
    r = await h.call("POST", "/ratings", h.auth(Role.youth, "y0"), 422, json={"cadre_id": "c1", "score": 5})
    assert r["field"] == "cadre_id" and "left" in r["detail"]
    r = await h.call("POST", "/wishes", h.auth(Role.youth, "y0"), 422,
                     json={"cadre_id": "c1", "category": "study", "text": "再许一个愿望"})
    assert r["field"] == "cadre_id"
    await h.call("POST", "/voice", h.auth(Role.youth, "y0"), 422,
                 json={"kind": "question", "text": "还在吗", "cadre_id": "c1"})
    # The released wishes wait in the review queue with the reason; they went once only.
    queue = await h.call("GET", "/pool/review", admin)
    assert {q["wish_id"]: q["state_reason"] for q in queue} == {raised: "cadre_deactivated",
                                                                  started: "cadre_deactivated"}
    events = await h.rows("SELECT count(*) AS n FROM wishes.events WHERE event_type = 'WishReleasedToPool'")
    assert events[0]["n"] == 3

    # The fulfilled wish is disputed afterwards: with no cadre left to act, it goes to the pool too.
    await h.call("POST", f"/wishes/{fulfilled}/dispute", h.auth(Role.youth, "y2"), json={"reason": "没收到"})
    [row] = await h.rows(f"SELECT state, state_reason FROM wishes.wishes WHERE wish_id = '{fulfilled}'")
    assert row == {"state": "awaiting_review", "state_reason": "cadre_deactivated"}
    queue = await h.call("GET", "/pool/review", admin)
    assert fulfilled in {q["wish_id"] for q in queue}


async def test_a_transferred_cadre_keeps_their_open_wishes_under_the_new_path(harness: Harness) -> None:
    h = harness
    await _setup(h, 2)
    await h.contacts.org("town", "/town", OrgType.city)
    await h.contacts.org("b2", "/town/b2")
    cadre = h.auth(Role.cadre, "c1", BRANCH)
    kept, pooled = await _raise(h, "y0"), await _raise(h, "y1")
    await h.call("POST", f"/wishes/{kept}/accept", cadre)
    await h.call("POST", f"/wishes/{pooled}/release", cadre)  # the pool's, not the cadre's: stays in /city
    post = await h.call("POST", "/voice", h.auth(Role.youth, "y0"), 201,
                        json={"kind": "suggestion", "text": "多组织读书会", "cadre_id": "c1"})
    await wait_until(lambda: h.rows("SELECT 1 FROM wishes.orgs"), until=lambda r: len(r) == 4)

    await h.contacts.publish("cadre-c1", CadreTransferred(
        cadre_id="c1", from_org_id="b1", to_org_id="b2", old_path=BRANCH, org_path="/town/b2",
        in_leadership_organ=False))
    await wait_until(lambda: h.rows("SELECT 1 FROM wishes.wishes WHERE org_path = '/town/b2'"),
                     message="the open wish follows its cadre")
    paths = {r["wish_id"]: r["org_path"] for r in await h.rows("SELECT wish_id, org_path FROM wishes.wishes")}
    assert paths == {kept: "/town/b2", pooled: BRANCH}
    assert {r["org_path"] for r in await h.rows("SELECT org_path FROM wishes.pairs")} == {"/town/b2"}
    [p] = await h.rows("SELECT cadre_id, org_id, org_path FROM wishes.voice_posts")
    assert p == {"cadre_id": "c1", "org_id": "b2", "org_path": "/town/b2"}

    # The new org's admins see it, the old org's no longer; the cadre carries on under the new path.
    await h.call("GET", f"/wishes/{kept}", h.auth(Role.org_admin, "a2", "/town"))
    await h.call("GET", f"/wishes/{kept}", h.auth(Role.org_admin, "a1", CITY), 403)
    await h.call("POST", f"/wishes/{kept}/start", cadre)
    await h.call("POST", f"/voice/{post['post_id']}/answer", cadre, json={"text": "好的"})
    [started] = await wait_until(lambda: h.published("WishStarted"))
    assert started["payload"]["org_path"] == "/town/b2" and started["org_path"] == "/town/b2"
    [moved] = await wait_until(lambda: h.published("WishRelocated"))
    assert moved["payload"] == {"wish_id": kept, "cadre_id": "c1", "old_path": BRANCH, "org_path": "/town/b2"}
    # A wish raised now is filed under the new path.
    assert (await h.call("POST", "/wishes", h.auth(Role.youth, "y1"), 201, json={
        "cadre_id": "c1", "category": "study", "text": "想借一本词典"}))["org_path"] == "/town/b2"


async def test_a_link_accepted_before_an_org_move_but_projected_after_it_gets_the_new_path(
        harness: Harness) -> None:
    h = harness
    await h.contacts.org("b1", BRANCH)
    await h.contacts.link("c1", "y1", BRANCH)
    await h.until_linked("c1", "y1")
    await wait_until(lambda: h.rows("SELECT 1 FROM wishes.orgs"))
    wish = await _raise(h, "y1")
    # The move is applied first (org consumer); the link and youth events written before it
    # arrive only now, on other consumers, still carrying the old path.
    await h.contacts.publish("org-b1", OrgMoved(org_id="b1", old_parent_id="city", new_parent_id="town",
                                                old_path=BRANCH, new_path="/town/b1", depth=1))
    # An org this service never saw created: only the recorded move can bring its paths up to date.
    await h.contacts.publish("org-dept", OrgMoved(org_id="dept", old_parent_id="uni", new_parent_id="uni2",
                                                  old_path="/uni/dept", new_path="/uni2/dept", depth=1))
    await wait_until(lambda: h.rows("SELECT 1 FROM wishes.org_moves"), until=lambda r: len(r) == 2)
    await h.contacts.publish("contact_link-c1-y2", ContactLinkAccepted(
        link_id="c1-y2", cadre_id="c1", youth_id="y2", org_path=BRANCH))
    await h.contacts.publish("contact_link-c3-y3", ContactLinkAccepted(
        link_id="c3-y3", cadre_id="c3", youth_id="y3", org_path="/uni/dept/b9"))
    await h.contacts.publish("youth-y2", YouthRegistered(youth_id="y2", org_id="b1", org_path=BRANCH))
    await h.until_linked("c1", "y2")
    await h.until_linked("c3", "y3")
    await wait_until(lambda: h.rows("SELECT 1 FROM wishes.youths"))
    pairs = {r["youth_id"]: r["org_path"] for r in await h.rows("SELECT youth_id, org_path FROM wishes.pairs")}
    assert pairs == {"y1": "/town/b1", "y2": "/town/b1", "y3": "/uni2/dept/b9"}
    assert await h.rows("SELECT org_path FROM wishes.youths") == [{"org_path": "/town/b1"}]

    # A wish raised before the move is handled where its org is now, and its events say so.
    admin = h.auth(Role.org_admin, "a2", "/town")
    await h.call("POST", f"/wishes/{wish}/release", h.auth(Role.cadre, "c1", "/town/b1"))
    await h.call("POST", f"/pool/{wish}/review", h.auth(Role.org_admin, "a1", CITY), 403, json={"approved": True})
    await h.call("POST", f"/pool/{wish}/review", admin, json={"approved": True})
    [reviewed] = await wait_until(lambda: h.published("PoolWishReviewed"))
    assert reviewed["payload"]["org_path"] == "/town/b1"
