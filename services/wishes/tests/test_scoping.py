"""Who may open a ballot on whom, and who reads a cadre's ratings after it moved."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tuanlian.shared.auth import Role
from tuanlian.shared.contracts.contacts import CadreTransferred, OrgType
from tuanlian.shared.testing import wait_until
from wishes_support import Harness


async def test_admin_cannot_open_a_ballot_on_a_cadre_outside_its_subtree(harness: Harness) -> None:
    h = harness
    await h.contacts.org("b1", "/city/b1", OrgType.branch)
    await h.contacts.org("t9", "/town/t9", OrgType.branch)
    await h.contacts.cadre("c9", "t9", "/town/t9")
    await h.contacts.youth("m1", "b1", "/city/b1")
    await wait_until(lambda: h.rows("SELECT 1 FROM wishes.cadres WHERE cadre_id = 'c9'"))
    await wait_until(lambda: h.rows("SELECT 1 FROM wishes.orgs WHERE org_id = 't9'"))
    admin = h.auth(Role.org_admin, "a", "/city")
    closes = (datetime.now(UTC) + timedelta(days=7)).isoformat()
    r = await h.http.post(
        "/ballots",
        headers=admin,
        json={"branch_org_id": "b1", "secretary_cadre_id": "c9", "year": 2026, "closes_at": closes},
    )
    # c9 is a cadre of /town: /city's admin puts a satisfaction ballot (and its reelection flag,
    # which scoring's circulars count against c9) on a cadre it does not administer.
    assert r.status_code == 422 and r.json()["field"] == "secretary_cadre_id", r.text
    await h.contacts.cadre("s1", "b1", "/city/b1")
    await wait_until(lambda: h.rows("SELECT 1 FROM wishes.cadres WHERE cadre_id = 's1'"))
    for unknown in ("nobody", "c9"):
        await h.call(
            "POST",
            "/ballots",
            admin,
            422,
            json={"branch_org_id": "b1", "secretary_cadre_id": unknown, "year": 2026, "closes_at": closes},
        )
    b = await h.call(
        "POST",
        "/ballots",
        admin,
        201,
        json={"branch_org_id": "b1", "secretary_cadre_id": "s1", "year": 2026, "closes_at": closes},
    )
    assert b["eligible"] == 1


async def test_ratings_summary_is_scoped_by_each_ratings_org_not_the_first_rows(harness: Harness) -> None:
    h = harness
    await h.contacts.org("b1", "/city/b1", OrgType.branch)
    await h.contacts.org("t2", "/town/t2", OrgType.branch)
    await h.contacts.cadre("c1", "b1", "/city/b1")
    for i in range(5):
        await h.contacts.link("c1", f"cy{i}", "/city/b1")
        await h.until_linked("c1", f"cy{i}")
    for i in range(5):
        await h.call(
            "POST",
            "/ratings",
            h.auth(Role.youth, f"cy{i}"),
            201,
            json={"cadre_id": "c1", "score": 4, "comment": f"city comment {i}"},
        )
    # c1 is transferred to /town/t2 (调动); new youths there rate them.
    await h.contacts.publish(
        "cadre-c1",
        CadreTransferred(
            cadre_id="c1",
            from_org_id="b1",
            to_org_id="t2",
            old_path="/city/b1",
            org_path="/town/t2",
            in_leadership_organ=False,
        ),
    )
    await wait_until(
        lambda: h.rows("SELECT 1 FROM wishes.cadres WHERE cadre_id = 'c1' AND org_path = '/town/t2'")
    )
    for i in range(5):
        await h.contacts.link("c1", f"ty{i}", "/town/t2")
        await h.until_linked("c1", f"ty{i}")
        await h.call(
            "POST",
            "/ratings",
            h.auth(Role.youth, f"ty{i}"),
            201,
            json={"cadre_id": "c1", "score": 1, "comment": f"town comment {i}"},
        )
    assert {r["org_path"] for r in await h.rows("SELECT org_path FROM wishes.ratings")} == {
        "/city/b1",
        "/town/t2",
    }
    city_admin = h.auth(Role.org_admin, "ac", "/city")
    town_admin = h.auth(Role.org_admin, "at", "/town")
    city = await h.http.get("/cadres/c1/ratings", headers=city_admin)
    town = await h.http.get("/cadres/c1/ratings", headers=town_admin)
    leaked = (
        [c for c in (city.json().get("comments") or []) if c.startswith("town")]
        if city.status_code == 200
        else []
    )
    assert not leaked and town.status_code == 200, (
        f"/city admin: {city.status_code} sees /town comments {leaked}; /town admin (cadre's org now): "
        f"{town.status_code} {town.text[:120]}"
    )


async def test_controls_wishes_lists_and_exports_are_scoped(harness: Harness) -> None:
    """Control: lists/exports with a foreign or missing org_path are refused; youth sees only own."""
    h = harness
    await h.contacts.org("b1", "/city/b1", OrgType.branch)
    await h.contacts.link("c1", "y1", "/city/b1")
    await h.until_linked("c1", "y1")
    w = await h.call(
        "POST",
        "/wishes",
        h.auth(Role.youth, "y1"),
        201,
        json={"cadre_id": "c1", "category": "health", "text": "想参加心理辅导"},
    )
    town_admin = h.auth(Role.org_admin, "at", "/town")
    for url in (
        "/wishes?org_path=/city",
        "/voice?org_path=/city",
        "/stats?org_path=/city",
        "/pool/review?org_path=/city",
        "/voice/issues?org_path=/city&format=csv",
        "/voice/issues?org_path=/city&format=xlsx",
        "/voice/issues?org_path=/",
        f"/wishes/{w['wish_id']}",
    ):
        assert (await h.http.get(url, headers=town_admin)).status_code == 403, url
    assert await h.call("GET", "/wishes?org_path=/city", h.auth(Role.youth, "y2")) == []
    assert (await h.http.get(f"/wishes/{w['wish_id']}", headers=h.auth(Role.youth, "y2"))).status_code == 403
    assert (await h.http.get("/wishes")).status_code == 401
    assert (await h.http.get("/stats", headers=h.auth(Role.cadre, "c1", "/city/b1"))).status_code == 403


async def test_ballot_closing_times_outside_the_civil_range_are_a_422_naming_the_field(harness: Harness) -> None:
    h = harness
    await h.contacts.org("b1", "/city/b1", OrgType.branch)
    await h.contacts.cadre("s1", "b1", "/city/b1")
    await h.contacts.youth("m1", "b1", "/city/b1")
    await wait_until(lambda: h.rows("SELECT 1 FROM wishes.cadres WHERE cadre_id = 's1'"))
    admin = h.auth(Role.org_admin, "a", "/city")
    body = {"branch_org_id": "b1", "secretary_cadre_id": "s1", "year": 2026}
    # The first two overflow Python's datetime when turned into UTC; the last is merely too late.
    for closes in ("9999-12-31T23:59:59-12:00", "0001-01-01T00:00:00+14:00", "2100-01-01T12:00:00+08:00"):
        r = await h.call("POST", "/ballots", admin, 422, json={**body, "closes_at": closes})
        [err] = r["detail"]
        assert err["loc"] == ["body", "closes_at"] and "2099-12-31" in err["msg"], (closes, r)
    assert await h.rows("SELECT 1 FROM wishes.ballots") == []
    closes = (datetime.now(UTC) + timedelta(days=7)).isoformat()
    assert (await h.call("POST", "/ballots", admin, 201, json={**body, "closes_at": closes}))["eligible"] == 1


async def test_ratings_of_a_cadre_nobody_has_heard_of_are_not_found(harness: Harness) -> None:
    h = harness
    admin = h.auth(Role.org_admin, "a", "/city")
    r = await h.call("GET", "/cadres/ghost/ratings", admin, 404)
    assert r["detail"] == "cadre ghost not found"
    # Known to contacts but never rated: scoped by its org, as before.
    await h.contacts.org("t9", "/town/t9", OrgType.branch)
    await h.contacts.cadre("c9", "t9", "/town/t9")
    await wait_until(lambda: h.rows("SELECT 1 FROM wishes.cadres WHERE cadre_id = 'c9'"))
    await h.call("GET", "/cadres/c9/ratings", admin, 403)
    mine = await h.call("GET", "/cadres/c9/ratings", h.auth(Role.org_admin, "t", "/town"))
    assert mine["count"] == 0 and mine["hidden"] is True
