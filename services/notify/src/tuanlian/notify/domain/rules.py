"""Reminder rules (提醒规则) and when they fall due. Pure: facts and a clock in, reminders out.

A rule yields *occasions* — (rule, recipient, period) with the moment it falls due and the end of
its useful window. The scheduler records each occasion once (its dedup key), sends it if still
inside the window, and records it as dropped otherwise.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

import yaml
from tuanlian.notify.domain.templates import TEMPLATES
from tuanlian.shared import league_calendar as cal
from tuanlian.shared.auth import path_covers
from tuanlian.shared.contracts.contacts import AccountsCounted, ActivityKind, ContactQuotas, OrgRules


@dataclass(frozen=True)
class Rule:
    key: str
    kind: str
    template: str
    window: timedelta
    at: time = time(9, 0)
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AdminsOf:
    """The org admins (管理员) responsible for ``org_path``: the nearest level that has any."""

    org_path: str


@dataclass(frozen=True)
class Occasion:
    rule: str
    recipient: str | AdminsOf
    period: str
    due_at: datetime
    window_ends_at: datetime
    template: str
    values: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CadreFacts:
    cadre_id: str
    org_path: str
    kind: str
    in_leadership_organ: bool
    joined_at: datetime
    accepted_links: int = 0
    last_online_at: datetime | None = None
    # The days and kinds of the cadre's own activities; a kind of None is a row projected before
    # kinds were kept, counted as it was then (one of 000's five).
    activities: tuple[tuple[date, ActivityKind | None], ...] = ()


@dataclass(frozen=True)
class OrgFacts:
    """A leadership organ (团的领导机关) and the days of its collective five-ones activities."""

    org_id: str
    org_path: str
    name: str
    collective_days: tuple[date, ...] = ()


@dataclass(frozen=True)
class AdminFacts:
    admin_id: str
    org_path: str
    cadres_without_account: int = 0
    youths_without_account: int = 0
    cadres_not_logged_in: int = 0  # active cadres of its subtree who have never logged in (账号激活)
    youths_not_logged_in: int = 0
    reports_sent: frozenset[str] = frozenset()  # the keys of the reports its org has sent (not returned)


@dataclass(frozen=True)
class VoiceFacts:
    post_id: str
    cadre_id: str | None
    org_path: str
    posted_at: datetime
    due_at: datetime


@dataclass(frozen=True)
class WishFacts:
    wish_id: str
    cadre_id: str
    raised_at: datetime


@dataclass
class Facts:
    cadres: list[CadreFacts] = field(default_factory=list)
    admins: list[AdminFacts] = field(default_factory=list)
    open_voice_posts: list[VoiceFacts] = field(default_factory=list)
    untouched_wishes: list[WishFacts] = field(default_factory=list)
    leadership_organs: list[OrgFacts] = field(default_factory=list)


@dataclass(frozen=True)
class RuleBook:
    """Every org's rule sets (实施细则); an org without one follows its nearest ancestor."""

    entries: tuple[tuple[str, date, OrgRules], ...] = ()

    def effective(self, org_path: str, on: date) -> OrgRules:
        best: tuple[int, date, OrgRules] | None = None
        for path, since, rules in self.entries:
            if since <= on and path_covers(path, org_path):
                key = (len(path), since)
                if best is None or key > best[:2]:
                    best = (len(path), since, rules)
        return best[2] if best else OrgRules()


@dataclass
class Evaluation:
    occasions: list[Occasion] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def load_rules(text: str) -> list[Rule]:
    """Parse the YAML rule list; a rule naming an unknown kind or template is refused."""
    rules: list[Rule] = []
    for raw in yaml.safe_load(text):
        if raw["kind"] not in KINDS:
            raise ValueError(f"rule {raw['key']}: unknown kind {raw['kind']!r}")
        if raw["template"] not in TEMPLATES:
            raise ValueError(f"rule {raw['key']}: unknown template {raw['template']!r}")
        hh, mm = (int(x) for x in str(raw.get("at", "09:00")).split(":"))
        rules.append(
            Rule(raw["key"], raw["kind"], raw["template"], timedelta(hours=float(raw["window_hours"])),
                 time(hh, mm), dict(raw.get("params") or {}))
        )
    return rules


def quota_for(quotas: ContactQuotas, kind: str, in_leadership_organ: bool) -> int:
    """002: full-time, seconded and leadership-organ part-time cadres ≥100, other part-time ≥10."""
    if kind == "full_time":
        return quotas.full_time
    if kind == "seconded":
        return quotas.seconded
    return quotas.part_time_leadership if in_leadership_organ else quotas.part_time


def evaluate(rule: Rule, facts: Facts, book: RuleBook, since: datetime, now: datetime) -> Evaluation:
    """The occasions of ``rule`` falling due in ``(since, now]``."""
    out = Evaluation()
    KINDS[rule.kind](rule, facts, book, since, now, out)
    return out


def _occ(rule: Rule, recipient: str | AdminsOf, key: str, at: datetime, **values: Any) -> Occasion:
    return Occasion(rule.key, recipient, key, at, at + rule.window, rule.template, values)


def _every(first: datetime, step: timedelta, since: datetime, now: datetime) -> Iterator[tuple[int, datetime]]:
    """Occurrences ``first + k·step`` inside ``(since, now]``."""
    if first > now:
        return
    k = 0 if first > since else int((since - first) / step) + 1
    while (at := first + k * step) <= now:
        if at > since:
            yield k, at
        k += 1


def _contact_quota(rule: Rule, facts: Facts, book: RuleBook, since: datetime, now: datetime,
                   out: Evaluation) -> None:
    after, every = timedelta(days=rule.params["after_days"]), timedelta(days=rule.params["every_days"])
    today = cal.local_date(now)
    for c in facts.cadres:
        quota = quota_for(book.effective(c.org_path, today).contact_quotas, c.kind, c.in_leadership_organ)
        if c.accepted_links >= quota:
            continue
        first = cal.local_at(cal.local_date(c.joined_at + after), rule.at)
        for _k, at in _every(first, every, since, now):
            out.occasions.append(_occ(rule, c.cadre_id, cal.local_date(at).isoformat(), at,
                                      count=c.accepted_links, quota=quota))


def _five_ones(rule: Rule, facts: Facts, book: RuleBook, since: datetime, now: datetime,
               out: Evaluation) -> None:
    offsets = sorted(rule.params["days_before"], reverse=True)
    first_day, last_day = cal.local_date(since), cal.local_date(now) + timedelta(days=max(offsets))
    for c in facts.cadres:
        rules = book.effective(c.org_path, cal.local_date(now))
        frequency = rules.five_ones.get(c.kind)
        if frequency is None or frequency.count == 0:
            continue
        counted = [d for d, kind in c.activities if kind is None or rules.counts_as_five_ones(kind, False)]
        for period in cal.periods_between(frequency.period.value, first_day, last_day):
            done = sum(1 for d in counted if period.start <= d <= period.end)
            if done >= frequency.count:
                continue
            for days in offsets:
                at = cal.local_at(period.end - timedelta(days=days), rule.at)
                if since < at <= now:
                    out.occasions.append(_occ(rule, c.cadre_id, f"{period.label}:-{days}d", at,
                                              period=period.label, days_left=days, done=done,
                                              required=frequency.count))


def _collective_five_ones(rule: Rule, facts: Facts, book: RuleBook, since: datetime, now: datetime,
                          out: Evaluation) -> None:
    """000: leadership organs hold ≥5 collective activities a quarter; their admins are reminded."""
    offsets = sorted(rule.params["days_before"], reverse=True)
    first_day, last_day = cal.local_date(since), cal.local_date(now) + timedelta(days=max(offsets))
    for o in facts.leadership_organs:
        frequency = book.effective(o.org_path, cal.local_date(now)).five_ones.get("leadership_organ")
        if frequency is None or frequency.count == 0:
            continue
        for period in cal.periods_between(frequency.period.value, first_day, last_day):
            done = sum(1 for d in o.collective_days if period.start <= d <= period.end)
            if done >= frequency.count:
                continue
            for days in offsets:
                at = cal.local_at(period.end - timedelta(days=days), rule.at)
                if since < at <= now:
                    out.occasions.append(_occ(rule, AdminsOf(o.org_path), f"{o.org_id}:{period.label}:-{days}d", at,
                                              org=o.name, period=period.label, days_left=days, done=done,
                                              required=frequency.count))


def _online_silence(rule: Rule, facts: Facts, book: RuleBook, since: datetime, now: datetime,
                    out: Evaluation) -> None:
    today = cal.local_date(now)
    for c in facts.cadres:
        if c.accepted_links == 0:
            continue  # nobody to talk to yet: the quota rule speaks instead
        days = book.effective(c.org_path, today).rhythm.online_silence_days
        base = c.last_online_at or c.joined_at
        step = timedelta(days=days)
        for k, at in _every(base + step, step, since, now):
            out.occasions.append(_occ(rule, c.cadre_id, f"{base.isoformat()}:{k}", at, days=days * (k + 1)))


def _voice(rule: Rule, facts: Facts, book: RuleBook, since: datetime, now: datetime,
           out: Evaluation) -> None:
    multiple = rule.params["limit_multiple"]
    for p in facts.open_voice_posts:
        at = p.posted_at + (p.due_at - p.posted_at) * multiple
        if since < at <= now:
            who: str | AdminsOf = (
                p.cadre_id if rule.params["audience"] == "cadre" and p.cadre_id else AdminsOf(p.org_path)
            )
            out.occasions.append(_occ(rule, who, p.post_id, at))


def _wish(rule: Rule, facts: Facts, book: RuleBook, since: datetime, now: datetime,
          out: Evaluation) -> None:
    days = rule.params["days"]
    for w in facts.untouched_wishes:
        at = w.raised_at + timedelta(days=days)
        if since < at <= now:
            out.occasions.append(_occ(rule, w.cadre_id, w.wish_id, at, days=days))


def _years(since: datetime, now: datetime, ahead: int) -> range:
    return range(cal.local_date(since).year, (cal.local_date(now) + timedelta(days=ahead)).year + 1)


def _reports(rule: Rule, facts: Facts, book: RuleBook, since: datetime, now: datetime,
             out: Evaluation) -> None:
    offsets = rule.params["days_before"]
    for a in facts.admins:
        for year in _years(since, now, max(offsets)):
            rules = book.effective(a.org_path, cal.rules_day(year))
            for key in cal.report_keys(year):
                if key in a.reports_sent:
                    continue  # in already: nothing to remind of
                try:
                    owed = cal.report_owed(rules, key)
                except cal.CalendarNotCovered as exc:
                    # Only this report goes unreminded: the others' dates do not need the holidays.
                    out.notes.append(f"{rule.key}: {a.org_path}: {exc}")
                    continue
                if owed is None:
                    continue
                for days in offsets:
                    at = cal.local_at(owed.due - timedelta(days=days), rule.at)
                    if since < at <= now:
                        out.occasions.append(_occ(rule, a.admin_id, f"{key}:-{days}d", at, report=owed.name,
                                                  report_en=owed.name_en, due=owed.due.isoformat(), days_left=days))


def _rollout(rule: Rule, facts: Facts, book: RuleBook, since: datetime, now: datetime,
             out: Evaluation) -> None:
    offsets = rule.params["days_before"]
    for a in facts.admins:
        for year in _years(since, now, max(offsets)):
            reports = book.effective(a.org_path, cal.rules_day(year)).reports
            if reports.accounts_counted is AccountsCounted.issued:
                step = {"step": "开通", "step_en": "issued"}
                cadres, youths = a.cadres_without_account, a.youths_without_account
            else:
                step = {"step": "登录使用", "step_en": "in use (logged in)"}
                cadres, youths = a.cadres_not_logged_in, a.youths_not_logged_in
            targets = [("cadres", reports.cadre_accounts_by, cadres, "团干部", "Cadre"),
                       ("youths", reports.youth_accounts_by, youths, "青年", "Youth")]
            for who, mm_dd, missing, zh, en in targets:
                if not mm_dd or missing == 0:
                    continue
                due = cal.month_day(year, mm_dd)
                for days in offsets:
                    at = cal.local_at(due - timedelta(days=days), rule.at)
                    if since < at <= now:
                        out.occasions.append(_occ(rule, a.admin_id, f"{year}-{who}:-{days}d", at, who=zh,
                                                  who_en=en, due=due.isoformat(), missing=missing, **step))


KINDS = {
    "contact_quota": _contact_quota,
    "five_ones_due": _five_ones,
    "collective_five_ones_due": _collective_five_ones,
    "online_silence": _online_silence,
    "voice_unanswered": _voice,
    "wish_untouched": _wish,
    "report_due": _reports,
    "account_rollout": _rollout,
}


def admins_for(org_path: str, admins: Sequence[AdminFacts]) -> list[str]:
    """The admins of the nearest org at or above ``org_path`` that has any (逐级上溯)."""
    covering = [a for a in admins if path_covers(a.org_path, org_path)]
    if not covering:
        return []
    nearest = max(len(a.org_path) for a in covering)
    return sorted(a.admin_id for a in covering if len(a.org_path) == nearest)
