"""Authorisation scoping of youths and campaigns (from the audit's probes).

- A youth without an org (社会青年) lies in no subtree: an admin reaches them (read, change, industry
  tag, erase) only through an active link with a cadre of its subtree; the youth and system always.
- ``GET /orgs/{id}/campaigns`` is scoped like the other org reads, and its subtree test takes no
  wildcards from org ids.
- 组织关系转接: only an admin holding both the youth's org and the target moves a youth.
"""

from __future__ import annotations

from typing import Any

from tuanlian.shared.auth import Role
from tuanlian.shared.events import short_id
from tuanlian.shared.league_calendar import today as today_in_china
from work_support import Api


async def _two_cities(api: Api) -> tuple[dict[str, Any], dict[str, Any]]:
    return await api.org("江城市团委", "city"), await api.org("河城市团委", "city")


def _admin(api: Api, org: dict[str, Any], name: str = "admin") -> dict[str, str]:
    return api.auth(Role.org_admin, name, org["org_path"])


async def _acts_on_youth(api: Api, youth: str, headers: dict[str, str]) -> dict[str, int]:
    """Status of each path to a youth (read, change, industry tag, erase), erase last."""
    codes = {"read": (await api.http.get(f"/youths/{youth}", headers=headers)).status_code}
    r = await api.http.patch(
        f"/youths/{youth}", json={"phone": "13811112222", "name": "改名"}, headers=headers
    )
    codes["change"] = r.status_code
    r = await api.http.post(
        "/youths/industry", json={"youth_ids": [youth], "industry": "制造业"}, headers=headers
    )
    codes["industry"] = r.status_code
    codes["erase"] = (await api.http.post(f"/youths/{youth}/erase", headers=headers)).status_code
    return codes


# -- youths without an org ---------------------------------------------------------------------


async def test_a_foreign_admin_cannot_read_change_tag_or_erase_an_orgless_youth(api: Api) -> None:
    city, town = await _two_cities(api)
    youth = await api.youth()  # 社会青年: registered without org_id
    await api.link(await api.cadre(city), youth, city["org_path"])
    r = await api.http.get(f"/youths/{youth}", headers=_admin(api, town))
    assert r.status_code == 403
    assert "no active link with a cadre of your subtree" in r.json()["detail"]
    assert await _acts_on_youth(api, youth, _admin(api, town)) == dict.fromkeys(
        ("read", "change", "industry", "erase"), 403
    )


async def test_an_orgless_youth_without_any_link_is_reached_by_no_admin(api: Api) -> None:
    _city, town = await _two_cities(api)
    youth = await api.youth()
    assert set((await _acts_on_youth(api, youth, _admin(api, town))).values()) == {403}


async def test_an_admin_reaches_an_orgless_youth_through_an_active_link_of_its_cadre(api: Api) -> None:
    city, _town = await _two_cities(api)
    branch = await api.org("江城一支部", "branch", city)
    cadre = await api.cadre(branch)
    youth = await api.youth()
    # Only a consented (active) link counts: an invitation the youth has not answered does not.
    await api.ok(
        "POST",
        "/links/invitations",
        api.auth(Role.cadre, cadre, branch["org_path"]),
        201,
        json={"cadre_id": cadre, "youth_id": youth},
    )
    assert (await api.http.get(f"/youths/{youth}", headers=_admin(api, city))).status_code == 403
    link = (await api.ok("GET", f"/cadres/{cadre}/links", api.system))[0]["link_id"]
    await api.ok("POST", f"/links/{link}/accept", api.auth(Role.youth, youth))
    # The city admin covers the branch cadre's org: read, change and tag (erase: see below).
    assert (await api.ok("GET", f"/youths/{youth}", _admin(api, city)))["name"] == "青年"
    await api.ok("PATCH", f"/youths/{youth}", _admin(api, city), json={"grade": "2026"})
    await api.ok(
        "POST", "/youths/industry", _admin(api, city), json={"youth_ids": [youth], "industry": "制造业"}
    )
    # An ended link no longer reaches the youth.
    await api.ok("POST", f"/links/{link}/end", api.auth(Role.youth, youth))
    assert (await api.http.get(f"/youths/{youth}", headers=_admin(api, city))).status_code == 403


async def test_the_linked_admin_may_erase_an_orgless_youth(api: Api) -> None:
    city, _town = await _two_cities(api)
    cadre = await api.cadre(city)
    youth = await api.youth()
    await api.link(cadre, youth, city["org_path"])
    assert (await api.ok("POST", f"/youths/{youth}/erase", _admin(api, city)))["erased"] is True


async def test_an_orgless_youth_itself_and_system_keep_their_access(api: Api) -> None:
    youth = await api.youth()
    me = api.auth(Role.youth, youth)
    await api.ok("PATCH", f"/youths/{youth}", me, json={"grade": "2025"})
    assert (await api.ok("GET", f"/youths/{youth}", me))["grade"] == "2025"
    await api.ok("POST", "/youths/industry", api.system, json={"youth_ids": [youth], "industry": "教育"})
    assert (await api.ok("GET", f"/youths/{youth}", api.system))["industry"] == "教育"
    assert (
        await api.http.get(f"/youths/{youth}", headers=api.auth(Role.youth, "someone-else"))
    ).status_code == 403
    assert (await api.ok("POST", f"/youths/{youth}/erase", me))["erased"] is True


async def test_an_admin_registers_an_orgless_youth_and_reaches_it_through_its_cadres(api: Api) -> None:
    _city, town = await _two_cities(api)
    admin = _admin(api, town)
    youth = (await api.ok("POST", "/youths", admin, 201, json={"name": "无组织", "phone": "13799990000"}))[
        "youth_id"
    ]
    assert (await api.http.get(f"/youths/{youth}", headers=admin)).status_code == 403
    await api.link(await api.cadre(town), youth, town["org_path"])
    assert (await api.ok("GET", f"/youths/{youth}", admin))["name"] == "无组织"


async def test_a_youth_with_an_org_stays_scoped_by_its_org(api: Api) -> None:
    """Control: a link does not widen an org's youth to the linking cadre's admin."""
    city, town = await _two_cities(api)
    youth = await api.youth(city)
    await api.link(await api.cadre(town), youth, town["org_path"])
    assert set((await _acts_on_youth(api, youth, _admin(api, town))).values()) == {403}
    assert (await api.http.get(f"/youths/{youth}", headers=api.auth(Role.youth, "other"))).status_code == 403
    assert (await api.http.get(f"/youths/{youth}")).status_code == 401
    await api.ok("GET", f"/youths/{youth}", _admin(api, city))
    c1, c2 = await api.cadre(city), await api.cadre(city, name="李四")
    other = api.auth(Role.cadre, c2, city["org_path"])
    for url in (
        f"/cadres/{c1}/links",
        f"/cadres/{c1}/interactions",
        f"/cadres/{c1}/spread",
        f"/cadres/{c1}/groups",
        f"/cadres/{c1}/activities",
    ):
        assert (await api.http.get(url, headers=other)).status_code == 403, url


# -- campaigns of an org -------------------------------------------------------------------------


async def test_campaigns_of_an_org_are_read_within_its_scope(api: Api) -> None:
    city, town = await _two_cities(api)
    county = await api.org("江城县团委", "county", city)
    await api.ok(
        "POST", "/campaigns/presets", _admin(api, city), 201, json={"org_id": city["org_id"], "year": 2026}
    )
    url = f"/orgs/{county['org_id']}/campaigns"
    refused = {
        "foreign admin": _admin(api, town),
        "foreign leader": api.auth(Role.leader, "l-town", town["org_path"]),
        "foreign cadre": api.auth(Role.cadre, "c-town", town["org_path"]),
        "foreign youth": api.auth(Role.youth, "y-town", town["org_path"]),
        "youth without org": api.auth(Role.youth, "y-any"),
        "partner": api.auth(Role.partner, "p-any", town["org_path"]),
        "cadre above the org": api.auth(Role.cadre, "c-city", city["org_path"]),
    }
    got = {name: (await api.http.get(url, headers=h)).status_code for name, h in refused.items()}
    assert got == dict.fromkeys(refused, 403)
    # What a campaign applies to: the org's own subtree admins, its own cadres and youths, system.
    allowed = {
        "county admin": _admin(api, county),
        "city admin": _admin(api, city),
        "city leader": api.auth(Role.leader, "l-city", city["org_path"]),
        "county cadre": api.auth(Role.cadre, "c-county", county["org_path"]),
        "county youth": api.auth(Role.youth, "y-county", county["org_path"]),
        "system": api.system,
    }
    for name, h in allowed.items():
        assert len(await api.ok("GET", url, h)) == 5, name
    # A cadre of the county also sees the campaigns of the city above it.
    assert len(await api.ok("GET", f"/orgs/{city['org_id']}/campaigns", allowed["county cadre"])) == 5


async def test_campaigns_subtree_test_takes_no_wildcards_from_org_ids(api: Api) -> None:
    tag = short_id()[:8].lower()
    wild = await api.ok(
        "POST", "/orgs", api.system, 201, json={"name": "甲", "org_type": "city", "org_id": f"a_{tag}"}
    )
    plain = await api.ok(
        "POST", "/orgs", api.system, 201, json={"name": "乙", "org_type": "city", "org_id": f"ax{tag}"}
    )
    child = await api.org("乙县", "county", plain)
    today = today_in_china().isoformat()
    await api.ok(
        "POST",
        "/campaigns",
        _admin(api, wild),
        201,
        json={
            "org_id": wild["org_id"],
            "key": "dec9",
            "name": "一二九",
            "starts_on": today,
            "ends_on": today,
        },
    )
    # '/a_x…' as a LIKE pattern matches '/ax…/…': the child of another city saw the campaign.
    assert await api.ok("GET", f"/orgs/{child['org_id']}/campaigns", _admin(api, plain)) == []


# -- moving a youth (组织关系转接) -------------------------------------------------------------------


async def test_a_youth_cannot_move_itself_into_another_org(api: Api) -> None:
    city, town = await _two_cities(api)
    branch = await api.org("河城一支部", "branch", town)
    youth = await api.youth(city)
    me = api.auth(Role.youth, youth)
    r = await api.http.patch(f"/youths/{youth}", json={"org_id": branch["org_id"]}, headers=me)
    assert r.status_code == 403
    assert r.json()["detail"] == "an organisation moves a youth: ask your admin"
    assert (await api.ok("GET", f"/youths/{youth}", me))["org_id"] == city["org_id"]
    # Sending its current org back with a profile change is not a move.
    await api.ok("PATCH", f"/youths/{youth}", me, json={"org_id": city["org_id"], "grade": "2026"})


async def test_only_an_admin_holding_both_orgs_moves_a_youth(api: Api) -> None:
    city, town = await _two_cities(api)
    here, there = await api.org("江城一支部", "branch", city), await api.org("江城二支部", "branch", city)
    youth = await api.youth(here)
    move = {"org_id": there["org_id"]}
    # The current org only, or the target only: refused.
    assert (await api.http.patch(f"/youths/{youth}", json=move, headers=_admin(api, here))).status_code == 403
    elsewhere = {"org_id": town["org_id"]}
    assert (
        await api.http.patch(f"/youths/{youth}", json=elsewhere, headers=_admin(api, city))
    ).status_code == 403
    assert (
        await api.http.patch(f"/youths/{youth}", json=move, headers=_admin(api, there))
    ).status_code == 403
    await api.ok("PATCH", f"/youths/{youth}", _admin(api, city), json=move)
    assert (await api.ok("GET", f"/youths/{youth}", api.system))["org_id"] == there["org_id"]
    await api.ok("PATCH", f"/youths/{youth}", api.system, json={"org_id": town["org_id"]})
    assert (await api.ok("GET", f"/youths/{youth}", api.system))["org_id"] == town["org_id"]


async def test_the_linked_admin_moves_an_orgless_youth_into_its_subtree(api: Api) -> None:
    city, town = await _two_cities(api)
    youth = await api.youth()
    await api.link(await api.cadre(city), youth, city["org_path"])
    into_town = {"org_id": town["org_id"]}
    assert (
        await api.http.patch(f"/youths/{youth}", json=into_town, headers=_admin(api, city))
    ).status_code == 403
    assert (
        await api.http.patch(f"/youths/{youth}", json=into_town, headers=_admin(api, town))
    ).status_code == 403
    await api.ok("PATCH", f"/youths/{youth}", _admin(api, city), json={"org_id": city["org_id"]})
    assert (await api.ok("GET", f"/youths/{youth}", api.system))["org_id"] == city["org_id"]
