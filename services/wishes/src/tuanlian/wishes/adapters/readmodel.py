"""Wishes' own read tables, updated in the same transaction as the events that change them.

Free text (wish text, answers, comments) is written by the command handlers beside the event;
here only what the events say. Ratings and votes are not projected from events at all.
"""

from __future__ import annotations

import asyncpg
from tuanlian.shared.contracts.wishes import (
    BallotClosed,
    BallotOpened,
    PoolClaimLapsed,
    PoolContributionPledged,
    PoolWishClaimed,
    PoolWishReviewed,
    VoiceAnswered,
    VoiceEscalated,
    VoiceIssueGrouped,
    VoiceIssueRenamed,
    VoicePosted,
    VoicePostRedirected,
    WishAccepted,
    WishClosedUnconfirmed,
    WishConfirmed,
    WishDeclined,
    WishDisputed,
    WishExpired,
    WishFulfilled,
    WishPhotoAttached,
    WishReleasedToPool,
    WishRelocated,
    WishStarted,
    WishWithdrawn,
)
from tuanlian.shared.events import DomainEvent, Envelope

_SIMPLE_STATES: dict[type[DomainEvent], str] = {
    WishStarted: "in_progress",
    WishDisputed: "disputed",
    WishExpired: "expired",
    WishWithdrawn: "withdrawn",
}


async def project(conn: asyncpg.Connection, s: str, env: Envelope, e: DomainEvent) -> None:
    at, v = env.occurred_at, env.stream_version
    w = f"UPDATE {s}.wishes SET version = $2, touched_at = $3"
    match e:
        case WishAccepted():
            await conn.execute(f"{w}, state = 'accepted', accepted_at = $3 WHERE wish_id = $1", e.wish_id, v, at)
        case WishDeclined():
            await conn.execute(
                f"{w}, state = 'declined', state_reason = $4 WHERE wish_id = $1", e.wish_id, v, at, e.reason
            )
        case WishFulfilled():
            await conn.execute(f"{w}, state = 'fulfilled', fulfilled_at = $3 WHERE wish_id = $1", e.wish_id, v, at)
        case WishConfirmed():
            await conn.execute(
                f"{w}, state = 'confirmed', confirmed_at = $3, days_to_fulfil = $4 WHERE wish_id = $1",
                e.wish_id, v, at, e.days_to_fulfil,
            )
        case PoolWishReviewed():
            await conn.execute(
                f"{w}, state = $4, state_reason = $5, pooled_at = CASE WHEN $4::text = 'pooled' THEN $3::timestamptz END "
                "WHERE wish_id = $1",
                e.wish_id, v, at, "pooled" if e.approved else "rejected", e.reason,
            )
            await conn.execute(
                f"UPDATE {s}.wish_photos SET kept = (photo_id = ANY($2::text[])) WHERE wish_id = $1",
                e.wish_id, e.kept_photo_ids,
            )
        case PoolWishClaimed():
            await conn.execute(
                f"{w}, state = 'claimed', claimed_at = coalesce(claimed_at, $3), claim_id = $4, "
                "claimant_kind = $5, claimant_id = $6, claim_deadline = $7 WHERE wish_id = $1",
                e.wish_id, v, at, e.claim_id, e.claimant_kind.value, e.claimant_id, e.deadline,
            )
        case PoolClaimLapsed():
            await conn.execute(
                f"{w}, state = 'pooled', claim_id = NULL, claimant_kind = NULL, claimant_id = NULL, "
                "claim_deadline = NULL WHERE wish_id = $1",
                e.wish_id, v, at,
            )
        case PoolContributionPledged():
            await conn.execute(
                f"UPDATE {s}.wishes SET version = $2, pledged_yuan = pledged_yuan + $3 WHERE wish_id = $1",
                e.wish_id, v, e.amount_yuan,
            )
            await conn.execute(
                f"INSERT INTO {s}.pledges VALUES ($1, $2, $3, $4, $5)",
                e.wish_id, e.contributor_kind.value, e.contributor_id, e.amount_yuan, at,
            )
        case WishStarted() | WishDisputed() | WishExpired() | WishWithdrawn():
            await conn.execute(f"{w}, state = $4 WHERE wish_id = $1", e.wish_id, v, at, _SIMPLE_STATES[type(e)])
        case WishReleasedToPool():
            await conn.execute(
                f"{w}, state = 'awaiting_review', state_reason = $4 WHERE wish_id = $1", e.wish_id, v, at, e.reason
            )
        case WishRelocated():
            await conn.execute(
                f"UPDATE {s}.wishes SET version = $2, org_path = $3 WHERE wish_id = $1", e.wish_id, v, e.org_path
            )
        case WishClosedUnconfirmed():
            await conn.execute(
                f"{w}, state = 'closed_unconfirmed', closed_at = $3, state_reason = 'closed_unconfirmed' "
                "WHERE wish_id = $1",
                e.wish_id, v, at,
            )
        case WishPhotoAttached():
            await conn.execute(f"UPDATE {s}.wishes SET version = $2 WHERE wish_id = $1", e.wish_id, v)
        case VoicePostRedirected():
            await conn.execute(
                f"UPDATE {s}.voice_posts SET version = $2, cadre_id = $3, org_id = $4, org_path = $5 "
                "WHERE post_id = $1",
                e.post_id, v, e.cadre_id, e.org_id, e.org_path,
            )
        case VoiceIssueRenamed():
            await conn.execute(
                f"UPDATE {s}.voice_issues SET version = $2, updated_at = $3 WHERE issue_id = $1", e.issue_id, v, at
            )
        case VoicePosted():
            await conn.execute(f"UPDATE {s}.voice_posts SET version = $2 WHERE post_id = $1", e.post_id, v)
        case VoiceAnswered():
            await conn.execute(
                f"UPDATE {s}.voice_posts SET version = $2, state = 'answered', answered_at = $3, "
                "answered_by = $4, in_time = $5 WHERE post_id = $1",
                e.post_id, v, at, e.answered_by, e.in_time,
            )
        case VoiceEscalated():
            await conn.execute(
                f"UPDATE {s}.voice_posts SET version = $2, state = 'escalated', escalated_at = $3 "
                "WHERE post_id = $1",
                e.post_id, v, at,
            )
        case VoiceIssueGrouped():
            await conn.execute(
                f"UPDATE {s}.voice_issues SET version = $2, status = $3, post_count = $4, updated_at = $5 "
                "WHERE issue_id = $1",
                e.issue_id, v, e.status, len(e.post_ids), at,
            )
            await conn.execute(
                f"UPDATE {s}.voice_posts SET issue_id = NULL WHERE issue_id = $1 AND NOT post_id = ANY($2::text[])",
                e.issue_id, e.post_ids,
            )
            await conn.execute(
                f"UPDATE {s}.voice_posts SET issue_id = $1 WHERE post_id = ANY($2::text[])", e.issue_id, e.post_ids
            )
        case BallotOpened():
            await conn.execute(f"UPDATE {s}.ballots SET version = $2 WHERE ballot_id = $1", e.ballot_id, v)
        case BallotClosed():
            await conn.execute(
                f"UPDATE {s}.ballots SET version = $2, state = 'closed', turnout = $3, published = $4, "
                "satisfied = $5, basically_satisfied = $6, unsatisfied = $7, reelection_flag = $8 "
                "WHERE ballot_id = $1",
                e.ballot_id, v, e.turnout, e.published, e.satisfied, e.basically_satisfied, e.unsatisfied,
                e.reelection_flag,
            )
        case _:
            pass  # WishRaised, PartnerRegistered, CadreRated: rows inserted by the handler with their text
