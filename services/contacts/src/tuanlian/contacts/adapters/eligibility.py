"""The scoring consumer of contacts: keeps ``cadre_eligibility`` (latest assessment per cadre)."""

from __future__ import annotations

import asyncpg
from tuanlian.contacts.domain.eligibility import LatestAssessment
from tuanlian.shared.consumer import Handler, ProjectionTx
from tuanlian.shared.contracts.scoring import AssessmentCompleted
from tuanlian.shared.events import DomainEvent, Envelope


def scoring_handlers(s: str) -> dict[str, Handler]:
    async def assessed(tx: ProjectionTx, env: Envelope, e: DomainEvent) -> None:
        assert isinstance(e, AssessmentCompleted)
        # Latest by period (see domain.eligibility.is_newer); an older period arriving late is kept out.
        tx.execute(
            f"INSERT INTO {s}.cadre_eligibility AS c (cadre_id, assessment_id, period_kind, period_start, period_end, "
            "passed, eligible_for_excellence, completed_at, source_event_id) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (cadre_id) DO UPDATE SET "
            "assessment_id = excluded.assessment_id, period_kind = excluded.period_kind, "
            "period_start = excluded.period_start, period_end = excluded.period_end, passed = excluded.passed, "
            "eligible_for_excellence = excluded.eligible_for_excellence, completed_at = excluded.completed_at, "
            "source_event_id = excluded.source_event_id WHERE excluded.period_end >= c.period_end",
            e.cadre_id,
            e.assessment_id,
            e.period_kind.value,
            e.period_start,
            e.period_end,
            e.passed,
            e.eligible_for_excellence,
            env.occurred_at,
            env.event_id,
        )

    return {"AssessmentCompleted": assessed}


async def latest_assessment(conn: asyncpg.Connection, s: str, cadre_id: str) -> LatestAssessment | None:
    row = await conn.fetchrow(
        f"SELECT assessment_id, period_kind, period_start, period_end, passed, eligible_for_excellence "
        f"FROM {s}.cadre_eligibility WHERE cadre_id = $1",
        cadre_id,
    )
    return LatestAssessment(**dict(row)) if row is not None else None
