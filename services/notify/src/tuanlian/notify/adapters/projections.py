"""Notify's read models, fed by the contacts, wishes and scoring streams.

Who is who (recipients), each org's rules, and the few facts the reminder rules read; plus the
messages some events cause at once (an invitation, a wish released or fulfilled, a ballot, a
circular's fan-out job).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from tuanlian.notify.adapters.messages import (
    NewMessage,
    deliveries_for_source_sql,
    deliveries_sql,
    insert_sql,
    localised,
    message_id_for,
    prefix_like,
)
from tuanlian.notify.domain.rules import AdminFacts, admins_for
from tuanlian.notify.domain.templates import LINK_INVITATION, template
from tuanlian.shared import league_calendar as cal
from tuanlian.shared.consumer import Handler, ProjectionTx
from tuanlian.shared.contracts import contacts as c
from tuanlian.shared.contracts import scoring as sc
from tuanlian.shared.contracts import wishes as w
from tuanlian.shared.events import ContractRegistry, DomainEvent, Envelope

# Tables holding an org path, rewritten when an org moves or merges.
_PATH_TABLES = ("recipients", "org_rules", "activities", "voice_posts", "wishes", "inbox", "orgs", "ballots",
                "work_reports")


def ballot_invitations_sql(s: str) -> str:
    """Ask the members of a ballot's branch (its dorm groups included) who are not asked yet, each in
    their language: $1 source event, $2/$3 title and body zh, $4/$5 en, $6 ballot id, $7 time,
    $8 branch path, $9 its LIKE pattern, $10 opened at.
    Members registered after the opening are not in the ballot's electorate (wishes snapshots it)."""
    return (
        f"INSERT INTO {s}.inbox (message_id, recipient_id, kind, title, body, ref, source_event_id, created_at, "
        "org_path) SELECT md5($1::uuid::text || '/' || r.subject_id || '/ballot_opened')::uuid, r.subject_id, "
        f"'ballot_opened', {localised('$2::text', '$4::text')}, {localised('$3::text', '$5::text')}, $6, $1::uuid, "
        f"$7, r.org_path FROM {s}.recipients r LEFT JOIN {s}.preferences p ON p.recipient_id = r.subject_id "
        "WHERE r.role = 'youth' AND (r.org_path = $8 OR r.org_path LIKE $9) AND r.joined_at <= $10 "
        "ON CONFLICT (source_event_id, recipient_id, kind) DO NOTHING"
    )


class Messages:
    """Queues a message and its deliveries inside the projection transaction."""

    def __init__(self, schema: str, channels: Sequence[str]) -> None:
        self.s = schema
        self.channels = list(channels)
        self._insert = insert_sql(schema)
        self._deliver = deliveries_sql(schema)

    def send(self, tx: ProjectionTx, env: Envelope, e: DomainEvent, recipient: str, kind: str, ref: str | None,
             urgent: bool = False, **values: object) -> None:
        text = (LINK_INVITATION if kind == LINK_INVITATION.kind else template(kind)).render_both(**values)
        m = NewMessage(message_id_for(str(env.event_id), recipient, kind), recipient, kind, text.title, text.body,
                       ref, env.event_id, env.occurred_at, urgent, env.org_path or getattr(e, "org_path", None),
                       text.title_en, text.body_en)
        tx.execute(self._insert, *m.args())
        if self.channels:
            tx.execute(self._deliver, m.message_id, recipient, env.occurred_at, self.channels)


def _day(moment: datetime) -> str:
    return cal.local_date(moment).isoformat()


def contacts_handlers(s: str, channels: Sequence[str] = ()) -> dict[str, Handler]:
    msgs = Messages(s, channels)
    upsert = (
        f"INSERT INTO {s}.recipients (subject_id, role, org_path, cadre_kind, in_leadership_organ, "
        "joined_at, has_account, logged_in) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (subject_id) "
        "DO UPDATE SET org_path = coalesce(EXCLUDED.org_path, recipients.org_path), "
        "cadre_kind = coalesce(EXCLUDED.cadre_kind, recipients.cadre_kind), "
        "in_leadership_organ = EXCLUDED.in_leadership_organ OR recipients.in_leadership_organ, "
        "has_account = recipients.has_account OR EXCLUDED.has_account, "
        "logged_in = recipients.logged_in OR EXCLUDED.logged_in, active = true, "
        "joined_at = LEAST(recipients.joined_at, EXCLUDED.joined_at)"
    )

    late_ballot_sql = (
        f"INSERT INTO {s}.inbox (message_id, recipient_id, kind, title, body, ref, source_event_id, created_at, "
        "org_path) SELECT md5(b.source_event_id::text || '/' || r.subject_id || '/ballot_opened')::uuid, "
        f"r.subject_id, 'ballot_opened', {localised('b.title', 'b.title_en')}, {localised('b.body', 'b.body_en')}, "
        f"b.ballot_id, b.source_event_id, $2, r.org_path FROM {s}.recipients r JOIN {s}.ballots b "
        "ON (r.org_path = b.org_path OR starts_with(r.org_path, b.org_path || '/')) AND r.joined_at <= b.opened_at "
        f"LEFT JOIN {s}.preferences p ON p.recipient_id = r.subject_id WHERE r.subject_id = $1 AND r.role = 'youth' "
        "ON CONFLICT (source_event_id, recipient_id, kind) DO NOTHING")
    late_ballot_deliveries_sql = (
        f"INSERT INTO {s}.deliveries (message_id, channel, recipient_id, next_attempt_at, updated_at) "
        f"SELECT i.message_id, ch, i.recipient_id, $2, $2 FROM {s}.inbox i "
        f"JOIN {s}.preferences p ON p.recipient_id = i.recipient_id, unnest(p.channels) ch "
        "WHERE i.recipient_id = $1 AND i.kind = 'ballot_opened' AND ch = ANY($3::text[]) ON CONFLICT DO NOTHING")

    async def cadre_registered(tx: ProjectionTx, env: Envelope, e: DomainEvent) -> None:
        assert isinstance(e, c.CadreRegistered)
        tx.execute(upsert, e.cadre_id, "cadre", e.org_path, e.kind.value, e.in_leadership_organ,
                   env.occurred_at, False, False)

    async def cadre_transferred(tx: ProjectionTx, env: Envelope, e: DomainEvent) -> None:
        assert isinstance(e, c.CadreTransferred)
        tx.execute(f"UPDATE {s}.recipients SET org_path = $2, in_leadership_organ = $3 WHERE subject_id = $1",
                   e.cadre_id, e.org_path, e.in_leadership_organ)

    async def cadre_deactivated(tx: ProjectionTx, env: Envelope, e: DomainEvent) -> None:
        assert isinstance(e, c.CadreDeactivated)
        tx.execute(f"UPDATE {s}.recipients SET active = false WHERE subject_id = $1", e.cadre_id)

    async def account_issued(tx: ProjectionTx, env: Envelope, e: DomainEvent) -> None:
        assert isinstance(e, c.AccountIssued)
        tx.execute(upsert, e.subject_id, e.role.value, e.org_path, None, False, env.occurred_at, True, False)

    async def account_activated(tx: ProjectionTx, env: Envelope, e: DomainEvent) -> None:
        assert isinstance(e, c.AccountActivated)  # the first login (账号激活): 000's 登录使用
        tx.execute(upsert, e.subject_id, e.role.value, e.org_path, None, False, env.occurred_at, True, True)

    async def youth_registered(tx: ProjectionTx, env: Envelope, e: DomainEvent) -> None:
        assert isinstance(e, c.YouthRegistered)
        tx.execute(upsert, e.youth_id, "youth", e.org_path, None, False, env.occurred_at, False, False)
        # A ballot notify heard of before this youth (streams are not ordered with each other).
        tx.execute(late_ballot_sql, e.youth_id, env.occurred_at)
        if msgs.channels:
            tx.execute(late_ballot_deliveries_sql, e.youth_id, env.occurred_at, msgs.channels)

    async def youth_updated(tx: ProjectionTx, env: Envelope, e: DomainEvent) -> None:
        assert isinstance(e, c.YouthProfileUpdated)
        if e.org_path is not None:
            tx.execute(f"UPDATE {s}.recipients SET org_path = $2 WHERE subject_id = $1", e.youth_id, e.org_path)

    async def youth_erased(tx: ProjectionTx, env: Envelope, e: DomainEvent) -> None:
        # PIPL: nothing of the youth stays here, not even the email address they gave us.
        assert isinstance(e, c.YouthErased)
        for table, column in (("deliveries", "recipient_id"), ("digests", "recipient_id"),
                              ("inbox", "recipient_id"), ("preferences", "recipient_id"),
                              ("links", "youth_id"), ("recipients", "subject_id")):
            tx.execute(f"DELETE FROM {s}.{table} WHERE {column} = $1", e.youth_id)
        tx.execute(f"UPDATE {s}.wishes SET youth_id = NULL WHERE youth_id = $1", e.youth_id)

    async def link_invited(tx: ProjectionTx, env: Envelope, e: DomainEvent) -> None:
        assert isinstance(e, c.ContactLinkInvited)
        tx.execute(f"INSERT INTO {s}.links (link_id, cadre_id, youth_id) VALUES ($1, $2, $3) "
                   "ON CONFLICT DO NOTHING", e.link_id, e.cadre_id, e.youth_id)
        if e.initiated_by == "cadre":
            msgs.send(tx, env, e, e.youth_id, LINK_INVITATION.kind, e.link_id)

    async def link_accepted(tx: ProjectionTx, env: Envelope, e: DomainEvent) -> None:
        assert isinstance(e, c.ContactLinkAccepted)
        tx.execute(f"INSERT INTO {s}.links (link_id, cadre_id, youth_id, accepted) VALUES ($1, $2, $3, true) "
                   "ON CONFLICT (link_id) DO UPDATE SET accepted = true", e.link_id, e.cadre_id, e.youth_id)

    async def link_gone(tx: ProjectionTx, env: Envelope, e: DomainEvent) -> None:
        assert isinstance(e, c.ContactLinkDeclined | c.ContactLinkEnded)
        tx.execute(f"DELETE FROM {s}.links WHERE link_id = $1", e.link_id)

    async def interaction(tx: ProjectionTx, env: Envelope, e: DomainEvent) -> None:
        assert isinstance(e, c.InteractionLogged | c.InteractionCorrected)
        if e.online:
            tx.execute(f"INSERT INTO {s}.online_contact (cadre_id, last_online_at) VALUES ($1, $2) "
                       "ON CONFLICT (cadre_id) DO UPDATE SET last_online_at = "
                       "GREATEST(online_contact.last_online_at, EXCLUDED.last_online_at)",
                       e.cadre_id, e.occurred_at)

    async def activity(tx: ProjectionTx, env: Envelope, e: DomainEvent) -> None:
        assert isinstance(e, c.ActivityRecorded | c.ActivityCorrected)
        # A cadre's activity keeps its kind (whether it counts is the rules' when reminders are
        # computed); ``five_ones`` is for the rows from before kinds were kept.
        tx.execute(f"INSERT INTO {s}.activities (activity_id, cadre_id, org_path, five_ones, occurred_on, "
                   "collective_five_ones, kind) VALUES ($1, $2, $3, false, $4, $5, $6) ON CONFLICT (activity_id) "
                   "DO UPDATE SET cadre_id = $2, org_path = $3, five_ones = false, occurred_on = $4, "
                   "collective_five_ones = $5, kind = $6",
                   e.activity_id, e.organiser_cadre_id, e.org_path, e.occurred_on,
                   e.collective and e.kind.collective_five_ones, None if e.collective else e.kind.value)

    async def org_created(tx: ProjectionTx, env: Envelope, e: DomainEvent) -> None:
        assert isinstance(e, c.OrgCreated)
        tx.execute(f"INSERT INTO {s}.orgs (org_id, org_path, name, leadership_organ) VALUES ($1, $2, $3, $4) "
                   "ON CONFLICT (org_id) DO UPDATE SET org_path = $2, name = $3, leadership_organ = $4",
                   e.org_id, e.org_path, e.name, e.is_leadership_organ)

    async def org_renamed(tx: ProjectionTx, env: Envelope, e: DomainEvent) -> None:
        assert isinstance(e, c.OrgRenamed)
        tx.execute(f"UPDATE {s}.orgs SET name = $2 WHERE org_id = $1", e.org_id, e.name)

    async def org_closed(tx: ProjectionTx, env: Envelope, e: DomainEvent) -> None:
        assert isinstance(e, c.OrgClosed)
        tx.execute(f"UPDATE {s}.orgs SET closed = true WHERE org_id = $1", e.org_id)

    async def rules_set(tx: ProjectionTx, env: Envelope, e: DomainEvent) -> None:
        assert isinstance(e, c.OrgRulesSet)
        tx.execute(f"INSERT INTO {s}.org_rules (org_path, effective_from, rules) VALUES ($1, $2, $3) "
                   "ON CONFLICT (org_path, effective_from) DO UPDATE SET rules = EXCLUDED.rules",
                   e.org_path, e.effective_from, e.rules.model_dump(mode="json"))

    async def report_submitted(tx: ProjectionTx, env: Envelope, e: DomainEvent) -> None:
        assert isinstance(e, c.WorkReportSubmitted)
        tx.execute(f"INSERT INTO {s}.work_reports (org_id, period, org_path, status) VALUES ($1, $2, "
                   f"coalesce((SELECT org_path FROM {s}.orgs WHERE org_id = $1 FOR SHARE), $3), 'submitted') "
                   "ON CONFLICT (org_id, period) DO UPDATE SET status = 'submitted'", e.org_id, e.period, e.org_path)

    async def report_returned(tx: ProjectionTx, env: Envelope, e: DomainEvent) -> None:
        assert isinstance(e, c.WorkReportReturned)
        # The org's path now, its row held as wishes_handlers' path_now holds it (a move may be under way).
        path = await tx.fetchval(f"SELECT coalesce((SELECT org_path FROM {s}.orgs WHERE org_id = $1 FOR SHARE), $2)",
                                 e.org_id, e.org_path)
        tx.execute(f"UPDATE {s}.work_reports SET status = 'returned' WHERE org_id = $1 AND period = $2",
                   e.org_id, e.period)
        # Its admins: those of the nearest org at or above it that has any, as reminders find them.
        rows = await tx.fetch(f"SELECT subject_id, org_path FROM {s}.recipients WHERE role = 'org_admin' AND active "
                              "AND ($1 = org_path OR starts_with($1, org_path || '/'))", path)
        zh, en = cal.report_names(e.period)
        for admin in admins_for(path, [AdminFacts(r["subject_id"], r["org_path"]) for r in rows]):
            msgs.send(tx, env, e, admin, "report_returned", e.report_id, report=zh, report_en=en, reason=e.reason)

    def rewrite(tx: ProjectionTx, old: str, new: str) -> None:
        # The orgs first: a wishes batch filing a row by its org's path holds that org's row (see
        # wishes_handlers' path_now), so it commits before the other tables are rewritten, or reads
        # the new path after this commits.
        for table in ("orgs", *(t for t in _PATH_TABLES if t != "orgs")):
            tx.execute(f"UPDATE {s}.{table} SET org_path = $2 || substr(org_path, length($1) + 1) "
                       "WHERE org_path = $1 OR org_path LIKE $3", old, new, prefix_like(old))

    async def org_moved(tx: ProjectionTx, env: Envelope, e: DomainEvent) -> None:
        assert isinstance(e, c.OrgMoved)
        rewrite(tx, e.old_path, e.new_path)

    async def org_merged(tx: ProjectionTx, env: Envelope, e: DomainEvent) -> None:
        assert isinstance(e, c.OrgMerged)
        tx.execute(f"UPDATE {s}.orgs SET closed = true WHERE org_path = $1", e.old_path)  # absorbed
        rewrite(tx, e.old_path, e.into_path)

    return {
        "CadreRegistered": cadre_registered,
        "CadreTransferred": cadre_transferred,
        "CadreDeactivated": cadre_deactivated,
        "AccountIssued": account_issued,
        "AccountActivated": account_activated,
        "YouthRegistered": youth_registered,
        "YouthProfileUpdated": youth_updated,
        "YouthErased": youth_erased,
        "ContactLinkInvited": link_invited,
        "ContactLinkAccepted": link_accepted,
        "ContactLinkDeclined": link_gone,
        "ContactLinkEnded": link_gone,
        "InteractionLogged": interaction,
        "InteractionCorrected": interaction,
        "ActivityRecorded": activity,
        "ActivityCorrected": activity,
        "OrgRulesSet": rules_set,
        "OrgCreated": org_created,
        "OrgClosed": org_closed,
        "OrgRenamed": org_renamed,
        "OrgMoved": org_moved,
        "OrgMerged": org_merged,
        "WorkReportSubmitted": report_submitted,
        "WorkReportReturned": report_returned,
    }


def wishes_handlers(s: str, channels: Sequence[str] = ()) -> dict[str, Handler]:
    msgs = Messages(s, channels)
    touch = f"UPDATE {s}.wishes SET touched = true WHERE wish_id = $1"

    def path_now(param: str) -> str:
        # The two streams' consumers race: a wish that reached the bus before its org moved may
        # be applied after the move rewrote the paths here, or while it does. The org's row (by
        # id, a path's last part) has its path now, and is held (FOR SHARE) to the commit: a move
        # rewrites the orgs first, so either it has (the new path is read) or it waits, and its
        # later statements see this row. An org not known yet keeps the event's path.
        return (f"coalesce((SELECT o.org_path FROM {s}.orgs o WHERE o.org_id = substring({param} from '[^/]+$') "
                f"FOR SHARE), {param})")

    async def raised(tx: ProjectionTx, env: Envelope, e: DomainEvent) -> None:
        assert isinstance(e, w.WishRaised)
        tx.execute(f"INSERT INTO {s}.wishes (wish_id, youth_id, cadre_id, org_path, raised_at) "
                   f"VALUES ($1, $2, $3, {path_now('$4::text')}, $5) ON CONFLICT DO NOTHING",
                   e.wish_id, e.youth_id, e.cadre_id, e.org_path, env.occurred_at)

    async def touched(tx: ProjectionTx, env: Envelope, e: DomainEvent) -> None:
        tx.execute(touch, getattr(e, "wish_id"))  # noqa: B009 - every wish event has one

    def tell_youth(kind: str) -> Handler:
        async def handler(tx: ProjectionTx, env: Envelope, e: DomainEvent) -> None:
            wish_id = getattr(e, "wish_id")  # noqa: B009
            tx.execute(touch, wish_id)
            youth = getattr(e, "youth_id", None) or await tx.fetchval(
                f"SELECT youth_id FROM {s}.wishes WHERE wish_id = $1", wish_id)
            if youth:  # an erased youth gets nothing
                msgs.send(tx, env, e, youth, kind, wish_id)
        return handler

    async def voice_posted(tx: ProjectionTx, env: Envelope, e: DomainEvent) -> None:
        assert isinstance(e, w.VoicePosted)
        tx.execute(f"INSERT INTO {s}.voice_posts (post_id, cadre_id, org_path, posted_at, due_at) "
                   f"VALUES ($1, $2, {path_now('$3::text')}, $4, $5) ON CONFLICT DO NOTHING",
                   e.post_id, e.cadre_id, e.org_path, env.occurred_at, e.due_at)

    async def voice_answered(tx: ProjectionTx, env: Envelope, e: DomainEvent) -> None:
        assert isinstance(e, w.VoiceAnswered)
        tx.execute(f"UPDATE {s}.voice_posts SET answered = true WHERE post_id = $1", e.post_id)

    async def ballot_opened(tx: ProjectionTx, env: Envelope, e: DomainEvent) -> None:
        # Every member of the branch is asked, in their language; the ballot itself stays anonymous in wishes.
        assert isinstance(e, w.BallotOpened)
        text = template("ballot_opened").render_both(closes=_day(e.closes_at))
        # Its members are found under the branch's path now (see path_now).
        path = await tx.fetchval(f"SELECT {path_now('$1::text')}", e.org_path)
        tx.execute(f"INSERT INTO {s}.ballots (ballot_id, source_event_id, org_path, opened_at, closes_at, title, body, "
                   "title_en, body_en) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING",
                   e.ballot_id, env.event_id, path, env.occurred_at, e.closes_at, text.title, text.body,
                   text.title_en, text.body_en)
        tx.execute(ballot_invitations_sql(s), env.event_id, text.title, text.body, text.title_en, text.body_en,
                   e.ballot_id, env.occurred_at, path, prefix_like(path), env.occurred_at)
        if msgs.channels:
            tx.execute(deliveries_for_source_sql(s), env.event_id, "ballot_opened", env.occurred_at,
                       msgs.channels)

    async def ballot_closed(tx: ProjectionTx, env: Envelope, e: DomainEvent) -> None:
        assert isinstance(e, w.BallotClosed)
        tx.execute(f"DELETE FROM {s}.ballots WHERE ballot_id = $1", e.ballot_id)

    return {
        "WishRaised": raised,
        "WishAccepted": touched,
        "WishDeclined": touched,
        "WishStarted": touched,
        "WishWithdrawn": touched,
        "WishConfirmed": touched,
        "WishReleasedToPool": tell_youth("wish_released"),
        "PoolWishClaimed": tell_youth("wish_claimed"),
        "WishFulfilled": tell_youth("wish_fulfilled"),
        "WishExpired": tell_youth("wish_expired"),
        "VoicePosted": voice_posted,
        "VoiceAnswered": voice_answered,
        "BallotOpened": ballot_opened,
        "BallotClosed": ballot_closed,
    }


def read_model_feeds(s: str, channels: Sequence[str] = ()) -> dict[str, tuple[ContractRegistry, dict[str, Handler]]]:
    """Notify's consumers of the contacts and wishes streams: name → (contracts, handlers). The
    live consumers and a rebuild of their read model (``adapters.rebuild``) are built from this.
    (Scoring's circulars only queue fan-out jobs: notify's own work, not rebuilt.)"""
    return {"contacts": (c.CONTACTS, contacts_handlers(s, channels)),
            "wishes": (w.WISHES, wishes_handlers(s, channels))}


def scoring_handlers(s: str) -> dict[str, Handler]:
    async def circular(tx: ProjectionTx, env: Envelope, e: DomainEvent) -> None:
        # Only the job here: 10^5 inbox rows do not belong in the consumer's batch transaction.
        assert isinstance(e, sc.CircularPublished)
        text = template("circular").render_both(title=e.title, number=e.number, period_start=e.period_start,
                                                period_end=e.period_end)
        tx.execute(f"INSERT INTO {s}.fanouts (circular_id, source_event_id, org_path, title, body, title_en, "
                   "body_en, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
                   e.circular_id, env.event_id, e.org_path, text.title, text.body, text.title_en, text.body_en,
                   env.occurred_at)

    return {"CircularPublished": circular}
