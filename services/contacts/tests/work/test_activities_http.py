"""Activities, campaigns with nominations, and spot checks over HTTP, with their events on NATS."""

from __future__ import annotations

import json
from datetime import date, timedelta

from nats.js import JetStreamContext
from tuanlian.shared.auth import Role
from tuanlian.shared.league_calendar import today as today_in_china
from tuanlian.shared.testing import stream_messages, wait_until
from work_support import Api

DESC = "组织青年参观红色教育基地并座谈"


async def test_activities_follow_the_organiser_rules(api: Api, js: JetStreamContext) -> None:
    county = await api.org("江城县团委", "county", lo=True)
    school = await api.org("江城一中团委", "grassroots_committee", county)
    cadre_id = await api.cadre(school)
    linked = await api.youth(school)
    stranger = await api.youth(school)
    await api.link(cadre_id, linked, school["org_path"])
    cadre = api.auth(Role.cadre, cadre_id, school["org_path"])
    today = today_in_china().isoformat()
    base = {"organiser_cadre_id": cadre_id, "occurred_on": today, "description": DESC}

    r = await api.ok("POST", "/activities", cadre, 201, json={**base, "kind": "league_lecture", "youth_ids": [linked]})
    assert r["five_ones_kind"] == "league_lecture"
    activity_id = r["activity_id"]
    r = await api.ok("POST", "/activities", cadre, 201, json={**base, "kind": "education_practice", "headcount": 30})
    assert r["five_ones_kind"] is None
    r = await api.ok("POST", "/activities", cadre, 201, json={**base, "kind": "heart_to_heart", "youth_ids": [linked]})
    assert r["five_ones_kind"] is None  # 谈心谈话 is not one of 000's five (the default rules')

    refused = [
        ({**base, "kind": "exchange", "youth_ids": [stranger]}, "youth_ids"),
        ({**base, "kind": "exchange"}, "youth_ids"),  # nobody took part
        ({**base, "kind": "open_day", "headcount": 60}, "kind"),  # collective kinds are the organ's
        ({**base, "kind": "exchange", "headcount": 3, "occurred_on": (date.fromisoformat(today) + timedelta(days=2)).isoformat()}, "occurred_on"),
        ({**base, "kind": "exchange", "headcount": 3, "description": "短"}, "description"),
    ]
    for body, field in refused:
        r = await api.http.post("/activities", headers=cadre, json=body)
        assert r.status_code == 422 and r.json()["field"] == field, (body, r.text)

    org_base = {"occurred_on": today, "description": DESC}
    county_admin = api.auth(Role.org_admin, "ca", county["org_path"])
    school_admin = api.auth(Role.org_admin, "sa", school["org_path"])
    r = await api.ok("POST", "/activities", county_admin, 201,
                     json={**org_base, "kind": "open_day", "organiser_org_id": county["org_id"], "headcount": 55})
    assert r["five_ones_kind"] == "open_day"
    r = await api.http.post("/activities", headers=county_admin,
                            json={**org_base, "kind": "open_day", "organiser_org_id": county["org_id"]})
    assert r.status_code == 422 and r.json()["field"] == "headcount"
    r = await api.http.post("/activities", headers=school_admin,
                            json={**org_base, "kind": "sharing_session", "organiser_org_id": school["org_id"], "headcount": 9})
    assert r.status_code == 422 and r.json()["field"] == "organiser_org_id"
    r = await api.http.post("/activities", headers=school_admin,
                            json={**org_base, "kind": "open_day", "organiser_org_id": county["org_id"], "headcount": 9})
    assert r.status_code == 403

    fix = {"kind": "league_lecture", "occurred_on": today, "headcount": 12, "youth_ids": [linked],
           "description": DESC + "，补记人数", "reason": "漏记了到场人数"}
    r = await api.ok("POST", f"/activities/{activity_id}/corrections", cadre, json=fix)
    got = await api.ok("GET", f"/activities/{activity_id}", school_admin)
    assert (got["headcount"], got["corrections"], got["youth_ids"]) == (12, 1, [linked])
    msgs = await wait_until(
        lambda: stream_messages(js, "CONTACTS", "contacts.events.activity.ActivityCorrected"),
        message="the correction is published",
    )
    assert json.loads(msgs[0].data)["payload"]["headcount"] == 12
    recorded = await stream_messages(js, "CONTACTS", "contacts.events.activity.ActivityRecorded")
    assert {json.loads(m.data)["payload"]["collective"] for m in recorded} == {True, False}


async def test_campaign_presets_tags_and_nominations(api: Api, js: JetStreamContext) -> None:
    city = await api.org("江城市团委", "city", lo=True)
    county = await api.org("江城县团委", "county", city, lo=True)
    other = await api.org("别的市团委", "city", lo=True)
    city_admin = api.auth(Role.org_admin, "ca", city["org_path"])
    county_admin = api.auth(Role.org_admin, "ka", county["org_path"])

    presets = await api.ok("POST", "/campaigns/presets", city_admin, 201, json={"org_id": city["org_id"], "year": 2026})
    by_key = {p["key"]: p for p in presets}
    assert (by_key["may4_open_day"]["starts_on"], by_key["may4_open_day"]["ends_on"]) == ("2026-05-04", "2026-05-10")
    story = by_key["most_beautiful_story"]
    assert (story["starts_on"], story["ends_on"], story["deadline"]) == ("2026-07-01", "2026-12-31", "2026-10-31")
    assert by_key["spring_service_month"]["ends_on"] == "2027-02-13"
    assert {"national_day", "dec9"} <= set(by_key)
    r = await api.http.post("/campaigns/presets", headers=city_admin, json={"org_id": city["org_id"], "year": 2026})
    assert r.status_code == 409
    # The county sees the city's campaigns; another city does not (and the city may not look there).
    assert len(await api.ok("GET", f"/orgs/{county['org_id']}/campaigns", county_admin)) == 5
    other_admin = api.auth(Role.org_admin, "oa", other["org_path"])
    assert await api.ok("GET", f"/orgs/{other['org_id']}/campaigns", other_admin) == []
    r = await api.http.get(f"/orgs/{other['org_id']}/campaigns", headers=city_admin)
    assert r.status_code == 403

    today = today_in_china()
    window = {"org_id": city["org_id"], "key": "most_beautiful_story", "name": "最美青春故事",
              "starts_on": (today - timedelta(days=30)).isoformat(), "ends_on": (today + timedelta(days=30)).isoformat()}
    open_c = await api.ok("POST", "/campaigns", city_admin, 201, json={**window, "deadline": (today + timedelta(days=3)).isoformat()})
    closed = await api.ok("POST", "/campaigns", city_admin, 201, json={**window, "deadline": (today - timedelta(days=1)).isoformat()})
    r = await api.http.post("/campaigns", headers=city_admin, json={**window, "deadline": (today + timedelta(days=90)).isoformat()})
    assert r.status_code == 422 and r.json()["field"] == "deadline"

    cadre_id = await api.cadre(county)
    outsider = await api.cadre(other)
    n = await api.ok("POST", f"/campaigns/{open_c['campaign_id']}/nominations", county_admin, 201, json={"cadre_id": cadre_id})
    r = await api.http.post(f"/campaigns/{open_c['campaign_id']}/nominations", headers=city_admin, json={"cadre_id": cadre_id})
    assert r.status_code == 409 and r.json()["current"] == "nominated"
    r = await api.http.post(f"/campaigns/{closed['campaign_id']}/nominations", headers=county_admin, json={"cadre_id": cadre_id})
    assert r.status_code == 409 and r.json()["current"] == "closed"
    r = await api.http.post(f"/campaigns/{open_c['campaign_id']}/nominations", headers=county_admin, json={"cadre_id": outsider})
    assert r.status_code == 403
    r = await api.http.post(
        f"/campaigns/{by_key['national_day']['campaign_id']}/nominations", headers=county_admin, json={"cadre_id": cadre_id}
    )
    assert r.status_code == 422 and r.json()["field"] == "campaign_id"
    # Any selection an org opens takes nominations (001: 五四评选表彰); a plain campaign does not.
    awards = {**window, "key": "may4_awards", "name": "五四评选表彰"}
    for nominations, status in ((True, 201), (None, 422), (False, 422)):
        c = await api.ok("POST", "/campaigns", city_admin, 201, json={**awards, "nominations": nominations})
        r = await api.http.post(f"/campaigns/{c['campaign_id']}/nominations", headers=county_admin,
                                json={"cadre_id": cadre_id})
        assert r.status_code == status, (nominations, r.text)
    selections = {c["name"]: c["nominations"] for c in await api.ok("GET", f"/orgs/{county['org_id']}/campaigns",
                                                                     county_admin)}
    assert selections["最美青春故事"] is True and selections["国庆集中活动"] is False
    listed = await api.ok("GET", f"/campaigns/{open_c['campaign_id']}/nominations", city_admin)
    assert [(x["nomination_id"], x["cadre_id"], x["nominated_by_org_id"]) for x in listed] == [
        (n["nomination_id"], cadre_id, county["org_id"])
    ]

    # A campaign tag holds only inside the campaign's window.
    cadre = api.auth(Role.cadre, cadre_id, county["org_path"])
    body = {"organiser_cadre_id": cadre_id, "kind": "volunteer_service", "headcount": 5, "description": DESC,
            "occurred_on": today.isoformat(), "campaign_id": by_key["national_day"]["campaign_id"]}
    r = await api.http.post("/activities", headers=cadre, json=body)
    assert r.status_code == 422 and r.json()["field"] == "campaign_id"
    await api.ok("POST", "/activities", cadre, 201, json={**body, "campaign_id": open_c["campaign_id"]})
    msgs = await wait_until(
        lambda: stream_messages(js, "CONTACTS", "contacts.events.campaign.CadreNominated"),
        message="the nomination is published",
    )
    assert json.loads(msgs[0].data)["payload"]["cadre_id"] == cadre_id


async def test_spot_check_samples_reveals_phones_to_the_admin_and_records_outcomes(
    api: Api, js: JetStreamContext
) -> None:
    org = await api.org("江城县团委", "county", lo=True)
    cadre_id = await api.cadre(org)
    youths = [await api.youth(org) for _ in range(3)]
    for y in youths:
        await api.link(cadre_id, y, org["org_path"])
    items = {f"interaction:{await api.interaction(cadre_id, org['org_path'], [y])}" for y in youths}
    cadre = api.auth(Role.cadre, cadre_id, org["org_path"])
    today = today_in_china().isoformat()
    a = await api.ok("POST", "/activities", cadre, 201, json={"organiser_cadre_id": cadre_id, "kind": "culture_sports",
                     "occurred_on": today, "youth_ids": youths[:1], "description": DESC})
    items.add(f"activity:{a['activity_id']}")
    admin = api.auth(Role.org_admin, "checker", org["org_path"])
    period = {"cadre_id": cadre_id, "period_from": today, "period_to": today}

    r = await api.http.post("/spot-checks", headers=cadre, json={**period, "size": 2})
    assert r.status_code == 403
    r = await api.http.post("/spot-checks", headers=admin, json={**period, "period_from": "2020-01-01", "period_to": "2020-01-31"})
    assert r.status_code == 422 and r.json()["field"] == "period"

    drawn = await api.ok("POST", "/spot-checks", admin, 201, json={**period, "size": 2})
    assert len(drawn["items"]) == 2 and {i["item"] for i in drawn["items"]} <= items
    everything = await api.ok("POST", "/spot-checks", admin, 201, json={**period, "size": 50})
    assert {i["item"] for i in everything["items"]} == items
    phones = {y["phone"] for i in everything["items"] for y in i["youths"]}
    assert len(phones) == 3 and all(p.startswith("1390000") for p in phones)

    check_id = everything["spot_check_id"]
    first, second = sorted(items)[:2]
    await api.ok("POST", f"/spot-checks/{check_id}/outcomes", admin, json={"item": first, "outcome": "fabricated"})
    r = await api.http.post(f"/spot-checks/{check_id}/outcomes", headers=admin, json={"item": first, "outcome": "verified"})
    assert r.status_code == 409 and r.json()["current"] == "fabricated"
    await api.ok("POST", f"/spot-checks/{check_id}/outcomes", admin, json={"item": second, "outcome": "unreachable"})
    got = await api.ok("POST", f"/spot-checks/{check_id}/outcomes", admin, json={"item": second, "outcome": "verified"})
    assert {i["item"]: i["outcome"] for i in got["items"]}[second] == "verified"
    r = await api.http.post(f"/spot-checks/{check_id}/outcomes", headers=admin, json={"item": "interaction:nope", "outcome": "verified"})
    assert r.status_code == 422 and r.json()["field"] == "item"
    r = await api.http.post(f"/spot-checks/{check_id}/outcomes", headers=api.auth(Role.org_admin, "x", "/other"),
                            json={"item": first, "outcome": "verified"})
    assert r.status_code == 403

    msgs = await wait_until(
        lambda: stream_messages(js, "CONTACTS"),
        until=lambda m: sum(x.subject.endswith("SpotCheckItemRecorded") for x in m) == 3,
        message="three outcomes are published",
    )
    revealed = [json.loads(m.data) for m in msgs if m.subject.endswith("SpotCheckContactsRevealed")]
    assert revealed[-1]["payload"]["revealed_to"] == "org_admin:checker"
    assert sorted(revealed[-1]["payload"]["youth_ids"]) == sorted(youths)
    # The phone numbers themselves never reach the bus.
    assert not any(p.encode() in m.data for p in phones for m in msgs)
    outcomes = [json.loads(m.data)["payload"]["outcome"] for m in msgs if m.subject.endswith("SpotCheckItemRecorded")]
    assert outcomes == ["fabricated", "unreachable", "verified"]


async def test_an_activity_counts_as_five_ones_by_the_kinds_its_orgs_rules_name(api: Api) -> None:
    """001 三.2 names 谈心谈话 and 志愿服务 among a cadre's five ones, and not 000's 交流 or 社会组织."""
    uni = await api.org("扬州大学团委", "university")
    today = today_in_china().isoformat()
    r = await api.http.put(f"/orgs/{uni['org_id']}/rules", json={"effective_from": today, "preset": "001"},
                           headers=api.auth(Role.org_admin, "ua", uni["org_path"]))
    assert r.status_code == 200, r.text
    cadre_id = await api.cadre(uni)
    youth = await api.youth(uni)
    await api.link(cadre_id, youth, uni["org_path"])
    cadre = api.auth(Role.cadre, cadre_id, uni["org_path"])
    base = {"organiser_cadre_id": cadre_id, "occurred_on": today, "description": DESC, "youth_ids": [youth]}
    counted = {}
    for kind in ("heart_to_heart", "volunteer_service", "league_lecture", "exchange", "social_org"):
        counted[kind] = (await api.ok("POST", "/activities", cadre, 201, json={**base, "kind": kind}))["five_ones_kind"]
    assert counted == {"heart_to_heart": "heart_to_heart", "volunteer_service": "volunteer_service",
                       "league_lecture": "league_lecture", "exchange": None, "social_org": None}
    rules = await api.ok("GET", f"/orgs/{uni['org_id']}/rules", api.auth(Role.org_admin, "ua", uni["org_path"]))
    assert "heart_to_heart" in rules["rules"]["five_ones_kinds"], rules
