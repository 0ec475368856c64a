"""People and identity over HTTP: cadre accounts in bulk, password login with lockout, youth
imports, bulk industry tags, transfers, deactivation, and one-time codes through notify on NATS."""

import asyncio
import csv
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from tuanlian.contacts.testkit import ContactsApi, running_contacts
from tuanlian.shared.auth import Role
from tuanlian.shared.contracts.notify import DIRECT_SUBJECT, DirectMessage, DirectReply
from tuanlian.shared.db import Database


@pytest.fixture
async def api(database_url: str, nats_url: str, tmp_path: Path) -> AsyncIterator[ContactsApi]:
    async with running_contacts(database_url, nats_url, tmp_path) as running:
        yield running


def _csv(rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return out.getvalue().encode()


async def test_cadre_accounts_in_bulk_then_login_lockout_and_password_change(
    api: ContactsApi, db: Database, js: JetStreamContext
) -> None:
    city = await api.org("江城市团委", "city", is_leadership_organ=True)
    admin = api.admin(city["org_path"])
    rows = [
        ["name", "phone", "org_id", "kind", "in_leadership_organ", "login"],
        ["张三", "13900000001", city["org_id"], "full_time", "是", "zhangsan"],
        ["李四", "13900000002", city["org_id"], "part_time", "", ""],
    ]
    bad = [*rows, ["王五", "13900000001", city["org_id"], "boss", "", ""]]
    r = await api.http.post("/cadres/import", files={"file": ("c.csv", _csv(bad))}, headers=admin)
    assert r.status_code == 422
    assert {(e["row"], e["column"]) for e in r.json()["report"]["errors"]} == {(4, "kind")}

    r = await api.http.post("/cadres/import", params={"format": "csv"}, files={"file": ("c.csv", _csv(rows))},
                            headers=admin)
    assert r.status_code == 200, r.text
    sheet = list(csv.DictReader(io.StringIO(r.text.lstrip("\ufeff"))))
    assert [s["name"] for s in sheet] == ["张三", "李四"] and sheet[0]["login"] == "zhangsan"
    password = sheet[0]["initial_password"]
    assert len(password) >= 10
    # Re-importing the same file hands out nothing new (and shows no password again).
    r = await api.http.post("/cadres/import", params={"format": "html"}, files={"file": ("c.csv", _csv(rows))},
                            headers=admin)
    assert r.status_code == 200 and "团干部账号发放表" in r.text and password not in r.text

    r = await api.http.post("/auth/login", json={"login": "zhangsan", "password": password})
    assert r.status_code == 200, r.text
    assert r.json()["must_change_password"] is True and r.json()["role"] == "cadre"
    token = {"Authorization": f"Bearer {r.json()['access_token']}"}
    r = await api.http.post("/auth/password", json={"old_password": password, "new_password": "a-new-long-secret"},
                            headers=token)
    assert r.status_code == 204
    # The token verifies with the published key, and the cadre sees their own (empty) list.
    jwks = (await api.http.get("/.well-known/jwks.json")).json()
    assert jwks["keys"][0]["alg"] == "EdDSA"
    cadre_id = (await api.http.post("/auth/login", json={"login": "zhangsan", "password": "a-new-long-secret"})).json()[
        "subject"
    ]
    r = await api.http.get(f"/cadres/{cadre_id}/links", headers=token)
    assert r.status_code == 200 and r.json() == []

    # Five wrong passwords lock the account; then even the right one is refused until it opens.
    for _ in range(5):
        r = await api.http.post("/auth/login", json={"login": "zhangsan", "password": "wrong"})
        assert r.status_code == 401
    r = await api.http.post("/auth/login", json={"login": "zhangsan", "password": "a-new-long-secret"})
    assert r.status_code == 423 and "locked_until" in r.json()
    async with db.connection() as conn:
        attempts = await conn.fetch("SELECT success, reason FROM contacts.login_attempts ORDER BY attempt_id")
    assert [a["success"] for a in attempts] == [True, True] + [False] * 6
    assert attempts[-1]["reason"] == "locked" and attempts[-2]["reason"] == "wrong password, locked"

    envelopes = await api.published(js, until=lambda es: any(e["event_type"] == "AccountActivated" for e in es))
    issued = [e["payload"] for e in envelopes if e["event_type"] == "AccountIssued"]
    assert sorted(p["role"] for p in issued) == ["cadre", "cadre"]
    assert all("张三" not in json.dumps(e) and "13900000001" not in json.dumps(e) for e in envelopes)


async def test_transfer_deactivate_youth_import_and_industry_tags(api: ContactsApi, db: Database) -> None:
    city = await api.org("江城市团委", "city", is_leadership_organ=True)
    east = await api.org("东区团委", "county", city)
    west = await api.org("西区团委", "county", city)
    admin = api.admin(city["org_path"])
    r = await api.http.post("/cadres", json={"org_id": east["org_id"], "name": "张三", "kind": "full_time"},
                            headers=admin)
    cadre_id = r.json()["cadre_id"]

    youths = [
        ["name", "phone", "org_id", "field", "industry", "major", "grade", "special_care"],
        ["小明", "13700000001", east["org_id"], "school", "", "计算机", "2025", "left_behind"],
        ["小红", "13700000002", east["org_id"], "enterprise", "制造业", "", "", ""],
        ["小刚", "13700000003", east["org_id"], "rural", "", "", "", "poor_family;disabled"],
    ]
    dup = [*youths, ["小明二", "13700000001", east["org_id"], "school", "", "", "", ""],
           ["小华", "12345", east["org_id"], "nowhere", "", "", "", "aliens"]]
    r = await api.http.post("/youths/import", files={"file": ("y.csv", _csv(dup))}, headers=admin)
    assert r.status_code == 422
    assert {(e["row"], e["column"]) for e in r.json()["report"]["errors"]} == {
        (5, "phone"), (6, "phone"), (6, "field")
    }
    r = await api.http.post("/youths/import", files={"file": ("y.csv", _csv(youths))}, headers=admin)
    assert r.status_code == 200, r.text
    ids = [c["youth_id"] for c in r.json()["created"]]
    assert len(ids) == 3
    r = await api.http.post("/youths/import", files={"file": ("y.csv", _csv(youths))}, headers=admin)
    assert r.json()["created"] == [] and len(r.json()["unchanged"]) == 3  # found by phone

    r = await api.http.get(f"/youths/{ids[0]}", headers=admin)
    assert (r.json()["name"], r.json()["phone"], r.json()["major"]) == ("小明", "13700000001", "计算机")
    r = await api.http.get("/youths/search", params={"phone": "13700000002"}, headers=admin)
    assert r.json()["youth_id"] == ids[1]

    r = await api.http.post("/youths/industry", json={"youth_ids": ids, "industry": "互联网"}, headers=admin)
    assert r.status_code == 200 and r.json() == {"updated": 3}
    r = await api.http.post("/youths/industry", json={"youth_ids": ids, "industry": "金融"},
                            headers=api.admin(west["org_path"]))
    assert r.status_code == 403
    async with db.connection() as conn:
        tags = await conn.fetch("SELECT DISTINCT industry FROM contacts.youths")
    assert [t["industry"] for t in tags] == ["互联网"]  # the refused batch wrote nothing

    # Links, then the cadre moves west and is deactivated: every link ends through the link.
    for youth_id in ids[:2]:
        r = await api.http.post("/links/invitations", json={"cadre_id": cadre_id, "youth_id": youth_id},
                                headers=admin)
        assert r.status_code == 201, r.text
    r = await api.http.post(f"/links/{cadre_id}.{ids[0]}/accept", headers=api.token_youth(ids[0]))
    assert r.status_code == 200
    # 000 附件3: the cadre adds the 行业 tag of the youths linked to them; one only invited is not.
    me = api.token(Role.cadre, cadre_id, east["org_path"])
    r = await api.http.post("/youths/industry", json={"youth_ids": ids[:2], "industry": "教育"}, headers=me)
    assert r.status_code == 403 and ids[1] in r.text
    r = await api.http.post("/youths/industry", json={"youth_ids": [ids[0]], "industry": "教育"}, headers=me)
    assert r.status_code == 200 and r.json() == {"updated": 1}
    async with db.connection() as conn:
        tags = dict(await conn.fetch("SELECT youth_id, industry FROM contacts.youths WHERE youth_id = ANY($1)", ids))
    assert tags == {ids[0]: "教育", ids[1]: "互联网", ids[2]: "互联网"}  # the refused batch wrote nothing
    r = await api.http.post(f"/cadres/{cadre_id}/transfer", json={"to_org_id": west["org_id"]},
                            headers=api.admin(east["org_path"]))
    assert r.status_code == 403  # the east admin does not administer the west
    r = await api.http.post(f"/cadres/{cadre_id}/transfer", json={"to_org_id": west["org_id"]}, headers=admin)
    assert r.status_code == 200 and r.json()["org_path"] == west["org_path"]
    r = await api.http.post(f"/cadres/{cadre_id}/deactivate", json={"reason": "调离"}, headers=admin)
    assert r.status_code == 200 and r.json()["links_ended"] == 2
    r = await api.http.post(f"/cadres/{cadre_id}/deactivate", json={}, headers=admin)
    assert r.status_code == 409 and r.json()["current"] == "deactivated"
    r = await api.http.get(f"/cadres/{cadre_id}/links", headers=admin)
    assert [link["state"] for link in r.json()] == ["ended", "ended"]


class NotifyStandIn:
    """What notify answers on ``DIRECT_SUBJECT``: the boundary, recorded."""

    def __init__(self) -> None:
        self.received: list[DirectMessage] = []

    async def handle(self, msg: Any) -> None:
        message = DirectMessage.model_validate_json(msg.data)
        self.received.append(message)
        await msg.respond(DirectReply(message_id=f"m{len(self.received)}").model_dump_json().encode())


async def test_youth_logs_in_with_a_one_time_code_sent_through_notify(
    api: ContactsApi, nc: NATS, db: Database, js: JetStreamContext
) -> None:
    city = await api.org("江城市团委", "city")
    r = await api.http.post("/youths", json={"org_id": city["org_id"], "name": "小明", "phone": "13700000009"},
                            headers=api.admin(city["org_path"]))
    youth_id = r.json()["youth_id"]

    # No notify listening: 503 with a reason, and no usable code is stored.
    r = await api.http.post("/auth/otp", json={"phone": "13700000009"})
    assert r.status_code == 503 and "notify" in r.json()["detail"]
    async with db.connection() as conn:
        assert await conn.fetchval("SELECT count(*) FROM contacts.login_codes") == 0

    stand_in = NotifyStandIn()
    sub = await nc.subscribe(DIRECT_SUBJECT, cb=stand_in.handle)
    await nc.flush()
    try:
        r = await api.http.post("/auth/otp", json={"phone": "13700000009"})
        assert r.status_code == 202, r.text
        r = await api.http.post("/auth/otp", json={"phone": "13700000000"})  # unknown: same answer, no message
        assert r.status_code == 202
        await asyncio.sleep(0)
        assert [m.recipient_id for m in stand_in.received] == [youth_id]
        sent = stand_in.received[0]
        assert sent.template == "login_code" and sent.address == "13700000009"
        code = sent.params["code"]
        wrong = f"{(int(code) + 1) % 10**6:06d}"
        r = await api.http.post("/auth/otp/verify", json={"phone": "13700000009", "code": wrong})
        assert r.status_code == 401
        r = await api.http.post("/auth/otp/verify", json={"phone": "13700000009", "code": code})
        assert r.status_code == 200, r.text
        assert (r.json()["role"], r.json()["subject"]) == ("youth", youth_id)
        r = await api.http.post("/auth/otp/verify", json={"phone": "13700000009", "code": code})
        assert r.status_code == 401  # single use

        # Five wrong tries void a fresh code even before it expires.
        await api.http.post("/auth/otp", json={"phone": "13700000009"})
        code = stand_in.received[-1].params["code"]
        for _ in range(5):
            await api.http.post("/auth/otp/verify", json={"phone": "13700000009",
                                                           "code": f"{(int(code) + 7) % 10**6:06d}"})
        r = await api.http.post("/auth/otp/verify", json={"phone": "13700000009", "code": code})
        assert r.status_code == 401
    finally:
        await sub.unsubscribe()

    async with db.connection() as conn:
        hashes = await conn.fetch("SELECT code_hash FROM contacts.login_codes")
        logged = await conn.fetch("SELECT login_masked FROM contacts.login_attempts")
    assert all(code.encode() not in h["code_hash"] for h in hashes)
    assert {row["login_masked"] for row in logged} == {"137****0009", "137****0000"}
    envelopes = await api.published(js, until=lambda es: any(e["event_type"] == "AccountActivated" for e in es))
    assert [e["payload"]["role"] for e in envelopes if e["event_type"] == "AccountActivated"] == ["youth"]
