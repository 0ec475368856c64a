"""Read side: listings per role, the pool without the youth's identity, statistics, the problem list."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tuanlian.shared.auth import Forbidden, Principal, Role, path_covers
from tuanlian.shared.db import Database
from tuanlian.shared.errors import NotFound
from tuanlian.shared.http import require
from tuanlian.shared.spreadsheet import csv_bytes, xlsx_bytes

_WISH = ("wish_id, youth_id, cadre_id, org_path, category, estimated_value_yuan, state, version, raised_at, "
         "accepted_at, fulfilled_at, confirmed_at, closed_at, claim_deadline, pledged_yuan, text, public_text, "
         "evidence, state_reason, "
         "ARRAY(SELECT p.photo_id FROM {s}.wish_photos p WHERE p.wish_id = w.wish_id "
         "ORDER BY p.seq) AS photo_ids")
_SUBTREE = "(org_path = $1 OR starts_with(org_path, $1 || '/'))"


def _scope(who: Principal, org_path: str | None) -> str:
    path = org_path or who.org_path
    if path is None:
        raise Forbidden("give an org_path")
    require(who, Role.org_admin, Role.leader, org_path=path, why="see this subtree")
    return path


def _whose(who: Principal, org_path: str | None) -> tuple[str, str]:
    """The rows one may list (condition on $1, and $1): a youth's own, a cadre's own, an
    admin's or leader's subtree."""
    if who.role is Role.youth:
        return "youth_id = $1", who.subject
    if who.role is Role.cadre:
        return "cadre_id = $1", who.subject
    return _SUBTREE, _scope(who, org_path)


@dataclass
class Queries:
    db: Database
    s: str

    async def wish(self, who: Principal, wish_id: str) -> dict[str, Any]:
        async with self.db.connection() as conn:
            row = await conn.fetchrow(f"SELECT {_WISH.format(s=self.s)} FROM {self.s}.wishes w WHERE wish_id = $1",
                                      wish_id)
        if row is None:
            raise NotFound(f"wish {wish_id} not found")
        mine = (who.role is Role.youth and who.subject == row["youth_id"]) or (
            who.role is Role.cadre and who.subject == row["cadre_id"])
        if not mine:
            require(who, Role.org_admin, Role.leader, org_path=row["org_path"], why="see this wish")
        return dict(row)

    async def wishes(self, who: Principal, state: str | None, org_path: str | None) -> list[dict[str, Any]]:
        """A youth's own wishes, a cadre's queue, an admin's subtree."""
        where, arg = _whose(who, org_path)
        async with self.db.connection() as conn:
            rows = await conn.fetch(
                f"SELECT {_WISH.format(s=self.s)} FROM {self.s}.wishes w WHERE {where} "
                "AND ($2::text IS NULL OR state = $2) ORDER BY raised_at LIMIT 1000",
                arg, state,
            )
        return [dict(r) for r in rows]

    async def pool(self, who: Principal) -> list[dict[str, Any]]:
        """心愿池 as listed: approved wishes, no youth or cadre identity, the admin-edited text."""
        async with self.db.connection() as conn:
            if who.role is Role.partner:
                path = await conn.fetchval(f"SELECT org_path FROM {self.s}.partners WHERE partner_id = $1",
                                           who.subject)
                if path is None:
                    raise Forbidden("this partner is not registered")
            elif who.role in (Role.cadre, Role.org_admin, Role.leader, Role.system) and who.org_path:
                path = who.org_path
            else:
                raise Forbidden(f"role {who.role.value} does not see the wish pool")
            rows = await conn.fetch(
                f"SELECT wish_id, org_path, category, estimated_value_yuan, public_text, pledged_yuan, state, "
                f"claim_deadline, ARRAY(SELECT p.photo_id FROM {self.s}.wish_photos p WHERE p.wish_id = w.wish_id "
                "AND p.kept ORDER BY p.seq) AS photo_ids "
                f"FROM {self.s}.wishes w WHERE state IN ('pooled', 'claimed') AND "
                "(org_path = $1 OR starts_with(org_path, $1 || '/') OR starts_with($1, org_path || '/')) "
                "ORDER BY pooled_at LIMIT 1000",
                path,
            )
        visible = [dict(r) for r in rows]
        if who.role is Role.partner:
            visible = [r for r in visible if path_covers(path, r["org_path"])]
        return visible

    async def photo(self, who: Principal, wish_id: str, photo_id: str) -> tuple[str, bytes]:
        """A photo, to those who may see the wish; from the pool listing, only a photo the reviewer kept."""
        async with self.db.connection() as conn:
            row = await conn.fetchrow(
                f"SELECT p.content_type, p.data, p.kept, w.youth_id, w.cadre_id, w.org_path, w.state "
                f"FROM {self.s}.wish_photos p JOIN {self.s}.wishes w USING (wish_id) "
                "WHERE p.wish_id = $1 AND p.photo_id = $2",
                wish_id, photo_id,
            )
            partner_path = (await conn.fetchval(f"SELECT org_path FROM {self.s}.partners WHERE partner_id = $1",
                                                who.subject) if who.role is Role.partner else None)
        if row is None:
            raise NotFound(f"photo {photo_id} not found")
        mine = (who.role is Role.youth and who.subject == row["youth_id"]) or (
            who.role is Role.cadre and who.subject == row["cadre_id"])
        admin = who.role in (Role.org_admin, Role.leader) and who.org_path is not None and path_covers(
            who.org_path, row["org_path"])
        listed = row["kept"] and row["state"] in ("pooled", "claimed") and (
            (partner_path is not None and path_covers(partner_path, row["org_path"]))
            or (who.role in (Role.cadre, Role.org_admin, Role.leader) and who.org_path is not None
                and (path_covers(who.org_path, row["org_path"]) or path_covers(row["org_path"], who.org_path))))
        if not (mine or admin or listed):
            raise Forbidden("you may not see this photo")
        return row["content_type"], bytes(row["data"])

    async def review_queue(self, who: Principal, org_path: str | None) -> list[dict[str, Any]]:
        path = _scope(who, org_path)
        async with self.db.connection() as conn:
            rows = await conn.fetch(
                f"SELECT wish_id, org_path, category, estimated_value_yuan, text, state_reason, touched_at, "
                f"ARRAY(SELECT p.photo_id FROM {self.s}.wish_photos p WHERE p.wish_id = w.wish_id "
                "ORDER BY p.seq) AS photo_ids "
                f"FROM {self.s}.wishes w WHERE state = 'awaiting_review' AND {_SUBTREE} ORDER BY touched_at",
                path,
            )
        return [dict(r) for r in rows]

    async def stats(self, who: Principal, org_path: str | None) -> dict[str, Any]:
        path = _scope(who, org_path)
        async with self.db.connection() as conn:
            rows = await conn.fetch(
                "SELECT category, count(*) AS submitted, count(accepted_at) AS accepted, "
                "count(pooled_at) AS pooled, count(claimed_at) AS claimed, count(fulfilled_at) AS fulfilled, "
                "count(confirmed_at) AS confirmed, "
                "percentile_cont(0.5) WITHIN GROUP (ORDER BY days_to_fulfil) AS median_days_to_fulfil "
                f"FROM {self.s}.wishes WHERE {_SUBTREE} GROUP BY ROLLUP (category) ORDER BY category",
                path,
            )
        by_category = {r["category"]: dict(r) for r in rows if r["category"] is not None}
        total = next((dict(r) for r in rows if r["category"] is None), None)
        empty = dict.fromkeys(("submitted", "accepted", "pooled", "claimed", "fulfilled", "confirmed"), 0)
        for d in [*by_category.values(), total or {}]:
            d.pop("category", None)
        return {"org_path": path, "total": total or {**empty, "median_days_to_fulfil": None},
                "by_category": by_category}

    async def voice(self, who: Principal, org_path: str | None, state: str | None) -> list[dict[str, Any]]:
        where, arg = _whose(who, org_path)
        async with self.db.connection() as conn:
            rows = await conn.fetch(
                f"SELECT post_id, youth_id, cadre_id, org_id, org_path, kind, text, state, posted_at, due_at, "
                f"answered_at, answer, in_time, escalated_at, issue_id FROM {self.s}.voice_posts "
                f"WHERE {where} AND ($2::text IS NULL OR state = $2) ORDER BY posted_at LIMIT 1000",
                arg, state,
            )
        return [dict(r) for r in rows]

    async def issues(self, who: Principal, org_path: str | None) -> list[dict[str, Any]]:
        path = _scope(who, org_path)
        async with self.db.connection() as conn:
            rows = await conn.fetch(
                f"SELECT i.issue_id, i.title, i.status, i.post_count, i.org_path, i.updated_at, "
                "coalesce(string_agg(DISTINCT p.kind, ',' ORDER BY p.kind), '') AS kinds "
                f"FROM {self.s}.voice_issues i LEFT JOIN {self.s}.voice_posts p ON p.issue_id = i.issue_id "
                f"WHERE (i.org_path = $1 OR starts_with(i.org_path, $1 || '/')) "
                "GROUP BY i.issue_id ORDER BY i.post_count DESC, i.issue_id",
                path,
            )
        return [dict(r) for r in rows]


EXPORT_COLUMNS = ("issue_id", "title", "status", "post_count", "kinds", "org_path", "updated_at")


def issues_csv(rows: list[dict[str, Any]]) -> bytes:
    return csv_bytes(EXPORT_COLUMNS, ([r[c] for c in EXPORT_COLUMNS] for r in rows))


def issues_xlsx(rows: list[dict[str, Any]]) -> bytes:
    return xlsx_bytes("问题清单", EXPORT_COLUMNS, ([r[c] for c in EXPORT_COLUMNS] for r in rows))
