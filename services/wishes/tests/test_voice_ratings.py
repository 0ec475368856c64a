"""青年之声 with its answer limit and escalation, the problem list export, and cadre ratings."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import UTC, datetime, timedelta

from openpyxl import load_workbook
from tuanlian.shared.auth import Role
from tuanlian.shared.contracts.contacts import OrgType, YouthErased
from tuanlian.shared.testing import wait_until
from wishes_support import Harness

BRANCH = "/city/b1"


async def test_posts_are_answered_escalated_grouped_and_exported(harness: Harness) -> None:
    h = harness
    await h.contacts.org("b1", BRANCH, OrgType.branch)
    await h.contacts.link("c1", "y1", BRANCH)
    await h.until_linked("c1", "y1")
    await wait_until(lambda: h.rows("SELECT 1 FROM wishes.orgs"))
    youth, cadre, admin = h.auth(Role.youth, "y1"), h.auth(Role.cadre, "c1", BRANCH), h.auth(Role.org_admin, "a", "/city")
    p1 = (await h.call("POST", "/voice", youth, 201, json={"kind": "question", "text": "食堂能延长开放吗", "cadre_id": "c1"}))
    p2 = (await h.call("POST", "/voice", youth, 201, json={"kind": "complaint", "text": "自习室太吵了", "org_id": "b1"}))
    await h.call("POST", "/voice", youth, 422, json={"kind": "question", "text": "都写", "org_id": "b1", "cadre_id": "c1"})
    await h.call("POST", f"/voice/{p1['post_id']}/answer", cadre, json={"text": "已反映给后勤"})
    await h.call("POST", f"/voice/{p1['post_id']}/answer", cadre, 409, json={"text": "again"})
    await h.call("POST", f"/voice/{p2['post_id']}/answer", cadre, 403, json={"text": "not addressed to me"})

    done = await h.service.scheduler.tick(datetime.now(UTC) + timedelta(hours=49))  # default limit 48 h
    assert done["escalated"] == 1
    [post] = await h.call("GET", "/voice", admin, params={"state": "escalated"})
    assert post["post_id"] == p2["post_id"]
    await h.call("POST", f"/voice/{p2['post_id']}/answer", admin, json={"text": "已安排"})
    [answered] = await h.rows("SELECT in_time FROM wishes.voice_posts WHERE post_id = $1", p2["post_id"])
    assert answered["in_time"] is True  # answered on the real clock, well inside 48 h

    issue = await h.call("POST", "/voice/issues", admin, 201,
                         json={"title": "学习环境", "org_id": "b1", "post_ids": [p2["post_id"]]})
    await h.call("POST", f"/voice/issues/{issue['issue_id']}", admin,
                 json={"add_post_ids": [p1["post_id"]], "status": "reported"})
    r = await h.call("GET", "/voice/issues", admin, params={"format": "csv"})
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert [(x["title"], x["status"], x["post_count"], x["kinds"]) for x in rows] == [
        ("学习环境", "reported", "2", "complaint,question")]
    r = await h.call("GET", "/voice/issues", admin, params={"format": "xlsx"})
    ws = load_workbook(io.BytesIO(r.content)).active
    assert ws is not None and [c.value for c in ws[2]][:4] == [issue["issue_id"], "学习环境", "reported", 2]
    # A title a spreadsheet would run (CSV injection) is exported as text in both formats.
    hostile = '=HYPERLINK("http://evil.example","点此")'
    p3 = await h.call("POST", "/voice", youth, 201, json={"kind": "suggestion", "text": "加开夜校", "org_id": "b1"})
    await h.call("POST", "/voice/issues", admin, 201, json={"title": hostile, "org_id": "b1", "post_ids": [p3["post_id"]]})
    r = await h.call("GET", "/voice/issues", admin, params={"format": "csv"})
    assert "'" + hostile in [x["title"] for x in csv.DictReader(io.StringIO(r.content.decode("utf-8-sig")))]
    r = await h.call("GET", "/voice/issues", admin, params={"format": "xlsx"})
    ws = load_workbook(io.BytesIO(r.content)).active
    assert ws is not None and [(c.value, c.data_type) for c in ws["B"] if c.value == hostile] == [(hostile, "s")]

    await h.contacts.publish("youth-y1", YouthErased(youth_id="y1"))
    await wait_until(lambda: h.rows("SELECT text FROM wishes.voice_posts WHERE text LIKE '[erased%'"),
                     until=lambda r: len(r) == 3, message="erased youth's posts scrubbed")


async def test_ratings_once_per_period_and_aggregates_only_over_the_minimum(harness: Harness) -> None:
    h = harness
    for i in range(5):
        await h.contacts.link("c1", f"y{i}", BRANCH)
    await wait_until(lambda: h.rows("SELECT 1 FROM wishes.pairs"), until=lambda r: len(r) == 5)
    cadre = h.auth(Role.cadre, "c1", BRANCH)
    await h.call("POST", "/ratings", h.auth(Role.youth, "stranger"), 422, json={"cadre_id": "c1", "score": 5})
    await h.call("POST", "/ratings", h.auth(Role.youth, "y0"), 422, json={"cadre_id": "c1", "score": 6})
    for i, score in enumerate([5, 4, 4, 3]):
        await h.call("POST", "/ratings", h.auth(Role.youth, f"y{i}"), 201, json={"cadre_id": "c1", "score": score})
    r = await h.call("POST", "/ratings", h.auth(Role.youth, "y0"), 409, json={"cadre_id": "c1", "score": 1})
    assert "already rated" in r["detail"]
    assert (await h.call("GET", "/cadres/c1/ratings", cadre))["hidden"] is True  # 4 < 5
    await h.call("POST", "/ratings", h.auth(Role.youth, "y4"), 201,
                 json={"cadre_id": "c1", "score": 4, "comment": "很耐心"})
    mine = await h.call("GET", "/cadres/c1/ratings", cadre)
    assert mine["average"] == 4.0 and mine["distribution"] == {"1": 0, "2": 0, "3": 1, "4": 3, "5": 1}
    assert "comments" not in mine
    await h.call("GET", "/cadres/c1/ratings", h.auth(Role.cadre, "c2", BRANCH), 403)
    events = await h.rows("SELECT actor, payload::text AS p FROM wishes.events WHERE event_type = 'CadreRated'")
    assert len(events) == 5 and all(e["actor"] is None and '"y' not in e["p"] for e in events)


async def test_one_post_grouped_by_parallel_requests_lands_in_one_issue(harness: Harness) -> None:
    h = harness
    await h.contacts.org("b1", BRANCH, OrgType.branch)
    await wait_until(lambda: h.rows("SELECT 1 FROM wishes.orgs"))
    youth, admin = h.auth(Role.youth, "y1"), h.auth(Role.org_admin, "a", "/city")
    post = await h.call("POST", "/voice", youth, 201, json={"kind": "complaint", "text": "路灯坏了", "org_id": "b1"})
    body = {"title": "路灯", "org_id": "b1", "post_ids": [post["post_id"]]}
    db = h.app.state.runtime.db

    async def waiting() -> int:
        async with db.connection() as conn:
            return int(await conn.fetchval("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                           "AND datname = current_database()"))

    # Made certain, not hoped for: the issues table held (reads pass, writes wait) until all ten
    # requests have checked the post and wait.
    async with db.transaction() as hold:
        await hold.execute("LOCK TABLE wishes.voice_issues IN SHARE MODE")
        sent = asyncio.gather(*(h.http.post("/voice/issues", headers=admin, json=body) for _ in range(10)))
        await wait_until(waiting, until=lambda n: n >= 10, message="ten requests wait")
    answers = await sent
    assert sorted(r.status_code for r in answers) == [201] + [422] * 9, [r.text for r in answers]
    assert all("already in another issue" in r.json()["detail"] for r in answers if r.status_code == 422)
    issues = await h.rows("SELECT issue_id, post_count FROM wishes.voice_issues")
    [posted] = await h.rows("SELECT issue_id FROM wishes.voice_posts WHERE post_id = $1", post["post_id"])
    assert [(i["issue_id"], i["post_count"]) for i in issues] == [(posted["issue_id"], 1)]
