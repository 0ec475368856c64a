"""Read tables for org lifecycle, rules, cadre and youth changes and accounts (same transaction)."""

from __future__ import annotations

import json

import asyncpg
from tuanlian.shared.contracts.contacts import (
    AccountActivated,
    AccountIssued,
    CadreDeactivated,
    CadreTransferred,
    OrgClosed,
    OrgDetailsCompleted,
    OrgMerged,
    OrgMoved,
    OrgRenamed,
    OrgRulesSet,
    YouthErased,
    YouthProfileUpdated,
    YouthRegistered,
)
from tuanlian.shared.events import DomainEvent, Envelope

# Tables whose rows sit somewhere in the org tree.
_PLACED = ("cadres", "youths", "links")
_YOUTH_ATTRS = ("field", "industry", "grade", "political_status", "family_situation", "special_care")


async def _rewrite_paths(conn: asyncpg.Connection, s: str, table: str, old: str, new: str, strict: bool) -> None:
    """Replace the ``old`` path prefix by ``new`` (``strict``: descendants only, not ``old`` itself)."""
    match = "left(org_path, length($1) + 1) = $1 || '/'"
    if not strict:
        match = f"(org_path = $1 OR {match})"
    await conn.execute(
        f"UPDATE {s}.{table} SET org_path = $2 || substr(org_path, length($1) + 1) WHERE {match}", old, new
    )


async def project_people(conn: asyncpg.Connection, s: str, env: Envelope, e: DomainEvent) -> None:
    at = env.occurred_at
    match e:
        case YouthRegistered() if e.industry:
            await conn.execute(f"UPDATE {s}.youths SET industry = $2 WHERE youth_id = $1", e.youth_id, e.industry)
        case OrgDetailsCompleted():
            await conn.execute(
                f"UPDATE {s}.orgs SET secretary_cadre_id = coalesce($2, secretary_cadre_id), "
                "member_count = coalesce($3, member_count), region_code = coalesce($4, region_code) "
                "WHERE org_id = $1",
                e.org_id,
                e.secretary_cadre_id,
                e.member_count,
                e.region_code,
            )
        case OrgRenamed():
            await conn.execute(f"UPDATE {s}.orgs SET name = $2 WHERE org_id = $1", e.org_id, e.name)
        case OrgMoved():
            old_depth = await conn.fetchval(f"SELECT depth FROM {s}.orgs WHERE org_id = $1", e.org_id)
            await conn.execute(
                f"UPDATE {s}.orgs SET depth = depth + $2 WHERE org_path = $1 OR left(org_path, length($1) + 1) = $1 || '/'",
                e.old_path,
                e.depth - old_depth,
            )
            await _rewrite_paths(conn, s, "orgs", e.old_path, e.new_path, strict=False)
            await conn.execute(f"UPDATE {s}.orgs SET parent_id = $2 WHERE org_id = $1", e.org_id, e.new_parent_id)
            for table in _PLACED:
                await _rewrite_paths(conn, s, table, e.old_path, e.new_path, strict=False)
        case OrgMerged():
            depths = await conn.fetch(
                f"SELECT org_id, depth FROM {s}.orgs WHERE org_id = ANY($1::text[])", [e.org_id, e.into_org_id]
            )
            by_id = {r["org_id"]: r["depth"] for r in depths}
            await conn.execute(
                f"UPDATE {s}.orgs SET depth = depth + $2 WHERE left(org_path, length($1) + 1) = $1 || '/'",
                e.old_path,
                by_id[e.into_org_id] - by_id[e.org_id],
            )
            await _rewrite_paths(conn, s, "orgs", e.old_path, e.into_path, strict=True)
            await conn.execute(f"UPDATE {s}.orgs SET parent_id = $2 WHERE parent_id = $1", e.org_id, e.into_org_id)
            await conn.execute(f"UPDATE {s}.orgs SET merged_into = $2 WHERE org_id = $1", e.org_id, e.into_org_id)
            for table in ("cadres", "youths"):
                await conn.execute(
                    f"UPDATE {s}.{table} SET org_id = $2 WHERE org_id = $1", e.org_id, e.into_org_id
                )
            for table in _PLACED:
                await _rewrite_paths(conn, s, table, e.old_path, e.into_path, strict=False)
        case OrgClosed():
            await conn.execute(
                f"UPDATE {s}.orgs SET status = 'closed', closed_at = $2 WHERE org_id = $1", e.org_id, at
            )
        case OrgRulesSet():
            await conn.execute(
                f"INSERT INTO {s}.org_rules (org_id, effective_from, preset, rules, set_at) "
                "VALUES ($1, $2, $3, $4::jsonb, $5)",
                e.org_id,
                e.effective_from,
                e.preset,
                json.dumps(e.rules.model_dump(mode="json")),
                at,
            )
        case CadreTransferred():
            await conn.execute(
                f"UPDATE {s}.cadres SET org_id = $2, org_path = $3, in_leadership_organ = $4 WHERE cadre_id = $1",
                e.cadre_id,
                e.to_org_id,
                e.org_path,
                e.in_leadership_organ,
            )
            await conn.execute(f"UPDATE {s}.accounts SET org_id = $2 WHERE subject_id = $1", e.cadre_id, e.to_org_id)
            # The cadre's open links follow them: their later events (and who may see them) use the
            # new place. Ended or declined links stay where they were made.
            await conn.execute(
                f"UPDATE {s}.links SET org_path = $2 WHERE cadre_id = $1 AND state IN ('invited', 'active')",
                e.cadre_id,
                e.org_path,
            )
        case CadreDeactivated():
            await conn.execute(
                f"UPDATE {s}.cadres SET active = false, deactivated_at = $2 WHERE cadre_id = $1", e.cadre_id, at
            )
            await conn.execute(
                f"UPDATE {s}.accounts SET disabled_at = $2 WHERE subject_id = $1", e.cadre_id, at
            )
        case YouthProfileUpdated():
            changes = {k: getattr(e, k) for k in ("org_id", "org_path", *_YOUTH_ATTRS)}
            changes = {k: (v.value if hasattr(v, "value") else v) for k, v in changes.items() if v is not None}
            if changes:
                sets = ", ".join(f"{k} = ${i}" for i, k in enumerate(changes, start=2))
                await conn.execute(f"UPDATE {s}.youths SET {sets} WHERE youth_id = $1", e.youth_id, *changes.values())
        case YouthErased():
            # Counts live on (links, interactions keep the id); every attribute goes.
            await conn.execute(
                f"UPDATE {s}.youths SET field = NULL, industry = NULL, grade = NULL, political_status = NULL, "
                "family_situation = NULL, special_care = '{}', erased_at = $2 WHERE youth_id = $1",
                e.youth_id,
                at,
            )
            await conn.execute(f"UPDATE {s}.accounts SET disabled_at = $2 WHERE subject_id = $1", e.youth_id, at)
            await conn.execute(f"DELETE FROM {s}.login_codes WHERE subject_id = $1", e.youth_id)
        case AccountIssued() | AccountActivated():
            pass  # the accounts row carries credentials and is written by the identity handler
