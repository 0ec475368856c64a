"""Work reports upward (工作情况报送): send, return for rework, read, and the receiving org's view
of who has sent theirs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any
from uuid import UUID

import asyncpg
from pydantic import BaseModel, ConfigDict, Field
from tuanlian.contacts.application.orgs import OrgsService
from tuanlian.contacts.domain.reports import ReportText, WorkReport, report_id
from tuanlian.contacts.domain.rules import RuleVersion, effective_rules
from tuanlian.shared.aggregate import Repository
from tuanlian.shared.auth import Principal, Role
from tuanlian.shared.contracts.contacts import REPORT_SECTION_MAX
from tuanlian.shared.errors import NotFound, RuleViolation
from tuanlian.shared.http import require
from tuanlian.shared.league_calendar import (
    CalendarNotCovered,
    ReportDue,
    report_owed,
    report_period,
    rules_day,
)
from tuanlian.shared.league_calendar import today as league_today


class SubmitReport(BaseModel):
    """做法, 经验, 存在问题, 下步工作安排 (000): any may be left empty, not all."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    practice: str = Field(default="", max_length=REPORT_SECTION_MAX, description="做法: what was done, how")
    experience: str = Field(default="", max_length=REPORT_SECTION_MAX, description="经验: what worked")
    problems: str = Field(default="", max_length=REPORT_SECTION_MAX, description="存在问题")
    next_steps: str = Field(default="", max_length=REPORT_SECTION_MAX, description="下步工作安排")


class ReturnReport(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    reason: str = Field(min_length=1, max_length=500, description="What to change (退回原因)")


def _status(row: dict[str, Any] | None, owed: ReportDue | None, today: date) -> str:
    """pending (待报), overdue (逾期未报), on_time (按时报送), late (逾期报送), returned (退回待改),
    not_owed (its rules ask for no such report)."""
    if row is not None:
        if row["status"] == "returned":
            return "returned"
        return "late" if row["first_late"] else "on_time"
    if owed is None:
        return "not_owed"
    return "overdue" if today > owed.due else "pending"


@dataclass
class ReportsService:
    orgs: OrgsService

    @property
    def s(self) -> str:
        return self.orgs.s

    def _repo(self) -> Repository[WorkReport]:
        return Repository(self.orgs.core.store, WorkReport)

    @staticmethod
    def _owed(chain: list[list[RuleVersion]], period: str) -> ReportDue | None:
        try:
            year = report_period(period).start.year  # a clear ValueError for what is no report key
            return report_owed(effective_rules(chain, rules_day(year))[0], period)
        except ValueError as exc:
            raise RuleViolation(str(exc), field="period") from exc
        except CalendarNotCovered as exc:
            raise RuleViolation(f"{exc}: its due date cannot be told yet", field="period") from exc

    async def submit(self, who: Principal, org_id: str, period: str, cmd: SubmitReport,
                     cid: UUID | None = None, today: date | None = None) -> dict[str, Any]:
        """Send the org's report for ``period`` (again): its own admins, or an admin above for it."""
        day = today or league_today()
        async with self.orgs.core.db.transaction() as conn:
            org = await self.orgs.core.orgs.get(conn, org_id)
            require(who, Role.org_admin, org_path=org.path, why="send this organisation's work report")
            if org.status == "closed":
                raise RuleViolation(f"organisation {org_id} is closed", field="org_id")
            chain = (await self.orgs.chains(conn, [org.path]))[org.path]
            owed = self._owed(chain, period)
            if owed is None:
                raise RuleViolation(f"the rules of {org_id} ask for no {period} report", field="period")
            report = await self._repo().find(conn, report_id(org_id, period)) or WorkReport.start(org_id, period)
            report.submit(org.path, owed, ReportText(cmd.practice, cmd.experience, cmd.problems, cmd.next_steps), day)
            await self.orgs.core._save(conn, self._repo(), report, who, org.path, cid)
            return await self._read(conn, org_id, period)

    async def return_for_rework(self, who: Principal, org_id: str, period: str, cmd: ReturnReport,
                                cid: UUID | None = None) -> dict[str, Any]:
        """退回: the receiving org (whoever administers the org's parent) sends it back."""
        async with self.orgs.core.db.transaction() as conn:
            org = await self.orgs.core.orgs.get(conn, org_id)
            self.orgs._require_over(who, await self.orgs._parent(conn, org), "return this work report")
            report = await self._repo().get(conn, report_id(org_id, period))
            report.return_for_rework(cmd.reason)
            await self.orgs.core._save(conn, self._repo(), report, who, org.path, cid)
            return await self._read(conn, org_id, period)

    async def report(self, who: Principal, org_id: str, period: str) -> dict[str, Any]:
        """The report as last sent, and every revision and return before it."""
        async with self.orgs.core.db.connection() as conn:
            org = await self.orgs._row(conn, org_id)
            require(who, Role.org_admin, Role.leader, org_path=org["org_path"], why="read this work report")
            out = await self._read(conn, org_id, period)
            envelopes = await self.orgs.core.store.read_stream(conn, WorkReport(report_id(org_id, period)).stream_id)
        out["history"] = [
            {"revision": e.payload["revision"], "event_type": e.event_type, "at": e.occurred_at.isoformat(),
             "actor": e.actor, **{k: v for k, v in e.payload.items() if k not in ("report_id", "org_id", "org_path")}}
            for e in envelopes
        ]
        return out

    async def _read(self, conn: asyncpg.Connection, org_id: str, period: str) -> dict[str, Any]:
        row = await conn.fetchrow(f"SELECT * FROM {self.s}.work_reports WHERE org_id = $1 AND period = $2",
                                  org_id, period)
        if row is None:
            raise NotFound(f"organisation {org_id} has sent no {period} report")
        out = dict(row)
        out["state"] = _status(out, None, date.min)
        return out

    async def summary(self, who: Principal, org_id: str, period: str,
                      today: date | None = None) -> dict[str, Any]:
        """报送情况: each open organisation directly under ``org_id`` — whether its rules ask for the
        report, when it is due, and where it stands."""
        day = today or league_today()
        async with self.orgs.core.db.connection() as conn:
            org = await self.orgs._row(conn, org_id)
            require(who, Role.org_admin, Role.leader, org_path=org["org_path"], why="see who sent their reports")
            children = await conn.fetch(
                f"SELECT o.org_id, o.name, o.org_type, o.org_path, w.status, w.revision, w.first_late, "
                "w.first_sent_at, w.sent_at, w.late FROM "
                f"{self.s}.orgs o LEFT JOIN {self.s}.work_reports w ON w.org_id = o.org_id AND w.period = $2 "
                "WHERE o.parent_id = $1 AND o.status <> 'closed' ORDER BY o.org_path", org_id, period)
            chains = await self.orgs.chains(conn, [r["org_path"] for r in children])
        rows = []
        for r in children:
            owed = self._owed(chains[r["org_path"]], period)
            sent = dict(r) if r["status"] is not None else None
            rows.append({
                "org_id": r["org_id"], "name": r["name"], "org_type": r["org_type"], "org_path": r["org_path"],
                "state": _status(sent, owed, day), "due_on": owed.due if owed else None,
                "revision": r["revision"], "first_sent_at": r["first_sent_at"], "sent_at": r["sent_at"],
            })
        counts: dict[str, int] = {}
        for row in rows:
            counts[row["state"]] = counts.get(row["state"], 0) + 1
        return {"org_id": org_id, "period": period, "on": day, "counts": counts, "orgs": rows}
