"""The scheduler on real Postgres, with its clock in the test's hands."""

from __future__ import annotations

import asyncio
from datetime import date, datetime, timedelta

import pytest
from support import SCHEMA, apply, inbox
from tuanlian.notify.application.scheduler import Scheduler, default_rules
from tuanlian.shared.contracts import contacts as c
from tuanlian.shared.contracts import wishes as w
from tuanlian.shared.db import Database
from tuanlian.shared.league_calendar import SHANGHAI, local_at

RULES = {r.key: r for r in default_rules()}


def bj(y: int, m: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, m, d, h, mi, tzinfo=SHANGHAI)


def cadre(cadre_id: str = "c1", path: str = "/c/b", kind: c.CadreKind = c.CadreKind.part_time) -> c.CadreRegistered:
    return c.CadreRegistered(cadre_id=cadre_id, org_id=path.rsplit("/", 1)[-1], org_path=path, kind=kind,
                             in_leadership_organ=False)


def admin(admin_id: str, path: str) -> c.AccountIssued:
    return c.AccountIssued(account_id=f"acc-{admin_id}", subject_id=admin_id, role=c.AccountRole.org_admin,
                           org_path=path)


async def reminders(db: Database) -> list[dict[str, object]]:
    async with db.connection() as conn:
        rows = await conn.fetch(f"SELECT * FROM {SCHEMA}.reminders ORDER BY due_at, recipient_id")
    return [dict(r) for r in rows]


async def test_two_replicas_ticking_together_send_each_reminder_once(ndb: Database) -> None:
    await apply(ndb, (cadre("c1"), bj(2026, 3, 1, 10)), (cadre("c2"), bj(2026, 3, 1, 11)))
    rules = [RULES["contact_quota_weekly"]]
    a, b = Scheduler(ndb, SCHEMA, rules), Scheduler(ndb, SCHEMA, rules)
    now = bj(2026, 3, 31, 9, 5)
    first, second = await asyncio.gather(a.tick(now), b.tick(now))
    assert first.sent + second.sent == 2
    # 2 when the ticks overlapped (one found both decided by the other), 0 when one began after the
    # other had committed (its window then starts at that tick): which, the machine decides.
    assert first.already_decided + second.already_decided in (0, 2)
    again = await a.tick(now + timedelta(minutes=1))
    assert again.sent == 0
    messages = await inbox(ndb)
    assert sorted(m["recipient_id"] for m in messages) == ["c1", "c2"]
    assert messages[0]["kind"] == "contact_quota" and "10" in messages[0]["body"]
    assert messages[0]["org_path"] == "/c/b"


async def test_after_downtime_what_is_inside_its_window_is_sent_and_the_rest_dropped_with_why(
    ndb: Database,
) -> None:
    await apply(ndb, (cadre("c1"), bj(2026, 3, 1, 10)))
    scheduler = Scheduler(ndb, SCHEMA, [RULES["contact_quota_weekly"]])
    assert (await scheduler.tick(bj(2026, 3, 30))).sent == 0
    # Down from 30 March to 22 April: four weekly occasions passed meanwhile.
    report = await scheduler.tick(bj(2026, 4, 22, 10))
    assert (report.sent, report.dropped) == (1, 3)
    decided = await reminders(ndb)
    assert [(r["period"], r["outcome"]) for r in decided] == [
        ("2026-03-31", "dropped"), ("2026-04-07", "dropped"), ("2026-04-14", "dropped"), ("2026-04-21", "sent")]
    assert "missed: due 2026-03-31T09:00:00+08:00" in str(decided[0]["reason"])
    assert len(await inbox(ndb, "c1")) == 1
    # A restart that ticks the same span again decides nothing twice.
    async with ndb.connection() as conn:
        await conn.execute(f"UPDATE {SCHEMA}.scheduler_state SET last_tick = $1", bj(2026, 3, 30))
    report = await scheduler.tick(bj(2026, 4, 22, 10))
    assert (report.sent, report.dropped, report.already_decided) == (0, 0, 4)
    assert len(await inbox(ndb, "c1")) == 1


@pytest.mark.parametrize(("year", "due"), [(2024, date(2024, 10, 12)), (2025, date(2025, 10, 14))])
async def test_annual_report_after_national_day_reaches_the_org_admin(ndb: Database, year: int, due: date) -> None:
    rules = c.OrgRules(reports=c.ReportDeadlines(quarterly_five_ones_day=None, cadre_accounts_by=None,
                                                 youth_accounts_by=None,
                                                 annual_after_national_day_working_days=5))
    await apply(ndb, c.OrgRulesSet(org_id="c", org_path="/c", effective_from=date(2020, 1, 1), preset="004",
                                   rules=rules),
                admin("a1", "/c"), admin("a2", "/elsewhere"))
    scheduler = Scheduler(ndb, SCHEMA, [RULES["report_deadlines"]])
    await scheduler.tick(bj(year, 10, 1))
    assert (await scheduler.tick(local_at(due - timedelta(days=7)))).sent == 1
    assert (await scheduler.tick(local_at(due - timedelta(days=1), datetime.min.time()))).sent == 0
    assert (await scheduler.tick(local_at(due - timedelta(days=1)))).sent == 1
    got = await inbox(ndb, "a1")
    assert [m["ref"] for m in got] == [f"{year}-annual:-7d", f"{year}-annual:-1d"]
    assert due.isoformat() in got[0]["body"]
    assert await inbox(ndb, "a2") == []  # the default rules ask for no annual report


def org(org_id: str, path: str, parent: str | None) -> c.OrgCreated:
    return c.OrgCreated(org_id=org_id, parent_id=parent, name=org_id, org_type=c.OrgType.county,
                        depth=path.count("/") - 1, is_leadership_organ=False, org_path=path)


def sent(org_id: str, path: str, period: str, revision: int = 1) -> c.WorkReportSubmitted:
    return c.WorkReportSubmitted(report_id=f"{org_id}.{period}", org_id=org_id, org_path=path, period=period,
                                 revision=revision, due_on=date(2026, 3, 15), late=False, practice="做法",
                                 experience="", problems="", next_steps="")


async def test_an_org_that_sent_its_report_is_not_reminded_until_it_is_returned(ndb: Database) -> None:
    # Two counties owe the Q1 five-ones report (default rules: due 15 March). East sends it early,
    # then moves under another parent: its admin is not reminded 7 days before. The city returns
    # it: east's admin is told why, and reminded the day before like west's.
    await apply(ndb, org("c", "/c", None), org("east", "/c/east", "c"), org("west", "/c/west", "c"),
                org("d", "/c/d", "c"), admin("a-east", "/c/east"), admin("a-west", "/c/west"),
                (sent("east", "/c/east", "2026-Q1"), bj(2026, 3, 2, 10)))
    await apply(ndb, c.OrgMoved(org_id="east", old_parent_id="c", new_parent_id="d", old_path="/c/east",
                                new_path="/c/d/east", depth=2))
    scheduler = Scheduler(ndb, SCHEMA, [RULES["report_deadlines"]])
    await scheduler.tick(bj(2026, 3, 1))
    assert (await scheduler.tick(bj(2026, 3, 8, 9, 5))).sent == 1
    assert [m["ref"] for m in await inbox(ndb, "a-west")] == ["2026-Q1:-7d"]
    assert await inbox(ndb, "a-east") == []

    await apply(ndb, (c.WorkReportReturned(report_id="east.2026-Q1", org_id="east", org_path="/c/east",
                                           period="2026-Q1", revision=1, reason="请补充问题部分"), bj(2026, 3, 10, 15)))
    told = await inbox(ndb, "a-east")
    assert [(m["kind"], m["ref"], m["org_path"]) for m in told] == [("report_returned", "east.2026-Q1", "/c/d/east")]
    assert "第1季度“五个一”工作报告被退回" in told[0]["title"] and "请补充问题部分" in told[0]["body"]
    assert await inbox(ndb, "a-west") != [] and all(m["kind"] == "report_due" for m in await inbox(ndb, "a-west"))
    assert (await scheduler.tick(bj(2026, 3, 14, 9, 5))).sent == 2
    assert [m["ref"] for m in await inbox(ndb, "a-east")][1:] == ["2026-Q1:-1d"]

    # Sent again: in once more.
    await apply(ndb, (sent("east", "/c/d/east", "2026-Q1", 2), bj(2026, 3, 14, 11)))
    async with ndb.connection() as conn:
        assert await conn.fetchval(f"SELECT status FROM {SCHEMA}.work_reports WHERE org_id = 'east'") == "submitted"


async def test_youth_voice_unanswered_goes_to_the_cadre_then_to_the_admin(ndb: Database) -> None:
    posted = bj(2026, 5, 1, 10)
    await apply(ndb, cadre("c1", "/c/b"), admin("a1", "/c/b"), admin("a0", "/c"),
                (w.VoicePosted(post_id="p1", youth_id="y1", cadre_id="c1", org_id="b", org_path="/c/b",
                               kind=w.VoiceKind.question, due_at=posted + timedelta(hours=48)), posted),
                (w.VoicePosted(post_id="p2", youth_id="y1", cadre_id="c1", org_id="b", org_path="/c/b",
                               kind=w.VoiceKind.question, due_at=posted + timedelta(hours=48)), posted),
                w.VoiceAnswered(post_id="p2", youth_id="y1", cadre_id="c1", answered_by="c1", org_path="/c/b",
                                in_time=True, response_seconds=60))
    scheduler = Scheduler(ndb, SCHEMA, [RULES["voice_unanswered_cadre"], RULES["voice_unanswered_admin"]])
    await scheduler.tick(posted)
    assert (await scheduler.tick(bj(2026, 5, 3, 10, 1))).sent == 1
    assert [m["kind"] for m in await inbox(ndb, "c1")] == ["voice_unanswered"]
    assert (await scheduler.tick(bj(2026, 5, 5, 10, 1))).sent == 1
    assert [m["kind"] for m in await inbox(ndb, "a1")] == ["voice_overdue"]
    assert await inbox(ndb, "a0") == []  # the nearest admins, not every ancestor


async def test_quota_and_five_ones_follow_the_orgs_rules_and_the_facts(ndb: Database) -> None:
    relaxed = c.OrgRules(contact_quotas=c.ContactQuotas(part_time=1))
    await apply(ndb, (cadre("c1", "/c/b"), bj(2026, 1, 1)), (cadre("c2", "/d"), bj(2026, 1, 1)),
                c.OrgRulesSet(org_id="c", org_path="/c", effective_from=date(2026, 1, 1), rules=relaxed),
                c.ContactLinkAccepted(link_id="l1", cadre_id="c1", youth_id="y1", org_path="/c/b"),
                c.ContactLinkAccepted(link_id="l2", cadre_id="c2", youth_id="y2", org_path="/d"),
                *[c.ActivityRecorded(activity_id=f"a{i}", kind=c.ActivityKind.league_lecture,
                                     organiser_cadre_id="c1", organiser_org_id="b", org_path="/c/b",
                                     collective=False, occurred_on=date(2026, 3, i + 1)) for i in range(5)])
    scheduler = Scheduler(ndb, SCHEMA, [RULES["contact_quota_weekly"], RULES["five_ones_before_period_end"]])
    await scheduler.tick(bj(2026, 3, 20))
    await scheduler.tick(bj(2026, 3, 21, 9, 30))
    # c1 has 1 of 1 youths and 5 of 5 activities; c2 has 1 of 10 and none.
    assert await inbox(ndb, "c1") == []
    assert sorted(m["kind"] for m in await inbox(ndb, "c2")) == ["contact_quota", "five_ones_due"]


async def test_five_ones_reminders_count_the_kinds_the_orgs_rules_name(ndb: Database) -> None:
    """Five talks (谈心谈话) are five-ones under 001's rules, not under 000's: c1 in /c (001's kinds)
    is done, c2 in /d (the default) is reminded with none done. A row projected before activities
    kept their kind counts as it was decided then."""
    k = c.ActivityKind
    yangzhou = c.OrgRules(five_ones_kinds=(k.practical_service, k.league_lecture, k.heart_to_heart,
                                           k.volunteer_service, k.culture_sports))
    talks = [c.ActivityRecorded(activity_id=f"{who}-{i}", kind=k.heart_to_heart, organiser_cadre_id=who,
                                organiser_org_id=org, org_path=path, collective=False, youth_ids=["y1"],
                                occurred_on=date(2026, 3, i + 1))
             for who, org, path in (("c1", "b", "/c/b"), ("c2", "d", "/d")) for i in range(5)]
    await apply(ndb, (cadre("c1", "/c/b"), bj(2026, 1, 1)), (cadre("c2", "/d"), bj(2026, 1, 1)),
                (cadre("c3", "/d"), bj(2026, 1, 1)),
                c.OrgRulesSet(org_id="c", org_path="/c", effective_from=date(2026, 1, 1), preset="001", rules=yangzhou),
                *talks)
    async with ndb.connection() as conn:
        await conn.executemany(
            f"INSERT INTO {SCHEMA}.activities (activity_id, cadre_id, org_path, five_ones, occurred_on) "
            "VALUES ($1, 'c3', '/d', true, $2)", [(f"old-{i}", date(2026, 3, i + 1)) for i in range(5)])
    scheduler = Scheduler(ndb, SCHEMA, [RULES["five_ones_before_period_end"]])
    await scheduler.tick(bj(2026, 3, 20))
    await scheduler.tick(bj(2026, 3, 21, 9, 30))
    assert await inbox(ndb, "c1") == [] and await inbox(ndb, "c3") == []
    told = await inbox(ndb, "c2")
    assert [m["kind"] for m in told] == ["five_ones_due"] and "0/5" in told[0]["body"], told


async def test_account_rollout_counts_the_cadres_who_have_not_logged_in(ndb: Database) -> None:
    """000: "团干部于4月上旬全部登录使用": c2 was given an account but never logged in, so /c's
    admin is reminded of one cadre a week before 10 April; c1 logged in (AccountActivated)."""
    accounts = [c.AccountIssued(account_id=f"acc-{who}", subject_id=who, role=c.AccountRole.cadre, org_path="/c/b")
                for who in ("c1", "c2")]
    await apply(ndb, (cadre("c1", "/c/b"), bj(2026, 1, 1)), (cadre("c2", "/c/b"), bj(2026, 1, 1)),
                admin("a1", "/c"), *accounts,
                c.AccountActivated(account_id="acc-c1", subject_id="c1", role=c.AccountRole.cadre, org_path="/c/b"))
    scheduler = Scheduler(ndb, SCHEMA, [RULES["account_rollout"]])
    await scheduler.tick(bj(2026, 4, 2))
    await scheduler.tick(bj(2026, 4, 3, 9, 30))
    told = await inbox(ndb, "a1")
    assert [m["kind"] for m in told] == ["account_rollout"], told
    assert "2026-04-10 前登录使用" in told[0]["body"] and "还有 1 个未登录使用" in told[0]["body"], told[0]["body"]


def organ(org_id: str, path: str, leadership: bool = True) -> c.OrgCreated:
    return c.OrgCreated(org_id=org_id, parent_id=None, name=f"{org_id}团委", org_type=c.OrgType.county,
                        depth=path.count("/"), is_leadership_organ=leadership, org_path=path)


def collective(activity_id: str, path: str, day: date, kind: c.ActivityKind = c.ActivityKind.open_day,
               is_collective: bool = True) -> c.ActivityRecorded:
    return c.ActivityRecorded(activity_id=activity_id, kind=kind, organiser_cadre_id=None,
                              organiser_org_id=path.rsplit("/", 1)[-1], org_path=path, collective=is_collective,
                              occurred_on=day)


async def test_leadership_organs_below_their_collective_five_ones_remind_their_admins_10_and_3_days_before(
    ndb: Database,
) -> None:
    # Default rules: leadership organs hold 5 collective activities a quarter (000).
    await apply(ndb, organ("behind", "/p/behind"), organ("done", "/p/done"), organ("branch", "/p/x", leadership=False),
                admin("a-behind", "/p/behind"), admin("a-done", "/p/done"), admin("a-x", "/p/x"),
                # 4 collective five-ones in Q2, plus things that do not count: a cadre's own lecture, a
                # collective activity that is no five-ones kind, and one in the previous quarter.
                *[collective(f"b{i}", "/p/behind", date(2026, 4, 10 + i)) for i in range(4)],
                collective("b-own", "/p/behind", date(2026, 5, 2), c.ActivityKind.league_lecture, is_collective=False),
                collective("b-8+4", "/p/behind", date(2026, 5, 3), c.ActivityKind.posting_8_4),
                collective("b-q1", "/p/behind", date(2026, 3, 30)),
                *[collective(f"d{i}", "/p/done", date(2026, 5, 1 + i), c.ActivityKind.sharing_session)
                  for i in range(5)],
                *[collective(f"x{i}", "/p/x", date(2026, 5, 1)) for i in range(1)])
    scheduler = Scheduler(ndb, SCHEMA, [RULES["collective_five_ones_before_period_end"]])
    await scheduler.tick(bj(2026, 6, 19, 12))
    assert (await scheduler.tick(bj(2026, 6, 20, 8, 59))).sent == 0
    assert (await scheduler.tick(bj(2026, 6, 20, 9))).sent == 1  # 30 June - 10 days, 09:00
    [m] = await inbox(ndb, "a-behind")
    assert m["kind"] == "collective_five_ones_due" and m["ref"] == "behind:2026-Q2:-10d"
    assert "behind团委" in m["body"] and "4/5" in m["body"] and "10" in m["body"]
    # The fifth activity is recorded meanwhile: no reminder 3 days before.
    await apply(ndb, collective("b5", "/p/behind", date(2026, 6, 22)))
    assert (await scheduler.tick(bj(2026, 6, 27, 9))).sent == 0
    # Q3: nothing done by anyone, so both leadership organs hear at -10 and -3 days, once each.
    await scheduler.tick(bj(2026, 9, 20, 9))
    await scheduler.tick(bj(2026, 9, 27, 9))
    await scheduler.tick(bj(2026, 9, 27, 9, 30))
    assert [m["ref"] for m in await inbox(ndb, "a-behind")][1:] == ["behind:2026-Q3:-10d", "behind:2026-Q3:-3d"]
    assert [m["ref"] for m in await inbox(ndb, "a-done")] == ["done:2026-Q3:-10d", "done:2026-Q3:-3d"]
    assert await inbox(ndb, "a-x") == []  # a branch is no leadership organ


async def test_an_organ_with_a_relaxed_collective_quota_and_a_closed_organ_are_not_reminded(ndb: Database) -> None:
    relaxed = c.OrgRules(five_ones={"leadership_organ": c.FiveOnesRule(count=1, period=c.FiveOnesPeriod.quarter)})
    await apply(ndb, organ("r", "/p/r"), organ("gone", "/p/gone"), admin("a-r", "/p/r"), admin("a-gone", "/p/gone"),
                c.OrgRulesSet(org_id="r", org_path="/p/r", effective_from=date(2026, 1, 1), rules=relaxed),
                collective("r1", "/p/r", date(2026, 4, 2)),
                c.OrgClosed(org_id="gone", org_path="/p/gone"))
    scheduler = Scheduler(ndb, SCHEMA, [RULES["collective_five_ones_before_period_end"]])
    await scheduler.tick(bj(2026, 6, 19))
    assert (await scheduler.tick(bj(2026, 6, 28))).sent == 0
