"""Who may do what: youth own wishes only, cadre own queue, admin subtree, partner pool only."""

from __future__ import annotations

import pytest
from tuanlian.shared.auth import Role
from tuanlian.shared.contracts.contacts import OrgType
from tuanlian.shared.testing import wait_until
from wishes_support import Harness

BRANCH = "/city/b1"
PRINCIPALS = {
    "owner": (Role.youth, "y1", None),
    "other_youth": (Role.youth, "y2", None),
    "cadre": (Role.cadre, "c1", BRANCH),
    "other_cadre": (Role.cadre, "c2", BRANCH),
    "admin": (Role.org_admin, "a1", "/city"),
    "foreign_admin": (Role.org_admin, "a2", "/town"),
    "partner": (Role.partner, "p?", "/city"),
}
PHOTO = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
FILES = "<multipart photo>"  # the body is a multipart upload of one PNG
# (method, path on wish w (and its photo p), body) → principals allowed; everyone else gets 403.
MATRIX = [
    ("POST", "/wishes/{w}/photos", FILES, {"owner"}),
    ("GET", "/wishes/{w}/photos/{p}", None, {"owner", "cadre", "admin"}),  # not listed in the pool: no partner
    ("GET", "/wishes/{w}", None, {"owner", "cadre", "admin"}),
    ("POST", "/wishes/{w}/confirm", None, {"owner"}),  # allowed ones then meet 409 (wrong state)
    ("POST", "/wishes/{w}/withdraw", None, {"owner"}),
    ("POST", "/wishes/{w}/accept", None, {"cadre"}),
    ("POST", "/wishes/{w}/decline", {"reason": "x"}, {"cadre"}),
    ("POST", "/wishes/{w}/release", None, {"cadre"}),
    ("POST", "/pool/{w}/review", {"approved": True}, {"admin"}),
    ("GET", "/stats?org_path=/city", None, {"admin"}),
    ("GET", "/pool/review?org_path=/city", None, {"admin"}),
]


@pytest.mark.parametrize(("method", "path", "body", "allowed"), MATRIX)
async def test_authorisation_matrix(harness: Harness, method: str, path: str, body: dict[str, str] | None,
                                    allowed: set[str]) -> None:
    h = harness
    await h.contacts.org("city", "/city", OrgType.city)
    await h.contacts.link("c1", "y1", BRANCH)
    await h.until_linked("c1", "y1")
    await wait_until(lambda: h.rows("SELECT 1 FROM wishes.orgs"))
    partner = await h.call("POST", "/partners", h.auth(Role.org_admin, "a1", "/city"), 201,
                           json={"name": "志愿队", "kind": "volunteer_team", "org_id": "city"})
    w = await h.call("POST", "/wishes", h.auth(Role.youth, "y1"), 201,
                     json={"cadre_id": "c1", "category": "health", "text": "想参加心理辅导"})
    [photo] = (await h.call("POST", f"/wishes/{w['wish_id']}/photos", h.auth(Role.youth, "y1"), 201,
                            files=[("files", ("p.png", PHOTO, "image/png"))]))["photo_ids"]
    url = path.format(w=w["wish_id"], p=photo)

    def send() -> dict[str, object]:
        return {"files": [("files", ("p.png", PHOTO, "image/png"))]} if body == FILES else {"json": body}

    for name, (role, subject, org) in PRINCIPALS.items():
        subject = partner["partner_id"] if role is Role.partner else subject
        r = await h.http.request(method, url, headers=h.auth(role, subject, org), **send())  # type: ignore[arg-type]
        if name in allowed:
            assert r.status_code in (200, 201, 409), f"{name} {method} {url}: {r.status_code} {r.text}"
        else:
            assert r.status_code == 403, f"{name} {method} {url}: {r.status_code} {r.text}"
    r = await h.http.request(method, url, **send())  # type: ignore[arg-type]
    assert r.status_code == 401
    # A refused command writes nothing: the wish is at its first events (raised, photo) or one step on.
    rows = await h.rows("SELECT count(*) AS n FROM wishes.events WHERE stream_id = $1", f"wish-{w['wish_id']}")
    assert rows[0]["n"] <= 3
    assert len(await h.rows("SELECT 1 FROM wishes.wish_photos")) <= 2


async def test_partner_sees_only_approved_pool_wishes_of_its_subtree(harness: Harness) -> None:
    h = harness
    await h.contacts.org("city", "/city", OrgType.city)
    await h.contacts.org("town", "/town", OrgType.city)
    await wait_until(lambda: h.rows("SELECT 1 FROM wishes.orgs"), until=lambda r: len(r) == 2)
    admin = h.auth(Role.org_admin, "a1", "/city")
    await h.call("POST", "/partners", h.auth(Role.org_admin, "a2", "/town"), 403,
                 json={"name": "x", "kind": "company", "org_id": "city"})
    p = (await h.call("POST", "/partners", h.auth(Role.org_admin, "a2", "/town"), 201,
                      json={"name": "镇企业", "kind": "company", "org_id": "town"}))["partner_id"]
    await h.contacts.link("c1", "y1", BRANCH)
    await h.until_linked("c1", "y1")
    w = await h.call("POST", "/wishes", h.auth(Role.youth, "y1"), 201,
                     json={"cadre_id": "c1", "category": "other", "text": "想要一个篮球"})
    await h.call("POST", f"/wishes/{w['wish_id']}/release", h.auth(Role.cadre, "c1", BRANCH))
    await h.call("POST", f"/pool/{w['wish_id']}/review", admin, json={"approved": True})
    town_partner = h.auth(Role.partner, p, "/town")
    assert await h.call("GET", "/pool", town_partner) == []
    await h.call("POST", f"/pool/{w['wish_id']}/claim", town_partner, 403)
    await h.call("GET", "/pool", h.auth(Role.partner, "unregistered", "/city"), 403)
    await h.call("GET", "/pool", h.auth(Role.youth, "y1"), 403)
    assert len(await h.call("GET", "/pool", h.auth(Role.cadre, "c1", BRANCH))) == 1


async def test_only_admins_of_the_subtree_keep_the_problem_list(harness: Harness) -> None:
    h = harness
    await h.contacts.org("city", "/city", OrgType.city)
    await h.contacts.org("b1", BRANCH, OrgType.branch)
    await wait_until(lambda: h.rows("SELECT 1 FROM wishes.orgs"), until=lambda r: len(r) == 2)
    post = (await h.call("POST", "/voice", h.auth(Role.youth, "y1"), 201,
                         json={"kind": "opinion", "text": "食堂太贵", "org_id": "b1"}))["post_id"]
    group = {"title": "食堂", "org_id": "b1", "post_ids": [post]}
    for name, (role, subject, org) in PRINCIPALS.items():
        r = await h.http.post("/voice/issues", headers=h.auth(role, subject, org), json=group)
        assert r.status_code == (201 if name == "admin" else 403), f"{name}: {r.status_code} {r.text}"
    [issue] = [i["issue_id"] for i in await h.call("GET", "/voice/issues", h.auth(Role.org_admin, "a1", "/city"))]
    for name, (role, subject, org) in PRINCIPALS.items():
        r = await h.http.post(f"/voice/issues/{issue}", headers=h.auth(role, subject, org), json={"title": name})
        assert r.status_code == (200 if name == "admin" else 403), f"{name}: {r.status_code} {r.text}"
    assert (await h.http.post(f"/voice/issues/{issue}", json={"title": "anonymous"})).status_code == 401
    # Only the admin's rename happened: the refused ones wrote nothing.
    assert [r["title"] for r in await h.rows("SELECT title FROM wishes.voice_issues")] == ["admin"]
