"""Every contacts endpoint of links, work records and the first slice (orgs, people, links,
interactions) × every role × inside/outside the subtree: allowed or 403.

An allowed call may still be refused for its content or state (409/422 once an earlier allowed
call changed things); what this matrix checks is that it is never refused for *who* asked, and
that everyone else gets 403 (401 without a token).
"""

from __future__ import annotations

from typing import Any

from tuanlian.shared.auth import Role
from tuanlian.shared.league_calendar import today as today_in_china
from work_support import Api

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16
DESC = "组织青年参观红色教育基地并座谈"
EVERYONE = frozenset(
    {"youth_in", "youth_out", "cadre_self", "cadre_other", "admin_in", "admin_out", "leader_in", "leader_out", "partner"}
)
OWNER = frozenset({"cadre_self", "admin_in"})
OVERSEERS = frozenset({"cadre_self", "admin_in", "leader_in"})


async def test_authorisation_matrix(api: Api) -> None:
    city = await api.org("江城市团委", "city", lo=True)
    county = await api.org("江城县团委", "county", city, lo=True)
    branch = await api.org("一支部", "branch", county)
    dorm = await api.org("201宿舍", "dorm_group", branch)
    sibling = await api.org("邻县团委", "county", city, lo=True)
    path = county["org_path"]
    cadre_id = await api.cadre(county)
    other_cadre = await api.cadre(county, name="李四")
    youth_in = await api.youth(county)
    youth_out = await api.youth(county)
    await api.link(cadre_id, youth_in, path)
    iid = await api.interaction(cadre_id, path, [youth_in])
    cadre_h = api.auth(Role.cadre, cadre_id, path)
    admin_h = api.auth(Role.org_admin, "admin-in", path)
    card = await api.ok("PUT", f"/cadres/{cadre_id}/card", cadre_h, json={"channels": {"qq": "123"}})
    ev = await api.ok("POST", f"/interactions/{iid}/evidence", cadre_h, 201, files={"file": ("p.png", PNG, "image/png")})
    today = today_in_china().isoformat()
    act = await api.ok("POST", "/activities", cadre_h, 201, json={"organiser_cadre_id": cadre_id, "kind": "exchange",
                       "occurred_on": today, "youth_ids": [youth_in], "description": DESC})
    camp = await api.ok("POST", "/campaigns", admin_h, 201, json={"org_id": county["org_id"], "key": "most_beautiful_story",
                        "name": "最美", "starts_on": today, "ends_on": today})
    check = await api.ok("POST", "/spot-checks", admin_h, 201, json={"cadre_id": cadre_id, "period_from": today,
                         "period_to": today, "size": 2})
    item = check["items"][0]["item"]

    who = {
        "youth_in": api.auth(Role.youth, youth_in),
        "youth_out": api.auth(Role.youth, youth_out),
        "cadre_self": cadre_h,
        "cadre_other": api.auth(Role.cadre, other_cadre, path),
        "admin_in": admin_h,
        "admin_out": api.auth(Role.org_admin, "admin-out", sibling["org_path"]),
        "leader_in": api.auth(Role.leader, "leader-in", path),
        "leader_out": api.auth(Role.leader, "leader-out", sibling["org_path"]),
        "partner": api.auth(Role.partner, "partner-1", None),
        "system": api.system,
    }
    cadre_activity = {"organiser_cadre_id": cadre_id, "kind": "exchange", "occurred_on": today, "headcount": 3, "description": DESC}
    correction = {"kind": "exchange", "occurred_on": today, "headcount": 4, "description": DESC, "reason": "补记"}
    matrix: list[tuple[str, str, dict[str, Any], frozenset[str]]] = [
        ("PUT", f"/cadres/{cadre_id}/card", {"json": {"channels": {"wechat": "w"}}}, OWNER),
        ("GET", f"/cadres/{cadre_id}/card", {}, EVERYONE),
        ("GET", f"/join/{card['join_code']}", {}, EVERYONE),
        ("GET", f"/cadres/{cadre_id}/card/qr.svg", {}, EVERYONE),
        ("POST", f"/cadres/{cadre_id}/join-code", {}, OWNER),
        ("POST", "/links/requests", {"json": {"join_code": "ZZZZZZZZ"}}, frozenset({"youth_in", "youth_out"})),
        ("POST", f"/cadres/{cadre_id}/groups", {"json": {"org_id": dorm["org_id"]}}, OWNER),
        ("DELETE", f"/cadres/{cadre_id}/groups/{dorm['org_id']}", {}, OWNER),
        ("GET", f"/cadres/{cadre_id}/groups", {}, OVERSEERS),
        ("GET", f"/cadres/{cadre_id}/spread", {}, OVERSEERS),
        ("GET", f"/cadres/{cadre_id}/interactions", {}, OVERSEERS),
        ("GET", "/my/interactions", {}, frozenset({"youth_in", "youth_out"})),
        ("POST", f"/interactions/{iid}/confirm", {}, frozenset({"youth_in"})),
        ("POST", f"/interactions/{iid}/dispute", {"json": {"reason": "x"}}, frozenset({"youth_in"})),
        ("POST", f"/interactions/{iid}/corrections", {"json": {"youth_ids": [youth_in], "channel": "qq",
         "occurred_at": "2020-01-01T00:00:00+08:00", "summary": DESC, "reason": "补记"}}, frozenset({"cadre_self"})),
        ("POST", f"/interactions/{iid}/evidence", {"files": {"file": ("p.png", PNG, "image/png")}}, frozenset({"cadre_self"})),
        ("GET", f"/evidence/{ev['evidence_id']}", {}, OVERSEERS),
        ("POST", "/activities", {"json": cadre_activity}, OWNER),
        ("POST", "/activities", {"json": {**cadre_activity, "organiser_cadre_id": None, "organiser_org_id": county["org_id"],
                                          "kind": "open_day", "headcount": 50}}, frozenset({"admin_in"})),
        ("POST", f"/activities/{act['activity_id']}/corrections", {"json": correction}, OWNER),
        ("GET", f"/activities/{act['activity_id']}", {}, OVERSEERS),
        ("POST", f"/activities/{act['activity_id']}/evidence", {"files": {"file": ("p.png", PNG, "image/png")}}, frozenset({"cadre_self"})),
        ("POST", "/campaigns", {"json": {"org_id": county["org_id"], "key": "dec9", "name": "一二九",
                                         "starts_on": today, "ends_on": today}}, frozenset({"admin_in"})),
        ("POST", "/campaigns/presets", {"json": {"org_id": county["org_id"], "year": 2030}}, frozenset({"admin_in"})),
        # Scoped like the other org reads (was EVERYONE: the audit's hole). The youths' tokens here
        # carry no org path, as a code login's do not, so they are refused like on GET /orgs/{id}.
        ("GET", f"/orgs/{county['org_id']}/campaigns", {}, OVERSEERS | {"cadre_other"}),
        ("POST", f"/campaigns/{camp['campaign_id']}/nominations", {"json": {"cadre_id": cadre_id}}, frozenset({"admin_in"})),
        ("GET", f"/campaigns/{camp['campaign_id']}/nominations", {}, frozenset({"admin_in", "admin_out", "leader_in", "leader_out"})),
        ("POST", "/spot-checks", {"json": {"cadre_id": cadre_id, "period_from": today, "period_to": today, "size": 1}},
         frozenset({"admin_in"})),
        ("POST", f"/spot-checks/{check['spot_check_id']}/outcomes", {"json": {"item": item, "outcome": "unreachable"}},
         frozenset({"admin_in"})),
        ("GET", f"/spot-checks/{check['spot_check_id']}", {}, frozenset({"admin_in", "leader_in"})),
    ]
    await _check(api, who, matrix)


async def _check(api: Api, who: dict[str, Any], matrix: list[tuple[str, str, dict[str, Any], frozenset[str]]]) -> None:
    wrong: list[str] = []
    for method, url, kw, allowed in matrix:
        r = await api.http.request(method, url, **kw)
        if r.status_code != 401:
            wrong.append(f"{method} {url} without a token: {r.status_code}")
        for name, headers in who.items():
            r = await api.http.request(method, url, headers=headers, **kw)
            # Only a youth speaks for a youth (consent, confirmation): not even the system may.
            youths_only = allowed <= {"youth_in", "youth_out"}
            may = name in allowed or (name == "system" and not youths_only)
            if may and (r.status_code in (401, 403) or r.status_code >= 500):
                wrong.append(f"{method} {url} as {name}: {r.status_code} {r.text[:120]}")
            if not may and r.status_code != 403:
                wrong.append(f"{method} {url} as {name}: expected 403, got {r.status_code} {r.text[:120]}")
    assert not wrong, "\n".join(wrong)


async def test_authorisation_matrix_of_the_first_endpoints(api: Api) -> None:
    """Create org / cadre / youth, invite, answer, end, log: the endpoints the first slice built."""
    city = await api.org("江城市团委", "city", lo=True)
    county = await api.org("江城县团委", "county", city, lo=True)
    sibling = await api.org("邻县团委", "county", city, lo=True)
    path = county["org_path"]
    cadre_id = await api.cadre(county)
    other_cadre = await api.cadre(county, name="李四")
    youth_in, youth_out = await api.youth(county), await api.youth(county)
    active = await api.link(cadre_id, youth_in, path)
    cadre_h = api.auth(Role.cadre, cadre_id, path)
    pending = (await api.ok("POST", "/links/invitations", cadre_h, 201,
                            json={"cadre_id": cadre_id, "youth_id": youth_out}))["link_id"]
    admin_in = api.auth(Role.org_admin, "admin-in", path)
    who = {
        "youth_in": api.auth(Role.youth, youth_in),
        "youth_out": api.auth(Role.youth, youth_out),
        "cadre_self": cadre_h,
        "cadre_other": api.auth(Role.cadre, other_cadre, path),
        "admin_in": admin_in,
        "admin_out": api.auth(Role.org_admin, "admin-out", sibling["org_path"]),
        "leader_in": api.auth(Role.leader, "leader-in", path),
        "leader_out": api.auth(Role.leader, "leader-out", sibling["org_path"]),
        "partner": api.auth(Role.partner, "partner-1", None),
        "system": api.system,
    }
    now = "2030-01-01T00:00:00+08:00"  # in the future: an allowed log is refused for its content (422)
    matrix: list[tuple[str, str, dict[str, Any], frozenset[str]]] = [
        ("POST", "/orgs", {"json": {"name": "新支部", "org_type": "branch", "parent_id": county["org_id"]}},
         frozenset({"admin_in"})),
        ("POST", "/cadres", {"json": {"org_id": county["org_id"], "name": "王五", "kind": "part_time"}},
         frozenset({"admin_in"})),
        ("POST", "/youths", {"json": {"org_id": county["org_id"], "name": "赵六", "phone": "13912345678"}},
         frozenset({"admin_in"})),
        # An admin may invite on a cadre's behalf; only the youth answers (not even the system).
        ("POST", "/links/invitations", {"json": {"cadre_id": cadre_id, "youth_id": youth_out}},
         frozenset({"cadre_self", "admin_in"})),
        ("POST", f"/links/{pending}/decline", {}, frozenset({"youth_out"})),
        ("POST", f"/links/{pending}/accept", {}, frozenset({"youth_out"})),
        ("POST", "/interactions", {"json": {"cadre_id": cadre_id, "youth_ids": [youth_in], "channel": "wechat",
                                            "occurred_at": now, "summary": DESC}}, frozenset({"cadre_self"})),
        ("POST", f"/links/{active}/end", {}, frozenset({"cadre_self", "youth_in", "admin_in"})),
    ]
    await _check(api, who, matrix)
