"""团组织: the org tree, built top-down, and its rule sets (实施细则). Pure: no I/O."""

from __future__ import annotations

from datetime import date

from tuanlian.contacts.domain.rules import RuleVersion, escalations
from tuanlian.shared.aggregate import Aggregate
from tuanlian.shared.auth import path_covers
from tuanlian.shared.contracts.contacts import (
    OrgClosed,
    OrgCreated,
    OrgDetailsCompleted,
    OrgMerged,
    OrgMoved,
    OrgRenamed,
    OrgRules,
    OrgRulesSet,
    OrgType,
)
from tuanlian.shared.errors import IllegalTransition, RuleViolation


class Org(Aggregate):
    """团组织. ``path`` is ``/root/…/id``; the repository refreshes it after an ancestor moved."""

    stream_type = "org"
    label = "organisation"

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.name = ""
        self.org_type = OrgType.branch
        self.parent_id: str | None = None
        self.path = ""
        self.depth = 0
        self.is_leadership_organ = False
        self.status = "open"
        self.rule_history: list[RuleVersion] = []

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
        if parent is not None:
            parent.ensure_open("take new child organisations")
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

    def ensure_open(self, to: str = "change") -> None:
        if self.status != "open":
            raise IllegalTransition(f"organisation {self.id} is {self.status} and cannot {to}", current=self.status)

    def complete_details(
        self, secretary_cadre_id: str | None, member_count: int | None, region_code: str | None
    ) -> None:
        """组织信息完善: the child's own admin fills in what the parent left open."""
        self.ensure_open()
        self._record(
            OrgDetailsCompleted(
                org_id=self.id,
                org_path=self.path,
                secretary_cadre_id=secretary_cadre_id,
                member_count=member_count,
                region_code=region_code,
            )
        )

    def rename(self, name: str) -> None:
        self.ensure_open()
        name = name.strip()
        if not name:
            raise RuleViolation("an organisation needs a name", field="name")
        if name == self.name:
            raise RuleViolation("the organisation already has this name", field="name")
        self._record(OrgRenamed(org_id=self.id, org_path=self.path, old_name=self.name, name=name))

    def move(self, new_parent: Org) -> None:
        self.ensure_open("move")
        new_parent.ensure_open("take new child organisations")
        if path_covers(self.path, new_parent.path):
            raise RuleViolation("an organisation cannot move under itself", field="new_parent_id")
        if new_parent.id == self.parent_id:
            raise RuleViolation("the organisation is already there", field="new_parent_id")
        self._record(
            OrgMoved(
                org_id=self.id,
                old_parent_id=self.parent_id,
                new_parent_id=new_parent.id,
                old_path=self.path,
                new_path=f"{new_parent.path}/{self.id}",
                depth=new_parent.depth + 1,
            )
        )

    def merge_into(self, target: Org) -> None:
        """合并: members and children go to ``target``; this org closes."""
        self.ensure_open("merge")
        target.ensure_open("take a merged organisation")
        if path_covers(self.path, target.path):
            raise RuleViolation("an organisation cannot merge into itself or its own subtree", field="into_org_id")
        self._record(OrgMerged(org_id=self.id, into_org_id=target.id, old_path=self.path, into_path=target.path))
        self._record(OrgClosed(org_id=self.id, org_path=self.path, reason=f"merged into {target.id}"))

    def close(self, reason: str | None, open_children: int, active_cadres: int) -> None:
        """撤销. Only an empty org closes: its children and cadres must be moved or merged first."""
        self.ensure_open("close")
        if open_children or active_cadres:
            raise IllegalTransition(
                f"organisation {self.id} still has {open_children} open child organisations and "
                f"{active_cadres} active cadres: move, merge or deactivate them first",
                current="open",
                open_children=open_children,
                active_cadres=active_cadres,
            )
        self._record(OrgClosed(org_id=self.id, org_path=self.path, reason=reason))

    def set_rules(
        self,
        rules: OrgRules,
        effective_from: date,
        preset: str | None,
        parent_rules: OrgRules | None,
        parent_name: str | None,
        today: date,
    ) -> None:
        """Adopt a rule set from a date on. Refused if stricter than the parent's (不能层层加码)."""
        self.ensure_open()
        if effective_from < today:
            raise RuleViolation(
                "rules change from today or a later date; past periods keep the rules they had",
                field="effective_from",
            )
        latest = max((v.effective_from for v in self.rule_history), default=None)
        if latest is not None and effective_from <= latest:
            raise RuleViolation(
                f"a rule set already starts on {latest.isoformat()}; choose a later date "
                "(history is never rewritten)",
                field="effective_from",
                latest=latest.isoformat(),
            )
        if parent_rules is not None:
            found = escalations(rules, parent_rules)
            if found:
                raise RuleViolation(
                    f"不能层层加码: {found[0].describe()} set by {parent_name}",
                    field=f"rules.{found[0].field}",
                    parent_org=parent_name,
                    parent_limit=str(found[0].limit),
                    escalations=[{"field": f.field, "value": str(f.value), "limit": str(f.limit)} for f in found],
                )
        self._record(
            OrgRulesSet(org_id=self.id, org_path=self.path, effective_from=effective_from, preset=preset, rules=rules)
        )

    def when_OrgCreated(self, e: OrgCreated) -> None:
        self.name, self.org_type, self.parent_id = e.name, e.org_type, e.parent_id
        self.path, self.depth, self.is_leadership_organ = e.org_path, e.depth, e.is_leadership_organ

    def when_OrgRenamed(self, e: OrgRenamed) -> None:
        self.name = e.name

    def when_OrgMoved(self, e: OrgMoved) -> None:
        self.parent_id, self.path, self.depth = e.new_parent_id, e.new_path, e.depth

    def when_OrgClosed(self, e: OrgClosed) -> None:
        self.status = "closed"

    def when_OrgRulesSet(self, e: OrgRulesSet) -> None:
        self.rule_history.append(RuleVersion(e.effective_from, e.rules, e.preset))
