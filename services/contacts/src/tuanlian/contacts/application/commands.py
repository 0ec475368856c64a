"""Commands the contacts service accepts (also its HTTP request bodies, validated field by field)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator
from tuanlian.shared.contracts.contacts import CadreKind, Channel, OrgType
from tuanlian.shared.contracts.contacts import Field as YouthField
from tuanlian.shared.contracts.dates import CivilDateTime

PHONE_PATTERN = r"^1[3-9]\d{9}$"


class Command(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class CreateOrg(Command):
    name: str = Field(min_length=1, max_length=100)
    org_type: OrgType
    parent_id: str | None = None
    is_leadership_organ: bool = False
    org_id: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_-]{1,40}$",
        description="optional stable id (imports); generated when absent",
    )


class RegisterCadre(Command):
    org_id: str
    name: str = Field(min_length=1, max_length=50)
    phone: str | None = Field(default=None, pattern=PHONE_PATTERN)
    kind: CadreKind
    in_leadership_organ: bool = False


class RegisterYouth(Command):
    name: str = Field(min_length=1, max_length=50)
    phone: str = Field(pattern=PHONE_PATTERN)
    org_id: str | None = None
    field: YouthField | None = None
    grade: str | None = Field(default=None, max_length=20)
    political_status: str | None = Field(default=None, max_length=20)
    family_situation: str | None = Field(default=None, max_length=50)
    special_care: list[str] = Field(default_factory=list)
    industry: str | None = Field(default=None, max_length=30)  # 行业 tag (000)
    major: str | None = Field(default=None, max_length=50)  # sealed in the vault, never on the bus
    native_place: str | None = Field(default=None, max_length=50)  # sealed in the vault


class InviteYouth(Command):
    cadre_id: str
    youth_id: str


class LogInteraction(Command):
    cadre_id: str
    youth_ids: list[str] = Field(min_length=1, max_length=200)
    channel: Channel
    occurred_at: CivilDateTime
    summary: str = Field(max_length=5000)

    @field_validator("occurred_at")
    @classmethod
    def _aware(cls, v: datetime) -> datetime:
        if v.tzinfo is None:
            raise ValueError("give a time zone (e.g. 2026-05-04T10:00:00+08:00)")
        return v
