"""Wishes' read model of contacts: linked pairs, organisations and their rules, youths' branches.

Fed by durable consumers of the CONTACTS stream (one per aggregate type, so interactions, the
bulk of that stream, are never fetched here).
"""

from __future__ import annotations

from tuanlian.shared.consumer import Handler, ProjectionTx
from tuanlian.shared.contracts.contacts import (
    ContactLinkAccepted,
    ContactLinkEnded,
    OrgCreated,
    OrgMerged,
    OrgMoved,
    OrgRulesSet,
    YouthErased,
    YouthProfileUpdated,
    YouthRegistered,
)
from tuanlian.shared.events import DomainEvent, Envelope

# Every table holding an org path: a moved or merged subtree is rewritten in all of them.
PATH_TABLES = (
    "pairs", "orgs", "org_rules", "youths", "wishes", "partners", "voice_posts", "voice_issues",
    "ratings", "ballots",
)
ERASED = "[erased at the youth's request]"


def contacts_handlers(s: str) -> dict[str, Handler]:
    """Contact links: who may exchange wishes with whom."""

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


def rewrite_paths(tx: ProjectionTx, s: str, old: str, new: str) -> None:
    for table in PATH_TABLES:
        tx.execute(
            f"UPDATE {s}.{table} SET org_path = $2 || substr(org_path, length($1) + 1) "
            "WHERE org_path = $1 OR starts_with(org_path, $1 || '/')",
            old,
            new,
        )


def org_handlers(s: str) -> dict[str, Handler]:
    """Organisations, their paths and their rules (实施细则), with effective dates."""

    async def created(tx: ProjectionTx, env: Envelope, e: DomainEvent) -> None:
        assert isinstance(e, OrgCreated)
        tx.execute(
            f"INSERT INTO {s}.orgs (org_id, org_path, org_type) VALUES ($1, $2, $3) "
            "ON CONFLICT (org_id) DO UPDATE SET org_path = EXCLUDED.org_path",
            e.org_id,
            e.org_path,
            e.org_type.value,
        )

    async def rules(tx: ProjectionTx, env: Envelope, e: DomainEvent) -> None:
        assert isinstance(e, OrgRulesSet)
        tx.execute(
            f"INSERT INTO {s}.org_rules (org_id, org_path, effective_from, limits) VALUES ($1, $2, $3, $4) "
            "ON CONFLICT (org_id, effective_from) DO UPDATE SET limits = EXCLUDED.limits",
            e.org_id,
            e.org_path,
            e.effective_from,
            e.rules.limits.model_dump(mode="json"),
        )

    async def moved(tx: ProjectionTx, env: Envelope, e: DomainEvent) -> None:
        assert isinstance(e, OrgMoved)
        rewrite_paths(tx, s, e.old_path, e.new_path)

    async def merged(tx: ProjectionTx, env: Envelope, e: DomainEvent) -> None:
        assert isinstance(e, OrgMerged)
        rewrite_paths(tx, s, e.old_path, e.into_path)

    return {"OrgCreated": created, "OrgRulesSet": rules, "OrgMoved": moved, "OrgMerged": merged}


def youth_handlers(s: str) -> dict[str, Handler]:
    """Which branch a youth belongs to (the ballot's electorate), and erasure (PIPL)."""

    async def registered(tx: ProjectionTx, env: Envelope, e: DomainEvent) -> None:
        assert isinstance(e, YouthRegistered)
        tx.execute(
            f"INSERT INTO {s}.youths (youth_id, org_id, org_path) VALUES ($1, $2, $3) "
            "ON CONFLICT (youth_id) DO UPDATE SET org_id = EXCLUDED.org_id, org_path = EXCLUDED.org_path",
            e.youth_id,
            e.org_id,
            e.org_path,
        )

    async def updated(tx: ProjectionTx, env: Envelope, e: DomainEvent) -> None:
        assert isinstance(e, YouthProfileUpdated)
        if e.org_id is not None:
            tx.execute(
                f"UPDATE {s}.youths SET org_id = $2, org_path = $3 WHERE youth_id = $1",
                e.youth_id,
                e.org_id,
                e.org_path,
            )

    async def erased(tx: ProjectionTx, env: Envelope, e: DomainEvent) -> None:
        assert isinstance(e, YouthErased)
        # Ids may stay (counts must still add up); anything the youth wrote goes.
        tx.execute(f"DELETE FROM {s}.youths WHERE youth_id = $1", e.youth_id)
        tx.execute(
            f"UPDATE {s}.wishes SET text = $2, public_text = CASE WHEN public_text IS NULL THEN NULL "
            "ELSE $2 END, photos = '{{}}', evidence = NULL WHERE youth_id = $1",
            e.youth_id,
            ERASED,
        )
        tx.execute(f"UPDATE {s}.voice_posts SET text = $2 WHERE youth_id = $1", e.youth_id, ERASED)

    return {"YouthRegistered": registered, "YouthProfileUpdated": updated, "YouthErased": erased}
