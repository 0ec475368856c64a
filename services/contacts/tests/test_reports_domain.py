"""Work reports (工作情况报送), the pure part: which report an org owes, when it is late, when it may
be sent again."""

from datetime import date

import pytest
from tuanlian.contacts.domain.reports import ReportText, WorkReport
from tuanlian.shared import league_calendar as cal
from tuanlian.shared.contracts.contacts import (
    OrgRules,
    ReportDeadlines,
    WorkReportReturned,
    WorkReportSubmitted,
)
from tuanlian.shared.errors import IllegalTransition, RuleViolation

TEXT = ReportText("每月开展一次团课", "线上线下结合", "部分支部参与不足", "下季度覆盖全部支部")


def test_the_rules_say_which_reports_are_owed_and_when() -> None:
    default = OrgRules()  # 000: quarterly, mid-month of the quarter's last month
    assert cal.report_owed(default, "2026-Q4") == ("2026-Q4", date(2026, 12, 15), "第4季度“五个一”工作报告",
                                                   "Q4 five-ones report")
    assert cal.report_owed(default, "2026-H2") is None
    half = OrgRules(reports=ReportDeadlines(quarterly_five_ones_day=None, half_year=True))  # 002
    assert cal.report_owed(half, "2026-Q1") is None
    assert cal.report_owed(half, "2026-H1").due == date(2026, 6, 30)
    # 004: five working days after the National Day holiday. 2025's ran Oct 1–8 and Saturday Oct 11
    # was a working day (调休): Oct 9, 10, 11, 13, 14.
    annual = OrgRules(reports=ReportDeadlines(annual_after_national_day_working_days=5))
    assert cal.report_owed(annual, "2025-annual").due == date(2025, 10, 14)
    assert [r.key for r in cal.report_deadlines(default, 2026)] == ["2026-Q1", "2026-Q2", "2026-Q3", "2026-Q4"]
    for junk in ("2026-Q5", "2026", "Q4-2026", "2026-H3"):
        with pytest.raises(ValueError, match="not a report key"):
            cal.report_owed(default, junk)
    assert cal.report_period("2026-Q3") == cal.Period("2026-Q3", date(2026, 7, 1), date(2026, 9, 30))
    assert cal.report_period("2026-H2").start == date(2026, 7, 1)


def _owed(key: str = "2026-Q4") -> cal.ReportDue:
    owed = cal.report_owed(OrgRules(), key)
    assert owed is not None
    return owed


def test_a_report_is_late_after_its_due_date_and_not_before_its_period() -> None:
    on_time = WorkReport.start("o1", "2026-Q4")
    e = on_time.submit("/c/o1", _owed(), TEXT, date(2026, 12, 15))
    assert isinstance(e, WorkReportSubmitted) and (e.revision, e.late, e.due_on) == (1, False, date(2026, 12, 15))
    late = WorkReport.start("o2", "2026-Q4")
    assert late.submit("/c/o2", _owed(), TEXT, date(2026, 12, 16)).late
    early = WorkReport.start("o3", "2026-Q4")
    with pytest.raises(RuleViolation, match="has not begun"):
        early.submit("/c/o3", _owed(), TEXT, date(2026, 9, 30))
    with pytest.raises(RuleViolation, match="empty"):
        early.submit("/c/o3", _owed(), ReportText(" ", "", "", ""), date(2026, 11, 1))


def test_revisions_until_due_then_only_after_a_return() -> None:
    r = WorkReport.start("o1", "2026-Q4")
    r.submit("/c/o1", _owed(), TEXT, date(2026, 12, 1))
    assert r.submit("/c/o1", _owed(), TEXT, date(2026, 12, 15)).revision == 2  # still due: a new revision
    with pytest.raises(IllegalTransition, match="must return it") as refused:
        r.submit("/c/o1", _owed(), TEXT, date(2026, 12, 16))
    assert refused.value.details["current"] == "submitted"
    returned = r.return_for_rework("问题部分不具体")
    assert isinstance(returned, WorkReportReturned) and returned.revision == 2 and r.status == "returned"
    with pytest.raises(IllegalTransition, match="only a submitted report"):
        r.return_for_rework("again")
    again = r.submit("/c/o1", _owed(), TEXT, date(2026, 12, 20))
    assert (again.revision, again.late) == (3, True)
    # Rebuilt from its events, the report decides as it did.
    replayed = WorkReport.rehydrate(r.id, r.pending)
    assert (replayed.revision, replayed.status, replayed.org_path) == (3, "submitted", "/c/o1")
    with pytest.raises(IllegalTransition):
        replayed.submit("/c/o1", _owed(), TEXT, date(2026, 12, 21))
