"""Wishes' read model of contacts: linked pairs, organisations and their rules, youths' branches.

Fed by durable consumers of the CONTACTS stream (one per aggregate type, so interactions, the
bulk of that stream, are never fetched here).
"""

from __future__ import annotations

from typing import Protocol

from tuanlian.shared.consumer import Handler, ProjectionTx
from tuanlian.shared.contracts.contacts import (
    CadreDeactivated,
    CadreRegistered,
    CadreTransferred,
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
    "pairs", "orgs", "org_rules", "youths", "cadres", "wishes", "partners", "voice_posts", "voice_issues",
    "ratings", "ballots",
)
ERASED = "[erased at the youth's request]"


async def current_path(tx: ProjectionTx, s: str, path: str, org_id: str | None = None) -> str:
    """The path an org has now, for a path read from an event that may predate a move.

    Consumers of different aggregate types run independently, so a link accepted before an
    ``OrgMoved`` may be projected after it: its path is stale and the rewrite has already run.
    The org's own row (by id; a path ends with the org's id) is kept current by the rewrites, and
    is held (FOR SHARE) to the commit: a move rewrites the orgs first, so either it has committed
    (the new path is read here) or it waits for this batch, and its later statements see what
    this batch filed at the old path. For an org not (yet) known here, the moves recorded since
    are re-applied in order.
    """
    known = await tx.fetchval(f"SELECT org_path FROM {s}.orgs WHERE org_id = $1 FOR SHARE",
                              org_id or path.rsplit("/", 1)[-1])
    if known is not None:
        return str(known)
    seq = 0
    while True:
        move = await tx.fetchrow(
            f"SELECT seq, old_path, new_path FROM {s}.org_moves WHERE seq > $1 "
            "AND ($2 = old_path OR starts_with($2, old_path || '/')) ORDER BY seq LIMIT 1",
            seq, path,
        )
        if move is None:
            return path
        path, seq = move["new_path"] + path[len(move["old_path"]):], move["seq"]


def contacts_handlers(s: str) -> dict[str, Handler]:
    """Contact links: who may exchange wishes with whom."""

    async def accepted(tx: ProjectionTx, env: Envelope, e: DomainEvent) -> None:
        assert isinstance(e, ContactLinkAccepted)
        path = await current_path(tx, s, e.org_path)
        tx.execute(
            f"INSERT INTO {s}.pairs (cadre_id, youth_id, org_path, linked, since) "
            "VALUES ($1, $2, $3, true, $4) ON CONFLICT (cadre_id, youth_id) DO UPDATE SET "
            "linked = true, since = EXCLUDED.since, org_path = EXCLUDED.org_path",
            e.cadre_id,
            e.youth_id,
            path,
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


def rewrite_paths(tx: ProjectionTx, s: str, org_id: str, old: str, new: str, at: object) -> None:
    tx.execute(
        f"INSERT INTO {s}.org_moves (org_id, old_path, new_path, moved_at) VALUES ($1, $2, $3, $4)",
        org_id, old, new, at,
    )
    for table in ("orgs", *(t for t in PATH_TABLES if t != "orgs")):  # orgs first: see current_path
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
            await current_path(tx, s, e.org_path, e.org_id),
            e.org_type.value,
        )

    async def rules(tx: ProjectionTx, env: Envelope, e: DomainEvent) -> None:
        assert isinstance(e, OrgRulesSet)
        tx.execute(
            f"INSERT INTO {s}.org_rules (org_id, org_path, effective_from, limits) VALUES ($1, $2, $3, $4) "
            "ON CONFLICT (org_id, effective_from) DO UPDATE SET limits = EXCLUDED.limits",
            e.org_id,
            await current_path(tx, s, e.org_path, e.org_id),
            e.effective_from,
            e.rules.limits.model_dump(mode="json"),
        )

    async def moved(tx: ProjectionTx, env: Envelope, e: DomainEvent) -> None:
        assert isinstance(e, OrgMoved)
        rewrite_paths(tx, s, e.org_id, e.old_path, e.new_path, env.occurred_at)

    async def merged(tx: ProjectionTx, env: Envelope, e: DomainEvent) -> None:
        assert isinstance(e, OrgMerged)
        rewrite_paths(tx, s, e.org_id, e.old_path, e.into_path, env.occurred_at)

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
            await current_path(tx, s, e.org_path, e.org_id) if e.org_path else None,
        )

    async def updated(tx: ProjectionTx, env: Envelope, e: DomainEvent) -> None:
        assert isinstance(e, YouthProfileUpdated)
        if e.org_id is not None:
            tx.execute(
                f"UPDATE {s}.youths SET org_id = $2, org_path = $3 WHERE youth_id = $1",
                e.youth_id,
                e.org_id,
                await current_path(tx, s, e.org_path, e.org_id) if e.org_path else None,
            )

    async def erased(tx: ProjectionTx, env: Envelope, e: DomainEvent) -> None:
        assert isinstance(e, YouthErased)
        # Ids may stay (counts must still add up); anything the youth wrote goes.
        tx.execute(f"DELETE FROM {s}.youths WHERE youth_id = $1", e.youth_id)
        tx.execute(
            f"DELETE FROM {s}.wish_photos WHERE wish_id IN (SELECT wish_id FROM {s}.wishes WHERE youth_id = $1)",
            e.youth_id,
        )
        tx.execute(
            f"UPDATE {s}.wishes SET text = $2, public_text = CASE WHEN public_text IS NULL THEN NULL "
            "ELSE $2 END, photos = '{{}}', evidence = NULL WHERE youth_id = $1",
            e.youth_id,
            ERASED,
        )
        tx.execute(f"UPDATE {s}.voice_posts SET text = $2 WHERE youth_id = $1", e.youth_id, ERASED)

    return {"YouthRegistered": registered, "YouthProfileUpdated": updated, "YouthErased": erased}


class CadreChanges(Protocol):
    """What the application does when a cadre moves or leaves (events on wishes' own streams)."""

    async def transferred(self, conn: object, cadre_id: str, org_id: str, org_path: str, env: Envelope) -> None: ...

    async def deactivated(self, conn: object, cadre_id: str, org_id: str, org_path: str, env: Envelope) -> None: ...


def cadre_handlers(s: str, changes: CadreChanges) -> dict[str, Handler]:
    """Cadres: where they are and whether they are still in the programme. A transfer takes the
    cadre's open wishes and posts along; a deactivation sends them to the pool and the org."""

    async def registered(tx: ProjectionTx, env: Envelope, e: DomainEvent) -> None:
        assert isinstance(e, CadreRegistered)
        tx.execute(
            f"INSERT INTO {s}.cadres (cadre_id, org_id, org_path) VALUES ($1, $2, $3) "
            "ON CONFLICT (cadre_id) DO UPDATE SET org_id = EXCLUDED.org_id, org_path = EXCLUDED.org_path",
            e.cadre_id, e.org_id, await current_path(tx, s, e.org_path, e.org_id),
        )

    async def transferred(tx: ProjectionTx, env: Envelope, e: DomainEvent) -> None:
        assert isinstance(e, CadreTransferred)
        path = await current_path(tx, s, e.org_path, e.to_org_id)
        tx.execute(
            f"INSERT INTO {s}.cadres (cadre_id, org_id, org_path) VALUES ($1, $2, $3) "
            "ON CONFLICT (cadre_id) DO UPDATE SET org_id = EXCLUDED.org_id, org_path = EXCLUDED.org_path",
            e.cadre_id, e.to_org_id, path,
        )
        tx.execute(f"UPDATE {s}.pairs SET org_path = $2 WHERE cadre_id = $1", e.cadre_id, path)
        await tx.flush()
        await changes.transferred(tx.conn, e.cadre_id, e.to_org_id, path, env)

    async def deactivated(tx: ProjectionTx, env: Envelope, e: DomainEvent) -> None:
        assert isinstance(e, CadreDeactivated)
        row = await tx.fetchrow(f"SELECT org_id FROM {s}.cadres WHERE cadre_id = $1", e.cadre_id)
        org_id = (row["org_id"] if row else None) or e.org_path.rsplit("/", 1)[-1]
        path = await current_path(tx, s, e.org_path, org_id)
        tx.execute(
            f"INSERT INTO {s}.cadres (cadre_id, org_id, org_path, active, deactivated_at) "
            "VALUES ($1, $2, $3, false, $4) ON CONFLICT (cadre_id) DO UPDATE SET active = false, "
            "deactivated_at = EXCLUDED.deactivated_at",
            e.cadre_id, org_id, path, env.occurred_at,
        )
        await tx.flush()
        await changes.deactivated(tx.conn, e.cadre_id, org_id, path, env)

    return {"CadreRegistered": registered, "CadreTransferred": transferred, "CadreDeactivated": deactivated}


def contacts_feeds(s: str, changes: CadreChanges) -> dict[str, tuple[str, dict[str, Handler]]]:
    """Wishes' read model of contacts, fed by one durable per contacts aggregate type (so
    interactions, the bulk of CONTACTS, are never fetched): consumer name → (aggregate type,
    handlers). The live consumers and a rebuild (``adapters.rebuild``) are built from this."""
    return {
        "pairs": ("contact_link", contacts_handlers(s)),
        "orgs": ("org", org_handlers(s)),
        "youths": ("youth", youth_handlers(s)),
        "cadres": ("cadre", cadre_handlers(s, changes)),
    }
