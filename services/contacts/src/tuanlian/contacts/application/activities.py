"""Handlers of activities (活动), campaigns (集中活动) with nominations, and spot checks (真实度抽查)."""

from __future__ import annotations

import secrets
from datetime import date, datetime, time
from typing import Any
from uuid import UUID

import structlog
from tuanlian.contacts.adapters.eligibility import latest_assessment
from tuanlian.contacts.application import work_commands as w
from tuanlian.contacts.application.orgs import OrgsService, may_read_org
from tuanlian.contacts.application.work_base import WorkBase
from tuanlian.contacts.domain.activities import Activity, ActivityFacts, Organiser
from tuanlian.contacts.domain.campaigns import Campaign, presets_for
from tuanlian.contacts.domain.eligibility import ensure_may_be_nominated
from tuanlian.contacts.domain.rules import effective_rules
from tuanlian.contacts.domain.spot_checks import SpotCheck
from tuanlian.shared.aggregate import Repository
from tuanlian.shared.auth import Forbidden, Principal, Role
from tuanlian.shared.contracts.contacts import ActivityKind
from tuanlian.shared.errors import IllegalTransition, NotFound, RuleViolation
from tuanlian.shared.events import short_id
from tuanlian.shared.http import require
from tuanlian.shared.league_calendar import SHANGHAI
from tuanlian.shared.league_calendar import today as league_today

log = structlog.get_logger("tuanlian.contacts.work")


class ActivityWork(WorkBase):
    def __post_init__(self) -> None:
        self.activities = Repository(self.base.store, Activity)
        self.campaigns = Repository(self.base.store, Campaign)
        self.checks = Repository(self.base.store, SpotCheck)

    # -- activities ----------------------------------------------------------------------------

    async def _facts(self, conn: Any, cmd: w.RecordActivity | w.CorrectActivity) -> ActivityFacts:
        campaign = await self.campaigns.get(conn, cmd.campaign_id) if cmd.campaign_id else None
        return ActivityFacts(
            cmd.kind, cmd.occurred_on, cmd.youth_ids, cmd.headcount, cmd.description, campaign
        )

    async def _linked(self, conn: Any, organiser: Organiser, youth_ids: list[str]) -> set[str]:
        if organiser.cadre_id is None:
            if youth_ids:
                known = await conn.fetch(
                    f"SELECT youth_id FROM {self.schema}.youths WHERE youth_id = ANY($1::text[])", youth_ids
                )
                missing = sorted(set(youth_ids) - {r["youth_id"] for r in known})
                if missing:
                    raise RuleViolation(f"youths {', '.join(missing)} are not registered", field="youth_ids")
            return set()
        return set(await self.linked_since(conn, organiser.cadre_id, youth_ids))

    async def _organiser(self, conn: Any, who: Principal, cmd: w.RecordActivity) -> Organiser:
        if (cmd.organiser_cadre_id is None) == (cmd.organiser_org_id is None):
            raise RuleViolation(
                "name the organiser: a cadre (organiser_cadre_id) or an org (organiser_org_id)",
                field="organiser_cadre_id",
            )
        if cmd.organiser_cadre_id is not None:
            cadre = await self.base.cadres.get(conn, cmd.organiser_cadre_id)
            self.cadre_or_admin(who, cadre.id, cadre.org_path, "record activities")
            return Organiser.of_cadre(cadre)
        org = await self.base.orgs.get(conn, str(cmd.organiser_org_id))
        require(who, Role.org_admin, org_path=org.path, why="record collective activities")
        return Organiser(org_id=org.id, org_path=org.path, is_leadership_organ=org.is_leadership_organ)

    async def record_activity(
        self, who: Principal, cmd: w.RecordActivity, cid: UUID | None = None, today: date | None = None
    ) -> tuple[Activity, bool]:
        """The activity recorded, and whether it counts toward the organiser's five-ones."""
        async with self.db.transaction() as conn:
            organiser = await self._organiser(conn, who, cmd)
            facts = await self._facts(conn, cmd)
            linked = await self._linked(conn, organiser, cmd.youth_ids)
            activity = Activity.record(short_id(), organiser, facts, linked, today or league_today())
            at = datetime.combine(cmd.occurred_on, time(12), SHANGHAI)
            await self.save(conn, activity, who, organiser.org_path, cid, at, description=cmd.description)
            return activity, await self._counts(conn, organiser.org_path, cmd.kind, cmd.occurred_on)

    async def _counts(self, conn: Any, org_path: str, kind: ActivityKind, day: date) -> bool:
        """Whether it counts toward five-ones under the org's rules in force on its day."""
        chain = (await OrgsService(self.base).chains(conn, [org_path]))[org_path]
        rules, _source = effective_rules(chain, day)
        return rules.counts_as_five_ones(kind, kind.collective_five_ones)

    def _may_change(self, who: Principal, activity: Activity) -> None:
        o = activity.organiser
        assert o is not None
        if o.cadre_id is not None:
            self.cadre_or_admin(who, o.cadre_id, o.org_path, "correct this activity")
        else:
            require(who, Role.org_admin, org_path=o.org_path, why="correct this activity")

    async def correct_activity(
        self,
        who: Principal,
        activity_id: str,
        cmd: w.CorrectActivity,
        cid: UUID | None = None,
        today: date | None = None,
    ) -> Activity:
        async with self.db.transaction() as conn:
            activity = await self.activities.get(conn, activity_id)
            self._may_change(who, activity)
            assert activity.organiser is not None
            facts = await self._facts(conn, cmd)
            linked = await self._linked(conn, activity.organiser, cmd.youth_ids)
            activity.correct(facts, linked, cmd.reason, today or league_today())
            await self.save(
                conn, activity, who, activity.organiser.org_path, cid, description=cmd.description
            )
            return activity

    async def activity(self, who: Principal, activity_id: str) -> dict[str, Any]:
        async with self.db.connection() as conn:
            row = await conn.fetchrow(
                f"SELECT * FROM {self.schema}.activities WHERE activity_id = $1", activity_id
            )
            if row is None:
                raise NotFound(f"activity {activity_id} not found")
            if not (row["organiser_cadre_id"] and self.is_cadre(who, row["organiser_cadre_id"])):
                require(who, Role.org_admin, Role.leader, org_path=row["org_path"], why="see this activity")
            evidence = await conn.fetch(
                f"SELECT evidence_id, content_type, size_bytes, sha256 FROM {self.schema}.evidence "
                "WHERE subject_type = 'activity' AND subject_id = $1",
                activity_id,
            )
        return {**dict(row), "evidence": [dict(e) for e in evidence]}

    # -- campaigns and nominations --------------------------------------------------------------

    async def open_campaign(self, who: Principal, cmd: w.OpenCampaign, cid: UUID | None = None) -> Campaign:
        async with self.db.transaction() as conn:
            org = await self.base.orgs.get(conn, cmd.org_id)
            require(who, Role.org_admin, org_path=org.path, why="open campaigns")
            campaign = Campaign.open(
                short_id(), org, cmd.key, cmd.name, cmd.starts_on, cmd.ends_on, cmd.deadline, cmd.nominations
            )
            await self.save(conn, campaign, who, org.path, cid)
            return campaign

    async def open_presets(
        self, who: Principal, cmd: w.OpenPresetCampaigns, cid: UUID | None = None
    ) -> list[dict[str, Any]]:
        """The seeds' campaigns of a year; ids are stable, so opening a year twice is refused (409)."""
        async with self.db.transaction() as conn:
            org = await self.base.orgs.get(conn, cmd.org_id)
            require(who, Role.org_admin, org_path=org.path, why="open campaigns")
            out = []
            for p in presets_for(cmd.year):
                campaign_id = f"{org.id}.{p.key}.{cmd.year}"
                if await self.campaigns.find(conn, campaign_id) is not None:
                    raise IllegalTransition(f"the {cmd.year} campaigns are already open", current="open")
                c = Campaign.open(campaign_id, org, p.key, p.name, p.starts_on, p.ends_on, p.deadline)
                await self.save(conn, c, who, org.path, cid)
                out.append(
                    {
                        "campaign_id": c.id,
                        "key": p.key,
                        "name": p.name,
                        "starts_on": p.starts_on,
                        "ends_on": p.ends_on,
                        "deadline": p.deadline,
                    }
                )
            return out

    async def campaigns_for(self, who: Principal, org_id: str) -> list[dict[str, Any]]:
        """Campaigns that apply to an org: those opened by it or above it."""
        async with self.db.connection() as conn:
            org = await self.base.orgs.get(conn, org_id)
            may_read_org(who, org.path)
            # starts_with, not LIKE: an org id may hold '_' or '%', which LIKE takes as wildcards.
            rows = await conn.fetch(
                f"SELECT * FROM {self.schema}.campaigns WHERE org_path = $1 OR starts_with($1, org_path || '/') "
                "ORDER BY starts_on",
                org.path,
            )
        return [dict(r) for r in rows]

    async def nominate(
        self,
        who: Principal,
        campaign_id: str,
        cmd: w.Nominate,
        cid: UUID | None = None,
        today: date | None = None,
    ) -> str:
        async with self.db.transaction() as conn:
            campaign = await self.campaigns.get(conn, campaign_id)
            cadre = await self.base.cadres.get(conn, cmd.cadre_id)
            require(who, Role.org_admin, org_path=cadre.org_path, why="nominate cadres")
            if who.role is Role.org_admin and not campaign.applies_to(who.org_path or ""):
                raise Forbidden("this campaign is not run for your organisation")
            by_org = (who.org_path or campaign.org_path).rstrip("/").rsplit("/", 1)[-1]
            nomination_id = short_id()
            ensure_may_be_nominated(cadre.id, await latest_assessment(conn, self.schema, cadre.id))
            campaign.nominate(nomination_id, cadre, by_org, today or league_today())
            await self.save(conn, campaign, who, cadre.org_path, cid)
            return nomination_id

    async def nominations(self, who: Principal, campaign_id: str) -> list[dict[str, Any]]:
        require(who, Role.org_admin, Role.leader, why="see nominations")
        async with self.db.connection() as conn:
            rows = await conn.fetch(
                f"SELECT * FROM {self.schema}.nominations WHERE campaign_id = $1 ORDER BY nominated_at",
                campaign_id,
            )
        # Each admin sees the nominations of their own subtree.
        return [dict(r) for r in rows if who.covers(r["org_path"])]

    # -- 真实度抽查 (spot checks) -----------------------------------------------------------------

    async def draw(self, who: Principal, cmd: w.DrawSpotCheck, cid: UUID | None = None) -> dict[str, Any]:
        if cmd.period_to < cmd.period_from:
            raise RuleViolation("the period ends before it starts", field="period_to")
        async with self.db.transaction() as conn:
            cadre = await self.base.cadres.get(conn, cmd.cadre_id)
            require(who, Role.org_admin, org_path=cadre.org_path, why="draw spot checks")
            start = datetime.combine(cmd.period_from, time.min, SHANGHAI)
            end = datetime.combine(cmd.period_to, time.max, SHANGHAI)
            rows = await conn.fetch(
                f"SELECT 'interaction:' || interaction_id AS item FROM {self.schema}.interactions "
                "WHERE cadre_id = $1 AND occurred_at BETWEEN $2 AND $3 UNION ALL "
                f"SELECT 'activity:' || activity_id FROM {self.schema}.activities "
                "WHERE organiser_cadre_id = $1 AND occurred_on BETWEEN $4 AND $5",
                cadre.id,
                start,
                end,
                cmd.period_from,
                cmd.period_to,
            )
            check = SpotCheck.draw(
                short_id(), cadre, [r["item"] for r in rows], cmd.size, secrets.SystemRandom()
            )
            youths = await self._youths_of(conn, check.items)
            check.reveal(sorted({y for ys in youths.values() for y in ys}), who.actor)
            await self.save(conn, check, who, cadre.org_path, cid)
            phones = {}
            for y in sorted({y for ys in youths.values() for y in ys}):
                phones[y] = (await self.base.vault.reveal(conn, y))["phone"]
        log.info("spot check phones revealed", spot_check_id=check.id, youths=len(phones), to=who.actor)
        return {
            "spot_check_id": check.id,
            "cadre_id": cadre.id,
            "items": [
                {"item": i, "youths": [{"youth_id": y, "phone": phones[y]} for y in youths[i]]}
                for i in check.items
            ],
        }

    async def _youths_of(self, conn: Any, items: list[str]) -> dict[str, list[str]]:
        ids = {
            kind: [i.split(":", 1)[1] for i in items if i.startswith(kind + ":")]
            for kind in ("interaction", "activity")
        }
        rows = await conn.fetch(
            f"SELECT 'interaction:' || interaction_id AS item, youth_ids FROM {self.schema}.interactions "
            "WHERE interaction_id = ANY($1::text[]) UNION ALL "
            f"SELECT 'activity:' || activity_id, youth_ids FROM {self.schema}.activities "
            "WHERE activity_id = ANY($2::text[])",
            ids["interaction"],
            ids["activity"],
        )
        return {r["item"]: list(r["youth_ids"]) for r in rows}

    async def record_outcome(
        self, who: Principal, spot_check_id: str, cmd: w.RecordSpotCheckItem, cid: UUID | None = None
    ) -> SpotCheck:
        async with self.db.transaction() as conn:
            check = await self.checks.get(conn, spot_check_id)
            require(who, Role.org_admin, org_path=check.org_path, why="record spot check outcomes")
            check.record(cmd.item, cmd.outcome)
            await self.save(conn, check, who, check.org_path, cid)
            return check

    async def spot_check(self, who: Principal, spot_check_id: str) -> dict[str, Any]:
        async with self.db.connection() as conn:
            row = await conn.fetchrow(
                f"SELECT * FROM {self.schema}.spot_checks WHERE spot_check_id = $1", spot_check_id
            )
            if row is None:
                raise NotFound(f"spot check {spot_check_id} not found")
            require(who, Role.org_admin, Role.leader, org_path=row["org_path"], why="see spot checks")
            outcomes = await conn.fetch(
                f"SELECT item, outcome FROM {self.schema}.spot_check_items WHERE spot_check_id = $1",
                spot_check_id,
            )
        done = {r["item"]: r["outcome"] for r in outcomes}
        return {
            "spot_check_id": spot_check_id,
            "cadre_id": row["cadre_id"],
            "items": [{"item": i, "outcome": done.get(i)} for i in row["items"]],
        }
