"""Dates and instants people type are bounded to 1900–2099 (like the events that carry them): an
activity dated 0001-01-01 once froze scoring's leaderboards. Year 1 or 9999 is a 422 naming the
field, at every endpoint that takes a date, and nothing is written."""

from __future__ import annotations

from typing import Any

from tuanlian.shared.auth import Role
from tuanlian.shared.db import Database
from tuanlian.shared.league_calendar import today as today_in_china
from work_support import Api

DESC = "组织青年参观红色教育基地并座谈"
# Year 1 and 9999, as a date and as an instant, in China's offset and west of Greenwich (where
# moving the instant to UTC overflows Python's dates).
DAYS = ["0001-01-01", "9999-12-31"]
INSTANTS = ["0001-01-01T00:00:00+08:00", "0001-01-01T00:00:00Z", "9999-12-31T10:00:00+08:00",
            "9999-12-31T23:00:00-08:00"]


async def _written(db: Database) -> tuple[int, ...]:
    async with db.connection() as conn:
        row = await conn.fetchrow(
            "SELECT (SELECT count(*) FROM contacts.events), (SELECT count(*) FROM contacts.org_rules), "
            "(SELECT count(*) FROM contacts.activities), (SELECT count(*) FROM contacts.interactions)"
        )
    return tuple(row)


async def test_years_1_and_9999_are_refused_by_field_and_nothing_is_written(api: Api, db: Database) -> None:
    county = await api.org("江城县团委", "county", lo=True)
    school = await api.org("江城一中团委", "grassroots_committee", county)
    cadre_id = await api.cadre(school)
    youth = await api.youth(school)
    await api.link(cadre_id, youth, school["org_path"])
    cadre = api.auth(Role.cadre, cadre_id, school["org_path"])
    admin = api.auth(Role.org_admin, "ca", county["org_path"])
    today = today_in_china().isoformat()
    activity = {"kind": "exchange", "occurred_on": today, "youth_ids": [youth], "description": DESC}
    r = await api.ok("POST", "/activities", cadre, 201, json={**activity, "organiser_cadre_id": cadre_id})
    activity_id = r["activity_id"]
    interaction_id = await api.interaction(cadre_id, school["org_path"], [youth])
    talk = {"youth_ids": [youth], "channel": "wechat", "summary": "聊了聊最近的学习和实习情况"}
    campaign = {"org_id": county["org_id"], "key": "autumn", "name": "秋季活动",
                "starts_on": "2026-09-01", "ends_on": "2026-09-30", "deadline": "2026-09-20"}

    # (method, url, who, valid body, field, values)
    cases: list[tuple[str, str, dict[str, str], dict[str, Any], str, list[str]]] = [
        ("POST", "/activities", cadre, {**activity, "organiser_cadre_id": cadre_id}, "occurred_on", DAYS),
        ("POST", f"/activities/{activity_id}/corrections", cadre, {**activity, "reason": "日期记错"}, "occurred_on", DAYS),
        ("POST", "/campaigns", admin, campaign, "starts_on", DAYS),
        ("POST", "/campaigns", admin, campaign, "ends_on", DAYS),
        ("POST", "/campaigns", admin, campaign, "deadline", DAYS),
        ("POST", "/spot-checks", admin, {"cadre_id": cadre_id, "period_from": today, "period_to": today},
         "period_from", DAYS),
        ("POST", "/spot-checks", admin, {"cadre_id": cadre_id, "period_from": today, "period_to": today},
         "period_to", DAYS),
        ("PUT", f"/orgs/{school['org_id']}/rules", admin, {"effective_from": today, "preset": "000"},
         "effective_from", DAYS),
        ("POST", "/interactions", cadre, {**talk, "cadre_id": cadre_id}, "occurred_at", INSTANTS),
        ("POST", f"/interactions/{interaction_id}/corrections", cadre, {**talk, "reason": "时间记错"},
         "occurred_at", INSTANTS),
    ]
    before = await _written(db)
    for method, url, who, body, field, values in cases:
        for value in values:
            r = await api.http.request(method, url, headers=who, json={**body, field: value})
            assert r.status_code == 422, (url, field, value, r.text)
            assert [e["loc"] for e in r.json()["detail"]] == [["body", field]], (url, field, value, r.text)
    assert await _written(db) == before
