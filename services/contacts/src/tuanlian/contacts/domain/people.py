"""团干部 and 青年: who they are to the League (never their name or phone: those stay in the vault)."""

from __future__ import annotations

from typing import Any

from tuanlian.contacts.domain.orgs import Org
from tuanlian.shared.aggregate import Aggregate
from tuanlian.shared.contracts.contacts import (
    CadreDeactivated,
    CadreKind,
    CadreRegistered,
    CadreTransferred,
    Field,
    YouthContactDetailsChanged,
    YouthErased,
    YouthProfileUpdated,
    YouthRegistered,
)
from tuanlian.shared.errors import IllegalTransition, RuleViolation

# 特殊关爱群体 (002): non-hukou urban youths, poor families, left-behind children, disabled youths.
SPECIAL_CARE = ("non_hukou", "poor_family", "left_behind", "disabled")
# The youth's non-identifying attributes, as carried by YouthRegistered / YouthProfileUpdated.
YOUTH_ATTRIBUTES = ("field", "industry", "grade", "political_status", "family_situation", "special_care")
CONTACT_DETAILS = ("name", "phone")


class Cadre(Aggregate):
    """团干部. ``org_id``/``org_path`` are refreshed by the repository after an org moved or merged."""

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
        org.ensure_open("take new cadres")
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

    def ensure_active(self) -> None:
        if not self.active:
            raise IllegalTransition(f"cadre {self.id} is deactivated", current="deactivated")

    def transfer(self, to: Org, in_leadership_organ: bool | None) -> None:
        """调动: the cadre keeps their links and history, their org changes."""
        self.ensure_active()
        to.ensure_open("take new cadres")
        if to.id == self.org_id:
            raise RuleViolation("the cadre is already in this organisation", field="to_org_id")
        self._record(
            CadreTransferred(
                cadre_id=self.id,
                from_org_id=self.org_id,
                to_org_id=to.id,
                old_path=self.org_path,
                org_path=to.path,
                in_leadership_organ=self.in_leadership_organ if in_leadership_organ is None else in_leadership_organ,
            )
        )

    def deactivate(self, reason: str | None) -> None:
        self.ensure_active()
        self._record(CadreDeactivated(cadre_id=self.id, org_path=self.org_path, reason=reason))

    def when_CadreRegistered(self, e: CadreRegistered) -> None:
        self.org_id, self.org_path, self.kind, self.active = e.org_id, e.org_path, e.kind, True
        self.in_leadership_organ = e.in_leadership_organ

    def when_CadreTransferred(self, e: CadreTransferred) -> None:
        self.org_id, self.org_path, self.in_leadership_organ = e.to_org_id, e.org_path, e.in_leadership_organ

    def when_CadreDeactivated(self, e: CadreDeactivated) -> None:
        self.active = False


class Youth(Aggregate):
    """青年. Attributes here are non-identifying; name, phone, major and native place are in the vault."""

    stream_type = "youth"
    label = "youth"

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.org_id: str | None = None
        self.org_path: str | None = None
        self.erased = False
        self.attributes: dict[str, Any] = {}

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
        industry: str | None = None,
    ) -> Youth:
        if org is not None:
            org.ensure_open("take new youths")
        _check_special_care(special_care)
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
                industry=industry,
            )
        )
        return youth

    def ensure_present(self) -> None:
        if self.erased:
            raise IllegalTransition(f"youth {self.id} was erased on request", current="erased")

    def update_profile(self, org: Org | None = None, **changes: Any) -> bool:
        """Record what really changed, and only that (``None`` or the current value: unchanged).

        Returns whether anything changed; nothing changed records nothing."""
        self.ensure_present()
        unknown = sorted(set(changes) - set(YOUTH_ATTRIBUTES))
        if unknown:
            raise RuleViolation(f"{unknown[0]} is not a profile attribute", field=unknown[0])
        _check_special_care(changes.get("special_care"))
        changes = {k: v for k, v in changes.items() if v is not None and v != self.attributes.get(k)}
        if org is not None and org.id != self.org_id:
            org.ensure_open("take new youths")
            changes.update(org_id=org.id, org_path=org.path)
        if not changes:
            return False
        self._record(YouthProfileUpdated(youth_id=self.id, **changes))
        return True

    def change_contact_details(self, changed: list[str]) -> None:
        """Name or phone changed: the event names which, never the values (they stay in the vault)."""
        self.ensure_present()
        unknown = sorted(set(changed) - set(CONTACT_DETAILS))
        if unknown:
            raise RuleViolation(f"{unknown[0]} is not a contact detail", field=unknown[0])
        if changed:
            self._record(YouthContactDetailsChanged(youth_id=self.id, changed=sorted(set(changed))))

    def erase(self) -> None:
        """PIPL erasure; the caller ends the links first and destroys the key with this event."""
        self.ensure_present()
        self._record(YouthErased(youth_id=self.id))

    def when_YouthRegistered(self, e: YouthRegistered) -> None:
        self.org_id, self.org_path = e.org_id, e.org_path
        self.attributes = {k: getattr(e, k) for k in YOUTH_ATTRIBUTES if getattr(e, k) not in (None, [])}

    def when_YouthProfileUpdated(self, e: YouthProfileUpdated) -> None:
        if e.org_id is not None:
            self.org_id, self.org_path = e.org_id, e.org_path
        self.attributes.update({k: getattr(e, k) for k in YOUTH_ATTRIBUTES if getattr(e, k) is not None})

    def when_YouthContactDetailsChanged(self, e: YouthContactDetailsChanged) -> None:
        pass  # the values live in the vault

    def when_YouthErased(self, e: YouthErased) -> None:
        self.erased = True
        self.attributes = {}


def _check_special_care(groups: list[str] | None) -> None:
    unknown = sorted(set(groups or []) - set(SPECIAL_CARE))
    if unknown:
        raise RuleViolation(
            f"unknown special-care group {unknown[0]}; use one of {', '.join(SPECIAL_CARE)}",
            field="special_care",
        )
