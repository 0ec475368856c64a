"""The youth's word on an interaction, corrections as new events, and evidence checked by content."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta

from nats.js import JetStreamContext
from tuanlian.shared.auth import Role
from tuanlian.shared.testing import stream_messages, wait_until
from work_support import Api

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
PDF = b"%PDF-1.4\n%minimal\n"


async def _pair(api: Api) -> tuple[dict, str, list[str]]:
    org = await api.org("团市委", "city", lo=True)
    cadre_id = await api.cadre(org)
    youths = [await api.youth(org) for _ in range(2)]
    for y in youths:
        await api.link(cadre_id, y, org["org_path"])
    return org, cadre_id, youths


async def test_youths_confirm_or_dispute_and_corrections_reset_answers(api: Api, js: JetStreamContext) -> None:
    org, cadre_id, (y1, y2) = await _pair(api)
    cadre = api.auth(Role.cadre, cadre_id, org["org_path"])
    iid = await api.interaction(cadre_id, org["org_path"], [y1, y2])

    [mine] = await api.ok("GET", "/my/interactions", api.auth(Role.youth, y1))
    assert (mine["interaction_id"], mine["answer"]) == (iid, "pending")
    assert (await api.ok("POST", f"/interactions/{iid}/confirm", api.auth(Role.youth, y1)))["answer"] == "confirmed"
    [mine] = await api.ok("GET", "/my/interactions", api.auth(Role.youth, y1))
    assert mine["answer"] == "confirmed"
    r = await api.http.post(f"/interactions/{iid}/dispute", headers=api.auth(Role.youth, y1), json={})
    assert r.status_code == 409 and r.json()["current"] == "confirmed"
    d = await api.ok("POST", f"/interactions/{iid}/dispute", api.auth(Role.youth, y2), json={"reason": "没聊过"})
    assert d["answer"] == "disputed"
    stranger = await api.youth(org)
    r = await api.http.post(f"/interactions/{iid}/confirm", headers=api.auth(Role.youth, stranger))
    assert r.status_code == 403
    r = await api.http.post(f"/interactions/{iid}/confirm", headers=cadre)
    assert r.status_code == 403

    [row] = await api.ok("GET", f"/cadres/{cadre_id}/interactions", cadre)
    assert row["answers"] == {y1: "confirmed", y2: "disputed"}

    when = (datetime.now(UTC) + timedelta(seconds=2)).isoformat()
    body = {"youth_ids": [y1], "channel": "face_to_face", "occurred_at": when,
            "summary": "当面谈了毕业去向和就业的打算", "reason": "记错了渠道"}
    await api.ok("POST", f"/interactions/{iid}/corrections", cadre, json=body)
    [row] = await api.ok("GET", f"/cadres/{cadre_id}/interactions", cadre)
    assert (row["channel"], row["youth_ids"], row["corrections"], row["answers"]) == ("face_to_face", [y1], 1, {})
    # Another youth's interaction is not the cadre's to correct; a correction obeys the same rules.
    r = await api.http.post(f"/interactions/{iid}/corrections", headers=cadre, json={**body, "youth_ids": [stranger]})
    assert r.status_code == 422 and r.json()["field"] == "youth_ids"
    other = api.auth(Role.cadre, await api.cadre(org), org["org_path"])
    r = await api.http.post(f"/interactions/{iid}/corrections", headers=other, json=body)
    assert r.status_code == 403

    msgs = await wait_until(
        lambda: stream_messages(js, "CONTACTS", "contacts.events.interaction.InteractionCorrected"),
        message="the correction is published",
    )
    payload = json.loads(msgs[0].data)["payload"]
    assert payload["channel"] == "face_to_face" and payload["online"] is False and payload["reason"] == "记错了渠道"
    # The original is still in the log: nothing was overwritten.
    logged = await stream_messages(js, "CONTACTS", "contacts.events.interaction.InteractionLogged")
    assert json.loads(logged[0].data)["payload"]["channel"] == "wechat"


async def test_interactions_in_the_future_or_before_the_link_are_refused(api: Api) -> None:
    org, cadre_id, (y1, _) = await _pair(api)
    cadre = api.auth(Role.cadre, cadre_id, org["org_path"])
    base = {"cadre_id": cadre_id, "youth_ids": [y1], "channel": "qq", "summary": "线上聊了学习近况"}
    for when, field in (
        (datetime.now(UTC) + timedelta(days=1), "occurred_at"),
        (datetime.now(UTC) - timedelta(days=30), "occurred_at"),
    ):
        r = await api.http.post("/interactions", headers=cadre, json={**base, "occurred_at": when.isoformat()})
        assert r.status_code == 422 and r.json()["field"] == field
    r = await api.http.post(
        "/interactions", headers=cadre, json={**base, "occurred_at": datetime.now(UTC).isoformat(), "summary": "嗯"}
    )
    assert r.status_code == 422 and r.json()["field"] == "summary"
    assert await api.ok("GET", f"/cadres/{cadre_id}/interactions", cadre) == []


async def test_evidence_is_checked_by_content_stored_and_served_to_authorised_users(
    api: Api, js: JetStreamContext
) -> None:
    org, cadre_id, (y1, _) = await _pair(api)
    cadre = api.auth(Role.cadre, cadre_id, org["org_path"])
    iid = await api.interaction(cadre_id, org["org_path"], [y1])

    up = await api.ok(
        "POST", f"/interactions/{iid}/evidence", cadre, 201, files={"file": ("photo.png", PNG, "image/png")}
    )
    assert up["content_type"] == "image/png" and up["size_bytes"] == len(PNG)
    assert up["sha256"] == hashlib.sha256(PNG).hexdigest()
    # Refused: a script labelled as an image, a PDF labelled as PNG, an oversized file.
    for name, data, ctype in (
        ("x.png", b"<script>alert(1)</script>", "image/png"),
        ("x.png", PDF, "image/png"),
        ("big.pdf", PDF + b"\x00" * (5 * 1024 * 1024), "application/pdf"),
    ):
        r = await api.http.post(f"/interactions/{iid}/evidence", headers=cadre, files={"file": (name, data, ctype)})
        assert r.status_code == 422 and r.json()["field"] == "file", r.text
    # Only the cadre who logged it attaches evidence.
    other = api.auth(Role.cadre, await api.cadre(org), org["org_path"])
    r = await api.http.post(f"/interactions/{iid}/evidence", headers=other, files={"file": ("p.png", PNG, "image/png")})
    assert r.status_code == 403

    got = await api.ok("GET", f"/evidence/{up['evidence_id']}", cadre)
    assert got.content == PNG and got.headers["content-type"] == "image/png"
    admin = api.auth(Role.org_admin, "a", org["org_path"])
    assert (await api.ok("GET", f"/evidence/{up['evidence_id']}", admin)).content == PNG
    for who in (other, api.auth(Role.youth, y1), api.auth(Role.org_admin, "b", "/elsewhere")):
        r = await api.http.get(f"/evidence/{up['evidence_id']}", headers=who)
        assert r.status_code == 403

    msgs = await wait_until(
        lambda: stream_messages(js, "CONTACTS", "contacts.events.evidence.EvidenceAttached"),
        message="EvidenceAttached is published",
    )
    assert len(msgs) == 1
    payload = json.loads(msgs[0].data)["payload"]
    assert payload == {
        "evidence_id": up["evidence_id"], "subject_type": "interaction", "subject_id": iid,
        "content_type": "image/png", "size_bytes": len(PNG), "sha256": hashlib.sha256(PNG).hexdigest(),
    }
