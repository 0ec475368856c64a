"""A micro-wish end to end: contacts events in, HTTP commands, WISHES events out through JetStream."""

from __future__ import annotations

import json

from tuanlian.shared.auth import Role
from tuanlian.shared.testing import stream_messages, wait_until
from wishes_support import Harness

BRANCH = "/city/school/b1"


async def test_linked_youth_wish_is_fulfilled_and_confirmed_on_the_wishes_stream(harness: Harness) -> None:
    h = harness
    await h.contacts.link("c1", "y1", BRANCH)
    await h.until_linked("c1", "y1")
    youth, cadre = h.auth(Role.youth, "y1"), h.auth(Role.cadre, "c1", BRANCH)

    w = await h.call("POST", "/wishes", youth, 201, json={
        "cadre_id": "c1", "category": "study", "text": "想要一套考研复习资料", "estimated_value_yuan": 200})
    wid = w["wish_id"]
    assert w["state"] == "raised"
    for step, state in (("accept", "accepted"), ("start", "in_progress")):
        assert (await h.call("POST", f"/wishes/{wid}/{step}", cadre))["state"] == state
    r = await h.call("POST", f"/wishes/{wid}/fulfil", cadre, json={"evidence": "送达资料并拍照"})
    assert r["state"] == "fulfilled"
    assert (await h.call("POST", f"/wishes/{wid}/confirm", youth))["state"] == "confirmed"

    # An illegal transition is refused with the current state, and nothing is written.
    r = await h.call("POST", f"/wishes/{wid}/accept", cadre, 409)
    assert r["current"] == "confirmed"

    async def confirmed() -> list[dict[str, object]]:
        msgs = await stream_messages(h.js, "WISHES", "wishes.events.wish.WishConfirmed")
        return [json.loads(m.data) for m in msgs]

    [env] = await wait_until(confirmed, message="WishConfirmed published to JetStream")
    assert env["payload"]["wish_id"] == wid
    assert env["payload"]["youth_id"] == "y1" and env["payload"]["cadre_id"] == "c1"
    assert env["payload"]["from_pool"] is False
    types = [json.loads(m.data)["event_type"] for m in await stream_messages(h.js, "WISHES")]
    assert types == ["WishRaised", "WishAccepted", "WishStarted", "WishFulfilled", "WishConfirmed"]
    # Wish text stays in Postgres, never on the bus.
    assert all("考研" not in m.data.decode() for m in await stream_messages(h.js, "WISHES"))

    [row] = await h.rows("SELECT state, evidence, days_to_fulfil FROM wishes.wishes WHERE wish_id = $1", wid)
    assert row["state"] == "confirmed" and row["evidence"] == "送达资料并拍照" and row["days_to_fulfil"] >= 0
    stats = await h.call("GET", "/stats", h.auth(Role.org_admin, "a1", "/city"))
    assert stats["total"]["submitted"] == 1 and stats["total"]["confirmed"] == 1
    assert stats["by_category"]["study"]["fulfilled"] == 1


async def test_unlinked_youth_and_value_over_the_cap_get_field_reasons(harness: Harness) -> None:
    h = harness
    youth = h.auth(Role.youth, "y2")
    r = await h.call("POST", "/wishes", youth, 422, json={"cadre_id": "c9", "category": "study", "text": "一个愿望吧"})
    assert r["field"] == "cadre_id"
    await h.contacts.link("c9", "y2", BRANCH)
    await h.until_linked("c9", "y2")
    r = await h.call("POST", "/wishes", youth, 422,
                     json={"cadre_id": "c9", "category": "study", "text": "一个愿望吧", "estimated_value_yuan": 501})
    assert r["field"] == "estimated_value_yuan"
    r = await h.call("POST", "/wishes", youth, 422, json={"cadre_id": "c9", "category": "nope", "text": "x"})
    assert {e["loc"][-1] for e in r["detail"]} == {"category", "text"}
    assert await h.rows("SELECT * FROM wishes.wishes") == []
    assert await h.rows("SELECT * FROM wishes.events") == []
