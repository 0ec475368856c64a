"""Authorisation matrix: every endpoint of orgs, rules, people and accounts × every role × inside
and outside the subtree. Allowed means the call succeeds (2xx);
refused means 403 (or the documented 404/422 where scope is applied per row or hides existence)."""

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from tuanlian.contacts.testkit import ContactsApi, running_contacts
from tuanlian.shared.auth import Role

ADMIN = {"system", "admin_in"}
READERS = ADMIN | {"leader_in", "cadre"}  # cadres read the rules and records of the orgs above them
SELF = ADMIN | {"youth_self"}
# Imports check the subtree row by row: outside it, every row is refused in the report (422).
ROW_SCOPED = {"system": "ok", "admin_in": "ok", "admin_out": 422}

# (method, path template, body or file, who may) — {org}, {cadre}, {youth}, {target} are filled in.
MATRIX: list[tuple[str, str, Any, set[str] | dict[str, Any]]] = [
    ("POST", "/orgs/{org}/details", {"member_count": 30}, ADMIN),
    ("POST", "/orgs/{org}/rename", {"name": "新名字{n}"}, ADMIN),
    ("POST", "/orgs/{org}/move", {"new_parent_id": "{target}"}, ADMIN),
    ("POST", "/orgs/{org}/merge", {"into_org_id": "{target}"}, ADMIN),
    ("POST", "/orgs/{org}/close", {"reason": "撤销"}, ADMIN),
    ("PUT", "/orgs/{org}/rules", {"effective_from": "2099-01-01", "preset": "000"}, ADMIN),
    ("GET", "/orgs/{home}", None, READERS),
    ("GET", "/orgs/{home}/rules", None, READERS),
    ("GET", "/orgs/{home}/history", None, READERS),
    ("GET", "/orgs/{home}/children", None, READERS),
    ("GET", "/orgs/{home}/campaigns", None, READERS),
    ("POST", "/orgs/import", ("org_id,parent_id,name,org_type\nx{n},{home},新支部,branch\n"), ROW_SCOPED),
    ("GET", "/cadres/{cadre}/links", None, READERS),
    ("POST", "/cadres/{cadre}/transfer", {"to_org_id": "{target}"}, ADMIN),
    ("POST", "/cadres/{cadre}/account", None, ADMIN),
    ("POST", "/cadres/{cadre}/deactivate", {"reason": "离任"}, ADMIN),
    ("POST", "/cadres/import", "name,phone,org_id,kind\n干部{n},1350000{n:04d},{home},part_time\n", ROW_SCOPED),
    ("POST", "/youths/import", "name,phone,org_id\n青年{n},1340000{n:04d},{home}\n", ROW_SCOPED),
    ("POST", "/youths/industry", {"youth_ids": ["{youth}"], "industry": "制造业"}, ADMIN),
    ("GET", "/youths/search?phone=13300000001", None, {"system": "ok", "admin_in": "ok", "admin_out": 404}),
    ("GET", "/youths/{youth}", None, SELF),
    ("PATCH", "/youths/{youth}", {"grade": "2026"}, SELF),
    ("PATCH", "/youths/{youth}", {"name": "小红", "phone": "1320000{n:04d}"}, SELF),
    # 组织关系转接: an organisation moves a youth, not the youth itself.
    ("PATCH", "/youths/{youth}", {"org_id": "{target}"}, ADMIN),
    ("GET", "/cadres/{cadre}/activities?from=2026-01-01&to=2026-12-31", None, READERS),
    ("POST", "/youths/{youth}/erase", None, SELF),
    ("POST", "/accounts", {"role": "leader", "org_id": "{home}"}, ADMIN),
]
PRINCIPALS = ("system", "admin_in", "admin_out", "leader_in", "leader_out", "cadre", "youth_self", "youth_other",
              "partner")


@pytest.fixture
async def api(database_url: str, nats_url: str, tmp_path: Path) -> AsyncIterator[ContactsApi]:
    async with running_contacts(database_url, nats_url, tmp_path) as running:
        yield running


def _fill(value: Any, ids: dict[str, Any]) -> Any:
    if isinstance(value, str):
        return value.format(**ids)
    if isinstance(value, list):
        return [_fill(v, ids) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    return value


async def test_every_endpoint_every_role_inside_and_outside(api: ContactsApi) -> None:
    city = await api.org("江城市团委", "city")
    other = await api.org("河城市团委", "city")
    home = await api.org("东区团委", "county", city)
    admin = api.admin(city["org_path"])
    n = 0
    failures: list[str] = []
    for method, template, body, allowed in MATRIX:
        for who in PRINCIPALS:
            n += 1
            # Fresh subjects per cell, so one cell's success (a merge, an erasure) cannot mask another's.
            org = await api.org(f"团支部{n}", "branch", home)
            target = await api.org(f"目标团支部{n}", "branch", home)
            r = await api.http.post("/cadres", json={"org_id": home["org_id"], "name": "张三", "kind": "full_time"},
                                    headers=admin)
            cadre = r.json()["cadre_id"]
            r = await api.http.post("/youths", headers=admin, json={
                "org_id": home["org_id"], "name": "小明", "phone": f"1330000{n:04d}"})
            youth = r.json()["youth_id"]
            headers = {
                "system": api.system,
                "admin_in": admin,
                "admin_out": api.admin(other["org_path"]),
                "leader_in": api.token(Role.leader, "leader", city["org_path"]),
                "leader_out": api.token(Role.leader, "leader", other["org_path"]),
                "cadre": api.token(Role.cadre, cadre, home["org_path"]),
                "youth_self": api.token(Role.youth, youth),
                "youth_other": api.token(Role.youth, "someone-else"),
                "partner": api.token(Role.partner, "partner", city["org_path"]),
            }[who]
            ids = {"org": org["org_id"], "target": target["org_id"], "home": home["org_id"], "cadre": cadre,
                   "youth": youth, "n": n}
            url = _fill(template, ids)
            if isinstance(body, str):
                r = await api.http.post(url, files={"file": ("f.csv", _fill(body, ids).encode())}, headers=headers)
            else:
                r = await api.http.request(method, url, json=_fill(body, ids), headers=headers)
            expected = allowed.get(who, 403) if isinstance(allowed, dict) else ("ok" if who in allowed else 403)
            # Fresh subjects and valid bodies: an allowed call must succeed, not just escape the 403.
            ok = r.status_code < 300 if expected == "ok" else r.status_code == expected
            if not ok:
                failures.append(f"{method} {template} as {who}: {r.status_code} (expected {expected}) {r.text[:120]}")
    assert failures == []
