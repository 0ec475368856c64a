"""Use cases on the read side: a cadre's activity level and compliance, a subtree's circular."""

from __future__ import annotations

import math
from dataclasses import asdict
from datetime import date, datetime, timedelta
from typing import Any

import asyncpg
from tuanlian.scoring.adapters import queries as q
from tuanlian.scoring.domain import compliance as cp
from tuanlian.scoring.domain import scoring as sc
from tuanlian.scoring.domain.activity import ActivityInputs, activity_level
from tuanlian.scoring.domain.periods import CHINA, Period, PeriodKind, period_of
from tuanlian.scoring.domain.ranking import points_per_cadre, rank, rank_change
from tuanlian.scoring.domain.rules import DEFAULT_RULESET, UnknownRuleSet, ruleset
from tuanlian.scoring.domain.signals import LoggedInteraction, Signal, YouthWord, detect
from tuanlian.shared.auth import path_covers
from tuanlian.shared.contracts.contacts import OrgRules
from tuanlian.shared.errors import NotFound


async def org_row(conn: asyncpg.Connection, p: str, org_id: str) -> dict[str, Any]:
    """The org as the projection holds it now; NotFound if it has none."""
    row = await conn.fetchrow(f"SELECT * FROM {p}.orgs WHERE org_id = $1", org_id)
    if row is None:
        raise NotFound(f"org {org_id} not found")
    return dict(row)


async def rules_at(conn: asyncpg.Connection, p: str, org_path: str, day: date,
                   as_of: datetime | None = None) -> OrgRules:
    """The org's rules in force on ``day``; with ``as_of``, as scoring knew them then."""
    recs = await q.rules_records(conn, p, org_path, as_of)
    parsed = [sc.RulesRecord(r["org_path"], date.fromisoformat(r["effective_from"]),
                             OrgRules.model_validate(r["rules"])) for r in recs]
    return sc.effective_rules(parsed, org_path, day)


def _instant(d: date) -> datetime:
    return datetime.combine(d, datetime.min.time(), tzinfo=CHINA)


async def activity_levels(conn: asyncpg.Connection, p: str, cadres: list[dict[str, Any]], day: date,
                          as_of: datetime | None = None, *, links_on_day: bool = True) -> dict[str, float]:
    """活跃度 of each cadre on ``day``: the youths linked then (``links_on_day``; else as known at
    ``as_of``, as circulars published before the twentieth session computed it)."""
    ids = [c["cadre_id"] for c in cadres]
    if not ids:
        return {}
    rs_cache: dict[str, Any] = {}
    rules_of: dict[str, OrgRules] = {}  # by org path: a circular's cadres share a few hundred orgs
    out: dict[str, float] = {}
    linked = await q.linked_as_of(conn, p, ids, as_of, on=day if links_on_day else None)
    for c in cadres:
        rules = rules_of.get(c["org_path"])
        if rules is None:
            rules = rules_of[c["org_path"]] = await rules_at(conn, p, c["org_path"], day, as_of)
        try:
            rs = rs_cache.setdefault(rules.scoring_ruleset, ruleset(rules.scoring_ruleset))
        except UnknownRuleSet:
            rs = ruleset(DEFAULT_RULESET)
        w = rs.activity_level
        window = await q.window_distinct(conn, p, [c["cadre_id"]], day, w.window_days, as_of)
        five_period, due = sc.five_ones_period(rules, sc.five_ones_rule_key(c["kind"], False), day)
        start = day - timedelta(days=w.window_days - 1)
        sums = (await q.fact_sums(conn, p, [c["cadre_id"]], start, day, as_of)).get(c["cadre_id"], {})
        five = (await q.fact_sums(conn, p, [c["cadre_id"]], five_period.start, day, as_of)).get(c["cadre_id"], {})
        youths, days = window.get(c["cadre_id"], (0, 0))
        out[c["cadre_id"]] = activity_level(w, ActivityInputs(
            linked_youths=linked.get(c["cadre_id"], 0), youths_contacted_in_window=youths,
            five_ones_done=five.get("five_ones", 0), five_ones_due=due,
            voice_posts=sums.get("voice_posted", 0), voice_in_time=sums.get("voice_in_time", 0),
            wishes_due=sums.get("wish_raised", 0), wishes_in_time=sums.get("wish_fulfilled", 0),
            online_days_in_window=days,
        ))
    return out


async def compliance(conn: asyncpg.Connection, p: str, cadre: dict[str, Any], period: Period,
                     today: date) -> cp.Compliance:
    """达标 of one cadre for a period, against the org's rules in force at its end, as things stood
    on the day it is judged at: today while it is open, its last day once it has closed (what
    happened after — links made or ended, contacts logged — is not counted into it; what it had
    not met by then is missed, unless its window was still open). Everything is read from the
    facts up to that day: the youths linked, the last online contact, and each window (the five
    ones' period, the quarter, the year) from its start, and the groups covered."""
    at = min(period.end, today)
    closed = at < today
    rules = await rules_at(conn, p, cadre["org_path"], at)
    cid = cadre["cadre_id"]
    linked = (await q.linked_as_of(conn, p, [cid], None, on=at)).get(cid, 0)
    checks = [cp.state_check("contact_quota", linked,
                             sc.contact_quota(rules, cadre["kind"], cadre["in_leadership_organ"]))]
    coverage = {"university": rules.group_coverage_school,
                "department": rules.group_coverage_department}.get(cadre["org_type"] or "")
    if coverage is not None:
        groups = await q.groups_on(conn, p, cid, at)
        for name, typ, need in (("sub_committees", "department", coverage.sub_committees),
                                ("branches", "branch", coverage.branches),
                                ("dorm_groups", "dorm_group", coverage.dorm_groups)):
            if need:
                checks.append(cp.state_check(f"group_coverage_{name}", groups.get(typ, 0), need))

    async def done(metric: str, window: Period) -> int:
        return (await q.fact_sums(conn, p, [cid], window.start, at)).get(cid, {}).get(metric, 0)

    five_period, due = sc.five_ones_period(rules, sc.five_ones_rule_key(cadre["kind"], False), at)
    checks.append(cp.progress_check("five_ones", await done("five_ones", five_period), due, five_period, at))
    last_online = await q.last_online_on(conn, p, cid, at)
    checks.append(cp.silence_check((at - last_online).days if last_online else None,
                                   rules.rhythm.online_silence_days))
    if rules.rhythm.activity_each_quarter:
        quarter = period_of(at, PeriodKind.quarter)
        checks.append(cp.progress_check("activity_each_quarter", await done("activity", quarter), 1, quarter, at))
    if rules.rhythm.face_to_face_each_year:
        year = period_of(at, PeriodKind.year)
        checks.append(cp.progress_check("face_to_face_each_year", await done("face_to_face", year), 1, year, at))
    if rules.organ_duties.grassroots_day_each_week and cadre["in_leadership_organ"] and cadre["org_type"] == "county":
        # "4+1" is asked of the county committees' organ cadres (002 二.3: 县（市、区）团委机关干部).
        weeks = await q.weeks_with(conn, p, cid, "grassroots_day", period.start, at)
        checks.append(cp.weekly_check("grassroots_day_each_week", weeks, period, at))
    judged = cp.Compliance(cid, period, checks)
    return cp.close_period(judged) if closed else judged


async def organ_compliance(conn: asyncpg.Connection, p: str, org: dict[str, Any], period: Period,
                           today: date) -> cp.Compliance:
    """A county committee's organ duties (002 二.2 "8+4" and 二.4 专题开放日) for a period, judged as
    a cadre's compliance is (as things stood on its last day once it has closed): the youths its
    open days brought in over the quarter, and, by each quarter's end, that quarter's share of
    the year's postings of its organ cadres (one in four by March, all by December). No checks
    unless the org is a county-level leadership organ whose rules ask them."""
    at = min(period.end, today)
    checks: list[cp.Check] = []
    if org["is_leadership_organ"] and org["org_type"] == "county":
        duties = (await rules_at(conn, p, org["org_path"], at)).organ_duties
        quarter = period_of(at, PeriodKind.quarter)
        oid = org["org_id"]
        if duties.open_day_youths_each_quarter:
            youths = (await q.fact_sums(conn, p, [oid], quarter.start, at)).get(oid, {}).get("open_day_youths", 0)
            checks.append(cp.progress_check("open_day_youths_each_quarter", youths,
                                            duties.open_day_youths_each_quarter, quarter, at))
        if duties.postings_each_year:
            organ = [c for c in await q.cadres_in(conn, p, org["org_path"], joined_by=at)
                     if c["active"] and c["in_leadership_organ"] and c["org_path"] == org["org_path"]]
            year = period_of(at, PeriodKind.year)
            sums = await q.fact_sums(conn, p, [c["cadre_id"] for c in organ], year.start, at)
            posted = sum(1 for c in organ if sums.get(c["cadre_id"], {}).get("posting", 0) > 0)
            batches = (quarter.start.month - 1) // 3 + 1  # the batches due by this quarter's end
            checks.append(cp.progress_check("postings_each_year", posted, math.ceil(len(organ) * batches / 4),
                                            quarter, at))
    judged = cp.Compliance(org["org_id"], period, checks)
    return cp.close_period(judged) if at < today else judged


def compliance_json(c: cp.Compliance, subject: str = "cadre_id") -> dict[str, Any]:
    """``subject`` names whom it judges: a cadre, or an org (:func:`organ_compliance`)."""
    return {subject: c.cadre_id, "period": c.period.key, "period_kind": c.period.kind.value,
            "verdict": c.verdict.value, "checks": [asdict(k) for k in c.checks]}


async def signals_for(conn: asyncpg.Connection, p: str, ids: list[str], period: Period,
                      as_of: datetime | None = None,
                      sums: dict[str, dict[str, int]] | None = None) -> dict[str, list[Signal]]:
    """Each cadre's signals over a period, from what scoring knew at ``as_of``: the interactions
    applied by then, the youths' word as it stood then (their facts: ``sums``, the period's
    ``fact_sums`` as of then, when the caller has them)."""
    rows = await q.interactions_of(conn, p, ids, period, as_of)
    flags = await q.fabricated_flags(conn, p, ids, period, as_of)
    if sums is None:
        sums = await q.fact_sums(conn, p, ids, period.start, period.end, as_of)
    by: dict[str, list[LoggedInteraction]] = {i: [] for i in ids}
    for r in rows:
        by[r["cadre_id"]].append(LoggedInteraction(r["occurred_at"], r["recorded_at"], r["summary_hash"]))

    def word(i: str) -> YouthWord:
        s = sums.get(i, {})
        return YouthWord(s.get("youth_contact", 0), s.get("confirmed", 0), s.get("disputed", 0))

    return {i: detect(by[i], word(i), flags.get(i, 0)) for i in ids}


def _pct(a: float, b: float) -> float | None:
    return round(100 * a / b, 1) if b else None


async def _scoped(conn: asyncpg.Connection, p: str, org: dict[str, Any], period: Period, as_of: datetime | None,
                  joined_by_end: bool) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, int]]:
    """A circular's orgs (the children of ``org`` then), its cadres and their points over ``period``."""
    scopes = await q.org_children(conn, p, org["org_path"], as_of) or [org]
    cadres = await q.cadres_in(conn, p, org["org_path"], as_of, joined_by=period.end if joined_by_end else None)
    start, end = _instant(period.start), _instant(period.end + timedelta(days=1))
    points = await q.ledger_points_as_of(conn, p, org_path=org["org_path"], start=start, end=end, as_of=as_of)
    return scopes, cadres, points


def _members(scope: dict[str, Any], cadres: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [c for c in cadres if path_covers(scope["org_path"], c["org_path"])]


async def _ranks(conn: asyncpg.Connection, p: str, org: dict[str, Any], period: Period, as_of: datetime | None,
                 joined_by_end: bool) -> dict[str, int]:
    """Each org's rank in ``period``, as its circular would have it (for the rank change): only
    what the rank needs, not the rest of a circular's numbers."""
    scopes, cadres, points = await _scoped(conn, p, org, period, as_of, joined_by_end)
    scored = []
    for scope in scopes:
        mine = _members(scope, cadres)
        scored.append((scope["org_id"], points_per_cadre(sum(points.get(c["cadre_id"], 0) for c in mine), len(mine))))
    return {r.key: r.rank for r in rank(scored)}


def _joined(run: list[dict[str, Any]], taken: dict[str, set[str]], owners: list[dict[str, Any]]) -> int:
    """How many of the campaigns ``run`` some cadre or org of ``owners`` recorded activities for."""
    ids = {o.get("cadre_id") or o["org_id"] for o in owners}
    done = set().union(*(taken.get(i, set()) for i in ids))
    return sum(1 for c in run if c["campaign_id"] in done)


def _five_ones_due(rules: OrgRules, key: str, period: Period) -> int:
    """Five-ones owed over ``period``: the rule's count prorated from its own period (a
    quarter's five over a month: 2), rounded up."""
    fp, due = sc.five_ones_period(rules, key, period.end)
    return math.ceil(due * period.days / fp.days)


async def circular_rows(conn: asyncpg.Connection, p: str, org: dict[str, Any], period: Period,
                        as_of: datetime | None, *, links_at_end: bool = True,
                        joined_by_end: bool = True, org_work: bool = True,
                        campaigns: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """One row per child org of ``org`` (通报 ranks organisations), numbers over ``period``: the
    children there were as of ``as_of``, under their names then; the youths linked at the
    period's end (``links_at_end``; the circulars published before the twentieth session counted
    those linked when they were computed, and are recomputed so); the cadres who had joined by
    its end (``joined_by_end``; before the twenty-first session, every cadre there when it was
    computed, one who joined after the period's end with nothing done in it included); with
    ``org_work`` (since the twenty-fifth session), what 000 五.1 ranks on beside the cadres'
    points: the leadership organs' collective five-ones (领导机关"五个一"工作机制), done against owed
    by the organs in each child's subtree, and the campaigns run from above that its cadres or
    orgs recorded activities for (全团集中活动落实情况; ``campaigns``: those run, if the caller has
    read them already)."""
    scopes, cadres, points = await _scoped(conn, p, org, period, as_of, joined_by_end)
    ids = [c["cadre_id"] for c in cadres]
    orgs = await q.orgs_in(conn, p, org["org_path"], as_of) if org_work else []
    organs = [o for o in orgs if o["is_leadership_organ"]]
    sums = await q.fact_sums(conn, p, ids + [o["org_id"] for o in organs], period.start, period.end, as_of)
    if campaigns is None:
        campaigns = await q.campaigns_run(conn, p, org["org_path"], period.start, period.end, as_of) if org_work else []
    taken = (await q.campaigns_taken(conn, p, ids + [o["org_id"] for o in orgs], period.start, period.end, as_of)
             if campaigns else {})
    linked = await q.linked_as_of(conn, p, ids, as_of, on=period.end if links_at_end else None)
    levels = await activity_levels(conn, p, cadres, period.end, as_of, links_on_day=links_at_end)
    signals = await signals_for(conn, p, ids, period, as_of, sums)
    ballots = await conn.fetch(
        f"SELECT cadre_id, satisfied, basically_satisfied, unsatisfied, reelection_flag FROM {p}.ballots "
        "WHERE cadre_id = ANY($1::text[]) AND year = $2 AND published "
        "AND ($3::timestamptz IS NULL OR known_at IS NULL OR known_at <= $3)", ids, period.end.year, as_of)
    rows = []
    for scope in scopes:
        mine = _members(scope, cadres)
        n = len(mine)
        rules = await rules_at(conn, p, scope["org_path"], period.end, as_of)
        meeting, done_five, due_five = 0, 0, 0
        for c in mine:
            if linked.get(c["cadre_id"], 0) >= sc.contact_quota(rules, c["kind"], c["in_leadership_organ"]):
                meeting += 1
            due_p = _five_ones_due(rules, sc.five_ones_rule_key(c["kind"], False), period)
            due_five += due_p
            done_five += min(sums.get(c["cadre_id"], {}).get("five_ones", 0), due_p)
        done_collective, due_collective = 0, 0
        for o in (mine_organs := _members(scope, organs)):
            due_p = _five_ones_due(await rules_at(conn, p, o["org_path"], period.end, as_of),
                                   sc.five_ones_rule_key(None, True), period)
            due_collective += due_p
            done_collective += min(sums.get(o["org_id"], {}).get("five_ones", 0), due_p)

        def total(metric: str, group: list[dict[str, Any]] = mine) -> int:
            return sum(sums.get(c["cadre_id"], {}).get(metric, 0) for c in group)

        mine_ids = {c["cadre_id"] for c in mine}
        my_ballots = [b for b in ballots if b["cadre_id"] in mine_ids]
        pts = sum(points.get(c["cadre_id"], 0) for c in mine)
        rows.append({
            "org_id": scope["org_id"], "org_path": scope["org_path"], "org": scope["name"],
            "cadres": n, "cadres_meeting_quota_pct": _pct(meeting, n),
            "youths_linked": sum(linked.get(c["cadre_id"], 0) for c in mine),
            "interactions_per_cadre": round((total("online") + total("face_to_face")) / n, 2) if n else None,
            "five_ones_completion_pct": _pct(done_five, due_five),
            **({"leadership_organs": len(mine_organs),
                "collective_five_ones_pct": _pct(done_collective, due_collective),
                "campaigns": {"run": len(campaigns), "joined": _joined(campaigns, taken, [*mine, *_members(scope, orgs)])}}
               if org_work else {}),
            "wishes_fulfilled": total("wish_fulfilled"), "wishes_raised": total("wish_raised"),
            "voice_answered_in_time_pct": _pct(total("voice_in_time"), total("voice_posted")),
            "average_rating": round(total("rating_sum") / total("rating_count"), 2) if total("rating_count") else None,
            "satisfaction": {"ballots": len(my_ballots),
                             "satisfied": sum(b["satisfied"] or 0 for b in my_ballots),
                             "basically_satisfied": sum(b["basically_satisfied"] or 0 for b in my_ballots),
                             "unsatisfied": sum(b["unsatisfied"] or 0 for b in my_ballots),
                             "reelection_flags": sum(1 for b in my_ballots if b["reelection_flag"])},
            "activity_level": round(sum(levels.get(c["cadre_id"], 0) for c in mine) / n, 1) if n else None,
            "points": pts, "points_per_cadre": points_per_cadre(pts, n),
            "signals": {code: sum(1 for c in mine for s in signals.get(c["cadre_id"], []) if s.code == code)
                        for code in sorted({s.code for c in mine for s in signals.get(c["cadre_id"], [])})},
        })
    for r in rank([(row["org_id"], row["points_per_cadre"]) for row in rows]):
        next(row for row in rows if row["org_id"] == r.key)["rank"] = r.rank
    return sorted(rows, key=lambda row: (row["rank"], row["org_path"]))


async def circular_document(conn: asyncpg.Connection, p: str, org: dict[str, Any], period: Period,
                            as_of: datetime | None, *, links_at_end: bool = True,
                            joined_by_end: bool = True, org_work: bool = True) -> dict[str, Any]:
    # The org where and as named then: a circular recomputed after a rename or a move is the one
    # that was published.
    then = await q.org_as_of(conn, p, org["org_id"], as_of) if as_of is not None else None
    org = {**org, **then} if then else org
    run = await q.campaigns_run(conn, p, org["org_path"], period.start, period.end, as_of) if org_work else []
    rows = await circular_rows(conn, p, org, period, as_of, links_at_end=links_at_end, joined_by_end=joined_by_end,
                               org_work=org_work, campaigns=run)
    prev_rank = await _ranks(conn, p, org, period.previous(), as_of, joined_by_end)
    for r in rows:
        r["rank_change"] = rank_change(r["rank"], prev_rank.get(r["org_id"]))
    return {"org_id": org["org_id"], "org_path": org["org_path"], "org": org["name"],
            "period_kind": period.kind.value, "period": period.key,
            "period_start": period.start.isoformat(), "period_end": period.end.isoformat(), "rows": rows,
            **({"youths_linked_at": "period_end"} if links_at_end else {}),
            **({"cadres_joined_by": "period_end"} if joined_by_end else {}),
            **({"org_work": "organs_and_campaigns", "campaigns_run": run} if org_work else {})}


async def org_evaluations(conn: asyncpg.Connection, p: str, service_schema: str, org: dict[str, Any],
                          period: Period, cadres: list[tuple[str, bool]], today: date) -> list[dict[str, Any]]:
    """全面评估 of each org directly under ``org`` at mid-year or year-end (000 五.2: "根据系统数据、
    季度通报、日常检查等情况…对各市属团组织进行全面评估"): its numbers over the period as a circular
    gives them (spot checks found untrue among its signals), how its cadres fared in this
    assessment (``cadres``: each assessed cadre's org path and whether they passed), its rank in
    each monthly or quarterly circular ``org`` published within the period (the latest of each),
    and, for a county committee, its organ's duties (:func:`organ_compliance`). Evidence for the
    admins who grade; Tuanlian sets no grade of its own."""
    rows = [r for r in await circular_rows(conn, p, org, period, None) if r["org_id"] != org["org_id"]]
    if not rows:
        return []  # nothing under it (a circular of such an org has the org itself as its row)
    published = await conn.fetch(
        f"SELECT DISTINCT ON (period_kind, period_key) number, period_kind, period_key, period_start, document "
        f"FROM {service_schema}.circulars WHERE org_id = $1 AND period_kind IN ('month', 'quarter') "
        "AND period_start >= $2 AND period_end <= $3 ORDER BY period_kind, period_key, published_at DESC",
        org["org_id"], period.start, period.end)
    published = sorted(published, key=lambda r: (r["period_start"], r["period_kind"]))
    children = {r["org_id"]: dict(r) for r in await conn.fetch(
        f"SELECT * FROM {p}.orgs WHERE org_id = ANY($1::text[])", [row["org_id"] for row in rows])}
    out = []
    for row in rows:
        mine = [passed for path, passed in cadres if path_covers(row["org_path"], path)]
        ranks = [{"circular": c["number"], "period_kind": c["period_kind"], "period": c["period_key"],
                  "rank": next((r["rank"] for r in c["document"]["rows"] if r["org_id"] == row["org_id"]), None),
                  "orgs_ranked": len(c["document"]["rows"])} for c in published]
        child = children.get(row["org_id"])
        duties = await organ_compliance(conn, p, child, period, today) if child else None
        out.append({**row, "cadres_assessed": len(mine), "cadres_passed": sum(mine),
                    "cadres_passed_pct": _pct(sum(mine), len(mine)), "circulars": ranks,
                    "organ_duties": [asdict(k) for k in duties.checks] if duties else []})
    return out
