"""The reminder scheduler (提醒调度): rules + facts + a clock → reminders, each decided once.

A tick reads the facts, evaluates every rule over ``(last tick, now]`` and records each occasion
under its dedup key ``(rule, recipient, period)`` with ``INSERT … ON CONFLICT DO NOTHING``: two
replicas, or a tick retried after a crash, cannot send a reminder twice. An occasion whose useful
window has passed (the service was down) is recorded as dropped, with the reason, not sent late.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from importlib.resources import files

import asyncpg
import structlog
from tuanlian.notify.adapters.messages import NewMessage, deliveries_sql, insert_sql, message_id_for
from tuanlian.notify.domain.rules import (
    AdminFacts,
    AdminsOf,
    CadreFacts,
    Facts,
    Occasion,
    OrgFacts,
    Rule,
    RuleBook,
    VoiceFacts,
    WishFacts,
    admins_for,
    evaluate,
    load_rules,
)
from tuanlian.notify.domain.templates import template
from tuanlian.shared import league_calendar as cal
from tuanlian.shared.contracts.contacts import ActivityKind, OrgRules
from tuanlian.shared.db import Database

log = structlog.get_logger("tuanlian.notify.scheduler")


def default_rules() -> list[Rule]:
    return load_rules(files("tuanlian.notify.domain").joinpath("rules.yaml").read_text(encoding="utf-8"))


@dataclass
class TickReport:
    sent: int = 0
    dropped: int = 0
    already_decided: int = 0
    notes: list[str] = field(default_factory=list)


class Scheduler:
    def __init__(self, db: Database, schema: str, rules: Sequence[Rule] | None = None,
                 channels: Sequence[str] = ()) -> None:
        self.db, self.s = db, schema
        self.rules = list(rules if rules is not None else default_rules())
        self.channels = list(channels)

    async def tick(self, now: datetime) -> TickReport:
        report = TickReport()
        s = self.s
        async with self.db.transaction() as conn:
            last = await conn.fetchval(f"SELECT last_tick FROM {s}.scheduler_state WHERE name = 'reminders'")
            longest = max((r.window for r in self.rules), default=timedelta(0))
            facts = await self._facts(conn, (last or now - longest) - timedelta(days=100))
            book = await self._book(conn)
            for rule in self.rules:
                since = last if last is not None else now - rule.window
                if since >= now:
                    continue
                ev = evaluate(rule, facts, book, since, now)
                report.notes += ev.notes
                for occasion in ev.occasions:
                    for recipient in self._recipients(occasion, facts.admins):
                        await self._decide(conn, occasion, recipient, now, report)
            await conn.execute(
                f"INSERT INTO {s}.scheduler_state (name, last_tick) VALUES ('reminders', $1) "
                "ON CONFLICT (name) DO UPDATE SET last_tick = GREATEST(scheduler_state.last_tick, $1)", now)
        for note in report.notes:
            log.warning("rule could not be evaluated", note=note)
        if report.sent or report.dropped:
            log.info("reminders decided", sent=report.sent, dropped=report.dropped)
        return report

    @staticmethod
    def _recipients(o: Occasion, admins: list[AdminFacts]) -> list[str]:
        return admins_for(o.recipient.org_path, admins) if isinstance(o.recipient, AdminsOf) else [o.recipient]

    async def _decide(self, conn: asyncpg.Connection, o: Occasion, recipient: str, now: datetime,
                      report: TickReport) -> None:
        s = self.s
        late = now > o.window_ends_at
        source = message_id_for(f"reminder/{o.rule}/{o.period}", recipient, o.template)
        reason = (f"missed: due {o.due_at.isoformat()}, useful until {o.window_ends_at.isoformat()}, "
                  f"scheduler ran at {now.isoformat()}") if late else None
        inserted = await conn.fetchval(
            f"INSERT INTO {s}.reminders (rule, recipient_id, period, due_at, window_ends_at, outcome, reason, "
            "message_id, decided_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) "
            "ON CONFLICT DO NOTHING RETURNING true",
            o.rule, recipient, o.period, o.due_at, o.window_ends_at, "dropped" if late else "sent", reason,
            None if late else source, now)
        if not inserted:
            report.already_decided += 1
            return
        if late:
            report.dropped += 1
            log.info("reminder dropped", rule=o.rule, period=o.period, reason=reason)
            return
        text = template(o.template).render_both(**o.values)  # the recipient's language is picked on insert
        m = NewMessage(source, recipient, o.template, text.title, text.body, o.period, source, now,
                       title_en=text.title_en, body_en=text.body_en)
        await conn.execute(insert_sql(s), *m.args())
        if self.channels:
            await conn.execute(deliveries_sql(s), m.message_id, recipient, now, self.channels)
        report.sent += 1

    async def _book(self, conn: asyncpg.Connection) -> RuleBook:
        rows = await conn.fetch(f"SELECT org_path, effective_from, rules FROM {self.s}.org_rules")
        return RuleBook(tuple((r["org_path"], r["effective_from"], OrgRules.model_validate(r["rules"]))
                              for r in rows))

    async def _facts(self, conn: asyncpg.Connection, since: datetime) -> Facts:
        s = self.s
        from_day: date = cal.local_date(since)
        cadres = await conn.fetch(
            f"SELECT r.subject_id, r.org_path, coalesce(r.cadre_kind, 'part_time') AS kind, "
            "r.in_leadership_organ, r.joined_at, o.last_online_at, "
            f"(SELECT count(*) FROM {s}.links l WHERE l.cadre_id = r.subject_id AND l.accepted) AS links, "
            "act.days, act.kinds "
            f"FROM {s}.recipients r LEFT JOIN {s}.online_contact o ON o.cadre_id = r.subject_id "
            f"LEFT JOIN LATERAL (SELECT array_agg(a.occurred_on) AS days, array_agg(a.kind) AS kinds "
            f"FROM {s}.activities a WHERE a.cadre_id = r.subject_id AND (a.kind IS NOT NULL OR a.five_ones) "
            "AND a.occurred_on >= $1) act ON true "
            "WHERE r.role = 'cadre' AND r.active AND r.org_path IS NOT NULL", from_day)
        admins = await conn.fetch(
            "SELECT a.subject_id, a.org_path, m.*, "
            f"(SELECT array_agg(w.period) FROM {s}.work_reports w WHERE w.org_path = a.org_path "
            "AND w.status = 'submitted') AS reports_sent "
            f"FROM {s}.recipients a CROSS JOIN LATERAL (SELECT "
            "count(*) FILTER (WHERE r.role = 'cadre' AND r.active AND NOT r.has_account) AS cadres_missing, "
            "count(*) FILTER (WHERE r.role = 'cadre' AND r.active AND NOT r.logged_in) AS cadres_away, "
            "count(*) FILTER (WHERE r.role = 'youth' AND NOT r.has_account) AS youths_missing, "
            "count(*) FILTER (WHERE r.role = 'youth' AND NOT r.logged_in) AS youths_away "
            f"FROM {s}.recipients r WHERE r.org_path = a.org_path OR r.org_path LIKE a.org_path || '/%') m "
            "WHERE a.role = 'org_admin' AND a.active AND a.org_path IS NOT NULL")
        posts = await conn.fetch(
            f"SELECT post_id, cadre_id, org_path, posted_at, due_at FROM {s}.voice_posts WHERE NOT answered")
        wishes = await conn.fetch(f"SELECT wish_id, cadre_id, raised_at FROM {s}.wishes WHERE NOT touched")
        organs = await conn.fetch(
            f"SELECT o.org_id, o.org_path, o.name, (SELECT array_agg(a.occurred_on) FROM {s}.activities a "
            "WHERE a.org_path = o.org_path AND a.collective_five_ones AND a.occurred_on >= $1) AS days "
            f"FROM {s}.orgs o WHERE o.leadership_organ AND NOT o.closed", from_day)
        return Facts(
            cadres=[CadreFacts(r["subject_id"], r["org_path"], r["kind"], r["in_leadership_organ"],
                               r["joined_at"], r["links"], r["last_online_at"],
                               tuple((d, ActivityKind(k) if k else None)
                                     for d, k in zip(r["days"] or (), r["kinds"] or (), strict=True)))
                    for r in cadres],
            admins=[AdminFacts(r["subject_id"], r["org_path"], r["cadres_missing"], r["youths_missing"],
                               r["cadres_away"], r["youths_away"],
                               frozenset(r["reports_sent"] or ()))
                    for r in admins],
            open_voice_posts=[VoiceFacts(r["post_id"], r["cadre_id"], r["org_path"], r["posted_at"], r["due_at"])
                              for r in posts],
            untouched_wishes=[WishFacts(r["wish_id"], r["cadre_id"], r["raised_at"]) for r in wishes],
            leadership_organs=[OrgFacts(r["org_id"], r["org_path"], r["name"], tuple(r["days"] or ()))
                               for r in organs],
        )
