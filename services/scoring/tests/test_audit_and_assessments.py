"""``tuanlian audit explain`` / ``audit verify`` / ``scoring rebuild`` run against the test
database, and POST /assessments end to end."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime
from typing import Any

from click.testing import Result
from nats.js import JetStreamContext
from scoring_support import Producer, Scoring
from test_projection import T0, _city_and_branch, _interaction, _org_and_cadre
from tuanlian.cli.main import app
from tuanlian.shared.auth import Role
from tuanlian.shared.contracts import contacts as c
from tuanlian.shared.contracts.contacts import CONTACTS
from tuanlian.shared.db import Database
from tuanlian.shared.eventstore import EventStore
from tuanlian.shared.settings import get_settings
from tuanlian.shared.streams import event_stream_name
from tuanlian.shared.testing import create_platform_tables, stream_messages, wait_until
from typer.testing import CliRunner


async def cli(database_url: str, *args: str, nats_url: str | None = None) -> Result:
    """The ``tuanlian`` command in a thread (it runs its own event loop), pointed at this test's servers."""
    env = {"TUANLIAN_DATABASE_URL": database_url, "TUANLIAN_NATS_URL": nats_url or ""}

    def invoke() -> Result:
        get_settings.cache_clear()
        try:
            return CliRunner().invoke(app, list(args), env=env)
        finally:
            get_settings.cache_clear()

    return await asyncio.to_thread(invoke)


async def test_audit_explain_lists_every_entry_with_rule_version_and_sources(
    scoring: Scoring, contacts: Producer, database_url: str
) -> None:
    await _org_and_cadre(contacts)
    await contacts.emit("link-l1", c.ContactLinkAccepted(link_id="l1", cadre_id="c1", youth_id="y1",
                                                         org_path="/root/o1"), T0)
    logged = await contacts.emit("interaction-i1", _interaction("i1", ["y1"], False, T0))
    await contacts.emit("interaction-i1", c.InteractionConfirmed(interaction_id="i1", cadre_id="c1", youth_id="y1",
                                                                 org_path="/root/o1"))
    await scoring.applied(5)
    r = await cli(database_url, "audit", "explain", "--cadre", "c1")
    assert r.exit_code == 0, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 4 and lines[-1] == "total 7 points in 3 entries"
    assert "+3 interaction_offline" in lines[1] and "default-2026.1" in lines[1] and str(logged.event_id) in lines[1]
    assert "interaction_confirmed" in lines[2] and str(logged.event_id) in lines[2]  # names both events
    r = await cli(database_url, "audit", "explain", "--cadre", "nobody")
    assert r.exit_code == 1 and r.output.strip() == "error: no ledger entries for cadre nobody"


async def test_audit_verify_reports_the_first_broken_link(scoring: Scoring, db: Database, database_url: str) -> None:
    await create_platform_tables(db, "contacts")
    store = EventStore("contacts", "contacts", CONTACTS)
    org = c.OrgCreated(org_id="o1", parent_id=None, name="一支部", org_type=c.OrgType.branch, depth=1,
                       is_leadership_organ=False, org_path="/o1")
    async with db.transaction() as conn:
        events = await store.append(conn, "org-o1", 0, [org, c.OrgRenamed(org_id="o1", old_name="一支部", name="二", org_path="/o1"),
                                                         c.OrgRenamed(org_id="o1", old_name="二", name="三", org_path="/o1")])
    r = await cli(database_url, "audit", "verify")
    assert r.exit_code == 0, r.output
    assert "contacts: 3 events, every chain intact" in r.output and "wishes: no event log here" in r.output
    async with db.transaction() as conn:
        await conn.execute("ALTER TABLE contacts.events DISABLE TRIGGER events_immutable")
        await conn.execute("UPDATE contacts.events SET payload = jsonb_set(payload, '{name}', '\"伪\"') "
                           "WHERE event_id = $1", events[1].event_id)
        await conn.execute("ALTER TABLE contacts.events ENABLE TRIGGER events_immutable")
    r = await cli(database_url, "audit", "verify")
    assert r.exit_code == 1
    assert f"contacts: BROKEN at org-o1 v2 ({events[1].event_id}): hash mismatch" in r.output, r.output


async def test_scoring_rebuild_command_prints_the_rate_and_swaps(
    scoring: Scoring, contacts: Producer, database_url: str, nats_url: str, js: JetStreamContext
) -> None:
    await _org_and_cadre(contacts)
    await contacts.emit("interaction-i1", _interaction("i1", ["y1"], False, T0))
    await scoring.applied(3)
    r = await cli(database_url, "scoring", "rebuild", "--ruleset", "nope", nats_url=nats_url)
    assert r.exit_code == 1 and r.output.strip().startswith("error: unknown rule set 'nope'")
    r = await cli(database_url, "scoring", "rebuild", nats_url=nats_url)
    assert r.exit_code == 0, r.output
    assert "version 2 (scoring_proj_v2) now serves: 3 events read, 3 applied" in r.output
    assert "events/s; the live consumers were held " in r.output and "previous version scoring_proj kept (retired)" in r.output
    r = await cli(database_url, "scoring", "versions")
    assert [ln.split()[:2] for ln in r.output.strip().splitlines()] == [["1", "retired"], ["2", "current"]]
    r = await cli(database_url, "audit", "explain", "--cadre", "c1")  # reads the new version
    assert r.exit_code == 0 and r.output.strip().endswith("total 3 points in 1 entries")
    # Pointed at a bus without the producers' streams: one line, and no version begun.
    await js.delete_stream(event_stream_name("wishes"))
    r = await cli(database_url, "scoring", "rebuild", nats_url=nats_url)
    assert r.exit_code == 1 and r.output.strip() == (
        f"error: no {event_stream_name('wishes')} stream on the bus at {nats_url}: "
        "is TUANLIAN_NATS_URL the bus the services publish to?"), r.output
    r = await cli(database_url, "scoring", "versions")
    assert [ln.split()[:2] for ln in r.output.strip().splitlines()] == [["1", "retired"], ["2", "current"]]


async def test_scoring_versions_marks_a_died_rebuild_failed_and_refuses_any_other(
    scoring: Scoring, db: Database, database_url: str
) -> None:
    # What a rebuild killed halfway leaves: a 'building' row and its half-filled schema.
    async with db.transaction() as conn:
        await conn.execute("CREATE SCHEMA scoring_proj_v2; CREATE TABLE scoring_proj_v2.ledger (id int)")
        await conn.execute("INSERT INTO scoring.projection_versions (version, schema_name, status) "
                           "VALUES (2, 'scoring_proj_v2', 'building')")
    r = await cli(database_url, "scoring", "versions", "--fail", "1")  # the serving one
    assert r.exit_code == 1 and r.output.strip() == "error: version 1 is not being built", r.output
    r = await cli(database_url, "scoring", "versions", "--fail", "2")
    assert r.exit_code == 0, r.output
    assert [ln.split()[:3] for ln in r.output.strip().splitlines()] == [
        ["1", "current", "scoring_proj"], ["2", "failed", "scoring_proj_v2"]]
    async with db.connection() as conn:
        assert await conn.fetchval("SELECT to_regnamespace('scoring_proj_v2')") is None
    r = await cli(database_url, "scoring", "versions", "--fail", "2")  # already failed
    assert r.exit_code == 1 and r.output.strip() == "error: version 2 is not being built", r.output


async def _lenient_rules_and_a_link(contacts: Producer, *, face_to_face_each_year: bool) -> None:
    """o1 asks a part-time cadre for one youth and no five ones, an online contact every 60 days;
    c1 links y1 in March."""
    rules = c.OrgRules(contact_quotas=c.ContactQuotas(part_time=1),
                       five_ones={"part_time": c.FiveOnesRule(count=0, period=c.FiveOnesPeriod.quarter)},
                       rhythm=c.Rhythm(online_silence_days=60, activity_each_quarter=False,
                                       face_to_face_each_year=face_to_face_each_year))
    await contacts.emit("org-o1", c.OrgRulesSet(org_id="o1", org_path="/root/o1", effective_from=date(2026, 1, 1),
                                                rules=rules), T0)
    await contacts.emit("link-l1", c.ContactLinkAccepted(link_id="l1", cadre_id="c1", youth_id="y1",
                                                         org_path="/root/o1"), T0)


async def test_group_coverage_of_a_closed_half_year_counts_the_groups_covered_at_its_end(
    scoring: Scoring, contacts: Producer
) -> None:
    """A university cadre must cover two dorm groups (吕梁: 联系团小组). Covered through June, one
    let go in August: the first half was met, today is at risk; a repeated GroupLinkAdded counts once."""
    await contacts.emit("org-u1", c.OrgCreated(org_id="u1", parent_id="root", name="某学院团委",
                                               org_type=c.OrgType.university, depth=2, is_leadership_organ=False,
                                               org_path="/root/u1"), T0)
    await contacts.emit("cadre-c1", c.CadreRegistered(cadre_id="c1", org_id="u1", org_path="/root/u1",
                                                      kind=c.CadreKind.part_time, in_leadership_organ=False), T0)
    rules = c.OrgRules(group_coverage_school=c.GroupCoverage(dorm_groups=2))
    await contacts.emit("org-u1", c.OrgRulesSet(org_id="u1", org_path="/root/u1", effective_from=date(2026, 1, 1),
                                                rules=rules), T0)
    for g, month in (("g1", 3), ("g2", 5), ("g2", 6)):
        await contacts.emit("cadre-c1", c.GroupLinkAdded(cadre_id="c1", group_org_id=g,
                                                         group_org_type=c.OrgType.dorm_group,
                                                         group_org_path=f"/root/u1/{g}", org_path="/root/u1"),
                            datetime(2026, month, 2, 4, 0, tzinfo=UTC))
    await contacts.emit("cadre-c1", c.GroupLinkEnded(cadre_id="c1", group_org_id="g1", org_path="/root/u1"),
                        datetime(2026, 8, 3, 4, 0, tzinfo=UTC))
    await scoring.applied(7)

    def coverage(compliance: dict[str, Any]) -> tuple[str, int]:
        (check,) = [k for k in compliance["checks"] if k["name"] == "group_coverage_dorm_groups"]
        return check["verdict"], check["actual"]

    assert coverage(await scoring.get("/cadres/c1/compliance", period_kind="half_year", period="2026-H1")) == (
        "met", 2)
    assert coverage(await scoring.get("/cadres/c1/compliance", period_kind="quarter", period="2026-Q1")) == (
        "missed", 1)  # only g1 by the end of March
    assert coverage(await scoring.get("/cadres/c1/compliance")) == ("at_risk", 1)


async def test_county_organ_cadres_spend_a_day_a_week_among_the_grassroots(scoring: Scoring, contacts: Producer) -> None:
    """002's "4+1": under rules asking it, a county committee's organ cadre needs a grassroots day
    (a ``grassroots_day_4_1`` activity) in every week gone by; a correction to another kind takes
    the week back. A branch cadre under the same rules is not asked."""
    await contacts.emit("org-d1", c.OrgCreated(org_id="d1", parent_id="root", name="东区团委", org_type=c.OrgType.county,
                                               depth=2, is_leadership_organ=True, org_path="/root/d1"), T0)
    await contacts.emit("org-b1", c.OrgCreated(org_id="b1", parent_id="d1", name="一支部", org_type=c.OrgType.branch,
                                               depth=3, is_leadership_organ=False, org_path="/root/d1/b1"), T0)
    rules = c.OrgRules(organ_duties=c.OrganDuties(grassroots_day_each_week=True))
    await contacts.emit("org-d1", c.OrgRulesSet(org_id="d1", org_path="/root/d1", effective_from=date(2026, 1, 1),
                                                rules=rules), T0)
    for cid, org, path, organ in (("k1", "d1", "/root/d1", True), ("k2", "b1", "/root/d1/b1", False)):
        await contacts.emit(f"cadre-{cid}", c.CadreRegistered(cadre_id=cid, org_id=org, org_path=path,
                                                              kind=c.CadreKind.full_time, in_leadership_organ=organ), T0)

    async def day(aid: str, on: date, kind: c.ActivityKind = c.ActivityKind.grassroots_day_4_1,
                  corrected: bool = False) -> None:
        fields: dict[str, Any] = {"activity_id": aid, "kind": kind, "organiser_cadre_id": "k1", "organiser_org_id": "d1",
                                  "org_path": "/root/d1", "collective": False, "occurred_on": on}
        await contacts.emit(f"activity-{aid}", c.ActivityCorrected(**fields, reason="a lecture") if corrected
                            else c.ActivityRecorded(**fields), T0)

    for i, on in enumerate((date(2026, 3, 3), date(2026, 3, 12), date(2026, 3, 13), date(2026, 3, 20),
                            date(2026, 3, 24))):
        await day(f"g{i}", on)
    await scoring.applied(2 + 1 + 2 + 5)

    def weekly(compliance: dict[str, Any]) -> tuple[str, int, int] | None:
        found = [k for k in compliance["checks"] if k["name"] == "grassroots_day_each_week"]
        return (found[0]["verdict"], found[0]["actual"], found[0]["required"]) if found else None

    march = {"period_kind": "month", "period": "2026-03"}
    assert weekly(await scoring.get("/cadres/k1/compliance", **march)) == ("met", 4, 4)
    assert weekly(await scoring.get("/cadres/k2/compliance", **march)) is None  # a branch's cadre: not asked
    await day("g3", date(2026, 3, 20), kind=c.ActivityKind.league_lecture, corrected=True)
    await scoring.applied(2 + 1 + 2 + 5 + 1)
    assert weekly(await scoring.get("/cadres/k1/compliance", **march)) == ("missed", 3, 4)  # 16–22 March went by


async def test_a_county_committees_organ_duties_open_days_and_postings(scoring: Scoring, contacts: Producer) -> None:
    """002 二.2 and 二.4: under rules asking them, a county committee brings at least 50 youths in
    through its open days each quarter (headcounts added up; a correction takes its youths back),
    and by each quarter's end has posted that quarter's share of its organ cadres to the
    grassroots ("8+4": one in four by March, all by December). The org's compliance shows them,
    and so does the city's assessment of its orgs."""
    await contacts.emit("org-root", c.OrgCreated(org_id="root", parent_id=None, name="市团委", org_type=c.OrgType.city,
                                                 depth=1, is_leadership_organ=True, org_path="/root"), T0)
    await contacts.emit("org-d1", c.OrgCreated(org_id="d1", parent_id="root", name="东区团委", org_type=c.OrgType.county,
                                               depth=2, is_leadership_organ=True, org_path="/root/d1"), T0)
    await contacts.emit("org-b1", c.OrgCreated(org_id="b1", parent_id="d1", name="一支部", org_type=c.OrgType.branch,
                                               depth=3, is_leadership_organ=False, org_path="/root/d1/b1"), T0)
    rules = c.OrgRules(organ_duties=c.OrganDuties(postings_each_year=True, open_day_youths_each_quarter=50))
    await contacts.emit("org-d1", c.OrgRulesSet(org_id="d1", org_path="/root/d1", effective_from=date(2026, 1, 1),
                                                rules=rules), T0)
    for cid, org, path, organ in (("k1", "d1", "/root/d1", True), ("k2", "d1", "/root/d1", True),
                                  ("k3", "b1", "/root/d1/b1", False)):
        await contacts.emit(f"cadre-{cid}", c.CadreRegistered(cadre_id=cid, org_id=org, org_path=path,
                                                              kind=c.CadreKind.full_time, in_leadership_organ=organ), T0)

    async def activity(aid: str, on: date, kind: c.ActivityKind, *, cadre: str | None = None, headcount: int = 0,
                       corrected: bool = False) -> None:
        fields: dict[str, Any] = {"activity_id": aid, "kind": kind, "organiser_cadre_id": cadre, "organiser_org_id": "d1",
                                  "org_path": "/root/d1", "collective": cadre is None, "occurred_on": on,
                                  "headcount": headcount}
        await contacts.emit(f"activity-{aid}", c.ActivityCorrected(**fields, reason="recounted") if corrected
                            else c.ActivityRecorded(**fields), T0)

    await activity("o1", date(2026, 2, 10), c.ActivityKind.open_day, headcount=30)
    await activity("o2", date(2026, 3, 5), c.ActivityKind.open_day, headcount=25)
    await activity("o3", date(2026, 4, 10), c.ActivityKind.open_day, headcount=40)
    await activity("p1", date(2026, 3, 2), c.ActivityKind.posting_8_4, cadre="k1")
    await activity("p2", date(2026, 3, 3), c.ActivityKind.posting_8_4, cadre="k3")  # a branch's cadre: not the organ's
    events = 3 + 1 + 3 + 5
    await scoring.applied(events)

    async def duties(org: str, period_kind: str, period: str) -> dict[str, tuple[str, float, float]]:
        got = await scoring.get(f"/orgs/{org}/compliance", period_kind=period_kind, period=period)
        return {k["name"]: (k["verdict"], k["actual"], k["required"]) for k in got["checks"]}

    assert await duties("d1", "quarter", "2026-Q1") == {"open_day_youths_each_quarter": ("met", 55, 50),
                                                        "postings_each_year": ("met", 1, 1)}
    assert await duties("d1", "quarter", "2026-Q2") == {"open_day_youths_each_quarter": ("missed", 40, 50),
                                                        "postings_each_year": ("met", 1, 1)}
    assert (await duties("d1", "quarter", "2026-Q3"))["postings_each_year"] == ("missed", 1, 2)
    assert await duties("b1", "quarter", "2026-Q1") == {}  # a branch owes none of it
    await activity("o2", date(2026, 3, 5), c.ActivityKind.open_day, headcount=10, corrected=True)
    await scoring.applied(events + 1)
    assert (await duties("d1", "quarter", "2026-Q1"))["open_day_youths_each_quarter"] == ("missed", 40, 50)
    admin = scoring.auth(Role.org_admin, "a", "/root")
    r = await scoring.http.post("/assessments", json={"org_id": "root", "period_kind": "half_year",
                                                      "period": "2026-H1"}, headers=admin)
    assert r.status_code == 201, r.text
    (d1,) = r.json()["orgs"]
    assert {k["name"]: k["verdict"] for k in d1["organ_duties"]} == {"open_day_youths_each_quarter": "missed",
                                                                     "postings_each_year": "met"}
    outsider = scoring.auth(Role.org_admin, "b", "/elsewhere")
    assert (await scoring.http.get("/orgs/d1/compliance", headers=outsider)).status_code == 403
    assert (await scoring.http.get("/orgs/nope/compliance", headers=admin)).status_code == 404


async def test_assessment_failing_cadre_is_ineligible_signals_shown_not_penalising(
    scoring: Scoring, contacts: Producer, js: JetStreamContext
) -> None:
    await _org_and_cadre(contacts)
    await contacts.emit("cadre-c2", c.CadreRegistered(cadre_id="c2", org_id="o1", org_path="/root/o1",
                                                      kind=c.CadreKind.part_time, in_leadership_organ=False), T0)
    await _lenient_rules_and_a_link(contacts, face_to_face_each_year=False)
    # Online at 02:30 in Beijing ten days before the half-year closes: counts, and is flagged.
    night = datetime(2026, 6, 19, 18, 30, tzinfo=UTC)
    await contacts.emit("interaction-n1", _interaction("n1", ["y1"], True, night))
    await scoring.applied(6)
    admin = scoring.auth(Role.org_admin, "a", "/root")
    r = await scoring.http.post("/assessments", json={"org_id": "o1", "period_kind": "half_year",
                                                      "period": "2026-H1"}, headers=admin)
    assert r.status_code == 201, r.text
    by: dict[str, Any] = {x["cadre_id"]: x for x in r.json()["cadres"]}
    assert by["c1"]["passed"] is True and by["c1"]["eligible_for_excellence"] is True
    assert [s["code"] for s in by["c1"]["signals"]] == ["implausible_hours"]  # shown, not penalising
    assert by["c2"]["passed"] is False and by["c2"]["eligible_for_excellence"] is False
    assert {"contact_quota", "online_presence"} <= set(by["c2"]["failed_checks"])
    msgs = await wait_until(lambda: stream_messages(js, "SCORING"), until=lambda m: len(m) == 2,  # type: ignore[arg-type]
                            message="two AssessmentCompleted on SCORING")
    import json

    got = {json.loads(m.data)["payload"]["cadre_id"]: json.loads(m.data)["payload"] for m in msgs}
    assert all(m.subject == "scoring.events.assessment.AssessmentCompleted" for m in msgs)
    assert got["c1"]["eligible_for_excellence"] is True and got["c2"]["eligible_for_excellence"] is False
    # Assessed once: asking again announces nothing new.
    again = await scoring.http.post("/assessments", json={"org_id": "o1", "period_kind": "half_year",
                                                          "period": "2026-H1"}, headers=admin)
    assert again.status_code == 201
    async with scoring.runtime.db.connection() as conn:
        assert await conn.fetchval("SELECT count(*) FROM scoring.assessments") == 2
        assert await conn.fetchval("SELECT count(*) FROM scoring.events") == 2
    # Bad input: a period still open, a monthly assessment, an org outside the admin's subtree.
    for body, status in (({"org_id": "o1", "period_kind": "half_year", "period": "2099-H1"}, 422),
                         ({"org_id": "o1", "period_kind": "month", "period": "2026-03"}, 422),
                         ({"org_id": "nope", "period_kind": "year", "period": "2025"}, 404)):
        r = await scoring.http.post("/assessments", json=body, headers=admin)
        assert r.status_code == status, (body, r.text)
    r = await scoring.http.post("/assessments", json={"org_id": "o1", "period_kind": "year", "period": "2025"},
                                headers=scoring.auth(Role.org_admin, "b", "/elsewhere"))
    assert r.status_code == 403


async def test_an_assessment_evaluates_each_org_under_the_assessing_org(scoring: Scoring, contacts: Producer) -> None:
    """000 五.2: at mid-year and year-end the city evaluates each of its orgs in full (全面评估),
    on the system's data, its quarterly circulars and the checks: each run keeps, per org, the
    half-year's numbers, how its cadres fared and its rank in each circular of the half-year."""
    await _city_and_branch(contacts)  # root, its branch o1, o1's cadre c1
    await contacts.emit("cadre-c2", c.CadreRegistered(cadre_id="c2", org_id="o1", org_path="/root/o1",
                                                      kind=c.CadreKind.part_time, in_leadership_organ=False), T0)
    await contacts.emit("org-o2", c.OrgCreated(org_id="o2", parent_id="root", name="二支部", org_type=c.OrgType.branch,
                                               depth=2, is_leadership_organ=False, org_path="/root/o2"), T0)
    await _lenient_rules_and_a_link(contacts, face_to_face_each_year=False)
    await contacts.emit("interaction-n1", _interaction("n1", ["y1"], True, datetime(2026, 6, 19, 4, 0, tzinfo=UTC)))
    await scoring.applied(8)
    admin = scoring.auth(Role.org_admin, "a", "/root")
    numbers = {}
    for period in ("2026-Q1", "2026-Q2", "2026-Q2", "2026-Q3"):  # Q2's second is the one that counts
        doc = (await scoring.http.post("/circulars", json={"org_id": "root", "period_kind": "quarter",
                                                           "period": period}, headers=admin)).json()
        numbers[period] = (doc["number"], {row["org_id"]: row["rank"] for row in doc["rows"]})
    half = {"org_id": "root", "period_kind": "half_year", "period": "2026-H1"}
    r = await scoring.http.post("/assessments", json=half, headers=admin)
    assert r.status_code == 201, r.text
    orgs = {o["org_id"]: o for o in r.json()["orgs"]}
    assert set(orgs) == {"o1", "o2"}  # the orgs under root, not root itself
    o1, o2 = orgs["o1"], orgs["o2"]
    assert (o1["cadres_assessed"], o1["cadres_passed"], o1["cadres_passed_pct"]) == (2, 1, 50.0)
    assert (o2["cadres_assessed"], o2["cadres_passed"], o2["cadres_passed_pct"]) == (0, 0, None)
    assert o1["cadres"] == 2 and o1["youths_linked"] == 1 and o1["cadres_meeting_quota_pct"] == 50.0
    for o in (o1, o2):
        assert [(x["period"], x["circular"], x["rank"], x["orgs_ranked"]) for x in o["circulars"]] == [
            (p, numbers[p][0], numbers[p][1][o["org_id"]], 2) for p in ("2026-Q1", "2026-Q2")]
    stored = await scoring.get("/assessments", org_id="root", period_kind="half_year", period="2026-H1")
    assert [run["orgs"] for run in stored["runs"]] == [r.json()["orgs"]]
    # A branch has no orgs under it to evaluate.
    leaf = (await scoring.http.post("/assessments", json={**half, "org_id": "o1"}, headers=admin)).json()
    assert leaf["orgs"] == [] and len(leaf["cadres"]) == 2


async def test_an_assessment_judges_the_half_year_as_it_stood_at_its_end(scoring: Scoring, contacts: Producer) -> None:
    """What happened after the close is not counted into it: a link ended in July still counted
    at the end of June, the online contact of November does not make June's silence negative, the
    face-to-face of September does not fulfil the first half; and "face to face each year" not yet
    done at mid-year is at risk, not failed. A cadre who joined in July is not assessed on it."""
    await _org_and_cadre(contacts)
    await _lenient_rules_and_a_link(contacts, face_to_face_each_year=True)
    await contacts.emit("cadre-c3", c.CadreRegistered(cadre_id="c3", org_id="o1", org_path="/root/o1",
                                                      kind=c.CadreKind.part_time, in_leadership_organ=False),
                        datetime(2026, 7, 1, 1, 0, tzinfo=UTC))
    await contacts.emit("interaction-j1", _interaction("j1", ["y1"], True, datetime(2026, 6, 20, 4, 0, tzinfo=UTC)))
    await contacts.emit("link-l1", c.ContactLinkEnded(link_id="l1", cadre_id="c1", youth_id="y1", ended_by="c1"),
                        datetime(2026, 7, 15, 4, 0, tzinfo=UTC))
    await contacts.emit("interaction-s1", _interaction("s1", ["y1"], False, datetime(2026, 9, 1, 4, 0, tzinfo=UTC)))
    await contacts.emit("interaction-n1", _interaction("n1", ["y1"], True, datetime(2026, 11, 1, 4, 0, tzinfo=UTC)))
    await scoring.applied(8)
    admin = scoring.auth(Role.org_admin, "a", "/root")
    h1 = {"period_kind": "half_year", "period": "2026-H1"}
    r = await scoring.http.post("/assessments", json={"org_id": "o1", **h1}, headers=admin)
    assert r.status_code == 201, r.text
    (c1,) = r.json()["cadres"]
    checks = {k["name"]: (k["verdict"], k["actual"]) for k in c1["compliance"]["checks"]}
    assert checks["contact_quota"] == ("met", 1)  # linked on 30 June; none today
    assert checks["online_presence"] == ("met", 10)  # 20 June to 30 June
    assert checks["face_to_face_each_year"] == ("at_risk", 0)  # September's is not the first half's
    assert c1["passed"] is True and c1["failed_checks"] == []
    # The cadre's own view of that half-year says the same; of this quarter, today's numbers.
    past = await scoring.get("/cadres/c1/compliance", **h1)
    assert {k["name"]: (k["verdict"], k["actual"]) for k in past["checks"]} == checks
    now = await scoring.get("/cadres/c1/compliance")
    got = {k["name"]: (k["verdict"], k["actual"]) for k in now["checks"]}
    assert got["contact_quota"] == ("at_risk", 0) and got["face_to_face_each_year"] == ("met", 1)
