"""People and identity, the remaining gaps, over HTTP on real Postgres and NATS: a youth's own
profile (name, phone, attributes), login limits on a controllable clock, concurrent changes (409
with a hint), links following a transferred cadre, and a cadre's activity list."""

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from nats.aio.client import Client as NATS
from tuanlian.contacts.entrypoints.http_auth import identity_clock
from tuanlian.contacts.testkit import ContactsApi, running_contacts
from tuanlian.shared.auth import Role
from tuanlian.shared.contracts.notify import DIRECT_SUBJECT, DirectMessage, DirectReply
from tuanlian.shared.db import Database
from tuanlian.shared.league_calendar import today as today_in_china
from tuanlian.shared.testing import wait_until


@pytest.fixture
async def api(database_url: str, nats_url: str, tmp_path: Path) -> AsyncIterator[ContactsApi]:
    async with running_contacts(database_url, nats_url, tmp_path) as running:
        yield running


async def _events(db: Database, stream_id: str) -> list[dict[str, Any]]:
    async with db.connection() as conn:
        rows = await conn.fetch(
            "SELECT event_type, stream_version, org_path, payload FROM contacts.events WHERE stream_id = $1 "
            "ORDER BY stream_version",
            stream_id,
        )
    return [{**dict(r), "payload": json.loads(r["payload"]) if isinstance(r["payload"], str) else r["payload"]}
            for r in rows]


async def test_a_youth_changes_their_own_name_phone_and_attributes(api: ContactsApi, db: Database) -> None:
    city = await api.org("江城市团委", "city")
    admin = api.admin(city["org_path"])
    r = await api.http.post("/youths", headers=admin, json={
        "org_id": city["org_id"], "name": "小明", "phone": "13800000001", "grade": "2024", "industry": "教育"})
    youth = r.json()["youth_id"]
    r = await api.http.post("/youths", headers=admin, json={"org_id": city["org_id"], "name": "小刚",
                                                             "phone": "13800000002"})
    other = r.json()["youth_id"]
    me = api.token_youth(youth)

    # Another person's number: 409 naming the conflict, not whose it is; nothing changed.
    r = await api.http.patch(f"/youths/{youth}", headers=me, json={"name": "小明明", "phone": "13800000002"})
    assert r.status_code == 409, r.text
    assert r.json()["field"] == "phone" and r.json()["conflict"] == "phone_taken"
    assert other not in r.text and "小刚" not in r.text
    assert [e["event_type"] for e in await _events(db, f"youth-{youth}")] == ["YouthRegistered"]
    assert (await api.http.get(f"/youths/{youth}", headers=me)).json()["name"] == "小明"

    r = await api.http.patch(f"/youths/{youth}", headers=me, json={"name": "小明明", "phone": "13800000009"})
    assert r.status_code == 200, r.text
    got = (await api.http.get(f"/youths/{youth}", headers=me)).json()
    assert (got["name"], got["phone"]) == ("小明明", "13800000009")
    # The phone hash was replaced: the old number finds nobody, the new one finds the youth.
    r = await api.http.get("/youths/search", params={"phone": "13800000001"}, headers=admin)
    assert r.status_code == 404
    r = await api.http.get("/youths/search", params={"phone": "13800000009"}, headers=admin)
    assert r.json()["youth_id"] == youth
    # The old number is free again for someone else.
    r = await api.http.post("/youths", headers=admin, json={"org_id": city["org_id"], "name": "小李",
                                                             "phone": "13800000001"})
    assert r.status_code == 201
    # Sealed under the youth's own key: the ciphertext is not the plaintext, and the event says
    # only which details changed.
    async with db.connection() as conn:
        row = await conn.fetchrow("SELECT name_enc, phone_enc FROM contacts.people WHERE subject_id = $1", youth)
    assert b"13800000009" not in row["phone_enc"] and "小明明".encode() not in row["name_enc"]
    events = await _events(db, f"youth-{youth}")
    assert events[-1]["event_type"] == "YouthContactDetailsChanged"
    assert events[-1]["payload"] == {"youth_id": youth, "changed": ["name", "phone"]}
    async with db.connection() as conn:
        dumped = await conn.fetchval("SELECT string_agg(payload::text, ' ') FROM contacts.events")
    assert "13800000009" not in dumped and "小明明" not in dumped

    # Attributes: only what really changed is in the event (the grade is the same as before).
    r = await api.http.patch(f"/youths/{youth}", headers=me, json={"grade": "2024", "industry": "制造业",
                                                                   "political_status": "团员"})
    assert r.status_code == 200, r.text
    events = await _events(db, f"youth-{youth}")
    assert events[-1]["event_type"] == "YouthProfileUpdated"
    changed = {k: v for k, v in events[-1]["payload"].items() if v is not None}
    assert changed == {"youth_id": youth, "industry": "制造业", "political_status": "团员"}
    # Nothing new: no event at all.
    r = await api.http.patch(f"/youths/{youth}", headers=me, json={"industry": "制造业", "name": "小明明"})
    assert r.status_code == 200 and len(await _events(db, f"youth-{youth}")) == len(events)
    got = (await api.http.get(f"/youths/{youth}", headers=admin)).json()
    assert (got["industry"], got["political_status"], got["grade"]) == ("制造业", "团员", "2024")

    # Another youth and an admin outside the subtree may not; a bad number is 422 on the field.
    other_city = await api.org("河城市团委", "city")
    for headers in (api.token_youth(other), api.admin(other_city["org_path"])):
        r = await api.http.patch(f"/youths/{youth}", headers=headers, json={"name": "冒名"})
        assert r.status_code == 403
    r = await api.http.patch(f"/youths/{youth}", headers=me, json={"phone": "12345"})
    assert r.status_code == 422 and "phone" in r.text


class NotifyStandIn:
    def __init__(self) -> None:
        self.received: list[DirectMessage] = []

    async def handle(self, msg: Any) -> None:
        message = DirectMessage.model_validate_json(msg.data)
        self.received.append(message)
        await msg.respond(DirectReply(message_id=f"m{len(self.received)}").model_dump_json().encode())


class Clock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


async def test_login_code_limit_per_hour_and_lockout_expiry_on_a_controllable_clock(
    api: ContactsApi, nc: NATS
) -> None:
    assert api.app is not None
    clock = Clock(datetime(2026, 9, 1, 8, 0, tzinfo=UTC))
    api.app.dependency_overrides[identity_clock] = clock
    city = await api.org("江城市团委", "city")
    admin = api.admin(city["org_path"])
    await api.http.post("/youths", headers=admin, json={"org_id": city["org_id"], "name": "小明",
                                                         "phone": "13700000001"})
    stand_in = NotifyStandIn()
    sub = await nc.subscribe(DIRECT_SUBJECT, cb=stand_in.handle)
    try:
        # Five codes in the hour (10 minutes apart), the sixth refused with a reason and Retry-After.
        for _ in range(5):
            r = await api.http.post("/auth/otp", json={"phone": "13700000001"})
            assert r.status_code == 202, r.text
            clock.now += timedelta(minutes=10)
        r = await api.http.post("/auth/otp", json={"phone": "13700000001"})
        assert r.status_code == 429, r.text
        assert r.json()["reason"] == "too_many_codes" and "5" in r.json()["detail"]
        # The first code (08:00) leaves the window at 09:00; it is 08:50.
        assert r.headers["Retry-After"] == "600" and r.json()["retry_after_seconds"] == 600
        assert len(stand_in.received) == 5
        clock.now += timedelta(minutes=10, seconds=1)
        r = await api.http.post("/auth/otp", json={"phone": "13700000001"})
        assert r.status_code == 202, r.text
        # The code sent now works now, and expires with the clock too.
        code = stand_in.received[-1].params["code"]
        clock.now += timedelta(minutes=6)
        r = await api.http.post("/auth/otp/verify", json={"phone": "13700000001", "code": code})
        assert r.status_code == 401
    finally:
        await sub.unsubscribe()

    # Lockout: five wrong passwords lock for 15 minutes; at 14:59 still locked, at 15:00 open.
    r = await api.http.post("/cadres/import", headers=admin, files={"file": (
        "c.csv", f"name,phone,org_id,kind,login\n张三,13700000009,{city['org_id']},full_time,zhangsan\n".encode())})
    password = r.json()["created"][0]["initial_password"]
    clock.now = datetime(2026, 9, 2, 8, 0, tzinfo=UTC)
    for _ in range(5):
        r = await api.http.post("/auth/login", json={"login": "zhangsan", "password": "wrong"})
        assert r.status_code == 401
    r = await api.http.post("/auth/login", json={"login": "zhangsan", "password": password})
    assert r.status_code == 423
    assert datetime.fromisoformat(r.json()["locked_until"]) == clock.now + timedelta(minutes=15)
    clock.now += timedelta(minutes=14, seconds=59)
    r = await api.http.post("/auth/login", json={"login": "zhangsan", "password": password})
    assert r.status_code == 423
    clock.now += timedelta(seconds=1)
    r = await api.http.post("/auth/login", json={"login": "zhangsan", "password": password})
    assert r.status_code == 200, r.text


async def _blocked_on_events(db: Database) -> int:
    async with db.connection() as conn:
        return int(await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"))


async def test_two_concurrent_changes_one_wins_the_other_gets_409_with_a_hint(
    api: ContactsApi, db: Database
) -> None:
    city = await api.org("江城市团委", "city")
    org = await api.org("东区团委", "county", city)
    admin = api.admin(city["org_path"])
    # Hold the event table so that both commands have read version 1 before either appends.
    async with db.transaction() as hold:
        await hold.execute("LOCK TABLE contacts.events IN SHARE MODE")
        both = asyncio.gather(
            api.http.post(f"/orgs/{org['org_id']}/rename", headers=admin, json={"name": "东城区团委"}),
            api.http.post(f"/orgs/{org['org_id']}/rename", headers=admin, json={"name": "东新区团委"}),
        )
        task = asyncio.ensure_future(both)
        await wait_until(lambda: _blocked_on_events(db), until=lambda n: n >= 2, message="both commands wait")
    first, second = await task
    statuses = sorted([first.status_code, second.status_code])
    assert statuses == [200, 409], (first.text, second.text)
    won, lost = (first, second) if first.status_code == 200 else (second, first)
    assert "hint" in lost.json() and "retry" in lost.json()["hint"]
    # Nothing half-written: one rename event, the read table names the winner, at the same version.
    events = await _events(db, f"org-{org['org_id']}")
    assert [e["event_type"] for e in events] == ["OrgCreated", "OrgRenamed"]
    async with db.connection() as conn:
        name = await conn.fetchval("SELECT name FROM contacts.orgs WHERE org_id = $1", org["org_id"])
    assert name == won.json()["name"] == events[-1]["payload"]["name"]
    # The loser retries on the new version and succeeds.
    wanted = ({"东城区团委", "东新区团委"} - {won.json()["name"]}).pop()
    r = await api.http.post(f"/orgs/{org['org_id']}/rename", headers=admin, json={"name": wanted})
    assert r.status_code == 200 and r.json()["version"] == 3


async def test_a_transferred_cadres_links_follow_them(api: ContactsApi, db: Database) -> None:
    city = await api.org("江城市团委", "city")
    east = await api.org("东区团委", "county", city)
    west = await api.org("西区团委", "county", city)
    city_admin, east_admin, west_admin = (api.admin(o["org_path"]) for o in (city, east, west))
    r = await api.http.post("/cadres", headers=east_admin, json={"org_id": east["org_id"], "name": "张三",
                                                                  "kind": "full_time"})
    cadre = r.json()["cadre_id"]
    youths = []
    for i in range(3):
        r = await api.http.post("/youths", headers=east_admin, json={"org_id": east["org_id"], "name": f"青年{i}",
                                                                      "phone": f"1360000000{i}"})
        youths.append(r.json()["youth_id"])
    as_cadre = api.token(Role.cadre, cadre, east["org_path"])
    links = []
    for y in youths:
        r = await api.http.post("/links/invitations", headers=as_cadre, json={"cadre_id": cadre, "youth_id": y})
        links.append(r.json()["link_id"])
    for link in links[:2]:
        assert (await api.http.post(f"/links/{link}/accept", headers=api.token_youth(link.split(".")[1]))).status_code == 200
    # One link ended before the transfer stays where it was made.
    r = await api.http.post(f"/links/{links[1]}/end", headers=as_cadre)
    assert r.status_code == 200

    r = await api.http.post(f"/cadres/{cadre}/transfer", headers=city_admin, json={"to_org_id": west["org_id"]})
    assert r.status_code == 200, r.text
    async with db.connection() as conn:
        paths = dict(await conn.fetch("SELECT link_id, org_path FROM contacts.links WHERE cadre_id = $1", cadre))
    assert paths == {links[0]: west["org_path"], links[1]: east["org_path"], links[2]: west["org_path"]}

    # The new admin sees the list, the old one no longer.
    r = await api.http.get(f"/cadres/{cadre}/links", headers=west_admin)
    assert r.status_code == 200 and {x["link_id"] for x in r.json()} == set(links)
    assert (await api.http.get(f"/cadres/{cadre}/links", headers=east_admin)).status_code == 403
    # Later events carry the new path: an interaction, the youth's answer and an end by the new admin.
    as_moved = api.token(Role.cadre, cadre, west["org_path"])
    r = await api.http.post("/interactions", headers=as_moved, json={
        "cadre_id": cadre, "youth_ids": [youths[0]], "channel": "wechat",
        "occurred_at": datetime.now(UTC).isoformat(), "summary": "调动后的第一次联系，聊了聊近况和学习"})
    assert r.status_code == 201, r.text
    interaction = r.json()["interaction_id"]
    r = await api.http.post(f"/links/{links[2]}/accept", headers=api.token_youth(youths[2]))
    assert r.status_code == 200
    assert (await api.http.post(f"/links/{links[0]}/end", headers=east_admin)).status_code == 403
    assert (await api.http.post(f"/links/{links[0]}/end", headers=west_admin)).status_code == 200
    ended = (await _events(db, f"contact_link-{links[0]}"))[-1]
    accepted = (await _events(db, f"contact_link-{links[2]}"))[-1]
    logged = (await _events(db, f"interaction-{interaction}"))[-1]
    assert (ended["event_type"], ended["org_path"]) == ("ContactLinkEnded", west["org_path"])
    assert (accepted["event_type"], accepted["payload"]["org_path"]) == ("ContactLinkAccepted", west["org_path"])
    assert (logged["event_type"], logged["payload"]["org_path"]) == ("InteractionLogged", west["org_path"])


async def test_a_cadres_activity_list_by_period(api: ContactsApi) -> None:
    city = await api.org("江城市团委", "city")
    r = await api.http.post("/cadres", headers=api.admin(city["org_path"]),
                            json={"org_id": city["org_id"], "name": "张三", "kind": "full_time"})
    cadre = r.json()["cadre_id"]
    as_cadre = api.token(Role.cadre, cadre, city["org_path"])
    today = today_in_china()
    days = [today - timedelta(days=40), today - timedelta(days=10), today]
    for day, kind in zip(days, ["league_lecture", "culture_sports", "practical_service"], strict=True):
        r = await api.http.post("/activities", headers=as_cadre, json={
            "organiser_cadre_id": cadre, "kind": kind, "occurred_on": day.isoformat(), "headcount": 12,
            "description": "组织青年开展活动，记录过程与参与人数"})
        assert r.status_code == 201, r.text
    r = await api.http.get(f"/cadres/{cadre}/activities", headers=as_cadre,
                           params={"from": days[1].isoformat(), "to": today.isoformat()})
    assert r.status_code == 200, r.text
    assert [a["kind"] for a in r.json()] == ["culture_sports", "practical_service"]
    r = await api.http.get(f"/cadres/{cadre}/activities", headers=api.admin(city["org_path"]))
    assert len(r.json()) == 3
    r = await api.http.get(f"/cadres/{cadre}/activities", headers=as_cadre,
                           params={"from": today.isoformat(), "to": days[0].isoformat()})
    assert r.status_code == 422 and r.json()["field"] == "to"
    assert (await api.http.get("/cadres/nobody/activities", headers=api.system)).status_code == 404
