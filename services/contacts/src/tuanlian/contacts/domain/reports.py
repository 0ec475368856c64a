"""Work reports upward (工作情况报送): what an org did, learnt, ran into and plans next.

One report per org and period key (``2026-Q4``, ``2026-H2``, ``2026-annual``), due when the org's
rules say (``league_calendar.report_deadlines``). The org may send a new revision until the due
date; after it, only once the receiving org (an admin above) has returned it for rework (退回).
Every revision stays in the stream: what was sent, when, and whether it was late.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from tuanlian.shared.aggregate import Aggregate
from tuanlian.shared.contracts.contacts import WorkReportReturned, WorkReportSubmitted
from tuanlian.shared.errors import IllegalTransition, RuleViolation
from tuanlian.shared.league_calendar import ReportDue, report_period


@dataclass(frozen=True)
class ReportText:
    """The four parts 000 names: 做法, 经验, 存在问题, 下步工作安排."""

    practice: str
    experience: str
    problems: str
    next_steps: str


def report_id(org_id: str, period: str) -> str:
    return f"{org_id}.{period}"


class WorkReport(Aggregate):
    """工作情况报告 of one org for one period."""

    stream_type = "work_report"
    label = "work report"

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.org_id = ""
        self.org_path = ""
        self.period = ""
        self.revision = 0
        self.status = ""  # submitted | returned
        self.due_on: date | None = None

    @classmethod
    def start(cls, org_id: str, period: str) -> WorkReport:
        report = cls(report_id(org_id, period))
        report.org_id, report.period = org_id, period
        return report

    def submit(self, org_path: str, owed: ReportDue, text: ReportText, today: date) -> WorkReportSubmitted:
        """Send the report (again). ``owed`` is what the org's rules ask for this period."""
        if today < report_period(owed.key).start:
            raise RuleViolation(f"{owed.key} has not begun: its report can be sent from "
                                f"{report_period(owed.key).start}", field="period")
        if self.status == "submitted" and today > owed.due:
            raise IllegalTransition(
                f"the {owed.key} report was sent and its due date ({owed.due}) has passed: the receiving "
                "organisation must return it before it can be changed", current=self.status)
        if not any(part.strip() for part in (text.practice, text.experience, text.problems, text.next_steps)):
            raise RuleViolation("the report is empty: write at least one of its parts", field="practice")
        event = WorkReportSubmitted(
            report_id=self.id, org_id=self.org_id, org_path=org_path, period=self.period,
            revision=self.revision + 1, due_on=owed.due, late=today > owed.due, practice=text.practice,
            experience=text.experience, problems=text.problems, next_steps=text.next_steps)
        self._record(event)
        return event

    def return_for_rework(self, reason: str) -> WorkReportReturned:
        if self.status != "submitted":
            raise IllegalTransition(f"only a submitted report can be returned (this one is {self.status or 'not sent'})",
                                    current=self.status or "none")
        event = WorkReportReturned(report_id=self.id, org_id=self.org_id, org_path=self.org_path,
                                   period=self.period, revision=self.revision, reason=reason)
        self._record(event)
        return event

    def when_WorkReportSubmitted(self, e: WorkReportSubmitted) -> None:
        self.org_id, self.org_path, self.period = e.org_id, e.org_path, e.period
        self.revision, self.status, self.due_on = e.revision, "submitted", e.due_on

    def when_WorkReportReturned(self, e: WorkReportReturned) -> None:
        self.status = "returned"
