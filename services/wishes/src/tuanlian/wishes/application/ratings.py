"""评价: a linked youth rates their cadre once per period; cadres see aggregates only."""

from __future__ import annotations

from typing import Any

from tuanlian.shared.auth import Forbidden, Principal, Role
from tuanlian.shared.contracts.wishes import CadreRated
from tuanlian.shared.errors import DomainError, NotFound, RuleViolation
from tuanlian.shared.events import short_id
from tuanlian.shared.http import require
from tuanlian.wishes.adapters.repository import TimedRepository
from tuanlian.wishes.application import commands as c
from tuanlian.wishes.application.base import Base
from tuanlian.wishes.domain.rules import rating_period
from tuanlian.wishes.domain.timed import TimedAggregate


class Rating(TimedAggregate):
    stream_type = "rating"
    label = "rating"


class RatingCommands(Base):
    def __post_init__(self) -> None:
        super().__post_init__()
        self.ratings = TimedRepository(self.store, Rating)

    async def rate(self, who: Principal, cmd: c.Rate) -> str:
        if who.role is not Role.youth:
            raise Forbidden("cadres are rated by the youths they are linked to")
        now = self.clock()
        async with self.db.transaction() as conn:
            org_path = await self.directory.pair(conn, cmd.cadre_id, who.subject)
            if org_path is None:
                raise RuleViolation("you can rate only a cadre you are linked to", field="cadre_id")
            if not await self.directory.cadre_active(conn, cmd.cadre_id):
                raise RuleViolation("this cadre has left the programme and can no longer be rated",
                                    field="cadre_id")
            limits = await self.directory.limits(conn, org_path, now.date())
            period = rating_period(now, limits.rating_period)
            # The mark (who rated, to allow one per period) and the score are separate rows.
            marked = await conn.fetchval(
                f"INSERT INTO {self.s}.rating_marks (cadre_id, youth_id, period) VALUES ($1, $2, $3) "
                "ON CONFLICT DO NOTHING RETURNING 1",
                cmd.cadre_id, who.subject, period,
            )
            if not marked:
                raise DomainError(f"you have already rated this cadre in {period}", current=period)
            rating = Rating(short_id())
            rating._emit(now, CadreRated(
                rating_id=rating.id, cadre_id=cmd.cadre_id, org_path=org_path, score=cmd.score, period=period
            ))
            await conn.execute(
                f"INSERT INTO {self.s}.ratings (rating_id, cadre_id, org_path, period, score, comment) "
                "VALUES ($1, $2, $3, $4, $5, $6)",
                rating.id, cmd.cadre_id, org_path, period, cmd.score, cmd.comment,
            )
            await self.save(conn, self.ratings, rating, None, org_path, now)
            return period

    async def summary(self, who: Principal, cadre_id: str, period: str | None) -> dict[str, Any]:
        async with self.db.connection() as conn:
            rows = await conn.fetch(
                f"SELECT org_path, period, score, comment FROM {self.s}.ratings WHERE cadre_id = $1 "
                "AND ($2::text IS NULL OR period = $2)",
                cadre_id, period,
            )
            is_self = who.role is Role.cadre and who.subject == cadre_id
            # The cadre's ratings follow it (调动): its org now decides who reads them and the
            # minimum count shown, not the org of whichever rating came first. Until contacts has
            # said where it is, the reader must cover every org it was rated in.
            cadre = await self.directory.cadre(conn, cadre_id)
            paths = [cadre["org_path"]] if cadre else sorted({r["org_path"] for r in rows})
            if not paths and not is_self:
                # Nothing says where it is: an admin would be refused for "/" (outside every
                # subtree but the root's), which reads as a scope error, not a missing cadre.
                raise NotFound(f"cadre {cadre_id} not found")
            paths = paths or ["/"]
            if not is_self:
                for path in paths:
                    require(who, Role.org_admin, Role.leader, org_path=path, why="see this cadre's ratings")
            limits = await self.directory.limits(conn, paths[0], self.clock().date())
        out: dict[str, Any] = {"cadre_id": cadre_id, "period": period, "count": len(rows),
                               "min_count": limits.rating_min_count}
        if len(rows) < limits.rating_min_count:
            return {**out, "hidden": True}
        scores = [r["score"] for r in rows]
        out.update(hidden=False, average=round(sum(scores) / len(scores), 2),
                   distribution={str(k): scores.count(k) for k in range(1, 6)})
        if not is_self:
            out["comments"] = sorted(r["comment"] for r in rows if r["comment"])
        return out
