"""Commands the wishes service accepts (also its HTTP request bodies, validated field by field)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator
from tuanlian.shared.contracts.dates import CivilDateTime
from tuanlian.shared.contracts.wishes import PartnerKind, VoiceKind, WishCategory
from tuanlian.wishes.domain.ballot import Choice
from tuanlian.wishes.domain.voice import IssueStatus
from tuanlian.wishes.domain.wish import MAX_VALUE_YUAN


class Command(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class RaiseWish(Command):
    cadre_id: str = Field(min_length=1, max_length=40)
    category: WishCategory
    text: str = Field(min_length=5, max_length=2000)
    # Bounded here as well as by the org's cap: an org may set a cap the value column cannot hold.
    estimated_value_yuan: int | None = Field(default=None, ge=0, le=MAX_VALUE_YUAN)


class Reason(Command):
    reason: str = Field(min_length=1, max_length=500)


class OptionalReason(Command):
    reason: str | None = Field(default=None, max_length=500)


class Fulfil(Command):
    evidence: str = Field(min_length=1, max_length=2000, description="what was done (佐证)")


class Review(Command):
    approved: bool
    reason: str | None = Field(default=None, max_length=500)
    public_text: str | None = Field(
        default=None, min_length=5, max_length=2000,
        description="the text as listed, personal details edited out (defaults to the youth's text)",
    )
    keep_photo_ids: list[str] = Field(
        default_factory=list, max_length=20,
        description="photos shown in the pool listing (none unless kept: they may show faces)",
    )


class Pledge(Command):
    amount_yuan: int = Field(gt=0, le=MAX_VALUE_YUAN, description="at most what the wish still needs")


class RegisterPartner(Command):
    name: str = Field(min_length=1, max_length=100)
    kind: PartnerKind
    org_id: str


class PostVoice(Command):
    kind: VoiceKind
    text: str = Field(min_length=2, max_length=2000)
    cadre_id: str | None = None
    org_id: str | None = None


class Answer(Command):
    text: str = Field(min_length=1, max_length=4000)


class GroupIssue(Command):
    title: str = Field(min_length=1, max_length=200)
    org_id: str
    post_ids: list[str] = Field(min_length=1, max_length=1000)


class UpdateIssue(Command):
    title: str | None = Field(default=None, min_length=1, max_length=200, description="rename the issue")
    add_post_ids: list[str] = Field(default_factory=list, max_length=1000)
    remove_post_ids: list[str] = Field(default_factory=list, max_length=1000)
    status: IssueStatus | None = None


class Rate(Command):
    cadre_id: str
    score: int = Field(ge=1, le=5)
    comment: str | None = Field(default=None, max_length=500)


class OpenBallot(Command):
    branch_org_id: str
    secretary_cadre_id: str
    year: int = Field(ge=2000, le=2100)
    # Bounded like the event it becomes (BallotOpened): a year-9999 instant is a 422 here, not a 500 there.
    closes_at: CivilDateTime

    @field_validator("closes_at")
    @classmethod
    def _aware(cls, v: datetime) -> datetime:
        if v.tzinfo is None:
            raise ValueError("give a time zone (e.g. 2026-12-31T18:00:00+08:00)")
        return v


class Vote(Command):
    choice: Choice
