"""PIPL erasure: after it, no table, event or log line can say who the youth was; counts stay right."""

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from tuanlian.contacts.adapters.pii import PiiVault
from tuanlian.contacts.testkit import ContactsApi, running_contacts
from tuanlian.shared.auth import Role
from tuanlian.shared.contracts.notify import DIRECT_SUBJECT, DirectMessage, DirectReply
from tuanlian.shared.db import Database
from tuanlian.shared.events import utcnow
from tuanlian.shared.testing import stream_messages

NAME, PHONE = "欧阳娜娜", "13612345678"


@pytest.fixture
async def api(database_url: str, nats_url: str, tmp_path: Path) -> AsyncIterator[ContactsApi]:
    async with running_contacts(database_url, nats_url, tmp_path) as running:
        yield running


async def _traces(db: Database, needles: list[str]) -> list[str]:
    """Every (table, needle) where some row of the contacts schema, cast to text, holds the needle."""
    found = []
    async with db.connection() as conn:
        tables = await conn.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'contacts' "
            "AND table_type = 'BASE TABLE'"
        )
        for t in tables:
            for needle in needles:
                hits = await conn.fetchval(
                    f'SELECT count(*) FROM contacts."{t["table_name"]}" AS r WHERE strpos(r::text, $1) > 0', needle
                )
                if hits:
                    found.append(f"{t['table_name']}: {needle}")
    return found


async def _accepted(db: Database, cadre_id: str) -> tuple[int, int]:
    async with db.connection() as conn:
        links = await conn.fetchval(
            "SELECT count(*) FROM contacts.links WHERE cadre_id = $1 AND accepted_at IS NOT NULL", cadre_id
        )
        interactions = await conn.fetchval("SELECT count(*) FROM contacts.interactions WHERE cadre_id = $1", cadre_id)
    return links, interactions


async def test_erased_youth_leaves_no_trace_and_counts_stay_right(
    api: ContactsApi, db: Database, nc: NATS, js: JetStreamContext, capfd: pytest.CaptureFixture[str]
) -> None:
    city = await api.org("江城市团委", "city")
    admin = api.admin(city["org_path"])
    r = await api.http.post("/cadres", json={"org_id": city["org_id"], "name": "张三", "kind": "full_time"},
                            headers=admin)
    cadre_id = r.json()["cadre_id"]
    r = await api.http.post("/youths", headers=admin, json={
        "org_id": city["org_id"], "name": NAME, "phone": PHONE, "field": "school", "grade": "2024",
        "major": "社会工作", "native_place": "江西赣州", "industry": "教育",
    })
    youth_id = r.json()["youth_id"]
    youth = api.token_youth(youth_id)
    await api.http.post("/links/invitations", json={"cadre_id": cadre_id, "youth_id": youth_id}, headers=admin)
    assert (await api.http.post(f"/links/{cadre_id}.{youth_id}/accept", headers=youth)).status_code == 200
    cadre = api.token(Role.cadre, cadre_id, city["org_path"])
    r = await api.http.post("/interactions", headers=cadre, json={
        "cadre_id": cadre_id, "youth_ids": [youth_id], "channel": "face_to_face",
        "occurred_at": (utcnow() + timedelta(seconds=1)).isoformat(),
        "summary": f"和{NAME}谈心，聊了考研和家里的困难",
    })
    assert r.status_code == 201, r.text

    # The youth logs in once with a code (codes and attempts are on record).
    received: list[DirectMessage] = []

    async def notify(msg: Any) -> None:
        received.append(DirectMessage.model_validate_json(msg.data))
        await msg.respond(DirectReply(message_id="m1").model_dump_json().encode())

    sub = await nc.subscribe(DIRECT_SUBJECT, cb=notify)
    await nc.flush()
    assert (await api.http.post("/auth/otp", json={"phone": PHONE})).status_code == 202
    r = await api.http.post("/auth/otp/verify", json={"phone": PHONE, "code": received[0].params["code"]})
    assert r.status_code == 200

    phone_hash = PiiVault("contacts", api.runtime.settings.pii_hash_key).phone_hash(PHONE).hex()
    needles = [NAME, PHONE, phone_hash, "社会工作", "江西赣州"]
    before = await _accepted(db, cadre_id)
    assert before == (1, 1)
    assert await _traces(db, [phone_hash]) == ["people: " + phone_hash]  # the search key is really there

    # Someone else cannot erase the youth; the youth can.
    r = await api.http.post(f"/youths/{youth_id}/erase", headers=api.admin("/elsewhere"))
    assert r.status_code == 403
    r = await api.http.post(f"/youths/{youth_id}/erase", headers=youth)
    assert r.status_code == 200 and r.json()["links_ended"] == 1
    r = await api.http.post(f"/youths/{youth_id}/erase", headers=youth)
    assert r.status_code == 409 and r.json()["current"] == "erased"

    await api.published(js, until=lambda es: any(e["event_type"] == "YouthErased" for e in es))
    assert await _traces(db, needles) == []
    bus = b"".join(m.data for m in await stream_messages(js, "CONTACTS"))
    assert all(n.encode() not in bus for n in needles)
    r = await api.http.get(f"/youths/{youth_id}", headers=admin)
    assert (r.json()["name"], r.json()["phone"], r.json()["field"]) == (None, None, None)
    # The number is unknown now: asking for a code sends nothing.
    assert (await api.http.post("/auth/otp", json={"phone": PHONE})).status_code == 202
    assert len(received) == 1
    await sub.unsubscribe()

    # Counts stay right: the link was accepted once, the interaction happened.
    assert await _accepted(db, cadre_id) == before
    logs = capfd.readouterr()
    output = logs.out + logs.err
    assert output and all(n not in output for n in needles)
