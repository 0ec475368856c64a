"""亮身份 and 联系团组织: the cadre's public card and the organisations a cadre covers.

Both are recorded on the cadre's own stream (the cadre aggregate keeps no state from them, so a
concurrent change to the cadre still conflicts on its version and is retried).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tuanlian.shared.auth import path_covers
from tuanlian.shared.contracts.contacts import (
    CadreCardPublished,
    Channel,
    GroupLinkAdded,
    GroupLinkEnded,
    OrgType,
)
from tuanlian.shared.errors import IllegalTransition, RuleViolation

if TYPE_CHECKING:
    from tuanlian.contacts.domain.model import Cadre

CARD_CHANNELS = frozenset({Channel.wechat, Channel.qq, Channel.weibo})

# Lüliang (004) coverage: 分团委 (sub-committees), 团支部 (branches), 宿舍团小组 (dorm groups).
GROUP_TYPES: dict[OrgType, str] = {
    OrgType.department: "sub_committees",
    OrgType.branch: "branches",
    OrgType.dorm_group: "dorm_groups",
}


def publish_card(cadre: Cadre, channels: dict[Channel, str]) -> CadreCardPublished:
    if not cadre.active:
        raise IllegalTransition("the cadre is not active", current="inactive")
    other = sorted(c.value for c in channels if c not in CARD_CHANNELS)
    if other:
        raise RuleViolation(f"a card lists WeChat, QQ or Weibo ids, not {', '.join(other)}", field="channels")
    event = CadreCardPublished(cadre_id=cadre.id, org_path=cadre.org_path, channels=sorted(channels))
    cadre._record(event)
    return event


def add_group_link(
    cadre: Cadre, group_org_id: str, group_type: OrgType, group_path: str, covered: set[str]
) -> GroupLinkAdded:
    if not cadre.active:
        raise IllegalTransition("the cadre is not active", current="inactive")
    if group_type not in GROUP_TYPES:
        raise RuleViolation(
            "a cadre covers sub-committees (department), branches or dorm groups", field="org_id"
        )
    if group_path == cadre.org_path or not path_covers(cadre.org_path, group_path):
        raise RuleViolation("the organisation is not below the cadre's own", field="org_id")
    if group_org_id in covered:
        raise IllegalTransition("the cadre already covers this organisation", current="covered")
    event = GroupLinkAdded(
        cadre_id=cadre.id,
        group_org_id=group_org_id,
        group_org_type=group_type,
        group_org_path=group_path,
        org_path=cadre.org_path,
    )
    cadre._record(event)
    return event


def end_group_link(cadre: Cadre, group_org_id: str, covered: set[str]) -> GroupLinkEnded:
    if group_org_id not in covered:
        raise IllegalTransition("the cadre does not cover this organisation", current="not_covered")
    event = GroupLinkEnded(cadre_id=cadre.id, group_org_id=group_org_id, org_path=cadre.org_path)
    cadre._record(event)
    return event
