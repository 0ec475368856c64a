"""Scoring's projection of contacts events into the points ledger and cadre totals."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from tuanlian.scoring.domain.rules import RULES, RULESET_VERSION
from tuanlian.shared.consumer import Handler, ProjectionTx
from tuanlian.shared.contracts.contacts import (
    CadreRegistered,
    ContactLinkAccepted,
    ContactLinkEnded,
    InteractionLogged,
)
from tuanlian.shared.events import DomainEvent, Envelope

CHINA = ZoneInfo("Asia/Shanghai")


def contacts_handlers(s: str) -> dict[str, Handler]:
    add_points = (
        f"INSERT INTO {s}.ledger (cadre_id, org_path, points, rule, ruleset_version, source_event_id, "
        "youth_id, occurred_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
    )
    bump = (
        f"INSERT INTO {s}.cadres (cadre_id, org_path, points, linked_youths) VALUES ($1, $2, $3, $4) "
        f"ON CONFLICT (cadre_id) DO UPDATE SET points = {s}.cadres.points + EXCLUDED.points, "
        f"linked_youths = {s}.cadres.linked_youths + EXCLUDED.linked_youths"
    )

    async def cadre_registered(tx: ProjectionTx, env: Envelope, e: DomainEvent) -> None:
        assert isinstance(e, CadreRegistered)
        tx.execute(
            f"INSERT INTO {s}.cadres (cadre_id, org_path, kind, in_leadership_organ) "
            "VALUES ($1, $2, $3, $4) ON CONFLICT (cadre_id) DO UPDATE SET org_path = EXCLUDED.org_path, "
            "kind = EXCLUDED.kind, in_leadership_organ = EXCLUDED.in_leadership_organ",
            e.cadre_id,
            e.org_path,
            e.kind.value,
            e.in_leadership_organ,
        )

    async def link_accepted(tx: ProjectionTx, env: Envelope, e: DomainEvent) -> None:
        assert isinstance(e, ContactLinkAccepted)
        cadre = await tx.fetchrow(
            f"SELECT kind, in_leadership_organ, linked_youths FROM {s}.cadres WHERE cadre_id = $1",
            e.cadre_id,
        )
        linked = cadre["linked_youths"] if cadre else 0
        quota = RULES.quota(
            cadre["kind"] if cadre else None, cadre["in_leadership_organ"] if cadre else False
        )
        scored_before = await tx.fetchval(f"SELECT ever_scored FROM {s}.links WHERE link_id = $1", e.link_id)
        # Each youth scores once for a cadre: relinking after an end earns nothing more.
        points = 0 if scored_before else RULES.link_points(linked, quota)
        tx.execute(
            f"INSERT INTO {s}.links (link_id, cadre_id, youth_id, active, ever_scored) "
            "VALUES ($1, $2, $3, true, $4) ON CONFLICT (link_id) DO UPDATE SET active = true, "
            f"ever_scored = {s}.links.ever_scored OR EXCLUDED.ever_scored",
            e.link_id,
            e.cadre_id,
            e.youth_id,
            points > 0,
        )
        tx.execute(bump, e.cadre_id, e.org_path, points, 1)
        if points:
            tx.execute(
                add_points,
                e.cadre_id,
                e.org_path,
                points,
                "link_accepted",
                RULESET_VERSION,
                env.event_id,
                e.youth_id,
                env.occurred_at,
            )

    async def link_ended(tx: ProjectionTx, env: Envelope, e: DomainEvent) -> None:
        assert isinstance(e, ContactLinkEnded)
        was_active = await tx.fetchval(f"SELECT active FROM {s}.links WHERE link_id = $1", e.link_id)
        if was_active:
            tx.execute(f"UPDATE {s}.links SET active = false WHERE link_id = $1", e.link_id)
            tx.execute(
                f"UPDATE {s}.cadres SET linked_youths = linked_youths - 1 WHERE cadre_id = $1", e.cadre_id
            )

    async def interaction_logged(tx: ProjectionTx, env: Envelope, e: DomainEvent) -> None:
        assert isinstance(e, InteractionLogged)
        day = e.occurred_at.astimezone(CHINA).date()
        month_start = day.replace(day=1)
        counts = await tx.fetch(
            f"SELECT youth_id, coalesce(sum(scored) FILTER (WHERE day = $3), 0) AS today, "
            f"coalesce(sum(scored), 0) AS month FROM {s}.pair_days "
            "WHERE cadre_id = $1 AND youth_id = ANY($2::text[]) AND day >= $4 AND day <= $3 "
            "GROUP BY youth_id",
            e.cadre_id,
            e.youth_ids,
            day,
            month_start,
        )
        seen = {r["youth_id"]: (r["today"], r["month"]) for r in counts}
        total = 0
        for youth_id in e.youth_ids:
            today, month = seen.get(youth_id, (0, 0))
            points = RULES.interaction_points(e.online, today, month)
            if not points:
                continue
            total += points
            tx.execute(
                f"INSERT INTO {s}.pair_days (cadre_id, youth_id, day, scored) VALUES ($1, $2, $3, 1) "
                f"ON CONFLICT (cadre_id, youth_id, day) DO UPDATE SET scored = {s}.pair_days.scored + 1",
                e.cadre_id,
                youth_id,
                day,
            )
            rule = "interaction_online" if e.online else "interaction_offline"
            tx.execute(
                add_points,
                e.cadre_id,
                e.org_path,
                points,
                rule,
                RULESET_VERSION,
                env.event_id,
                youth_id,
                e.occurred_at,
            )
        if total:
            tx.execute(bump, e.cadre_id, e.org_path, total, 0)

    return {
        "CadreRegistered": cadre_registered,
        "ContactLinkAccepted": link_accepted,
        "ContactLinkEnded": link_ended,
        "InteractionLogged": interaction_logged,
    }
