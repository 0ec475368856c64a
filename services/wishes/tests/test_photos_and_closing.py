"""Wish photos (upload checked by bytes, all or none, pool shows only kept ones), wishes closed
without the youth's word, and the problem list's edits and status table."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from tuanlian.shared.auth import Role
from tuanlian.shared.contracts.contacts import OrgRules, OrgRulesSet, OrgType, ServiceLimits, YouthErased
from tuanlian.shared.testing import wait_until
from wishes_support import Harness

CITY, BRANCH = "/city", "/city/b1"
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x01" * 200
PNG = b"\x89PNG\r\n\x1a\n" + b"\x02" * 200
WEBP = b"RIFF\x00\x01\x00\x00WEBPVP8 " + b"\x03" * 200
GIF = b"GIF89a" + b"\x04" * 200


def files(*items: tuple[str, bytes, str]) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("files", item) for item in items]


async def _wish(h: Harness) -> str:
    await h.contacts.org("city", CITY, OrgType.city)
    await h.contacts.link("c1", "y1", BRANCH)
    await h.until_linked("c1", "y1")
    w = await h.call("POST", "/wishes", h.auth(Role.youth, "y1"), 201,
                     json={"cadre_id": "c1", "category": "study", "text": "想要一个书包上学用"})
    return str(w["wish_id"])


async def test_photos_are_checked_by_their_bytes_stored_all_or_none_and_shown_only_where_allowed(
        harness: Harness) -> None:
    h = harness
    wid = await _wish(h)
    youth, cadre, admin = h.auth(Role.youth, "y1"), h.auth(Role.cadre, "c1", BRANCH), h.auth(Role.org_admin, "a", CITY)
    url = f"/wishes/{wid}/photos"

    # A GIF declared as JPEG, beside a good photo: refused by its bytes, and neither is kept.
    r = await h.call("POST", url, youth, 422, files=files(("a.jpg", JPEG, "image/jpeg"), ("b.jpg", GIF, "image/jpeg")))
    assert r["field"] == "files" and "b.jpg" in r["detail"]
    big = b"\xff\xd8\xff" + b"\x00" * (5 * 1024 * 1024)
    r = await h.call("POST", url, youth, 422, files=files(("big.jpg", big, "image/jpeg")))
    assert "at most" in r["detail"]
    r = await h.call("POST", url, youth, 422, files=files(*[(f"{i}.png", PNG, "image/png") for i in range(7)]))
    assert "at most 6 photos" in r["detail"]
    await h.call("POST", url, youth, 422)  # no files at all
    await h.call("POST", url, h.auth(Role.youth, "y2"), 403, files=files(("a.jpg", JPEG, "image/jpeg")))
    await h.call("POST", url, cadre, 403, files=files(("a.jpg", JPEG, "image/jpeg")))
    assert await h.rows("SELECT 1 FROM wishes.wish_photos") == []
    assert await h.rows("SELECT 1 FROM wishes.events WHERE event_type = 'WishPhotoAttached'") == []

    # A WebP declared as PNG is stored as what it is.
    ids = (await h.call("POST", url, youth, 201, files=files(
        ("face.jpg", JPEG, "image/jpeg"), ("room.png", WEBP, "image/png"))))["photo_ids"]
    face, room = ids
    r = await h.call("GET", f"{url}/{room}", youth)
    assert r.headers["content-type"] == "image/webp" and r.content == WEBP
    assert (await h.call("GET", f"{url}/{face}", cadre)).content == JPEG
    assert (await h.call("GET", f"/wishes/{wid}", admin))["photo_ids"] == ids
    await h.call("GET", f"{url}/{face}", h.auth(Role.org_admin, "a2", "/town"), 403)
    await h.call("GET", f"{url}/{face}", h.auth(Role.youth, "y2"), 403)
    await h.call("GET", f"{url}/nope", youth, 404)
    [attached, _] = await wait_until(lambda: h.published("WishPhotoAttached"), until=lambda r: len(r) == 2)
    assert attached["payload"]["content_type"] == "image/jpeg" and attached["payload"]["size_bytes"] == len(JPEG)
    assert "JFIF" not in str(attached)

    # In the pool, only the photo the reviewer kept is listed and served.
    partner_id = (await h.call("POST", "/partners", admin, 201,
                               json={"name": "书店", "kind": "company", "org_id": "city"}))["partner_id"]
    partner = h.auth(Role.partner, partner_id, CITY)
    await h.call("POST", f"/wishes/{wid}/release", cadre)
    [queued] = await h.call("GET", "/pool/review", admin)
    assert queued["photo_ids"] == ids
    await h.call("GET", f"{url}/{room}", partner, 403)
    r = await h.call("POST", f"/pool/{wid}/review", admin, 422, json={"approved": True, "keep_photo_ids": ["zzz"]})
    assert r["field"] == "keep_photo_ids"
    await h.call("POST", f"/pool/{wid}/review", admin, json={"approved": True, "keep_photo_ids": [room]})
    [listed] = await h.call("GET", "/pool", partner)
    assert listed["photo_ids"] == [room]
    assert (await h.call("GET", f"{url}/{room}", partner)).content == WEBP
    await h.call("GET", f"{url}/{face}", partner, 403)
    await h.call("GET", f"{url}/{room}", h.auth(Role.cadre, "c9", CITY))  # sees the city's pool
    await h.call("GET", f"{url}/{room}", h.auth(Role.cadre, "c8", "/city/b7"), 403)  # a sibling branch does not
    # Photos are closed once the wish is listed; erasure removes them.
    await h.call("POST", url, youth, 409, files=files(("c.png", PNG, "image/png")))
    await h.contacts.publish("youth-y1", YouthErased(youth_id="y1"))
    await wait_until(lambda: h.rows("SELECT 1 FROM wishes.wish_photos"), until=lambda r: r == [],
                     message="photos erased")


async def test_a_fulfilment_never_confirmed_closes_unconfirmed_and_is_not_a_confirmation(
        harness: Harness) -> None:
    h = harness
    t0 = datetime(2026, 5, 4, 9, tzinfo=UTC)
    h.service.set_clock(lambda: t0)
    wid = await _wish(h)
    cadre = h.auth(Role.cadre, "c1", BRANCH)
    for step in ("accept", "start"):
        await h.call("POST", f"/wishes/{wid}/{step}", cadre)
    await h.call("POST", f"/wishes/{wid}/fulfil", cadre, json={"evidence": "书包已送到"})

    assert not (await h.service.scheduler.tick(t0 + timedelta(days=13)))["closed_unconfirmed"]
    assert (await h.service.scheduler.tick(t0 + timedelta(days=15)))["closed_unconfirmed"] == 1
    assert not await h.service.scheduler.tick(t0 + timedelta(days=16))
    r = await h.call("POST", f"/wishes/{wid}/confirm", h.auth(Role.youth, "y1"), 409)
    assert r["current"] == "closed_unconfirmed"
    [closed] = await wait_until(lambda: h.published("WishClosedUnconfirmed"))
    assert closed["payload"]["waited_days"] == 14 and closed["payload"]["from_pool"] is False
    assert closed["payload"]["fulfilled_at"].startswith("2026-05-04")
    assert await h.published("WishConfirmed") == []
    stats = await h.call("GET", "/stats", h.auth(Role.org_admin, "a", CITY))
    assert stats["total"]["fulfilled"] == 1 and stats["total"]["confirmed"] == 0


async def test_the_orgs_rule_sets_how_long_a_youth_has_to_confirm(harness: Harness) -> None:
    h = harness
    t0 = datetime(2026, 5, 4, 9, tzinfo=UTC)
    h.service.set_clock(lambda: t0)
    await h.contacts.org("city", CITY, OrgType.city)
    await h.contacts.publish("org-city", OrgRulesSet(
        org_id="city", org_path=CITY, effective_from=date(2020, 1, 1),
        rules=OrgRules(limits=ServiceLimits(wish_unconfirmed_close_days=5))))
    await wait_until(lambda: h.rows("SELECT 1 FROM wishes.org_rules"), message="rules projected")
    wid = await _wish(h)
    cadre = h.auth(Role.cadre, "c1", BRANCH)
    for step in ("accept", "start"):
        await h.call("POST", f"/wishes/{wid}/{step}", cadre)
    await h.call("POST", f"/wishes/{wid}/fulfil", cadre, json={"evidence": "书包已送到"})

    assert not (await h.service.scheduler.tick(t0 + timedelta(days=4)))["closed_unconfirmed"]
    assert (await h.service.scheduler.tick(t0 + timedelta(days=6)))["closed_unconfirmed"] == 1
    [closed] = await wait_until(lambda: h.published("WishClosedUnconfirmed"))
    assert closed["payload"]["waited_days"] == 5

async def test_problem_list_issues_are_renamed_posts_removed_and_statuses_follow_the_table(
        harness: Harness) -> None:
    h = harness
    await h.contacts.org("b1", BRANCH, OrgType.branch)
    await wait_until(lambda: h.rows("SELECT 1 FROM wishes.orgs"))
    youth, admin = h.auth(Role.youth, "y1"), h.auth(Role.org_admin, "a", CITY)
    posts = [(await h.call("POST", "/voice", youth, 201, json={"kind": "opinion", "text": f"意见{i}", "org_id": "b1"}))
             ["post_id"] for i in range(3)]
    issue = (await h.call("POST", "/voice/issues", admin, 201,
                          json={"title": "食堂", "org_id": "b1", "post_ids": posts[:2]}))["issue_id"]
    url = f"/voice/issues/{issue}"
    other = (await h.call("POST", "/voice/issues", admin, 201,
                          json={"title": "宿舍", "org_id": "b1", "post_ids": [posts[2]]}))["issue_id"]
    r = await h.call("POST", url, admin, 422, json={"add_post_ids": [posts[2]]})  # in another issue
    assert r["field"] == "add_post_ids"
    await h.call("POST", url, h.auth(Role.org_admin, "x", "/town"), 403, json={"title": "改名"})

    r = await h.call("POST", url, admin, json={"title": "食堂饭菜", "remove_post_ids": [posts[1]]})
    assert r["post_ids"] == [posts[0]]
    r = await h.call("POST", url, admin, 422, json={"remove_post_ids": [posts[0]]})
    assert "at least one" in r["detail"]
    [row] = [i for i in await h.call("GET", "/voice/issues", admin) if i["issue_id"] == issue]
    assert (row["title"], row["post_count"]) == ("食堂饭菜", 1)
    freed = await h.rows("SELECT issue_id FROM wishes.voice_posts WHERE post_id = $1", posts[1])
    assert freed == [{"issue_id": None}]
    await h.call("POST", f"/voice/issues/{other}", admin, json={"add_post_ids": [posts[1]]})  # free to regroup

    await h.call("POST", url, admin, json={"status": "reported"})
    for bad in ("open", "in_progress"):
        r = await h.call("POST", url, admin, 409, json={"status": bad})
        assert r["current"] == "reported" and r["allowed"] == ["resolved"]
    r = await h.call("POST", url, admin, 409, json={"remove_post_ids": [posts[0]], "add_post_ids": []})
    assert r["current"] == "reported"
    await h.call("POST", url, admin, json={"status": "resolved"})
    await h.call("POST", url, admin, 422, json={"status": "closed"})
    renamed = await h.rows("SELECT count(*) AS n FROM wishes.events WHERE event_type = 'VoiceIssueRenamed'")
    assert renamed[0]["n"] == 1
    statuses = [e["payload"]["status"] for e in await wait_until(
        lambda: h.published("VoiceIssueGrouped"), until=lambda r: len(r) == 6)
        if e["payload"]["issue_id"] == issue]
    assert statuses == ["open", "open", "reported", "resolved"]
