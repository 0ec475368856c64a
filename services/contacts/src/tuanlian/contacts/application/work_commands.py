"""Commands of contacts-work (HTTP bodies too), validated field by field."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator
from tuanlian.shared.contracts.contacts import ActivityKind, Channel, SpotCheckOutcome
from tuanlian.shared.contracts.dates import CivilDate, CivilDateTime


class Command(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


def _aware(v: datetime) -> datetime:
    if v.tzinfo is None:
        raise ValueError("give a time zone (e.g. 2026-05-04T10:00:00+08:00)")
    return v


class PublishCard(Command):
    """亮身份: channel → the cadre's id on it (WeChat / QQ / Weibo)."""

    channels: dict[Channel, str] = Field(max_length=3)

    @field_validator("channels")
    @classmethod
    def _ids(cls, v: dict[Channel, str]) -> dict[Channel, str]:
        for channel, handle in v.items():
            if not 1 <= len(handle.strip()) <= 64:
                raise ValueError(f"the {channel.value} id must have 1–64 characters")
        return {k: h.strip() for k, h in v.items()}


class RequestLink(Command):
    join_code: str = Field(pattern=r"^[2-9A-HJ-NP-Z]{8}$")


class AddGroupLink(Command):
    org_id: str = Field(min_length=1, max_length=40)


class AnswerInteraction(Command):
    reason: str | None = Field(default=None, max_length=500)


class CorrectInteraction(Command):
    youth_ids: list[str] = Field(min_length=1, max_length=200)
    channel: Channel
    occurred_at: CivilDateTime
    summary: str = Field(max_length=5000)
    reason: str = Field(min_length=2, max_length=500)

    _tz = field_validator("occurred_at")(_aware)


class RecordActivity(Command):
    kind: ActivityKind
    organiser_cadre_id: str | None = None
    organiser_org_id: str | None = None
    occurred_on: CivilDate
    youth_ids: list[str] = Field(default_factory=list, max_length=2000)
    headcount: int = Field(default=0, ge=0, le=100_000)
    description: str = Field(max_length=5000)
    campaign_id: str | None = None


class CorrectActivity(Command):
    kind: ActivityKind
    occurred_on: CivilDate
    youth_ids: list[str] = Field(default_factory=list, max_length=2000)
    headcount: int = Field(default=0, ge=0, le=100_000)
    description: str = Field(max_length=5000)
    campaign_id: str | None = None
    reason: str = Field(min_length=2, max_length=500)


class OpenCampaign(Command):
    org_id: str
    key: str = Field(pattern=r"^[a-z0-9_]{2,40}$")
    name: str = Field(min_length=1, max_length=100)
    starts_on: CivilDate
    ends_on: CivilDate
    deadline: CivilDate | None = None
    # A selection (评选) taking nominations, checked against each cadre's assessment (不合格不能
    # 参评); unsaid: only a most_beautiful_story campaign is one.
    nominations: bool | None = None


class OpenPresetCampaigns(Command):
    org_id: str
    year: int = Field(ge=2017, le=2100)


class Nominate(Command):
    cadre_id: str


class DrawSpotCheck(Command):
    cadre_id: str
    period_from: CivilDate
    period_to: CivilDate
    size: int = Field(default=5, ge=1, le=50)


class RecordSpotCheckItem(Command):
    item: str = Field(pattern=r"^(interaction|activity):[A-Za-z0-9_.-]{1,80}$")
    outcome: SpotCheckOutcome
