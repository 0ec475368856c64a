"""Circulars and assessments at each period's close (定期通报, 年中/年终评估), issued by the scoring
service itself, through real JetStream and Postgres."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta

from nats.js import JetStreamContext
from scoring_support import Producer, Scoring
from tuanlian.scoring.adapters.queries import current_projection
from tuanlian.scoring.application.schedule import _not_done, due, issue_due, issue_once
from tuanlian.scoring.domain.periods import PeriodKind, china_day, period_of
from tuanlian.shared.auth import Role
from tuanlian.shared.contracts import contacts as c
from tuanlian.shared.events import utcnow
from tuanlian.shared.testing import stream_messages, wait_until

T0 = datetime(2026, 3, 10, 2, 0, tzinfo=UTC)
MONTHLY = c.OrgRules(circulars=c.CircularPlan(periods=(c.CircularPeriod.month,), days_after_close=3))


async def _org(contacts: Producer, org: str, path: str, parent: str | None, org_type: c.OrgType) -> None:
    await contacts.emit(f"org-{org}", c.OrgCreated(org_id=org, parent_id=parent, name=f"{org}团委", org_type=org_type,
                                                   depth=path.count("/"), is_leadership_organ=True, org_path=path), T0)


async def _rules(contacts: Producer, org: str, path: str, effective_from: date, rules: c.OrgRules) -> None:
    await contacts.emit(f"org-{org}", c.OrgRulesSet(org_id=org, org_path=path, effective_from=effective_from,
                                                    rules=rules), T0)


async def _periods(scoring: Scoring, org: str) -> list[tuple[str, str]]:
    """(period, published by) of the org's circulars, as listed: the latest period first."""
    return [(d["period"], d["published_by"]) for d in await scoring.get("/circulars", org_id=org)]


async def test_circulars_are_issued_once_at_each_close_by_the_orgs_that_plan_them(
    scoring: Scoring, contacts: Producer, js: JetStreamContext
) -> None:
    await _org(contacts, "root", "/root", None, c.OrgType.city)
    await _org(contacts, "o1", "/root/o1", "root", c.OrgType.county)
    await _org(contacts, "o2", "/root/o2", "root", c.OrgType.county)
    await contacts.emit("cadre-c1", c.CadreRegistered(cadre_id="c1", org_id="o1", org_path="/root/o1",
                                                      kind=c.CadreKind.full_time, in_leadership_organ=False), T0)
    await contacts.emit("link-l1", c.ContactLinkAccepted(link_id="l1", cadre_id="c1", youth_id="y1",
                                                         org_path="/root/o1"), T0)
    # The city circulates monthly from January, stops in September, starts again this month (a
    # circular of a period not begun is refused). Its counties inherit those rules (o1) but issue
    # nothing; o2 plans its own but is closed.
    this_month = period_of(china_day(utcnow()), PeriodKind.month)
    assert this_month.start >= date(2026, 10, 1), "the plan below is dropped until this month"
    await _rules(contacts, "root", "/root", date(2026, 1, 1), MONTHLY)
    await _rules(contacts, "root", "/root", date(2026, 9, 1), c.OrgRules())
    await _rules(contacts, "root", "/root", this_month.start, MONTHLY)
    await _rules(contacts, "o2", "/root/o2", date(2026, 1, 1), MONTHLY)
    await contacts.emit("org-o2", c.OrgClosed(org_id="o2", org_path="/root/o2"), T0)
    await scoring.applied(10)
    system = "system:period-close"

    # March closed on the 31st: not before three full days have passed, then with February.
    await issue_due(scoring.runtime, date(2026, 4, 3))
    assert await _periods(scoring, "root") == [("2026-02", system)]
    await issue_due(scoring.runtime, date(2026, 4, 4))
    await issue_due(scoring.runtime, date(2026, 4, 4))  # once only
    assert await _periods(scoring, "root") == [("2026-03", system), ("2026-02", system)]
    # A later look finds both issued in one statement, before a transaction of its own.
    async with scoring.runtime.db.connection() as conn:
        p = await current_projection(conn, "scoring")
        still_due = await due(conn, p, date(2026, 4, 4))
        assert [(what, o, per.key) for what, o, per in still_due] == [
            ("circular", "root", "2026-02"), ("circular", "root", "2026-03")]
        assert await _not_done(conn, "scoring", still_due) == []
    # Two looks at once (replicas) both finding it not done: the second, under the lock, finds it.
    _what, _org_id, march = still_due[1]
    assert await issue_once(scoring.runtime, p, "circular", "root", march) is None
    listed = await scoring.get("/circulars", org_id="root")
    doc = await scoring.get(f"/circulars/{listed[0]['number']}")
    assert doc["published_by"] == system and doc["period"] == "2026-03"
    assert [(r["org_id"], r["youths_linked"], r["points"]) for r in doc["rows"] if r["org_id"] == "o1"] == [("o1", 1, 1)]
    assert (await scoring.get(f"/circulars/{doc['number']}/as-of"))["equal"] is True

    # A circular an admin published after April closed stands for April's; one published before
    # a period closed (this month's, a progress circular) does not stand for that period's.
    admin = scoring.auth(Role.org_admin, "a", "/root")
    for period in ("2026-04", this_month.key):
        r = await scoring.http.post("/circulars", json={"org_id": "root", "period_kind": "month", "period": period},
                                    headers=admin)
        assert r.status_code == 201, r.text
    await issue_due(scoring.runtime, date(2026, 5, 10))
    await issue_due(scoring.runtime, this_month.end + timedelta(days=10))
    by_period = Counter(p for p, _by in await _periods(scoring, "root"))
    assert (by_period["2026-04"], by_period[this_month.key]) == (1, 2)
    assert [by for p, by in await _periods(scoring, "root") if p == this_month.key] == [system, "org_admin:a"]
    # Dropped from September: August still gets its circular (run under the plan), September none.
    await issue_due(scoring.runtime, date(2026, 10, 10))
    assert [p for p, _by in await _periods(scoring, "root") if p.startswith("2026-0") and p >= "2026-08"] == ["2026-08"]
    assert await _periods(scoring, "o1") == [] and await _periods(scoring, "o2") == []

    # Each is announced on the scoring stream, for notify to fan out.
    listed = await scoring.get("/circulars", org_id="root")
    msgs = await wait_until(lambda: stream_messages(js, "SCORING"), until=lambda m: len(m) == len(listed),
                            message=f"{len(listed)} CircularPublished on SCORING")
    assert all(m.subject == "scoring.events.circular.CircularPublished" for m in msgs)
    # Listing is scoped like reading; a kind narrows it.
    assert [d["period"] for d in await scoring.get("/circulars", org_id="root", period_kind="quarter")] == []
    r = await scoring.http.get("/circulars", params={"org_id": "root"},
                               headers=scoring.auth(Role.org_admin, "b", "/elsewhere"))
    assert r.status_code == 403
    r = await scoring.http.get("/circulars", params={"org_id": "nowhere"}, headers=admin)
    assert r.status_code == 404


async def test_the_running_service_issues_the_circulars_due_by_itself(scoring: Scoring, contacts: Producer) -> None:
    # No grace: the last two closed months are due today, whatever today is.
    await _org(contacts, "root", "/root", None, c.OrgType.city)
    await _rules(contacts, "root", "/root", date(2020, 1, 1), c.OrgRules(circulars=c.CircularPlan(
        periods=(c.CircularPeriod.month,), days_after_close=0)))
    await scoring.applied(2)
    last = period_of(china_day(utcnow()), PeriodKind.month).previous()
    expected = [(last.key, "system:period-close"), (last.previous().key, "system:period-close")]
    # The fixture's service looks every half second (Settings.period_close_check_seconds).
    await wait_until(lambda: _periods(scoring, "root"), until=lambda got: len(got) >= 2, timeout=30,
                     message="the schedule issued two circulars")
    assert await _periods(scoring, "root") == expected
    assert await issue_due(scoring.runtime) == []  # once each
    assert await _periods(scoring, "root") == expected


async def test_assessments_run_once_at_the_half_year_and_year_close_and_on_demand_as_asked(
    scoring: Scoring, contacts: Producer, js: JetStreamContext
) -> None:
    await _org(contacts, "root", "/root", None, c.OrgType.city)
    await _org(contacts, "o1", "/root/o1", "root", c.OrgType.county)
    await contacts.emit("cadre-c1", c.CadreRegistered(cadre_id="c1", org_id="o1", org_path="/root/o1",
                                                      kind=c.CadreKind.full_time, in_leadership_organ=False), T0)
    # Mid-year and year-end from January (000's); the county inherits the rules, not the plan.
    await _rules(contacts, "root", "/root", date(2026, 1, 1), c.OrgRules(assessments=c.AssessmentPlan(
        periods=(c.AssessmentPeriod.half_year, c.AssessmentPeriod.year))))
    await scoring.applied(4)
    admin = scoring.auth(Role.org_admin, "a", "/root")

    async def runs(org: str = "root") -> list[str]:
        got = await scoring.get("/assessments", org_id=org, period_kind="half_year", period="2026-H1")
        return [r["run_by"] for r in got["runs"]]

    # The first half closed on 30 June: the running service's look (or this one) assesses it, once.
    await issue_due(scoring.runtime, date(2026, 7, 4))
    await wait_until(runs, until=lambda r: r == ["system:period-close"], message="H1 assessed at its close")
    await issue_due(scoring.runtime, date(2026, 7, 4))
    assert await runs() == ["system:period-close"]
    async with scoring.runtime.db.connection() as conn:
        p = await current_projection(conn, "scoring")
        still_due = await due(conn, p, date(2026, 7, 4))
        assert [(what, o, per.key) for what, o, per in still_due] == [("assessment", "root", "2026-H1")]
        assert await _not_done(conn, "scoring", still_due) == []
    assert await issue_once(scoring.runtime, p, "assessment", "root", still_due[0][2]) is None
    got = await scoring.get("/assessments", org_id="root", period_kind="half_year", period="2026-H1")
    # A full-time cadre with no youths linked and no activities fails: not eligible for awards.
    assert [(r["cadre_id"], r["passed"], r["eligible_for_excellence"]) for r in got["cadres"]] == [("c1", False, False)]
    assert got["runs"][0]["cadres"] == 1
    # An admin may assess again on demand: recorded, each cadre's first result kept.
    r = await scoring.http.post("/assessments", json={"org_id": "root", "period_kind": "half_year",
                                                      "period": "2026-H1"}, headers=admin)
    assert r.status_code == 201, r.text
    assert await runs() == ["system:period-close", "org_admin:a"]
    assert await runs("o1") == []
    msgs = await wait_until(lambda: stream_messages(js, "SCORING"), until=lambda m: len(m) >= 1,
                            message="AssessmentCompleted on SCORING")
    assert [m.subject for m in msgs if "Assessment" in m.subject] == ["scoring.events.assessment.AssessmentCompleted"]
    r = await scoring.http.get("/assessments", params={"org_id": "root", "period_kind": "month"}, headers=admin)
    assert r.status_code == 422
