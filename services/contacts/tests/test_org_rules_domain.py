"""Rule sets and the org aggregate alone: no escalation down the tree, history by date."""

from datetime import date

import pytest
from tuanlian.contacts.domain.orgs import Org
from tuanlian.contacts.domain.presets import PRESETS
from tuanlian.contacts.domain.rules import RuleVersion, clamp, effective_rules, escalations
from tuanlian.shared.contracts.contacts import (
    AssessmentPeriod,
    AssessmentPlan,
    CircularPeriod,
    CircularPlan,
    ContactQuotas,
    FiveOnesPeriod,
    FiveOnesRule,
    OrganDuties,
    OrgRules,
    OrgType,
)
from tuanlian.shared.errors import IllegalTransition, RuleViolation

SHANGHAI, YANGZHOU, MEIZHOU, LULIANG = (PRESETS[k][1] for k in ("000", "001", "002", "004"))


def test_presets_carry_the_numbers_of_the_notices() -> None:
    assert SHANGHAI.five_ones["full_time"] == FiveOnesRule(count=5, period=FiveOnesPeriod.two_months)
    assert SHANGHAI.five_ones["part_time"] == FiveOnesRule(count=5, period=FiveOnesPeriod.quarter)
    assert YANGZHOU.five_ones["part_time"] == FiveOnesRule(count=5, period=FiveOnesPeriod.month)
    assert MEIZHOU.contact_quotas.part_time == 10 and MEIZHOU.contact_quotas.part_time_leadership == 100
    assert (LULIANG.group_coverage_school.sub_committees, LULIANG.group_coverage_school.dorm_groups) == (3, 10)
    assert LULIANG.reports.annual_after_national_day_working_days == 5
    # 定期通报: 000 quarterly, 001 monthly, 002 "定期" (quarterly, Tuanlian's choice), 004 none.
    assert [p.circulars.periods for p in (SHANGHAI, YANGZHOU, MEIZHOU, LULIANG)] == [
        (CircularPeriod.quarter,), (CircularPeriod.month,), (CircularPeriod.quarter,), ()]
    # 年中和年底全面评估: 000, 001; 002 "定期" (000's cadence, Tuanlian's choice); 004 不定期: on demand.
    both = (AssessmentPeriod.half_year, AssessmentPeriod.year)
    assert [p.assessments.periods for p in (SHANGHAI, YANGZHOU, MEIZHOU, LULIANG)] == [both, both, both, ()]


def test_yangzhou_under_shanghai_escalates_frequency_and_part_time_quota() -> None:
    found = {e.field: (e.value, e.limit) for e in escalations(YANGZHOU, SHANGHAI)}
    assert found["five_ones.full_time.period"] == ("month", "two_months")
    assert found["contact_quotas.part_time"] == (100, 10)
    assert "five_ones.part_time.count" not in found  # 5 is 5: kept, not raised


def test_keeping_or_relaxing_is_allowed() -> None:
    assert escalations(SHANGHAI, SHANGHAI) == []
    relaxed = SHANGHAI.model_copy(
        update={
            "contact_quotas": ContactQuotas(full_time=80, seconded=80, part_time_leadership=80, part_time=5),
            "five_ones": {"full_time": FiveOnesRule(count=3, period=FiveOnesPeriod.quarter)},
        }
    )
    assert escalations(relaxed, SHANGHAI) == []
    assert escalations(SHANGHAI, relaxed) != []


def test_a_requirement_the_parent_does_not_have_is_an_escalation() -> None:
    parent = OrgRules(five_ones={})
    assert [e.field for e in escalations(OrgRules(), parent)] == [
        "five_ones.full_time", "five_ones.leadership_organ", "five_ones.part_time", "five_ones.seconded"
    ]


def test_a_county_committees_duties_are_not_raised_below() -> None:
    """不能层层加码 holds for 002's organ duties too: turning one on that the parent does not ask,
    or asking more youths at the open day, is an escalation, and a clamp cuts it back."""
    parent = MEIZHOU.model_copy(update={"organ_duties": OrganDuties(postings_each_year=True,
                                                                    open_day_youths_each_quarter=30)})
    assert {e.field: (e.value, e.limit) for e in escalations(MEIZHOU, parent)} == {
        "organ_duties.grassroots_day_each_week": (True, False),
        "organ_duties.open_day_youths_each_quarter": (50, 30),
    }
    assert escalations(parent, MEIZHOU) == []  # fewer duties than the parent's: relaxing
    assert clamp(MEIZHOU, parent).organ_duties == parent.organ_duties


def test_effective_rules_clamp_a_child_when_the_parent_relaxes_later() -> None:
    parent_hist = [
        RuleVersion(date(2026, 1, 1), SHANGHAI, "000"),
        RuleVersion(date(2026, 7, 1), SHANGHAI.model_copy(update={"contact_quotas": ContactQuotas(full_time=60)})),
    ]
    child_hist = [RuleVersion(date(2026, 3, 1), SHANGHAI)]
    before, src = effective_rules([parent_hist, child_hist], date(2026, 2, 1))
    assert src == 0 and before.contact_quotas.full_time == 100
    spring, src = effective_rules([parent_hist, child_hist], date(2026, 5, 1))
    assert src == 1 and spring.contact_quotas.full_time == 100
    autumn, _ = effective_rules([parent_hist, child_hist], date(2026, 9, 1))
    assert autumn.contact_quotas.full_time == 60  # the child's 100 is cut to the parent's 60
    assert clamp(SHANGHAI, autumn) == autumn.model_copy(update={"five_ones": autumn.five_ones})
    nobody, src = effective_rules([[], []], date(2026, 1, 1))
    assert src is None and nobody == OrgRules()


def test_circular_and_assessment_plans_are_the_setting_org_own_not_inherited() -> None:
    city = [RuleVersion(date(2026, 1, 1), SHANGHAI, "000")]
    own, src = effective_rules([city], date(2026, 2, 1))
    assert src == 0 and own.circulars.periods == (CircularPeriod.quarter,)
    inherited, src = effective_rules([city, []], date(2026, 2, 1))
    assert src == 0 and inherited.circulars == CircularPlan() and inherited.assessments == AssessmentPlan()
    assert own.assessments.periods == (AssessmentPeriod.half_year, AssessmentPeriod.year)
    assert inherited.five_ones == SHANGHAI.five_ones  # the rest is inherited as before
    county = [RuleVersion(date(2026, 1, 1), MEIZHOU.model_copy(update={"circulars": CircularPlan(
        periods=(CircularPeriod.month,))}))]
    theirs, src = effective_rules([city, county], date(2026, 2, 1))
    assert src == 1 and theirs.circulars.periods == (CircularPeriod.month,)


def _tree() -> tuple[Org, Org, Org]:
    root = Org.create("sh", "上海团市委", OrgType.city, None, True)
    a = Org.create("a", "A区团委", OrgType.county, root, True)
    b = Org.create("b", "B区团委", OrgType.county, root, True)
    return root, a, b


def test_set_rules_refuses_escalation_naming_the_parent_and_its_limit() -> None:
    _, a, _ = _tree()
    with pytest.raises(RuleViolation) as err:
        a.set_rules(YANGZHOU, date(2026, 5, 1), "001", SHANGHAI, "上海团市委 (sh)", date(2026, 4, 1))
    assert "上海团市委" in err.value.message and err.value.details["parent_org"] == "上海团市委 (sh)"
    assert err.value.details["parent_limit"] in {"10", "two_months", "quarter"}
    assert a.pending[-1].event_type == "OrgCreated"


def test_rule_history_is_never_rewritten() -> None:
    _, a, _ = _tree()
    a.set_rules(SHANGHAI, date(2026, 5, 1), "000", None, None, date(2026, 4, 1))
    with pytest.raises(RuleViolation, match="history"):
        a.set_rules(SHANGHAI, date(2026, 5, 1), "000", None, None, date(2026, 4, 1))
    with pytest.raises(RuleViolation, match="past"):
        a.set_rules(SHANGHAI, date(2026, 3, 1), "000", None, None, date(2026, 4, 1))


def test_move_merge_close_transitions() -> None:
    root, a, b = _tree()
    with pytest.raises(RuleViolation):
        root.move(a)  # under its own subtree
    a.move(b)
    assert a.path == "/sh/b/a" and a.depth == 2
    c = Org.create("c", "C", OrgType.branch, b, False)
    with pytest.raises(IllegalTransition) as err:
        c.close(None, open_children=1, active_cadres=0)
    assert err.value.details["current"] == "open"
    c.merge_into(root)
    assert c.status == "closed" and [e.event_type for e in c.pending][-2:] == ["OrgMerged", "OrgClosed"]
    with pytest.raises(IllegalTransition):
        c.rename("again")
    with pytest.raises(IllegalTransition):
        Org.create("d", "D", OrgType.branch, c, False)
