"""Command handlers for 满意度测评. The vote path writes no event and no log line."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
from tuanlian.shared.auth import Forbidden, Principal, Role
from tuanlian.shared.errors import DomainError, IllegalTransition, NotFound, RuleViolation
from tuanlian.shared.events import short_id
from tuanlian.shared.http import require
from tuanlian.wishes.adapters import ballots as store
from tuanlian.wishes.adapters.repository import TimedRepository
from tuanlian.wishes.application import commands as c
from tuanlian.wishes.application.base import Base
from tuanlian.wishes.domain.ballot import Ballot


class BallotCommands(Base):
    def __post_init__(self) -> None:
        super().__post_init__()
        self.ballots = TimedRepository(self.store, Ballot)

    async def open(self, who: Principal, cmd: c.OpenBallot, cid: UUID | None = None) -> Ballot:
        now = self.clock()
        async with self.db.transaction() as conn:
            branch = await self.directory.org(conn, cmd.branch_org_id)
            require(who, Role.org_admin, org_path=branch["org_path"], why="open ballots")
            # The branch's youths rate their own secretary: not a cadre elsewhere, whose circulars
            # would then carry a result (and a re-election flag) from a branch it does not lead.
            secretary = await self.directory.cadre(conn, cmd.secretary_cadre_id)
            if secretary is None or secretary["org_path"] != branch["org_path"] or not secretary["active"]:
                raise RuleViolation("the secretary must be a serving cadre of this branch",
                                    field="secretary_cadre_id")
            ballot_id = short_id()
            await conn.execute(
                f"INSERT INTO {self.s}.ballots (ballot_id, branch_org_id, org_path, secretary_cadre_id, year, "
                "eligible, closes_at, state, version) VALUES ($1, $2, $3, $4, $5, 0, $6, 'open', 0) "
                "ON CONFLICT (branch_org_id, secretary_cadre_id, year) DO NOTHING",
                ballot_id, cmd.branch_org_id, branch["org_path"], cmd.secretary_cadre_id, cmd.year, cmd.closes_at,
            )
            if not await conn.fetchval(f"SELECT 1 FROM {self.s}.ballots WHERE ballot_id = $1", ballot_id):
                raise DomainError("this secretary already has a ballot this year", current="exists")
            eligible = await store.snapshot_electorate(conn, self.s, ballot_id, branch["org_path"])
            await conn.execute(f"UPDATE {self.s}.ballots SET eligible = $2 WHERE ballot_id = $1", ballot_id, eligible)
            ballot = Ballot.open(ballot_id, cmd.branch_org_id, branch["org_path"], cmd.secretary_cadre_id,
                                 cmd.year, eligible, cmd.closes_at, now)
            await self.save(conn, self.ballots, ballot, who, branch["org_path"], now, cid)
            return ballot

    async def vote(self, who: Principal, ballot_id: str, cmd: c.Vote) -> None:
        if who.role is not Role.youth:
            raise Forbidden("only the branch's members vote")
        now = self.clock()
        async with self.db.transaction() as conn:
            # FOR SHARE: a close in progress waits for us, or we see it closed; never a lost vote.
            state = await conn.fetchrow(
                f"SELECT state, closes_at FROM {self.s}.ballots WHERE ballot_id = $1 FOR SHARE", ballot_id
            )
            if state is None:
                raise NotFound(f"ballot {ballot_id} not found")
            if state["state"] != "open" or now >= state["closes_at"]:
                raise IllegalTransition("the ballot is closed", current="closed")
            outcome = await store.mark_voted(conn, self.s, ballot_id, who.subject)
            if outcome == "not_eligible":
                raise Forbidden("you are not a member of this branch")
            if outcome == "already":
                raise DomainError("you have already voted", current="voted")
            await store.count(conn, self.s, ballot_id, cmd.choice)

    async def close(self, who: Principal, ballot_id: str, now: datetime | None = None,
                    cid: UUID | None = None) -> Ballot:
        now = now or self.clock()
        async with self.db.transaction() as conn:
            await self._lock(conn, ballot_id)
            ballot = await self.ballots.get(conn, ballot_id)
            require(who, Role.org_admin, org_path=ballot.org_path, why="close ballots")
            limits = await self.directory.limits(conn, ballot.org_path, now.date())
            ballot.close(await store.tally(conn, self.s, ballot_id), limits, now, early=who.role is not Role.system)
            await self.save(conn, self.ballots, ballot, who, ballot.org_path, now, cid)
            return ballot

    async def _lock(self, conn: asyncpg.Connection, ballot_id: str) -> None:
        await conn.execute(f"SELECT 1 FROM {self.s}.ballots WHERE ballot_id = $1 FOR UPDATE", ballot_id)

    async def result(self, who: Principal, ballot_id: str) -> dict[str, Any]:
        async with self.db.connection() as conn:
            row = await conn.fetchrow(f"SELECT * FROM {self.s}.ballots WHERE ballot_id = $1", ballot_id)
        if row is None:
            raise NotFound(f"ballot {ballot_id} not found")
        if not (who.role is Role.cadre and who.subject == row["secretary_cadre_id"]):
            require(who, Role.org_admin, Role.leader, org_path=row["org_path"], why="see this ballot")
        out = {k: row[k] for k in ("ballot_id", "branch_org_id", "org_path", "secretary_cadre_id", "year",
                                   "eligible", "closes_at", "state")}
        if row["state"] == "closed":
            out.update(turnout=row["turnout"], published=row["published"])
            if row["published"]:
                out.update({k: row[k] for k in ("satisfied", "basically_satisfied", "unsatisfied",
                                                "reelection_flag")})
        return out
