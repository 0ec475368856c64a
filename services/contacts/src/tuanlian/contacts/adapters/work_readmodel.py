"""Read tables of contacts-work's records, updated in the same transaction as their events."""

from __future__ import annotations

from typing import Any

import asyncpg
from tuanlian.shared.contracts.contacts import (
    ActivityCorrected,
    ActivityRecorded,
    CadreCardPublished,
    CadreNominated,
    CampaignOpened,
    EvidenceAttached,
    GroupLinkAdded,
    GroupLinkEnded,
    InteractionConfirmed,
    InteractionCorrected,
    InteractionDisputed,
    JoinCodeIssued,
    SpotCheckDrawn,
    SpotCheckItemRecorded,
    WorkReportReturned,
    WorkReportSubmitted,
)
from tuanlian.shared.events import DomainEvent, Envelope


async def project_work(
    conn: asyncpg.Connection, s: str, env: Envelope, e: DomainEvent, extra: dict[str, Any]
) -> None:
    at = env.recorded_at or env.occurred_at
    match e:
        case WorkReportSubmitted():
            await conn.execute(
                f"INSERT INTO {s}.work_reports (org_id, period, revision, status, due_on, late, first_sent_at, "
                "first_late, sent_at, sent_by, practice, experience, problems, next_steps) "
                "VALUES ($1, $2, $3, 'submitted', $4, $5, $6, $5, $6, $7, $8, $9, $10, $11) "
                "ON CONFLICT (org_id, period) DO UPDATE SET revision = EXCLUDED.revision, status = 'submitted', "
                "due_on = EXCLUDED.due_on, late = EXCLUDED.late, sent_at = EXCLUDED.sent_at, "
                "sent_by = EXCLUDED.sent_by, returned_at = NULL, returned_by = NULL, returned_reason = NULL, "
                "practice = EXCLUDED.practice, experience = EXCLUDED.experience, problems = EXCLUDED.problems, "
                "next_steps = EXCLUDED.next_steps",
                e.org_id, e.period, e.revision, e.due_on, e.late, at, env.actor, e.practice, e.experience,
                e.problems, e.next_steps,
            )
        case WorkReportReturned():
            await conn.execute(
                f"UPDATE {s}.work_reports SET status = 'returned', returned_at = $3, returned_by = $4, "
                "returned_reason = $5 WHERE org_id = $1 AND period = $2",
                e.org_id, e.period, at, env.actor, e.reason,
            )
        case CadreCardPublished():
            await conn.execute(
                f"INSERT INTO {s}.cadre_cards (cadre_id, channels, channel_ids_enc, updated_at) "
                "VALUES ($1,$2,$3,$4) ON CONFLICT (cadre_id) DO UPDATE SET channels = EXCLUDED.channels, "
                "channel_ids_enc = EXCLUDED.channel_ids_enc, updated_at = EXCLUDED.updated_at",
                e.cadre_id,
                [c.value for c in e.channels],
                extra.get("channel_ids_enc"),
                at,
            )
        case JoinCodeIssued():
            await conn.execute(
                f"INSERT INTO {s}.cadre_cards (cadre_id, join_code, updated_at) VALUES ($1,$2,$3) "
                "ON CONFLICT (cadre_id) DO UPDATE SET join_code = EXCLUDED.join_code, "
                "updated_at = EXCLUDED.updated_at",
                e.cadre_id,
                e.join_code,
                at,
            )
        case GroupLinkAdded():
            await conn.execute(
                f"INSERT INTO {s}.group_links (cadre_id, group_org_id, group_org_type, group_org_path, "
                "added_at) VALUES ($1,$2,$3,$4,$5)",
                e.cadre_id,
                e.group_org_id,
                e.group_org_type.value,
                e.group_org_path,
                at,
            )
        case GroupLinkEnded():
            await conn.execute(
                f"DELETE FROM {s}.group_links WHERE cadre_id = $1 AND group_org_id = $2",
                e.cadre_id,
                e.group_org_id,
            )
        case InteractionCorrected():
            await conn.execute(
                f"UPDATE {s}.interactions SET youth_ids = $2, channel = $3, occurred_at = $4, summary = $5, "
                "corrected_at = $6, corrections = corrections + 1 WHERE interaction_id = $1",
                e.interaction_id,
                e.youth_ids,
                e.channel.value,
                e.occurred_at,
                extra.get("summary", ""),
                at,
            )
            await conn.execute(
                f"DELETE FROM {s}.interaction_answers WHERE interaction_id = $1", e.interaction_id
            )
        case InteractionConfirmed() | InteractionDisputed():
            await conn.execute(
                f"INSERT INTO {s}.interaction_answers (interaction_id, youth_id, answer, reason, answered_at) "
                "VALUES ($1,$2,$3,$4,$5)",
                e.interaction_id,
                e.youth_id,
                "confirmed" if isinstance(e, InteractionConfirmed) else "disputed",
                getattr(e, "reason", None),
                at,
            )
        case ActivityRecorded():
            await conn.execute(
                f"INSERT INTO {s}.activities (activity_id, kind, organiser_cadre_id, organiser_org_id, "
                "org_path, collective, occurred_on, youth_ids, headcount, campaign_id, description, "
                "recorded_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12)",
                e.activity_id,
                e.kind.value,
                e.organiser_cadre_id,
                e.organiser_org_id,
                e.org_path,
                e.collective,
                e.occurred_on,
                e.youth_ids,
                e.headcount,
                e.campaign_id,
                extra.get("description", ""),
                at,
            )
        case ActivityCorrected():
            await conn.execute(
                f"UPDATE {s}.activities SET kind = $2, occurred_on = $3, youth_ids = $4, headcount = $5, "
                "campaign_id = $6, description = $7, corrections = corrections + 1 WHERE activity_id = $1",
                e.activity_id,
                e.kind.value,
                e.occurred_on,
                e.youth_ids,
                e.headcount,
                e.campaign_id,
                extra.get("description", ""),
            )
        case CampaignOpened():
            await conn.execute(
                f"INSERT INTO {s}.campaigns (campaign_id, org_id, org_path, key, name, starts_on, ends_on, "
                "deadline, nominations) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9)",
                e.campaign_id,
                e.org_id,
                e.org_path,
                e.key,
                e.name,
                e.starts_on,
                e.ends_on,
                e.deadline,
                bool(e.nominations),
            )
        case CadreNominated():
            await conn.execute(
                f"INSERT INTO {s}.nominations (nomination_id, campaign_id, cadre_id, org_path, "
                "nominated_by_org_id, nominated_at) VALUES ($1,$2,$3,$4,$5,$6)",
                e.nomination_id,
                e.campaign_id,
                e.cadre_id,
                e.org_path,
                e.nominated_by_org_id,
                at,
            )
        case EvidenceAttached():
            await conn.execute(
                f"INSERT INTO {s}.evidence (evidence_id, subject_type, subject_id, org_path, owner_cadre_id, "
                "content_type, size_bytes, sha256, data, attached_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)",
                e.evidence_id,
                e.subject_type,
                e.subject_id,
                env.org_path or "",
                extra.get("owner_cadre_id"),
                e.content_type,
                e.size_bytes,
                e.sha256,
                extra["data"],
                at,
            )
        case SpotCheckDrawn():
            await conn.execute(
                f"INSERT INTO {s}.spot_checks (spot_check_id, cadre_id, org_path, items, drawn_by, drawn_at) "
                "VALUES ($1,$2,$3,$4,$5,$6)",
                e.spot_check_id,
                e.cadre_id,
                e.org_path,
                e.items,
                env.actor,
                at,
            )
        case SpotCheckItemRecorded():
            await conn.execute(
                f"INSERT INTO {s}.spot_check_items (spot_check_id, item, outcome, recorded_at) "
                "VALUES ($1,$2,$3,$4) ON CONFLICT (spot_check_id, item) DO UPDATE SET "
                "outcome = EXCLUDED.outcome, recorded_at = EXCLUDED.recorded_at",
                e.spot_check_id,
                e.item,
                e.outcome.value,
                at,
            )
