"""Cards, join codes, youth-initiated links, group links and spread: HTTP in, events out on NATS."""

from __future__ import annotations

import json

from nats.js import JetStreamContext
from tuanlian.shared.auth import Role
from tuanlian.shared.testing import stream_messages, wait_until
from work_support import Api


async def test_join_code_request_is_answered_by_the_cadre_and_published(api: Api, js: JetStreamContext) -> None:
    org = await api.org("江城大学团委", "university")
    cadre_id = await api.cadre(org, name="王老师")
    youth_id = await api.youth(org, field="school")
    cadre = api.auth(Role.cadre, cadre_id, org["org_path"])
    youth = api.auth(Role.youth, youth_id)

    card = await api.ok(
        "PUT", f"/cadres/{cadre_id}/card", cadre, json={"channels": {"wechat": "wang_tw", "qq": "10001"}}
    )
    assert card["name"] == "王老师" and card["org_name"] == "江城大学团委"
    assert card["channels"] == {"wechat": "wang_tw", "qq": "10001"}
    code = card["join_code"]
    assert len(code) == 8 and card["join_url"].endswith(code)

    # Any signed-in youth can read the card behind the code, and its QR code in both formats.
    seen = await api.ok("GET", f"/join/{code}", youth)
    assert seen["cadre_id"] == cadre_id
    png = await api.ok("GET", f"/cadres/{cadre_id}/card/qr.png", youth)
    assert png.headers["content-type"] == "image/png" and png.content.startswith(b"\x89PNG")
    svg = await api.ok("GET", f"/cadres/{cadre_id}/card/qr.svg", youth)
    assert svg.headers["content-type"].startswith("image/svg+xml") and b"<svg" in svg.content

    link = await api.ok("POST", "/links/requests", youth, 201, json={"join_code": code})
    assert link["state"] == "invited" and link["initiated_by"] == "youth"
    # Not counted yet: the cadre's list shows it as a request, and the youth cannot accept it.
    r = await api.http.post(f"/links/{link['link_id']}/accept", headers=youth)
    assert r.status_code == 403
    await api.ok("POST", f"/links/{link['link_id']}/accept", cadre)
    links = await api.ok("GET", f"/cadres/{cadre_id}/links", cadre)
    assert [(lk["youth_id"], lk["state"]) for lk in links] == [(youth_id, "active")]

    msgs = await wait_until(
        lambda: stream_messages(js, "CONTACTS"),
        until=lambda m: any(x.subject.endswith("ContactLinkAccepted") for x in m),
        message="the acceptance reaches the CONTACTS stream",
    )
    by_type = {m.subject.rsplit(".", 1)[-1]: json.loads(m.data) for m in msgs}
    assert by_type["ContactLinkInvited"]["payload"]["initiated_by"] == "youth"
    assert by_type["JoinCodeIssued"]["payload"]["join_code"] == code
    # The card's channel ids are personal data: the bus carries only which channels.
    assert by_type["CadreCardPublished"]["payload"]["channels"] == ["qq", "wechat"]
    assert b"wang_tw" not in b"".join(m.data for m in msgs)


async def test_reissued_code_retires_the_old_one_and_bad_codes_are_refused(api: Api) -> None:
    org = await api.org("团委", "county", lo=True)
    cadre_id = await api.cadre(org)
    youth = api.auth(Role.youth, await api.youth(org))
    cadre = api.auth(Role.cadre, cadre_id, org["org_path"])
    old = (await api.ok("PUT", f"/cadres/{cadre_id}/card", cadre, json={"channels": {"weibo": "w1"}}))["join_code"]
    new = (await api.ok("POST", f"/cadres/{cadre_id}/join-code", cadre))["join_code"]
    assert new != old
    r = await api.http.post("/links/requests", headers=youth, json={"join_code": old})
    assert r.status_code == 404
    r = await api.http.post("/links/requests", headers=youth, json={"join_code": "lower-1"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "join_code"]
    r = await api.http.put(f"/cadres/{cadre_id}/card", headers=cadre, json={"channels": {"phone": "1"}})
    assert r.status_code == 422 and r.json()["field"] == "channels"
    # A cadre's own request through a code is not a youth's consent.
    r = await api.http.post("/links/requests", headers=cadre, json={"join_code": new})
    assert r.status_code == 403


async def test_group_links_report_covered_orgs_by_type(api: Api, js: JetStreamContext) -> None:
    uni = await api.org("江城大学团委", "university")
    dept = await api.org("计算机学院分团委", "department", uni)
    branch = await api.org("计科1班团支部", "branch", dept)
    dorm = await api.org("3号楼201宿舍团小组", "dorm_group", branch)
    other = await api.org("别的大学", "university")
    cadre_id = await api.cadre(uni)
    cadre = api.auth(Role.cadre, cadre_id, uni["org_path"])
    for g in (dept, branch, dorm):
        await api.ok("POST", f"/cadres/{cadre_id}/groups", cadre, 201, json={"org_id": g["org_id"]})
    r = await api.http.post(f"/cadres/{cadre_id}/groups", headers=cadre, json={"org_id": dorm["org_id"]})
    assert r.status_code == 409 and r.json()["current"] == "covered"
    r = await api.http.post(f"/cadres/{cadre_id}/groups", headers=cadre, json={"org_id": other["org_id"]})
    assert r.status_code == 422 and r.json()["field"] == "org_id"
    groups = await api.ok("GET", f"/cadres/{cadre_id}/groups", cadre)
    assert groups["counts"] == {"sub_committees": 1, "branches": 1, "dorm_groups": 1}
    assert groups["dorm_groups"][0]["name"] == "3号楼201宿舍团小组"

    r = await api.http.delete(f"/cadres/{cadre_id}/groups/{branch['org_id']}", headers=cadre)
    assert r.status_code == 204
    groups = await api.ok("GET", f"/cadres/{cadre_id}/groups", cadre)
    assert groups["counts"] == {"sub_committees": 1, "branches": 0, "dorm_groups": 1}
    msgs = await wait_until(
        lambda: stream_messages(js, "CONTACTS", "contacts.events.cadre.GroupLinkEnded"),
        message="GroupLinkEnded is published",
    )
    assert json.loads(msgs[0].data)["payload"]["group_org_id"] == branch["org_id"]


async def test_spread_counts_dimensions_and_warns_of_overcontacted_youths(api: Api) -> None:
    org = await api.org("街道团工委", "grassroots_committee")
    cadres = [await api.cadre(org, name=f"干部{i}") for i in range(3)]
    popular = await api.youth(org, field="street", grade="2024", political_status="团员")
    others = [
        await api.youth(org, field="enterprise", political_status="群众"),
        await api.youth(org, field="street", political_status="团员", family_situation="困难家庭"),
    ]
    for c in cadres:
        await api.link(c, popular, org["org_path"])
    for y in others:
        await api.link(cadres[0], y, org["org_path"])
    admin = api.auth(Role.org_admin, "admin", org["org_path"])
    s = await api.ok("GET", f"/cadres/{cadres[0]}/spread", admin)
    assert s["linked_youths"] == 3
    assert s["spread"]["field"] == {"street": 2, "enterprise": 1}
    assert s["spread"]["political_status"] == {"团员": 2, "群众": 1}
    assert s["spread"]["family_situation"] == {"unknown": 2, "困难家庭": 1}
    assert s["warnings"] == [{"youth_id": popular, "cadres_of_same_org": 3}]
    # An ended link no longer counts toward the warning.
    await api.ok("POST", f"/links/{cadres[2]}.{popular}/end", api.auth(Role.youth, popular))
    s = await api.ok("GET", f"/cadres/{cadres[0]}/spread", admin)
    assert s["warnings"] == []
