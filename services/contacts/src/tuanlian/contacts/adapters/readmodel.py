"""Contacts' own read tables, updated in the same transaction as the events that change them."""

from __future__ import annotations

import asyncpg
from tuanlian.shared.contracts.contacts import (
    CadreRegistered,
    ContactLinkAccepted,
    ContactLinkDeclined,
    ContactLinkEnded,
    ContactLinkInvited,
    InteractionLogged,
    OrgCreated,
    YouthRegistered,
)
from tuanlian.shared.events import DomainEvent, Envelope


async def project(conn: asyncpg.Connection, s: str, env: Envelope, e: DomainEvent, **extra: str) -> None:
    at = env.occurred_at
    match e:
        case OrgCreated():
            await conn.execute(
                f"INSERT INTO {s}.orgs (org_id, parent_id, name, org_type, depth, "
                "is_leadership_organ, org_path, created_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8)",
                e.org_id,
                e.parent_id,
                e.name,
                e.org_type.value,
                e.depth,
                e.is_leadership_organ,
                e.org_path,
                at,
            )
        case CadreRegistered():
            await conn.execute(
                f"INSERT INTO {s}.cadres (cadre_id, org_id, org_path, kind, in_leadership_organ) "
                "VALUES ($1,$2,$3,$4,$5)",
                e.cadre_id,
                e.org_id,
                e.org_path,
                e.kind.value,
                e.in_leadership_organ,
            )
        case YouthRegistered():
            await conn.execute(
                f"INSERT INTO {s}.youths (youth_id, org_id, org_path, field, grade, political_status, "
                "family_situation, special_care) VALUES ($1,$2,$3,$4,$5,$6,$7,$8)",
                e.youth_id,
                e.org_id,
                e.org_path,
                e.field.value if e.field else None,
                e.grade,
                e.political_status,
                e.family_situation,
                e.special_care,
            )
        case ContactLinkInvited():
            await conn.execute(
                f"INSERT INTO {s}.links (link_id, cadre_id, youth_id, org_path, state, initiated_by, "
                "invited_at) VALUES ($1,$2,$3,$4,'invited',$5,$6) ON CONFLICT (link_id) DO UPDATE SET "
                "state = 'invited', org_path = EXCLUDED.org_path, initiated_by = EXCLUDED.initiated_by, "
                "invited_at = EXCLUDED.invited_at, accepted_at = NULL, ended_at = NULL",
                e.link_id,
                e.cadre_id,
                e.youth_id,
                e.org_path,
                e.initiated_by,
                at,
            )
        case ContactLinkAccepted():
            await conn.execute(
                f"UPDATE {s}.links SET state = 'active', accepted_at = $2 WHERE link_id = $1", e.link_id, at
            )
        case ContactLinkDeclined():
            await conn.execute(f"UPDATE {s}.links SET state = 'declined' WHERE link_id = $1", e.link_id)
        case ContactLinkEnded():
            await conn.execute(
                f"UPDATE {s}.links SET state = 'ended', ended_at = $2 WHERE link_id = $1", e.link_id, at
            )
        case InteractionLogged():
            await conn.execute(
                f"INSERT INTO {s}.interactions ({_INTERACTION_COLUMNS}) VALUES ($1,$2,$3,$4,$5,$6,$7)",
                *_interaction_values(e, extra.get("summary", "")),
                env.recorded_at or at,
            )


_INTERACTION_COLUMNS = "interaction_id, cadre_id, youth_ids, channel, occurred_at, summary, logged_at"


def _interaction_values(e: InteractionLogged, summary: str) -> list[object]:
    return [e.interaction_id, e.cadre_id, e.youth_ids, e.channel.value, e.occurred_at, summary]


def interaction_row_beside_append(s: str, e: InteractionLogged, summary: str) -> tuple[str, list[object]]:
    """The read-model row of ``InteractionLogged`` as :meth:`EventStore.append`'s ``also``: the
    same row :func:`project` writes, in the same statement as the event (``logged_at`` is the
    event's ``recorded_at``). The only projection of ``InteractionLogged`` (none in
    readmodel_people or work_readmodel): a new one must be added here too."""
    return (
        f"INSERT INTO {s}.interactions ({_INTERACTION_COLUMNS}) "
        "SELECT $18::text, $19::text, $20::text[], $21::text, $22::timestamptz, $23::text, recorded_at "
        "FROM appended",
        _interaction_values(e, summary),
    )
