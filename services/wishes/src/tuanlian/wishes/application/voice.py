"""Command handlers for 青年之声 and the 问题清单."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import asyncpg
from tuanlian.shared.auth import Forbidden, Principal, Role
from tuanlian.shared.errors import RuleViolation
from tuanlian.shared.events import short_id
from tuanlian.shared.http import require
from tuanlian.wishes.adapters.repository import TimedRepository
from tuanlian.wishes.application import commands as c
from tuanlian.wishes.application.base import SCHEDULER, Base
from tuanlian.wishes.domain.voice import VoiceIssue, VoicePost


class VoiceCommands(Base):
    def __post_init__(self) -> None:
        super().__post_init__()
        self.posts = TimedRepository(self.store, VoicePost)
        self.issues = TimedRepository(self.store, VoiceIssue)

    async def post(self, who: Principal, cmd: c.PostVoice, cid: UUID | None = None) -> VoicePost:
        if who.role is not Role.youth:
            raise Forbidden("Youth Voice posts are written by youths")
        if (cmd.cadre_id is None) == (cmd.org_id is None):
            raise RuleViolation("address the post to your cadre or to an organisation (one of them)",
                                field="cadre_id")
        now = self.clock()
        async with self.db.transaction() as conn:
            if cmd.cadre_id is not None:
                org_path = await self.directory.pair(conn, cmd.cadre_id, who.subject)
                if org_path is None or not await self.directory.cadre_active(conn, cmd.cadre_id):
                    raise RuleViolation("you can write only to a cadre you are linked to", field="cadre_id")
                org_id = org_path.rsplit("/", 1)[-1]
            else:
                assert cmd.org_id is not None
                org_path = (await self.directory.org(conn, cmd.org_id))["org_path"]
                org_id = cmd.org_id
            limits = await self.directory.limits(conn, org_path, now.date())
            post = VoicePost.post(short_id(), who.subject, cmd.cadre_id, org_id, org_path, cmd.kind, limits, now)
            await conn.execute(
                f"INSERT INTO {self.s}.voice_posts (post_id, youth_id, cadre_id, org_id, org_path, kind, text, "
                "state, version, posted_at, due_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 'open', 1, $8, $9)",
                post.id, who.subject, cmd.cadre_id, org_id, org_path, cmd.kind.value, cmd.text, now, post.due_at,
            )
            await self.save(conn, self.posts, post, who, org_path, now, cid)
            return post

    async def answer(self, who: Principal, post_id: str, cmd: c.Answer, cid: UUID | None = None) -> VoicePost:
        now = self.clock()
        async with self.db.transaction() as conn:
            post = await self.posts.get(conn, post_id)
            await self.located(conn, "voice_posts", "post_id", post)
            if not (who.role is Role.cadre and post.cadre_id == who.subject):
                require(who, Role.org_admin, org_path=post.org_path, why="answer this post")
            post.answer(who.actor, now)
            await conn.execute(f"UPDATE {self.s}.voice_posts SET answer = $2 WHERE post_id = $1", post.id, cmd.text)
            await self.save(conn, self.posts, post, who, post.org_path, now, cid)
            return post

    async def group(self, who: Principal, cmd: c.GroupIssue, cid: UUID | None = None) -> VoiceIssue:
        now = self.clock()
        async with self.db.transaction() as conn:
            org_path = (await self.directory.org(conn, cmd.org_id))["org_path"]
            require(who, Role.org_admin, org_path=org_path, why="keep the problem list")
            await self._check_posts(conn, who, cmd.post_ids, None)
            issue = VoiceIssue.group(short_id(), org_path, cmd.post_ids, now)
            await conn.execute(
                f"INSERT INTO {self.s}.voice_issues (issue_id, org_path, title, status, post_count, version, "
                "updated_at) VALUES ($1, $2, $3, 'open', 0, 0, $4)",
                issue.id, org_path, cmd.title, now,
            )
            await self.save(conn, self.issues, issue, who, org_path, now, cid)
            return issue

    async def update_issue(self, who: Principal, issue_id: str, cmd: c.UpdateIssue,
                           cid: UUID | None = None) -> VoiceIssue:
        now = self.clock()
        async with self.db.transaction() as conn:
            issue = await self.issues.get(conn, issue_id)
            await self.located(conn, "voice_issues", "issue_id", issue)
            require(who, Role.org_admin, org_path=issue.org_path, why="keep the problem list")
            await self._check_posts(conn, who, cmd.add_post_ids, issue_id)
            issue.update(cmd.add_post_ids, cmd.status, now, cmd.remove_post_ids)
            if cmd.title is not None:
                old = await conn.fetchval(f"SELECT title FROM {self.s}.voice_issues WHERE issue_id = $1", issue_id)
                if old != cmd.title:
                    await conn.execute(f"UPDATE {self.s}.voice_issues SET title = $2 WHERE issue_id = $1",
                                       issue_id, cmd.title)
                    issue.rename(now)
            await self.save(conn, self.issues, issue, who, issue.org_path, now, cid)
            return issue

    async def _check_posts(self, conn: asyncpg.Connection, who: Principal, post_ids: list[str],
                           issue_id: str | None) -> None:
        field = "post_ids" if issue_id is None else "add_post_ids"
        # Locked, in one order: two requests grouping one post both found it free and both put it
        # in their issue (each issue a stream of its own, nothing conflicted). The second now
        # waits for the first to commit and finds it taken.
        rows = await conn.fetch(
            f"SELECT post_id, org_path, issue_id FROM {self.s}.voice_posts WHERE post_id = ANY($1::text[]) "
            "ORDER BY post_id FOR UPDATE", post_ids
        )
        found = {r["post_id"]: r["org_path"] for r in rows}
        missing = sorted(set(post_ids) - set(found))
        if missing:
            raise RuleViolation(f"no such posts: {', '.join(missing)}", field=field)
        elsewhere = sorted(r["post_id"] for r in rows if r["issue_id"] not in (None, issue_id))
        if elsewhere:
            raise RuleViolation(f"already in another issue: {', '.join(elsewhere)}", field=field)
        for path in found.values():
            require(who, Role.org_admin, org_path=path, why="group posts outside your subtree")

    async def escalate(self, post_id: str, now: datetime) -> VoicePost:
        """Unanswered past the org's limit: escalated to the org admin (the scheduler's command)."""
        async with self.db.transaction() as conn:
            post = await self.posts.get(conn, post_id)
            post.escalate(now)
            await self.save(conn, self.posts, post, SCHEDULER, post.org_path, now)
            return post
