"""青年之声 (Youth Voice): a youth's post, answered against the org's time limit (有问必答), and
问题清单 (problem list) issues grouping posts for reporting upward."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from tuanlian.shared.contracts.contacts import ServiceLimits
from tuanlian.shared.contracts.wishes import (
    VoiceAnswered,
    VoiceEscalated,
    VoiceIssueGrouped,
    VoiceIssueRenamed,
    VoiceKind,
    VoicePosted,
    VoicePostRedirected,
)
from tuanlian.shared.errors import IllegalTransition, RuleViolation
from tuanlian.wishes.domain.timed import TimedAggregate


class VoicePost(TimedAggregate):
    """青年之声 post. States: open → (escalated) → answered."""

    stream_type = "voice_post"
    label = "Youth Voice post"

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.state = "open"
        self.youth_id = ""
        self.cadre_id: str | None = None
        self.org_id = ""
        self.org_path = ""
        self.posted_at = self.at
        self.due_at = self.at

    @classmethod
    def post(cls, post_id: str, youth_id: str, cadre_id: str | None, org_id: str, org_path: str,
             kind: VoiceKind, limits: ServiceLimits, now: datetime) -> VoicePost:
        p = cls(post_id)
        p._emit(now, VoicePosted(
            post_id=post_id, youth_id=youth_id, cadre_id=cadre_id, org_id=org_id, org_path=org_path,
            kind=kind, due_at=now + timedelta(hours=limits.voice_answer_hours),
        ))
        return p

    def answer(self, by: str, now: datetime) -> None:
        if self.state == "answered":
            raise IllegalTransition("this post is already answered", current=self.state)
        self._emit(now, VoiceAnswered(
            post_id=self.id, youth_id=self.youth_id, cadre_id=self.cadre_id, answered_by=by,
            org_path=self.org_path, in_time=now <= self.due_at,
            response_seconds=int((now - self.posted_at).total_seconds()),
        ))

    def escalate(self, now: datetime) -> None:
        if self.state != "open":
            raise IllegalTransition(f"a post that is {self.state} is not escalated", current=self.state)
        if now <= self.due_at:
            raise IllegalTransition("the post is not overdue yet", current=self.state)
        self._emit(now, VoiceEscalated(
            post_id=self.id, cadre_id=self.cadre_id, org_id=self.org_id, org_path=self.org_path,
            overdue_hours=round((now - self.due_at).total_seconds() / 3600, 2),
        ))

    def redirect(self, cadre_id: str | None, org_id: str, org_path: str, reason: str, now: datetime) -> None:
        """The addressed cadre moved (``cadre_id`` kept) or left (``None``: the org's admins answer)."""
        if self.state == "answered":
            raise IllegalTransition("an answered post is not redirected", current=self.state)
        if self.cadre_id is None:
            raise IllegalTransition("the post is addressed to an organisation", current=self.state)
        self._emit(now, VoicePostRedirected(
            post_id=self.id, from_cadre_id=self.cadre_id, cadre_id=cadre_id, org_id=org_id, org_path=org_path,
            reason=reason,
        ))

    def when_VoicePostRedirected(self, e: VoicePostRedirected) -> None:
        self.cadre_id, self.org_id, self.org_path = e.cadre_id, e.org_id, e.org_path

    def when_VoicePosted(self, e: VoicePosted) -> None:
        self.youth_id, self.cadre_id, self.org_id, self.org_path = e.youth_id, e.cadre_id, e.org_id, e.org_path
        self.posted_at, self.due_at = self.at, e.due_at

    def when_VoiceAnswered(self, _e: VoiceAnswered) -> None:
        self.state = "answered"

    def when_VoiceEscalated(self, _e: VoiceEscalated) -> None:
        self.state = "escalated"


class IssueStatus(StrEnum):
    open = "open"
    in_progress = "in_progress"
    resolved = "resolved"
    reported = "reported"  # 已上报


# status → the statuses it may change to. Reported (已上报) upward, an issue can still be resolved;
# a resolved one may be reopened or reported. Posts are added or removed only while it is open
# or in progress.
ISSUE_TRANSITIONS: dict[IssueStatus, frozenset[IssueStatus]] = {
    IssueStatus.open: frozenset({IssueStatus.in_progress, IssueStatus.resolved, IssueStatus.reported}),
    IssueStatus.in_progress: frozenset({IssueStatus.open, IssueStatus.resolved, IssueStatus.reported}),
    IssueStatus.resolved: frozenset({IssueStatus.open, IssueStatus.reported}),
    IssueStatus.reported: frozenset({IssueStatus.resolved}),
}
EDITABLE = frozenset({IssueStatus.open, IssueStatus.in_progress})


class VoiceIssue(TimedAggregate):
    """问题清单 entry: posts grouped under one issue, with a status."""

    stream_type = "voice_issue"
    label = "issue"

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.org_path = ""
        self.post_ids: list[str] = []
        self.status = IssueStatus.open

    @classmethod
    def group(cls, issue_id: str, org_path: str, post_ids: list[str], now: datetime) -> VoiceIssue:
        if not post_ids:
            raise RuleViolation("group at least one post", field="post_ids")
        issue = cls(issue_id)
        issue._emit(now, VoiceIssueGrouped(
            issue_id=issue_id, org_path=org_path, post_ids=sorted(set(post_ids)), status=IssueStatus.open.value
        ))
        return issue

    def update(self, add_post_ids: list[str], status: IssueStatus | None, now: datetime,
               remove_post_ids: list[str] | None = None) -> None:
        """Posts added or removed (open or in progress only), then the status changed (by the table)."""
        remove = set(remove_post_ids or [])
        if remove & set(add_post_ids):
            raise RuleViolation("a post cannot be both added and removed", field="remove_post_ids")
        unknown = sorted(remove - set(self.post_ids))
        if unknown:
            raise RuleViolation(f"not in this issue: {', '.join(unknown)}", field="remove_post_ids")
        posts = sorted((set(self.post_ids) | set(add_post_ids)) - remove)
        if posts != self.post_ids and self.status not in EDITABLE:
            raise IllegalTransition(
                f"posts of a {self.status.value} issue are not changed; reopen it first",
                current=self.status.value, allowed_from=sorted(s.value for s in EDITABLE),
            )
        if not posts:
            raise RuleViolation("an issue keeps at least one post", field="remove_post_ids")
        new_status = status or self.status
        if new_status != self.status and new_status not in ISSUE_TRANSITIONS[self.status]:
            raise IllegalTransition(
                f"an issue that is {self.status.value} cannot become {new_status.value}",
                current=self.status.value,
                allowed=sorted(s.value for s in ISSUE_TRANSITIONS[self.status]),
            )
        if posts == self.post_ids and new_status == self.status:
            return
        self._emit(now, VoiceIssueGrouped(
            issue_id=self.id, org_path=self.org_path, post_ids=posts, status=new_status.value
        ))

    def rename(self, now: datetime) -> None:
        self._emit(now, VoiceIssueRenamed(issue_id=self.id, org_path=self.org_path))

    def when_VoiceIssueGrouped(self, e: VoiceIssueGrouped) -> None:
        self.org_path, self.post_ids, self.status = e.org_path, list(e.post_ids), IssueStatus(e.status)

    def when_VoiceIssueRenamed(self, _e: VoiceIssueRenamed) -> None:
        pass
