"""The pure domain: calendar arithmetic, quiet hours, backoff, rate limits and every rule's timing."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest
from tuanlian.notify.application.scheduler import default_rules
from tuanlian.notify.domain.delivery import Backoff, TokenBucket, mask_address, quiet_release
from tuanlian.notify.domain.rules import (
    AdminFacts,
    AdminsOf,
    CadreFacts,
    Facts,
    RuleBook,
    VoiceFacts,
    WishFacts,
    admins_for,
    evaluate,
    load_rules,
)
from tuanlian.shared import league_calendar as cal
from tuanlian.shared.contracts.contacts import (
    AccountsCounted,
    ActivityKind,
    ContactQuotas,
    FiveOnesPeriod,
    FiveOnesRule,
    OrgRules,
    ReportDeadlines,
)

RULES = {r.key: r for r in default_rules()}
BJ = cal.SHANGHAI


def bj(y: int, m: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, m, d, h, mi, tzinfo=BJ)


# -- calendar ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("year", "holiday_end", "due"),
    [
        (2024, date(2024, 10, 7), date(2024, 10, 12)),  # Sat 12 Oct is an adjusted working day
        (2025, date(2025, 10, 8), date(2025, 10, 14)),  # merged with Mid-Autumn; Sat 11 Oct works
        (2023, date(2023, 10, 6), date(2023, 10, 11)),  # 7 and 8 Oct (weekend) were working days
    ],
)
def test_annual_report_is_due_five_working_days_after_the_national_day_holiday(
    year: int, holiday_end: date, due: date
) -> None:
    assert cal.national_day_holiday_end(year) == holiday_end
    assert cal.annual_report_due(year, 5) == due


def test_a_year_the_holiday_calendar_does_not_cover_is_refused_not_guessed() -> None:
    with pytest.raises(cal.CalendarNotCovered):
        cal.annual_report_due(2027, 5)


def test_periods_are_calendar_aligned() -> None:
    assert cal.period_of("quarter", date(2026, 8, 9)) == cal.Period("2026-Q3", date(2026, 7, 1), date(2026, 9, 30))
    assert cal.period_of("two_months", date(2026, 4, 30)).label == "2026-B2"
    assert cal.period_of("month", date(2024, 2, 10)).end == date(2024, 2, 29)
    assert [p.label for p in cal.periods_between("quarter", date(2026, 3, 30), date(2026, 7, 1))] == [
        "2026-Q1", "2026-Q2", "2026-Q3"]


# -- delivery policy ---------------------------------------------------------------------------


def test_quiet_hours_hold_until_eight_beijing_time_across_midnight() -> None:
    assert quiet_release(bj(2026, 5, 1, 23, 30)) == bj(2026, 5, 2, 8, 0)
    assert quiet_release(bj(2026, 5, 2, 7, 59)) == bj(2026, 5, 2, 8, 0)
    assert quiet_release(bj(2026, 5, 2, 8, 0)) is None
    assert quiet_release(bj(2026, 5, 2, 21, 59)) is None
    # 14:30 UTC is 22:30 in Beijing: the zone, not the server's clock, decides.
    assert quiet_release(datetime(2026, 5, 1, 14, 30, tzinfo=UTC)) == bj(2026, 5, 2, 8, 0)
    # A user's own daytime window (no wrap).
    assert quiet_release(bj(2026, 5, 2, 13, 0), time(12, 0), time(14, 0)) == bj(2026, 5, 2, 14, 0)


def test_backoff_doubles_up_to_the_cap_and_ends() -> None:
    b = Backoff(base_seconds=10, cap_seconds=60, max_attempts=4)
    assert [b.delay(n).total_seconds() for n in range(1, 6)] == [10, 20, 40, 60, 60]
    assert not b.exhausted(3) and b.exhausted(4)


def test_token_bucket_limits_sends_per_second() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    bucket = TokenBucket(rate=2, burst=3)
    assert bucket.take(t0, 10) == 3
    assert bucket.take(t0, 10) == 0
    assert bucket.take(t0 + timedelta(seconds=1), 10) == 2
    bucket.refund(2)
    assert bucket.take(t0 + timedelta(seconds=1), 10) == 2


def test_addresses_are_masked() -> None:
    assert mask_address("13812345678") == "138****5678"
    assert mask_address("li.lei@example.cn") == "l***@example.cn"


# -- rules -------------------------------------------------------------------------------------


def test_rule_file_refuses_unknown_kinds_and_templates() -> None:
    with pytest.raises(ValueError, match="unknown kind"):
        load_rules("- {key: x, kind: nope, template: circular, window_hours: 1}")
    with pytest.raises(ValueError, match="unknown template"):
        load_rules("- {key: x, kind: wish_untouched, template: nope, window_hours: 1}")


def test_effective_rules_come_from_the_nearest_ancestor_in_force() -> None:
    county = OrgRules(contact_quotas=ContactQuotas(part_time=8))
    later = OrgRules(contact_quotas=ContactQuotas(part_time=6))
    branch = OrgRules(contact_quotas=ContactQuotas(part_time=5))
    book = RuleBook((("/c", date(2026, 1, 1), county), ("/c", date(2026, 6, 1), later),
                     ("/c/b", date(2026, 1, 1), branch)))
    assert book.effective("/c/x/y", date(2026, 3, 1)).contact_quotas.part_time == 8
    assert book.effective("/c/x", date(2026, 7, 1)).contact_quotas.part_time == 6
    assert book.effective("/c/b/z", date(2026, 7, 1)).contact_quotas.part_time == 5
    assert book.effective("/cc", date(2026, 7, 1)) == OrgRules()  # /cc is not under /c


def cadre(**kw: object) -> CadreFacts:
    base: dict[str, object] = dict(cadre_id="c1", org_path="/c", kind="part_time", in_leadership_organ=False,
                                   joined_at=bj(2026, 3, 1, 10))
    base.update(kw)
    return CadreFacts(**base)  # type: ignore[arg-type]


def test_contact_quota_reminds_weekly_from_thirty_days_after_joining() -> None:
    rule = RULES["contact_quota_weekly"]
    facts = Facts(cadres=[cadre(accepted_links=3)])
    due = evaluate(rule, facts, RuleBook(), bj(2026, 3, 1), bj(2026, 4, 20)).occasions
    assert [o.due_at for o in due] == [bj(2026, 3, 31, 9), bj(2026, 4, 7, 9), bj(2026, 4, 14, 9)]
    assert due[0].values == {"count": 3, "quota": 10}
    # At quota (10 for a part-time cadre outside leadership organs): nothing.
    assert not evaluate(rule, Facts(cadres=[cadre(accepted_links=10)]), RuleBook(), bj(2026, 3, 1),
                        bj(2026, 4, 20)).occasions
    # A full-time cadre needs 100.
    assert evaluate(rule, Facts(cadres=[cadre(kind="full_time", accepted_links=10)]), RuleBook(),
                    bj(2026, 3, 30), bj(2026, 3, 31, 9)).occasions[0].values["quota"] == 100


def test_five_ones_reminds_ten_and_three_days_before_the_period_ends_unless_done() -> None:
    rule = RULES["five_ones_before_period_end"]
    # part-time: 5 per quarter by default; Q2 ends 30 June.
    lecture = ActivityKind.league_lecture
    facts = Facts(cadres=[cadre(activities=((date(2026, 4, 2), lecture), (date(2026, 5, 5), None)))])
    due = evaluate(rule, facts, RuleBook(), bj(2026, 6, 1), bj(2026, 6, 28)).occasions
    assert [(o.period, o.due_at) for o in due] == [("2026-Q2:-10d", bj(2026, 6, 20, 9)),
                                                   ("2026-Q2:-3d", bj(2026, 6, 27, 9))]
    assert due[0].values["done"] == 2 and due[0].values["required"] == 5
    done = Facts(cadres=[cadre(activities=tuple((date(2026, 5, d), lecture) for d in range(1, 6)))])
    assert not evaluate(rule, done, RuleBook(), bj(2026, 6, 1), bj(2026, 6, 28)).occasions
    # Which kinds count is the rules': five talks (谈心谈话) are 001's five-ones, not 000's.
    talks = Facts(cadres=[cadre(activities=tuple((date(2026, 5, d), ActivityKind.heart_to_heart)
                                                  for d in range(1, 6)))])
    assert evaluate(rule, talks, RuleBook(), bj(2026, 6, 1), bj(2026, 6, 28)).occasions[0].values["done"] == 0
    yangzhou = OrgRules(five_ones_kinds=(ActivityKind.heart_to_heart, ActivityKind.volunteer_service))
    assert not evaluate(rule, talks, RuleBook((("/c", date(2026, 1, 1), yangzhou),)),
                        bj(2026, 6, 1), bj(2026, 6, 28)).occasions
    # Yangzhou (001): 5 per month.
    monthly = OrgRules(five_ones={"part_time": FiveOnesRule(count=5, period=FiveOnesPeriod.month)})
    due = evaluate(rule, Facts(cadres=[cadre()]), RuleBook((("/c", date(2026, 1, 1), monthly),)),
                   bj(2026, 5, 1), bj(2026, 5, 31)).occasions
    assert [o.due_at for o in due] == [bj(2026, 5, 21, 9), bj(2026, 5, 28, 9)]


def test_online_silence_after_seven_days_without_online_contact() -> None:
    rule = RULES["online_silence"]
    last = datetime(2026, 5, 1, 2, 0, tzinfo=UTC)
    facts = Facts(cadres=[cadre(accepted_links=1, last_online_at=last)])
    due = evaluate(rule, facts, RuleBook(), last, last + timedelta(days=15)).occasions
    assert [o.due_at for o in due] == [last + timedelta(days=7), last + timedelta(days=14)]
    assert due[1].values["days"] == 14
    lonely = Facts(cadres=[cadre(accepted_links=0, last_online_at=last)])
    assert not evaluate(rule, lonely, RuleBook(), last, last + timedelta(days=15)).occasions


def test_voice_post_past_limit_goes_to_the_cadre_past_twice_to_the_admins() -> None:
    posted = bj(2026, 5, 1, 10)
    facts = Facts(open_voice_posts=[VoiceFacts("p1", "c1", "/c/b", posted, posted + timedelta(hours=48))])
    first = evaluate(RULES["voice_unanswered_cadre"], facts, RuleBook(), posted, bj(2026, 5, 6)).occasions
    second = evaluate(RULES["voice_unanswered_admin"], facts, RuleBook(), posted, bj(2026, 5, 6)).occasions
    assert [(o.recipient, o.due_at) for o in first] == [("c1", bj(2026, 5, 3, 10))]
    assert [(o.recipient, o.due_at) for o in second] == [(AdminsOf("/c/b"), bj(2026, 5, 5, 10))]
    admins = [AdminFacts("a-county", "/c"), AdminFacts("a-branch", "/c/b"), AdminFacts("a-other", "/d")]
    assert admins_for("/c/b", admins) == ["a-branch"]
    assert admins_for("/c/x", admins) == ["a-county"]


def test_wish_untouched_for_seven_days_reminds_the_cadre() -> None:
    raised = bj(2026, 5, 1, 10)
    facts = Facts(untouched_wishes=[WishFacts("w1", "c1", raised)])
    assert not evaluate(RULES["wish_untouched_cadre"], facts, RuleBook(), raised, bj(2026, 5, 8, 9)).occasions
    due = evaluate(RULES["wish_untouched_cadre"], facts, RuleBook(), raised, bj(2026, 5, 8, 11)).occasions
    assert [(o.recipient, o.period) for o in due] == [("c1", "w1")]


@pytest.mark.parametrize(("year", "due"), [(2024, date(2024, 10, 12)), (2025, date(2025, 10, 14))])
def test_report_deadline_reminders_include_the_national_day_rule(year: int, due: date) -> None:
    rules = OrgRules(reports=ReportDeadlines(quarterly_five_ones_day=15, half_year=True,
                                             annual_after_national_day_working_days=5))
    book = RuleBook((("/c", date(2000, 1, 1), rules),))
    facts = Facts(admins=[AdminFacts("a1", "/c/b")])
    occ = evaluate(RULES["report_deadlines"], facts, book, bj(year, 9, 30), bj(year, 10, 20)).occasions
    assert [(o.period, o.due_at) for o in occ] == [
        (f"{year}-annual:-7d", cal.local_at(due - timedelta(days=7))),
        (f"{year}-annual:-1d", cal.local_at(due - timedelta(days=1))),
    ]
    keys = [k for k, *_ in cal.report_deadlines(rules, year)]
    assert keys == [f"{year}-Q1", f"{year}-Q2", f"{year}-Q3", f"{year}-Q4", f"{year}-H1", f"{year}-H2",
                    f"{year}-annual"]
    quarterly = evaluate(RULES["report_deadlines"], facts, book, bj(year, 9, 1), bj(year, 9, 15)).occasions
    assert [o.period for o in quarterly] == [f"{year}-Q3:-7d", f"{year}-Q3:-1d"]


def test_report_rule_notes_a_year_outside_the_calendar_and_still_reminds_of_the_other_reports() -> None:
    # chinese-calendar 1.11 ends with 2026: 2027's annual report (after the National Day holiday)
    # has no date yet, its quarterly ones have. Before, one raised and the admin got neither.
    rules = OrgRules(reports=ReportDeadlines(annual_after_national_day_working_days=5))
    ev = evaluate(RULES["report_deadlines"], Facts(admins=[AdminFacts("a1", "/c")]),
                  RuleBook((("/c", date(2000, 1, 1), rules),)), bj(2027, 9, 1), bj(2027, 9, 15))
    assert ev.notes and "2027" in ev.notes[0]
    assert [o.period for o in ev.occasions] == ["2027-Q3:-7d", "2027-Q3:-1d"]


def test_account_rollout_reminds_admins_of_cadres_and_youths_not_yet_using_the_system() -> None:
    """000: "团干部于4月上旬全部登录使用": by 10 April every cadre has logged in, not only been given
    an account; 002 asks them entered (录入) by its date, which an issued account shows."""
    facts = Facts(admins=[AdminFacts("a1", "/c", cadres_without_account=0, youths_without_account=0,
                                     cadres_not_logged_in=2, youths_not_logged_in=0)])
    occ = evaluate(RULES["account_rollout"], facts, RuleBook(), bj(2026, 3, 1), bj(2026, 4, 30)).occasions
    assert [(o.period, o.due_at) for o in occ] == [("2026-cadres:-7d", bj(2026, 4, 3, 9)),
                                                   ("2026-cadres:-1d", bj(2026, 4, 9, 9))]
    assert occ[0].values["missing"] == 2 and occ[0].values["step"] == "登录使用"
    entered = OrgRules(reports=ReportDeadlines(cadre_accounts_by="08-05", accounts_counted=AccountsCounted.issued))
    book = RuleBook((("/c", date(2000, 1, 1), entered),))
    assert not evaluate(RULES["account_rollout"], facts, book, bj(2026, 7, 1), bj(2026, 8, 31)).occasions
    issued = Facts(admins=[AdminFacts("a1", "/c", cadres_without_account=1, cadres_not_logged_in=2)])
    occ = evaluate(RULES["account_rollout"], issued, book, bj(2026, 7, 1), bj(2026, 8, 31)).occasions
    assert [o.values["missing"] for o in occ] == [1, 1] and occ[0].values["step"] == "开通"
