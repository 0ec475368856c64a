"""Wishes' read model of contacts: which cadre↔youth pairs are linked (may exchange wishes)."""

from __future__ import annotations

from tuanlian.shared.consumer import Handler, ProjectionTx
from tuanlian.shared.contracts.contacts import ContactLinkAccepted, ContactLinkEnded
from tuanlian.shared.events import DomainEvent, Envelope


def contacts_handlers(s: str) -> dict[str, Handler]:
    async def accepted(tx: ProjectionTx, env: Envelope, e: DomainEvent) -> None:
        assert isinstance(e, ContactLinkAccepted)
        tx.execute(
            f"INSERT INTO {s}.pairs (cadre_id, youth_id, org_path, linked, since) "
            "VALUES ($1, $2, $3, true, $4) ON CONFLICT (cadre_id, youth_id) DO UPDATE SET "
            "linked = true, since = EXCLUDED.since, org_path = EXCLUDED.org_path",
            e.cadre_id,
            e.youth_id,
            e.org_path,
            env.occurred_at,
        )

    async def ended(tx: ProjectionTx, env: Envelope, e: DomainEvent) -> None:
        assert isinstance(e, ContactLinkEnded)
        tx.execute(
            f"UPDATE {s}.pairs SET linked = false WHERE cadre_id = $1 AND youth_id = $2",
            e.cadre_id,
            e.youth_id,
        )

    return {"ContactLinkAccepted": accepted, "ContactLinkEnded": ended}
