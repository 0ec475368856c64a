"""Handlers of cards, join codes, group links, spread, the youths' answers, corrections, evidence."""

from __future__ import annotations

import io
import json
from datetime import datetime
from typing import Any
from uuid import UUID

import segno
import structlog
from tuanlian.contacts.application import work_commands as w
from tuanlian.contacts.application.work_base import WorkBase
from tuanlian.contacts.domain.activities import Activity
from tuanlian.contacts.domain.cards import GROUP_TYPES, add_group_link, end_group_link, publish_card
from tuanlian.contacts.domain.evidence import Evidence
from tuanlian.contacts.domain.interactions import Interaction
from tuanlian.contacts.domain.links import ContactLink, issue_join_code, new_join_code
from tuanlian.contacts.domain.spread import crowded, spread
from tuanlian.shared.aggregate import Repository
from tuanlian.shared.auth import Forbidden, Principal, Role
from tuanlian.shared.contracts.contacts import OrgType
from tuanlian.shared.errors import NotFound, RuleViolation
from tuanlian.shared.events import short_id, utcnow
from tuanlian.shared.http import require

log = structlog.get_logger("tuanlian.contacts.work")


class LinkWork(WorkBase):
    # -- 亮身份: card, join code, QR ------------------------------------------------------------

    async def publish_card(
        self, who: Principal, cadre_id: str, cmd: w.PublishCard, cid: UUID | None = None
    ) -> dict[str, Any]:
        async with self.db.transaction() as conn:
            cadre = await self.base.cadres.get(conn, cadre_id)
            self.cadre_or_admin(who, cadre.id, cadre.org_path, "publish a card")
            event = publish_card(cadre, cmd.channels)
            key = await conn.fetchval(
                f"SELECT key FROM {self.schema}.subject_keys WHERE subject_id = $1", cadre.id
            )
            if key is None:
                raise RuleViolation("the cadre's personal data was erased", field="cadre_id")
            sealed = self.base.vault._seal(key, json.dumps({c.value: h for c, h in cmd.channels.items()}))
            if (
                await conn.fetchval(
                    f"SELECT join_code FROM {self.schema}.cadre_cards WHERE cadre_id = $1", cadre.id
                )
                is None
            ):
                issue_join_code(cadre, await self._free_code(conn))
            await self.save(conn, cadre, who, cadre.org_path, cid, channel_ids_enc=sealed)
            return {"cadre_id": cadre.id, "channels": [c.value for c in event.channels]}

    async def _free_code(self, conn: Any) -> str:
        while True:
            code = new_join_code()
            if not await conn.fetchval(f"SELECT 1 FROM {self.schema}.cadre_cards WHERE join_code = $1", code):
                return code

    async def reissue_join_code(self, who: Principal, cadre_id: str, cid: UUID | None = None) -> str:
        async with self.db.transaction() as conn:
            cadre = await self.base.cadres.get(conn, cadre_id)
            self.cadre_or_admin(who, cadre.id, cadre.org_path, "issue a join code")
            event = issue_join_code(cadre, await self._free_code(conn))
            await self.save(conn, cadre, who, cadre.org_path, cid)
            return event.join_code

    async def card(
        self, who: Principal, cadre_id: str | None = None, code: str | None = None
    ) -> dict[str, Any]:
        """The public card: any signed-in user may read it (亮身份 is meant to be seen)."""
        async with self.db.connection() as conn:
            row = await conn.fetchrow(
                f"SELECT c.cadre_id, c.org_id, c.org_path, c.kind, o.name AS org_name, k.join_code, "
                f"k.channels, k.channel_ids_enc, sk.key FROM {self.schema}.cadres c "
                f"JOIN {self.schema}.orgs o USING (org_id) "
                f"LEFT JOIN {self.schema}.cadre_cards k USING (cadre_id) "
                f"LEFT JOIN {self.schema}.subject_keys sk ON sk.subject_id = c.cadre_id "
                + ("WHERE c.cadre_id = $1" if cadre_id else "WHERE k.join_code = $1"),
                cadre_id or code,
            )
            if row is None:
                raise NotFound(f"cadre {cadre_id} not found" if cadre_id else "no cadre has this join code")
            person = await self.base.vault.reveal(conn, row["cadre_id"])
        handles: dict[str, str] = {}
        if row["channel_ids_enc"] is not None and row["key"] is not None:
            handles = json.loads(self.base.vault._open(row["key"], row["channel_ids_enc"]) or "{}")
        return {
            "cadre_id": row["cadre_id"],
            "name": person["name"],
            "org_id": row["org_id"],
            "org_name": row["org_name"],
            "kind": row["kind"],
            "channels": handles,
            "join_code": row["join_code"],
            "join_url": f"{self.settings.join_url_prefix}{row['join_code']}" if row["join_code"] else None,
        }

    async def qr(self, who: Principal, cadre_id: str, fmt: str) -> tuple[bytes, str]:
        card = await self.card(who, cadre_id)
        if not card["join_code"]:
            raise NotFound("the cadre has not published a card yet")
        qr = segno.make(card["join_url"], error="m")
        buf = io.BytesIO()
        if fmt == "svg":
            qr.save(buf, kind="svg", scale=4)
            return buf.getvalue(), "image/svg+xml"
        qr.save(buf, kind="png", scale=6)
        return buf.getvalue(), "image/png"

    async def request_link(self, who: Principal, cmd: w.RequestLink, cid: UUID | None = None) -> ContactLink:
        """A youth asks through the join code: their request is their consent; the cadre answers."""
        if who.role is not Role.youth:
            raise Forbidden("only a youth asks to be linked through a join code")
        async with self.db.transaction() as conn:
            cadre_id = await conn.fetchval(
                f"SELECT cadre_id FROM {self.schema}.cadre_cards WHERE join_code = $1", cmd.join_code
            )
            if cadre_id is None:
                raise NotFound("no cadre has this join code")
            cadre = await self.base.cadres.get(conn, cadre_id)
            await self.base.youths.get(conn, who.subject)
            link_id = ContactLink.id_for(cadre.id, who.subject)
            link = await self.base.links.find(conn, link_id) or ContactLink(link_id)
            link.invite(cadre, who.subject, initiated_by="youth")
            await self.save(conn, link, who, cadre.org_path, cid)
            return link

    # -- 联系团组织 (group links) -----------------------------------------------------------------

    async def _covered(self, conn: Any, cadre_id: str) -> set[str]:
        rows = await conn.fetch(
            f"SELECT group_org_id FROM {self.schema}.group_links WHERE cadre_id = $1", cadre_id
        )
        return {r["group_org_id"] for r in rows}

    async def add_group(
        self, who: Principal, cadre_id: str, cmd: w.AddGroupLink, cid: UUID | None = None
    ) -> dict[str, Any]:
        async with self.db.transaction() as conn:
            cadre = await self.base.cadres.get(conn, cadre_id)
            self.cadre_or_admin(who, cadre.id, cadre.org_path, "change group links")
            org = await conn.fetchrow(
                f"SELECT org_id, org_type, org_path FROM {self.schema}.orgs WHERE org_id = $1", cmd.org_id
            )
            if org is None:
                raise NotFound(f"organisation {cmd.org_id} not found")
            event = add_group_link(
                cadre,
                org["org_id"],
                OrgType(org["org_type"]),
                org["org_path"],
                await self._covered(conn, cadre.id),
            )
            await self.save(conn, cadre, who, cadre.org_path, cid)
            return {
                "cadre_id": cadre.id,
                "org_id": event.group_org_id,
                "covers": GROUP_TYPES[event.group_org_type],
            }

    async def end_group(self, who: Principal, cadre_id: str, org_id: str, cid: UUID | None = None) -> None:
        async with self.db.transaction() as conn:
            cadre = await self.base.cadres.get(conn, cadre_id)
            self.cadre_or_admin(who, cadre.id, cadre.org_path, "change group links")
            end_group_link(cadre, org_id, await self._covered(conn, cadre.id))
            await self.save(conn, cadre, who, cadre.org_path, cid)

    async def _cadre_row(self, conn: Any, cadre_id: str) -> Any:
        row = await conn.fetchrow(f"SELECT * FROM {self.schema}.cadres WHERE cadre_id = $1", cadre_id)
        if row is None:
            raise NotFound(f"cadre {cadre_id} not found")
        return row

    async def groups(self, who: Principal, cadre_id: str) -> dict[str, Any]:
        """Covered orgs by type; comparing with the quotas is scoring's compliance job."""
        async with self.db.connection() as conn:
            cadre = await self._cadre_row(conn, cadre_id)
            self.cadre_or_overseer(who, cadre_id, cadre["org_path"], "see group links")
            rows = await conn.fetch(
                f"SELECT g.group_org_id, g.group_org_type, o.name FROM {self.schema}.group_links g "
                f"JOIN {self.schema}.orgs o ON o.org_id = g.group_org_id WHERE g.cadre_id = $1 "
                "ORDER BY g.added_at",
                cadre_id,
            )
        out: dict[str, Any] = {label: [] for label in GROUP_TYPES.values()}
        for r in rows:
            out[GROUP_TYPES[OrgType(r["group_org_type"])]].append(
                {"org_id": r["group_org_id"], "name": r["name"]}
            )
        return {"cadre_id": cadre_id, **out, "counts": {k: len(v) for k, v in out.items()}}

    # -- 联系面 (spread) ------------------------------------------------------------------------

    async def spread(self, who: Principal, cadre_id: str) -> dict[str, Any]:
        async with self.db.connection() as conn:
            cadre = await self._cadre_row(conn, cadre_id)
            self.cadre_or_overseer(who, cadre_id, cadre["org_path"], "see the spread of this list")
            youths = await conn.fetch(
                f"SELECT y.* FROM {self.schema}.links l JOIN {self.schema}.youths y USING (youth_id) "
                "WHERE l.cadre_id = $1 AND l.state = 'active'",
                cadre_id,
            )
            # Cadres of the same org linked (actively) to each of this cadre's youths.
            counts = await conn.fetch(
                f"SELECT l.youth_id, count(*) AS n FROM {self.schema}.links l "
                f"JOIN {self.schema}.cadres c USING (cadre_id) WHERE c.org_id = $1 AND l.state = 'active' "
                f"AND l.youth_id IN (SELECT youth_id FROM {self.schema}.links "
                "WHERE cadre_id = $2 AND state = 'active') GROUP BY l.youth_id",
                cadre["org_id"],
                cadre_id,
            )
        threshold = self.settings.spread_threshold
        return {
            "cadre_id": cadre_id,
            "linked_youths": len(youths),
            "spread": spread([dict(y) for y in youths]),
            "threshold": threshold,
            "warnings": crowded({r["youth_id"]: r["n"] for r in counts}, threshold),
        }

    # -- the youth's word, corrections ---------------------------------------------------------

    async def answer(
        self,
        who: Principal,
        interaction_id: str,
        confirm: bool,
        cmd: w.AnswerInteraction,
        cid: UUID | None = None,
    ) -> dict[str, Any]:
        if who.role is not Role.youth:
            raise Forbidden("only a youth named in the interaction confirms or disputes it")
        async with self.db.transaction() as conn:
            interaction = await self.base.interactions.get(conn, interaction_id)
            if who.subject not in interaction.youth_ids:
                raise Forbidden("this interaction was not logged with you")
            if confirm:
                interaction.confirm(who.subject)
            else:
                interaction.dispute(who.subject, cmd.reason)
            await self.save(conn, interaction, who, interaction.org_path, cid)
            return {"interaction_id": interaction.id, "answer": interaction.answer_of(who.subject)}

    async def correct(
        self,
        who: Principal,
        interaction_id: str,
        cmd: w.CorrectInteraction,
        cid: UUID | None = None,
        now: datetime | None = None,
    ) -> Interaction:
        async with self.db.transaction() as conn:
            interaction = await self.base.interactions.get(conn, interaction_id)
            if not (who.role is Role.system or self.is_cadre(who, interaction.cadre_id)):
                raise Forbidden("an interaction is corrected by the cadre who logged it")
            since = await self.linked_since(conn, interaction.cadre_id, cmd.youth_ids)
            interaction.correct(
                cmd.youth_ids, since, cmd.channel, cmd.occurred_at, cmd.summary, cmd.reason, now or utcnow()
            )
            await self.save(conn, interaction, who, interaction.org_path, cid, summary=cmd.summary)
            return interaction

    async def interactions_of(self, who: Principal, cadre_id: str) -> list[dict[str, Any]]:
        async with self.db.connection() as conn:
            cadre = await self._cadre_row(conn, cadre_id)
            self.cadre_or_overseer(who, cadre_id, cadre["org_path"], "see these interactions")
            rows = await conn.fetch(
                f"SELECT i.interaction_id, i.youth_ids, i.channel, i.occurred_at, i.summary, i.corrections, "
                "coalesce((SELECT json_object_agg(a.youth_id, a.answer) "
                f"FROM {self.schema}.interaction_answers a WHERE a.interaction_id = i.interaction_id), "
                f"'{{}}'::json)::text AS answers FROM {self.schema}.interactions i "
                "WHERE i.cadre_id = $1 ORDER BY i.occurred_at DESC LIMIT 500",
                cadre_id,
            )
        return [{**dict(r), "answers": json.loads(r["answers"])} for r in rows]

    async def my_interactions(self, who: Principal) -> list[dict[str, Any]]:
        """A youth's own view: interactions logged with them, and their answer to each."""
        if who.role is not Role.youth:
            raise Forbidden("this is a youth's own list")
        async with self.db.connection() as conn:
            rows = await conn.fetch(
                f"SELECT i.interaction_id, i.cadre_id, i.channel, i.occurred_at, i.summary, "
                "coalesce(a.answer, 'pending') AS answer "
                f"FROM {self.schema}.interactions i LEFT JOIN {self.schema}.interaction_answers a "
                "ON a.interaction_id = i.interaction_id AND a.youth_id = $1 "
                "WHERE $1 = ANY(i.youth_ids) ORDER BY i.occurred_at DESC LIMIT 200",
                who.subject,
            )
        return [dict(r) for r in rows]

    # -- 佐证材料 (evidence) ----------------------------------------------------------------------

    async def attach(
        self,
        who: Principal,
        subject_type: str,
        subject_id: str,
        data: bytes,
        declared_type: str | None,
        cid: UUID | None = None,
    ) -> Evidence:
        async with self.db.transaction() as conn:
            owner_cadre: str | None
            if subject_type == "interaction":
                interaction = await self.base.interactions.get(conn, subject_id)
                owner_cadre, org_path = interaction.cadre_id, interaction.org_path
            else:
                activity = await Repository(self.base.store, Activity).get(conn, subject_id)
                assert activity.organiser is not None
                owner_cadre, org_path = activity.organiser.cadre_id, activity.organiser.org_path
            if owner_cadre is not None:
                if not (who.role is Role.system or self.is_cadre(who, owner_cadre)):
                    raise Forbidden(f"evidence is attached by the cadre who recorded the {subject_type}")
            else:
                require(who, Role.org_admin, org_path=org_path, why="attach evidence to this activity")
            evidence = Evidence.attach(
                short_id(), subject_type, subject_id, data, declared_type, self.settings.evidence_max_bytes
            )
            await self.save(conn, evidence, who, org_path, cid, data=data, owner_cadre_id=owner_cadre)
            return evidence

    async def evidence(self, who: Principal, evidence_id: str) -> tuple[bytes, str]:
        async with self.db.connection() as conn:
            row = await conn.fetchrow(
                f"SELECT data, content_type, org_path, owner_cadre_id FROM {self.schema}.evidence "
                "WHERE evidence_id = $1",
                evidence_id,
            )
        if row is None:
            raise NotFound(f"evidence {evidence_id} not found")
        if not (row["owner_cadre_id"] and self.is_cadre(who, row["owner_cadre_id"])):
            require(who, Role.org_admin, Role.leader, org_path=row["org_path"], why="see this evidence")
        return bytes(row["data"]), row["content_type"]
