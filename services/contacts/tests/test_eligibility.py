"""不合格不能参评: contacts consumes scoring's AssessmentCompleted (bound late: SCORING is declared
by scoring, which may start after contacts) and refuses to nominate an ineligible cadre."""

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from nats.js import JetStreamContext
from tuanlian.contacts.domain.eligibility import LatestAssessment, ensure_may_be_nominated, is_newer
from tuanlian.contacts.testkit import ContactsApi, running_contacts
from tuanlian.shared.contracts.scoring import AssessmentCompleted, PeriodKind
from tuanlian.shared.db import Database
from tuanlian.shared.errors import RuleViolation
from tuanlian.shared.events import Envelope, new_id
from tuanlian.shared.league_calendar import today as today_in_china
from tuanlian.shared.service import asyncapi_document
from tuanlian.shared.streams import declare_stream, producer_stream
from tuanlian.shared.testing import wait_until


@pytest.fixture
async def api(database_url: str, nats_url: str, tmp_path: Path) -> AsyncIterator[ContactsApi]:
    async with running_contacts(database_url, nats_url, tmp_path) as running:
        yield running


def _assessment(cadre_id: str, kind: PeriodKind, start: date, end: date, passed: bool, eligible: bool) -> Envelope:
    e = AssessmentCompleted(assessment_id=f"a-{new_id().hex}", cadre_id=cadre_id, org_path="/x",
                            period_kind=kind, period_start=start, period_end=end, passed=passed,
                            eligible_for_excellence=eligible)
    return Envelope(event_id=new_id(), event_type=e.event_type, producer="scoring", stream_type=e.stream_type,
                    stream_id=f"assessment-{e.assessment_id}", stream_version=1, occurred_at=datetime.now(UTC),
                    payload=e.model_dump(mode="json"))


async def _publish(js: JetStreamContext, db: Database, env: Envelope) -> None:
    await js.publish(env.subject, env.model_dump_json().encode(), headers={"Nats-Msg-Id": str(env.event_id)})

    async def seen() -> Any:
        async with db.connection() as conn:
            return await conn.fetchval("SELECT 1 FROM contacts.consumer_inbox WHERE event_id = $1", env.event_id)

    await wait_until(seen, until=bool, message=f"{env.payload['assessment_id']} consumed")


async def test_an_ineligible_cadre_cannot_be_nominated_until_a_later_assessment_clears_them(
    api: ContactsApi, js: JetStreamContext, db: Database
) -> None:
    late = api.runtime.late[0]
    late.poll = 0.05
    # Contacts is up while SCORING does not exist yet; it keeps looking.
    await wait_until(lambda: late.polls, until=lambda n: n >= 2, message="waiting for SCORING")
    assert late.state == "waiting"
    city = await api.org("江城市团委", "city")
    admin = api.admin(city["org_path"])
    cadres = []
    for name in ("张三", "李四"):
        r = await api.http.post("/cadres", headers=admin, json={"org_id": city["org_id"], "name": name,
                                                                 "kind": "full_time"})
        cadres.append(r.json()["cadre_id"])
    failed, fine = cadres
    today = today_in_china()
    r = await api.http.post("/campaigns", headers=admin, json={
        "org_id": city["org_id"], "key": "most_beautiful_story", "name": "最美青春故事",
        "starts_on": (today - timedelta(days=5)).isoformat(), "ends_on": (today + timedelta(days=30)).isoformat(),
        "deadline": (today + timedelta(days=10)).isoformat()})
    assert r.status_code == 201, r.text
    nominate = f"/campaigns/{r.json()['campaign_id']}/nominations"

    await declare_stream(js, producer_stream("scoring"), storage="memory")
    await wait_until(lambda: late.state, until=lambda s: s == "bound", message="bound once SCORING exists")
    await _publish(js, db, _assessment(failed, PeriodKind.half_year, date(2026, 1, 1), date(2026, 6, 30),
                                       passed=False, eligible=False))
    await _publish(js, db, _assessment(fine, PeriodKind.half_year, date(2026, 1, 1), date(2026, 6, 30),
                                       passed=True, eligible=True))
    r = await api.http.post(nominate, headers=admin, json={"cadre_id": failed})
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["field"] == "cadre_id" and (body["period_start"], body["period_end"]) == ("2026-01-01", "2026-06-30")
    assert "2026-01-01" in body["detail"] and "不合格不能参评" in body["detail"]
    assert (await api.http.post(nominate, headers=admin, json={"cadre_id": fine})).status_code == 201

    # An older period arriving late does not replace the latest; a later one does.
    await _publish(js, db, _assessment(failed, PeriodKind.year, date(2025, 1, 1), date(2025, 12, 31),
                                       passed=True, eligible=True))
    r = await api.http.post(nominate, headers=admin, json={"cadre_id": failed})
    assert r.status_code == 422 and r.json()["period_end"] == "2026-06-30"
    await _publish(js, db, _assessment(failed, PeriodKind.quarter, date(2026, 7, 1), date(2026, 9, 30),
                                       passed=True, eligible=True))
    r = await api.http.post(nominate, headers=admin, json={"cadre_id": failed})
    assert r.status_code == 201, r.text
    async with db.connection() as conn:
        rows = await conn.fetch("SELECT cadre_id, period_end, eligible_for_excellence FROM contacts.cadre_eligibility")
    assert {(r["cadre_id"], r["period_end"], r["eligible_for_excellence"]) for r in rows} == {
        (failed, date(2026, 9, 30), True), (fine, date(2026, 6, 30), True)}
    # The late consumer is documented in contacts' AsyncAPI like any other.
    doc = asyncapi_document(api.runtime)
    assert any("contacts_eligibility_scoring" in key for key in doc["channels"])


def test_eligibility_rule() -> None:
    def a(end: date, passed: bool, eligible: bool) -> LatestAssessment:
        return LatestAssessment("a1", "year", date(end.year, 1, 1), end, passed, eligible)

    ensure_may_be_nominated("c1", None)
    ensure_may_be_nominated("c1", a(date(2026, 12, 31), True, True))
    with pytest.raises(RuleViolation, match="failed in the assessment of year 2026-01-01"):
        ensure_may_be_nominated("c1", a(date(2026, 12, 31), False, False))
    # Passed but not eligible for excellence (e.g. a basic pass): still refused.
    with pytest.raises(RuleViolation, match="not eligible"):
        ensure_may_be_nominated("c1", a(date(2026, 12, 31), True, False))
    assert is_newer(a(date(2026, 12, 31), True, True), a(date(2026, 6, 30), False, False))
    assert not is_newer(a(date(2025, 12, 31), True, True), a(date(2026, 6, 30), False, False))
