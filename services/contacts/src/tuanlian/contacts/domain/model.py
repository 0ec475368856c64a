"""Contacts' aggregates: organisations, cadres, youths, contact links and interactions.

Pure: no I/O. Each command method checks the League's rules against the state rebuilt from
events and records new events; the application layer loads, calls and saves.
"""

from __future__ import annotations

# Links and interactions live in their own modules; re-exported for existing importers.
from tuanlian.contacts.domain.interactions import MIN_SUMMARY_CHARS as MIN_SUMMARY_CHARS
from tuanlian.contacts.domain.interactions import Interaction as Interaction
from tuanlian.contacts.domain.links import ContactLink as ContactLink
from tuanlian.shared.aggregate import Aggregate
from tuanlian.shared.contracts.contacts import (
    CadreKind,
    CadreRegistered,
    Field,
    OrgCreated,
    OrgType,
    YouthRegistered,
)
from tuanlian.shared.errors import RuleViolation


class Org(Aggregate):
    """团组织."""

    stream_type = "org"
    label = "organisation"

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.path = ""
        self.depth = 0
        self.is_leadership_organ = False

    @classmethod
    def create(
        cls,
        org_id: str,
        name: str,
        org_type: OrgType,
        parent: Org | None,
        is_leadership_organ: bool,
    ) -> Org:
        if not name.strip():
            raise RuleViolation("an organisation needs a name", field="name")
        org = cls(org_id)
        path = f"{parent.path}/{org_id}" if parent else f"/{org_id}"
        org._record(
            OrgCreated(
                org_id=org_id,
                parent_id=parent.id if parent else None,
                name=name.strip(),
                org_type=org_type,
                depth=(parent.depth + 1) if parent else 0,
                is_leadership_organ=is_leadership_organ,
                org_path=path,
            )
        )
        return org

    def when_OrgCreated(self, e: OrgCreated) -> None:
        self.path = e.org_path
        self.depth = e.depth
        self.is_leadership_organ = e.is_leadership_organ


class Cadre(Aggregate):
    """团干部."""

    stream_type = "cadre"
    label = "cadre"

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.org_id = ""
        self.org_path = ""
        self.kind = CadreKind.part_time
        self.in_leadership_organ = False
        self.active = False

    @classmethod
    def register(cls, cadre_id: str, org: Org, kind: CadreKind, in_leadership_organ: bool) -> Cadre:
        cadre = cls(cadre_id)
        cadre._record(
            CadreRegistered(
                cadre_id=cadre_id,
                org_id=org.id,
                org_path=org.path,
                kind=kind,
                in_leadership_organ=in_leadership_organ,
            )
        )
        return cadre

    def when_CadreRegistered(self, e: CadreRegistered) -> None:
        self.org_id, self.org_path, self.kind, self.active = e.org_id, e.org_path, e.kind, True
        self.in_leadership_organ = e.in_leadership_organ


class Youth(Aggregate):
    """青年."""

    stream_type = "youth"
    label = "youth"

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.org_path: str | None = None

    @classmethod
    def register(
        cls,
        youth_id: str,
        org: Org | None,
        field: Field | None,
        grade: str | None = None,
        political_status: str | None = None,
        family_situation: str | None = None,
        special_care: list[str] | None = None,
    ) -> Youth:
        youth = cls(youth_id)
        youth._record(
            YouthRegistered(
                youth_id=youth_id,
                org_id=org.id if org else None,
                org_path=org.path if org else None,
                field=field,
                grade=grade,
                political_status=political_status,
                family_situation=family_situation,
                special_care=special_care or [],
            )
        )
        return youth

    def when_YouthRegistered(self, e: YouthRegistered) -> None:
        self.org_path = e.org_path
