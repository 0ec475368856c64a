"""The pure domain: rule sets, periods, points, ranking, activity level, compliance, signals."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError
from tuanlian.scoring.domain import scoring as sc
from tuanlian.scoring.domain.activity import ActivityInputs, activity_level
from tuanlian.scoring.domain.assessment import assess
from tuanlian.scoring.domain.compliance import (
    Compliance,
    Verdict,
    close_period,
    progress_check,
    silence_check,
    state_check,
    weekly_check,
)
from tuanlian.scoring.domain.periods import PeriodKind, parse_period, period_of
from tuanlian.scoring.domain.ranking import peer_level, rank, rank_change
from tuanlian.scoring.domain.rules import RuleSet, ruleset
from tuanlian.scoring.domain.schedule import ASSESSMENTS, closed_at, periods_due
from tuanlian.scoring.domain.signals import LoggedInteraction, YouthWord, detect
from tuanlian.shared.contracts.contacts import (
    DEFAULT_FIVE_ONES_KINDS,
    ActivityKind,
    AssessmentPeriod,
    AssessmentPlan,
    CircularPeriod,
    CircularPlan,
    ContactQuotas,
    FiveOnesPeriod,
    FiveOnesRule,
    OrgRules,
    OrgType,
)

RS = ruleset("default-2026.1")


def test_default_ruleset_is_data_and_validated() -> None:
    assert RS.interaction.offline == 3 and RS.spot_check.fabricated == -20
    with pytest.raises(ValidationError):
        RuleSet.from_yaml("version: x\nactivity_level: {contact_share: 90}")
    with pytest.raises(ValidationError):
        RuleSet.from_yaml("version: x\nbogus: 1")


@given(st.dates(date(1900, 1, 1), date(2099, 12, 31)), st.sampled_from(list(PeriodKind)))
def test_periods_contain_their_day_and_tile_the_calendar(d: date, kind: PeriodKind) -> None:
    p = period_of(d, kind)
    assert p.contains(d)
    assert p.next().start == p.end + timedelta(days=1)
    assert p.previous().next() == p
    assert parse_period(kind, p.key) == p


def test_periods_are_named_as_league_documents_name_them() -> None:
    d = date(2026, 11, 14)
    names = {k: period_of(d, k).name_zh for k in PeriodKind}
    assert names == {PeriodKind.day: "2026年11月14日", PeriodKind.month: "2026年11月",
                     PeriodKind.two_months: "2026年11–12月", PeriodKind.quarter: "2026年第四季度",
                     PeriodKind.half_year: "2026年下半年", PeriodKind.year: "2026年"}
    assert period_of(date(2026, 2, 1), PeriodKind.quarter).name_zh == "2026年第一季度"
    assert period_of(date(2026, 6, 30), PeriodKind.half_year).name_zh == "2026年上半年"


def test_period_keys_reject_nonsense() -> None:
    assert parse_period("quarter", "2026-Q3").start == date(2026, 7, 1)
    for kind, key in (("month", "2026-13"), ("quarter", "2026-Q5"), ("day", "2026-02-30"), ("year", "x"),
                      ("year", "2100"), ("month", "1899-12"), ("day", "0001-01-01")):  # outside 1900–2099
        with pytest.raises(ValueError):
            parse_period(kind, key)


def test_interaction_caps_and_the_youths_word() -> None:
    assert sc.interaction_base(RS, online=False, used_today=0, used_month=0) == 3
    assert sc.interaction_base(RS, online=True, used_today=1, used_month=1) == 0
    assert sc.interaction_base(RS, online=True, used_today=0, used_month=4) == 0
    assert sc.interaction_value(RS, 3, sc.Status.confirmed) == 6
    assert sc.interaction_value(RS, 3, sc.Status.disputed) == 0
    assert sc.compensation(6, 3) == 3 and sc.compensation(0, 6) == -6


def test_link_points_once_and_not_past_quota() -> None:
    assert sc.link_points(RS, youth_scored_before=False, linked_now=10, quota=10) == 1
    assert sc.link_points(RS, youth_scored_before=False, linked_now=11, quota=10) == 0
    assert sc.link_points(RS, youth_scored_before=True, linked_now=1, quota=10) == 0


def test_five_ones_bonus_only_when_the_fifth_kind_arrives() -> None:
    cadre, organ = sc.five_ones_required(OrgRules(), False), sc.five_ones_required(OrgRules(), True)
    four = ["exchange", "practical_service", "culture_sports", "league_lecture"]
    assert sc.five_ones_points(RS, four, "social_org", cadre) == (5, True)
    assert sc.five_ones_points(RS, [*four, "social_org"], "exchange", cadre) == (5, False)
    assert sc.five_ones_points(RS, [], "open_day", cadre) == (0, False)
    assert sc.five_ones_points(RS, [], "open_day", organ) == (5, False)
    assert sc.five_ones_points(RS, [], "heart_to_heart", cadre) == (0, False)  # not one of 000's five


def test_five_ones_kinds_are_the_orgs_rules() -> None:
    """001 三.2 names 谈心谈话 and 志愿服务 among its five; they count there, and its five earn the bonus."""
    k = ActivityKind
    yangzhou = sc.five_ones_required(OrgRules(five_ones_kinds=(k.practical_service, k.league_lecture, k.heart_to_heart,
                                                               k.volunteer_service, k.culture_sports)), False)
    four = ["practical_service", "league_lecture", "heart_to_heart", "volunteer_service"]
    assert sc.five_ones_points(RS, four, "culture_sports", yangzhou) == (5, True)
    assert sc.five_ones_points(RS, [], "exchange", yangzhou) == (0, False)
    # A rules document names at least one cadre kind, each once, and none of an organ's collective ones.
    for bad in ([], ["exchange", "exchange"], ["open_day"]):
        with pytest.raises(ValidationError, match="five_ones_kinds"):
            OrgRules.model_validate({"five_ones_kinds": bad})
    # Rules published before the field keep 000's five.
    assert OrgRules.model_validate({}).five_ones_kinds == DEFAULT_FIVE_ONES_KINDS


def test_effective_rules_nearest_org_latest_date_and_quotas() -> None:
    strict = OrgRules(contact_quotas=ContactQuotas(part_time=20))
    relaxed = OrgRules(contact_quotas=ContactQuotas(part_time=5),
                       five_ones={"part_time": FiveOnesRule(count=5, period=FiveOnesPeriod.month)})
    recs = [sc.RulesRecord("/a", date(2026, 1, 1), strict), sc.RulesRecord("/a/b", date(2026, 6, 1), relaxed)]
    assert sc.effective_rules(recs, "/a/b/c", date(2026, 3, 1)) == strict
    assert sc.effective_rules(recs, "/a/b/c", date(2026, 7, 1)) == relaxed
    assert sc.effective_rules(recs, "/z", date(2026, 7, 1)) == OrgRules()
    assert sc.contact_quota(OrgRules(), "full_time", False) == 100
    assert sc.contact_quota(OrgRules(), "part_time", True) == 100
    assert sc.contact_quota(OrgRules(), "part_time", False) == 10
    period, due = sc.five_ones_period(relaxed, "part_time", date(2026, 7, 9))
    assert (period.key, due) == ("2026-07", 5)


@given(st.lists(st.integers(-5, 5), max_size=30))
def test_ranking_shares_ranks_on_ties_and_skips_after(scores: list[int]) -> None:
    ranked = rank([(f"k{i}", s) for i, s in enumerate(scores)])
    for r in ranked:
        assert r.rank == 1 + sum(1 for s in scores if s > r.score)


def test_rank_change() -> None:
    assert rank_change(1, 3) == 2 and rank_change(3, 1) == -2 and rank_change(1, None) is None


def test_orgs_are_compared_at_the_level_most_sub_organisations_have() -> None:
    def org(t: str, closed: bool = False) -> dict[str, object]:
        return {"org_type": t, "closed": closed}

    assert peer_level([org("county"), org("university"), org("county")]) == OrgType.county
    assert peer_level([org("university"), org("county")]) == OrgType.county  # a tie: the higher level
    assert peer_level([org("county", closed=True), org("university")]) == OrgType.university
    assert peer_level([org("branch", closed=True)]) is None
    assert peer_level([]) is None


def test_activity_level_weights() -> None:
    full = ActivityInputs(100, 100, 5, 5, 2, 2, 1, 1, 30)
    assert activity_level(RS.activity_level, full) == 100.0
    half = ActivityInputs(100, 50, 0, 5, 0, 0, 0, 0, 15)
    assert activity_level(RS.activity_level, half) == 20 + 0 + 20 + 5


def test_a_close_misses_only_what_was_due_by_it() -> None:
    h1 = period_of(date(2026, 6, 30), PeriodKind.half_year)
    june = date(2026, 6, 30)
    c = Compliance("c", h1, [state_check("contact_quota", 8, 10),
                             progress_check("five_ones", 2, 5, period_of(june, PeriodKind.two_months), june),
                             progress_check("face_to_face_each_year", 0, 1, period_of(june, PeriodKind.year), june)])
    closed = {k.name: k.verdict for k in close_period(c).checks}
    assert closed == {"contact_quota": Verdict.missed, "five_ones": Verdict.missed,
                      "face_to_face_each_year": Verdict.at_risk}  # the year is still open at mid-year
    year = Compliance("c", period_of(june, PeriodKind.year), c.checks)
    assert {k.verdict for k in close_period(year).checks} == {Verdict.missed}


def test_compliance_verdicts() -> None:
    q = period_of(date(2026, 5, 1), PeriodKind.quarter)
    assert progress_check("x", 2, 5, q, date(2026, 5, 1)).verdict is Verdict.at_risk
    assert progress_check("x", 2, 5, q, date(2026, 7, 1)).verdict is Verdict.missed
    assert progress_check("x", 5, 5, q, date(2026, 4, 2)).verdict is Verdict.met
    assert silence_check(None, 7).verdict is Verdict.missed
    assert silence_check(2, 7).verdict is Verdict.met and silence_check(9, 7).verdict is Verdict.missed
    c = Compliance("c", q, [state_check("contact_quota", 8, 10), progress_check("x", 5, 5, q, date(2026, 5, 1))])
    assert c.verdict is Verdict.at_risk
    result = assess(c, [])
    assert not result.passed and not result.eligible_for_excellence and result.failed_checks == ["contact_quota"]


def test_a_weekly_check_asks_one_in_each_week_gone_by() -> None:
    march = parse_period("month", "2026-03")  # 1 March 2026 is a Sunday: its first week is 2–8 March
    mondays = {date(2026, 3, 2), date(2026, 3, 9), date(2026, 3, 16), date(2026, 3, 23)}
    at_end = weekly_check("w", mondays, march, date(2026, 3, 31))  # 30 March's week is not over
    assert (at_end.verdict, at_end.actual, at_end.required) == (Verdict.met, 4, 4)
    gap = weekly_check("w", mondays - {date(2026, 3, 16)}, march, date(2026, 3, 31))
    assert (gap.verdict, gap.actual, gap.required) == (Verdict.missed, 3, 4)  # a week gone cannot be made up
    assert weekly_check("w", set(), march, date(2026, 3, 7)).verdict is Verdict.met  # no week over yet
    assert weekly_check("w", set(), march, date(2026, 3, 8)).verdict is Verdict.missed
    # A week done outside the period does not count for it.
    assert weekly_check("w", {date(2026, 2, 23)}, march, date(2026, 3, 8)).actual == 0


def test_signals_bursts_identical_night_and_spot_checks() -> None:
    at = datetime(2026, 3, 1, 18, 30, tzinfo=UTC)  # 02:30 in Beijing
    xs = [LoggedInteraction(at, at + timedelta(seconds=i), "same") for i in range(12)]
    codes = {s.code for s in detect(xs, YouthWord(contacts=12), failed_spot_checks=1)}
    assert codes == {"burst", "identical_summaries", "implausible_hours", "never_confirmed", "failed_spot_checks"}
    day = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)
    calm = [LoggedInteraction(day + timedelta(days=i), day + timedelta(days=i), f"h{i}") for i in range(5)]
    assert detect(calm, YouthWord(contacts=5, confirmed=5), 0) == []
    disputed = detect(calm, YouthWord(contacts=10, confirmed=2, disputed=3), 0)  # 5 of 10 unconfirmed: not 80%
    assert [(s.code, s.count) for s in disputed] == [("disputed", 3)]


def _plan(on: date, *periods: str, days: int = 3) -> sc.RulesRecord:
    return sc.RulesRecord("/root", on, OrgRules(circulars=CircularPlan(
        periods=tuple(CircularPeriod(p) for p in periods), days_after_close=days)))


def test_circulars_fall_due_after_the_close_and_its_grace_days() -> None:
    own = [_plan(date(2026, 1, 1), "month", "quarter")]
    keys = lambda today: [p.key for p in periods_due(own, today)]  # noqa: E731
    # March closed on the 31st; three full days later (4 April) it is due, with February (the
    # month before the last closed one is always past its grace) and the first quarter.
    assert keys(date(2026, 4, 3)) == ["2026-02"]
    assert keys(date(2026, 4, 4)) == ["2026-02", "2026-03", "2026-Q1"]
    assert keys(date(2026, 5, 20)) == ["2026-03", "2026-04", "2026-Q1"]
    # No grace: due the day after the close.
    assert [p.key for p in periods_due([_plan(date(2026, 1, 1), "year", days=0)], date(2027, 1, 1))] == ["2026"]
    # A grace of 28 days outlasts February: January's circular is still due in March.
    assert [p.key for p in periods_due([_plan(date(2026, 1, 1), "month", days=28)], date(2026, 3, 1))] == ["2026-01"]


def test_a_circular_plan_counts_as_in_force_on_the_period_last_day() -> None:
    # Adopted mid-April: March was not run under it, April was.
    assert periods_due([_plan(date(2026, 4, 15), "month")], date(2026, 4, 20)) == []
    assert [p.key for p in periods_due([_plan(date(2026, 4, 15), "month")], date(2026, 5, 4))] == ["2026-04"]
    # Dropped from July on: June still gets its circular, July none.
    own = [_plan(date(2026, 1, 1), "month"), _plan(date(2026, 7, 1))]
    assert [p.key for p in periods_due(own, date(2026, 8, 10))] == ["2026-06"]
    assert periods_due(own, date(2026, 9, 10)) == []
    # Half-years as well; no plan, nothing.
    assert [p.key for p in periods_due([_plan(date(2026, 1, 1), "half_year")], date(2026, 7, 4))] == ["2026-H1"]
    assert periods_due([sc.RulesRecord("/root", date(2026, 1, 1), OrgRules())], date(2026, 7, 4)) == []
    assert closed_at(period_of(date(2026, 3, 5), PeriodKind.month)) == datetime(2026, 3, 31, 16, 0, tzinfo=UTC)


def test_assessments_fall_due_by_their_own_plan() -> None:
    own = [sc.RulesRecord("/root", date(2026, 1, 1), OrgRules(
        circulars=CircularPlan(periods=(CircularPeriod.month,)),
        assessments=AssessmentPlan(periods=(AssessmentPeriod.half_year, AssessmentPeriod.year))))]
    assert [p.key for p in periods_due(own, date(2026, 7, 4), ASSESSMENTS)] == ["2026-H1"]
    assert [p.key for p in periods_due(own, date(2026, 7, 4))] == ["2026-05", "2026-06"]  # circulars
    assert [p.key for p in periods_due(own, date(2027, 1, 4), ASSESSMENTS)] == ["2026-H1", "2026-H2", "2026"]
    assert periods_due([_plan(date(2026, 1, 1), "month")], date(2026, 7, 4), ASSESSMENTS) == []


def test_a_circular_plan_is_validated() -> None:
    with pytest.raises(ValidationError):
        CircularPlan(periods=("week",))  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        CircularPlan(days_after_close=40)
