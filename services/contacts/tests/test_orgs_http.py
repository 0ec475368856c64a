"""Organisations over HTTP, through real Postgres and NATS: lifecycle, rules, tree import."""

import io
from collections.abc import AsyncIterator
from datetime import date, timedelta
from pathlib import Path

import pytest
from nats.js import JetStreamContext
from openpyxl import Workbook
from tuanlian.contacts.testkit import ContactsApi, running_contacts


@pytest.fixture
async def api(database_url: str, nats_url: str, tmp_path: Path) -> AsyncIterator[ContactsApi]:
    async with running_contacts(database_url, nats_url, tmp_path) as running:
        yield running


async def test_tree_lifecycle_is_events_on_the_bus_and_history_is_kept(api: ContactsApi, js: JetStreamContext) -> None:
    city = await api.org("江城市团委", "city", is_leadership_organ=True)
    east = await api.org("东区团委", "county", city)
    west = await api.org("西区团委", "county", city)
    school = await api.org("一中团委", "grassroots_committee", east)
    branch = await api.org("高一(1)班团支部", "branch", school)
    admin = api.admin(city["org_path"])

    # The child's own admin completes it; the parent's admin cannot be replaced by a sibling's.
    r = await api.http.post(f"/orgs/{school['org_id']}/details", json={"member_count": 120, "region_code": "420100"},
                            headers=api.admin(school["org_path"]))
    assert r.status_code == 200, r.text
    r = await api.http.post(f"/orgs/{school['org_id']}/details", json={"member_count": 1},
                            headers=api.admin(west["org_path"]))
    assert r.status_code == 403

    r = await api.http.post(f"/orgs/{school['org_id']}/rename", json={"name": "江城一中团委"}, headers=admin)
    assert r.status_code == 200, r.text
    r = await api.http.post(f"/orgs/{school['org_id']}/move", json={"new_parent_id": west["org_id"]}, headers=admin)
    assert r.status_code == 200, r.text
    moved_path = f"{west['org_path']}/{school['org_id']}"
    assert r.json()["org_path"] == moved_path
    # The subtree moved with it (the branch's own stream was not touched).
    r = await api.http.get(f"/orgs/{branch['org_id']}", headers=admin)
    assert r.json()["org_path"] == f"{moved_path}/{branch['org_id']}" and r.json()["depth"] == 3
    r = await api.http.post(f"/orgs/{city['org_id']}/move", json={"new_parent_id": branch["org_id"]},
                            headers=api.system)
    assert r.status_code == 422 and r.json()["field"] == "new_parent_id"

    # East merges into west; a closed org refuses changes with its state.
    r = await api.http.post(f"/orgs/{east['org_id']}/merge", json={"into_org_id": west["org_id"]}, headers=admin)
    assert r.status_code == 200 and r.json()["status"] == "closed"
    r = await api.http.post(f"/orgs/{east['org_id']}/rename", json={"name": "x"}, headers=admin)
    assert r.status_code == 409 and r.json()["current"] == "closed"
    # West still has a child: it cannot close until that is moved.
    r = await api.http.post(f"/orgs/{west['org_id']}/close", json={"reason": "撤并"}, headers=admin)
    assert r.status_code == 409 and r.json()["open_children"] == 1

    r = await api.http.get(f"/orgs/{school['org_id']}/history", headers=admin)
    assert [e["event_type"] for e in r.json()] == ["OrgCreated", "OrgDetailsCompleted", "OrgRenamed", "OrgMoved"]
    assert r.json()[2]["payload"]["old_name"] == "一中团委"

    envelopes = await api.published(js, until=lambda es: any(e["event_type"] == "OrgClosed" for e in es))
    moved = next(e for e in envelopes if e["event_type"] == "OrgMoved")
    assert (moved["payload"]["old_path"], moved["payload"]["new_path"]) == (
        f"{east['org_path']}/{school['org_id']}", moved_path
    )
    merged = next(e for e in envelopes if e["event_type"] == "OrgMerged")
    assert merged["payload"]["into_path"] == west["org_path"]


async def test_rules_inherit_and_refuse_escalation_naming_the_parent(api: ContactsApi, js: JetStreamContext) -> None:
    city = await api.org("上海团市委", "city", is_leadership_organ=True)
    district = await api.org("浦东团区委", "county", city, is_leadership_organ=True)
    start = date.today() + timedelta(days=10)
    r = await api.http.put(f"/orgs/{city['org_id']}/rules",
                           json={"effective_from": start.isoformat(), "preset": "000"},
                           headers=api.admin(city["org_path"]))
    assert r.status_code == 200, r.text

    district_admin = api.admin(district["org_path"])
    # Before the city's rules start, the national defaults apply; from then on the city's, inherited.
    r = await api.http.get(f"/orgs/{district['org_id']}/rules", params={"on": start.isoformat()}, headers=district_admin)
    assert r.json()["inherited_from"] == city["org_id"]
    assert r.json()["rules"]["five_ones"]["full_time"] == {"count": 5, "period": "two_months"}
    # The city circulates quarterly (000); the district inherits the rules, not the circulars.
    assert r.json()["rules"]["circulars"] == {"periods": [], "days_after_close": 3}
    assert r.json()["rules"]["assessments"] == {"periods": [], "days_after_close": 3}
    r = await api.http.get(f"/orgs/{city['org_id']}/rules", params={"on": start.isoformat()},
                           headers=api.admin(city["org_path"]))
    assert r.json()["rules"]["circulars"] == {"periods": ["quarter"], "days_after_close": 3}

    # Yangzhou's monthly rhythm is stricter than Shanghai's: refused, naming the city and its limit.
    r = await api.http.put(f"/orgs/{district['org_id']}/rules",
                           json={"effective_from": start.isoformat(), "preset": "001"}, headers=district_admin)
    assert r.status_code == 422
    body = r.json()
    assert "上海团市委" in body["detail"] and body["parent_org"].startswith("上海团市委")
    assert {(e["field"], e["limit"]) for e in body["escalations"]} >= {
        ("contact_quotas.part_time", "10"), ("five_ones.full_time.period", "two_months")
    }

    relaxed = dict(r.json()) and {
        "effective_from": (start + timedelta(days=1)).isoformat(),
        "rules": {"contact_quotas": {"full_time": 80, "seconded": 80, "part_time_leadership": 80, "part_time": 8},
                  "five_ones": {"full_time": {"count": 4, "period": "quarter"}},
                  "circulars": {"periods": ["month"], "days_after_close": 5}},
    }
    r = await api.http.put(f"/orgs/{district['org_id']}/rules", json=relaxed, headers=district_admin)
    assert r.status_code == 200, r.text
    r = await api.http.get(f"/orgs/{district['org_id']}/rules",
                           params={"on": (start + timedelta(days=5)).isoformat()}, headers=district_admin)
    assert r.json()["inherited_from"] == district["org_id"]
    assert r.json()["rules"]["contact_quotas"]["full_time"] == 80
    assert r.json()["rules"]["circulars"] == {"periods": ["month"], "days_after_close": 5}  # its own
    # The day before, the city's rules still stand: history by date.
    r = await api.http.get(f"/orgs/{district['org_id']}/rules", params={"on": start.isoformat()}, headers=district_admin)
    assert r.json()["rules"]["contact_quotas"]["full_time"] == 100
    # Past dates cannot be rewritten; bad input names the field.
    r = await api.http.put(f"/orgs/{district['org_id']}/rules",
                           json={"effective_from": "2020-01-01", "preset": "002"}, headers=district_admin)
    assert r.status_code == 422 and r.json()["field"] == "effective_from"
    r = await api.http.put(f"/orgs/{district['org_id']}/rules",
                           json={"effective_from": "soon", "preset": "999"}, headers=district_admin)
    assert r.status_code == 422
    assert {tuple(e["loc"]) for e in r.json()["detail"]} == {("body", "effective_from"), ("body", "preset")}

    envelopes = await api.published(js, until=lambda es: sum(e["event_type"] == "OrgRulesSet" for e in es) == 2)
    rules_set = [e["payload"] for e in envelopes if e["event_type"] == "OrgRulesSet"]
    assert [p["preset"] for p in rules_set] == ["000", None]


def _xlsx(rows: list[list[object]]) -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


async def test_tree_import_reports_rows_is_all_or_nothing_and_idempotent(api: ContactsApi) -> None:
    city = await api.org("江城市团委", "city")
    admin = api.admin(city["org_path"])
    header = "org_id,parent_id,name,org_type,is_leadership_organ\n"
    bad = header + (
        f"u1,{city['org_id']},江城大学团委,university,no\n"
        "d1,u1,计算机学院分团委,department,\n"
        "d2,nowhere,外语学院分团委,department,\n"
        "b1,d1,,branch,\n"
        "b2,d1,软件1班团支部,galaxy,\n"
    )
    r = await api.http.post("/orgs/import", files={"file": ("tree.csv", bad.encode(), "text/csv")}, headers=admin)
    assert r.status_code == 422
    errors = {(e["row"], e["column"]) for e in r.json()["report"]["errors"]}
    assert errors == {(4, "parent_id"), (5, "name"), (6, "org_type")}
    r = await api.http.get(f"/orgs/{city['org_id']}/children", headers=admin)
    assert r.json() == []  # nothing half-written

    # Asked to keep the good rows, the good rows land and the report still names the bad ones.
    r = await api.http.post("/orgs/import", params={"all_or_nothing": "false"},
                            files={"file": ("tree.csv", bad.encode(), "text/csv")}, headers=admin)
    assert r.status_code == 200, r.text
    assert [c["org_id"] for c in r.json()["created"]] == ["u1", "d1"] and len(r.json()["errors"]) == 3

    good = _xlsx([
        ["org_id", "parent_id", "name", "org_type", "is_leadership_organ"],
        ["u1", city["org_id"], "江城大学团委", "university", "no"],
        ["d1", "u1", "计算机学院分团委", "department", None],
        ["b1", "d1", "软件1班团支部", "branch", None],
        ["g1", "b1", "3号楼201宿舍团小组", "dorm_group", None],
    ])
    files = {"file": ("tree.xlsx", good, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")}
    r = await api.http.post("/orgs/import", files=files, headers=admin)
    assert r.status_code == 200, r.text
    assert [c["org_id"] for c in r.json()["created"]] == ["b1", "g1"]
    assert r.json()["created"][1]["org_path"] == f"{city['org_path']}/u1/d1/b1/g1"
    r = await api.http.post("/orgs/import", files=files, headers=admin)
    assert r.json()["created"] == [] and len(r.json()["unchanged"]) == 4  # re-import changes nothing

    # Outside one's subtree, per row; not a spreadsheet, for the file.
    r = await api.http.post("/orgs/import", files=files, headers=api.admin("/elsewhere"))
    assert r.status_code == 200 and r.json()["created"] == []  # all rows are unchanged, nothing to refuse
    r = await api.http.post("/orgs/import", files={"file": ("tree.pdf", b"%PDF", "application/pdf")}, headers=admin)
    assert r.status_code == 422 and r.json()["field"] == "file"
