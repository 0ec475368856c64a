"""The platform's authorisation checks: roles, subtrees, and records in no org."""

from __future__ import annotations

import pytest
from tuanlian.shared.auth import Forbidden, Principal, Role
from tuanlian.shared.http import require, require_view

CITY_ADMIN = Principal("a", Role.org_admin, "/c1")
LEADER = Principal("l", Role.leader, "/c1")
CADRE = Principal("k", Role.cadre, "/c1/b1")
SYSTEM = Principal("s", Role.system)


def test_a_role_alone() -> None:
    require(CITY_ADMIN, Role.org_admin)
    require(SYSTEM, Role.org_admin)
    with pytest.raises(Forbidden, match="role cadre may not publish"):
        require(CADRE, Role.org_admin, why="publish")


def test_a_subtree() -> None:
    for inside in ("/c1", "/c1/b1", "/c1/b1/x"):
        require(CITY_ADMIN, Role.org_admin, org_path=inside)
        require(LEADER, Role.leader, org_path=inside)
    for outside in ("/c2", "/c10", "/"):
        with pytest.raises(Forbidden, match="outside your organisation's subtree"):
            require(CITY_ADMIN, Role.org_admin, org_path=outside)


def test_a_record_in_no_org_is_in_no_admins_subtree() -> None:
    # None used to mean "no check": any admin anywhere reached a youth registered without an org.
    for who in (CITY_ADMIN, LEADER, Principal("root", Role.org_admin, "/")):
        with pytest.raises(Forbidden, match="belongs to no organisation"):
            require(who, Role.org_admin, Role.leader, org_path=None, why="see this youth")
    require(SYSTEM, Role.org_admin, org_path=None)


def test_a_subtrees_figures() -> None:
    for path in ("/", "/c1", "/c1/b1", "/c1/b1/x"):  # the subtrees the cadre is in, and those under its org
        require_view(CADRE, path, Role.org_admin, Role.cadre)
    for path in ("/c2", "/c1/b2", "/c1/b10"):
        with pytest.raises(Forbidden, match="neither an organisation you belong to"):
            require_view(CADRE, path, Role.org_admin, Role.cadre)
    require_view(CITY_ADMIN, "/c1/b2", Role.org_admin, Role.cadre)
    with pytest.raises(Forbidden):
        require_view(CITY_ADMIN, "/c2", Role.org_admin, Role.cadre)
