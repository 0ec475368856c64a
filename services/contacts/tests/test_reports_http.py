"""Work reports upward (工作情况报送) over HTTP, through real Postgres and NATS: sending, revisions,
the receiving org returning one, and its view of who has sent theirs."""

import csv
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from nats.js import JetStreamContext
from tuanlian.contacts.testkit import ContactsApi, running_contacts
from tuanlian.shared import league_calendar as cal
from tuanlian.shared.auth import Role
from tuanlian.shared.contracts.contacts import OrgRules

TEXT = {"practice": "每月一次团课，覆盖全部支部", "experience": "线上线下结合", "problems": "农村支部参与不足",
        "next_steps": "下季度结对帮扶"}


@pytest.fixture
async def api(database_url: str, nats_url: str, tmp_path: Path) -> AsyncIterator[ContactsApi]:
    async with running_contacts(database_url, nats_url, tmp_path) as running:
        yield running


def _quarters() -> tuple[str, str]:
    """(the quarter before this one, this one), by the League's (China) calendar."""
    today = cal.local_date(datetime.now(UTC))
    this = cal.period_of("quarter", today)
    return cal.period_of("quarter", this.start - timedelta(days=1)).label, this.label


async def test_send_return_resend_and_the_receiving_orgs_view(api: ContactsApi, js: JetStreamContext) -> None:
    city = await api.org("江城团市委", "city", is_leadership_organ=True)
    east = await api.org("东区团委", "county", city)
    west = await api.org("西区团委", "county", city)
    city_admin, east_admin, west_admin = (api.admin(o["org_path"]) for o in (city, east, west))
    last, this = _quarters()
    url = f"/orgs/{east['org_id']}/reports"

    # Last quarter's report is past its due date: it comes in late, and once in it stays as sent.
    r = await api.http.put(f"{url}/{last}", json=TEXT, headers=east_admin)
    assert r.status_code == 200, r.text
    sent = r.json()
    assert (sent["revision"], sent["state"], sent["late"]) == (1, "late", True)
    r = await api.http.put(f"{url}/{last}", json=TEXT | {"problems": "改"}, headers=east_admin)
    assert r.status_code == 409 and "must return it" in r.json()["detail"], r.text

    # Who may do what: a sibling's admin neither sends nor returns it; the org's own admin cannot
    # return its own report (the receiving org does); a cadre cannot read the summary.
    assert (await api.http.put(f"{url}/{last}", json=TEXT, headers=west_admin)).status_code == 403
    assert (await api.http.post(f"{url}/{last}/return", json={"reason": "x"}, headers=east_admin)).status_code == 403
    cadre = api.token(Role.cadre, "c1", east["org_path"])
    assert (await api.http.get(f"/orgs/{city['org_id']}/reports", params={"period": last},
                               headers=cadre)).status_code == 403

    # Bad input: a clear 422 and nothing recorded.
    for period, body, field in (("2026-Q9", TEXT, "period"), (last, {"practice": " "}, "practice"),
                                ("2026-H1", TEXT, "period")):  # the default rules ask for no half-year report
        r = await api.http.put(f"/orgs/{west['org_id']}/reports/{period}", json=body, headers=west_admin)
        assert r.status_code == 422 and r.json()["field"] == field, r.text
    r = await api.http.put(f"/orgs/{west['org_id']}/reports/Q4-2026", json=TEXT, headers=west_admin)
    assert r.status_code == 422 and "not a report key: 'Q4-2026' (2026-Q4, 2026-H2 or 2026-annual)" in r.text
    r = await api.http.put(f"/orgs/{west['org_id']}/reports/{last}", json=TEXT | {"extra": 1}, headers=west_admin)
    assert r.status_code == 422
    assert (await api.http.get(f"/orgs/{west['org_id']}/reports/{last}", headers=city_admin)).status_code == 404

    # The city returns it with a reason; east sends a second revision, which is open again.
    r = await api.http.post(f"{url}/{last}/return", json={"reason": "问题部分请具体到支部"}, headers=city_admin)
    assert r.status_code == 200 and r.json()["state"] == "returned", r.text
    assert r.json()["returned_reason"] == "问题部分请具体到支部"
    r = await api.http.put(f"{url}/{last}", json=TEXT | {"problems": "三个农村支部参与不足"}, headers=east_admin)
    assert r.status_code == 200, r.text
    assert (r.json()["revision"], r.json()["state"], r.json()["problems"]) == (2, "late", "三个农村支部参与不足")

    r = await api.http.get(f"{url}/{last}", headers=city_admin)
    assert [(h["event_type"], h["revision"]) for h in r.json()["history"]] == [
        ("WorkReportSubmitted", 1), ("WorkReportReturned", 1), ("WorkReportSubmitted", 2)]
    assert r.json()["history"][1]["reason"] == "问题部分请具体到支部"

    # This quarter's: on time until its due date.
    due = cal.report_owed(OrgRules(), this)
    assert due is not None
    r = await api.http.put(f"/orgs/{west['org_id']}/reports/{this}", json=TEXT, headers=west_admin)
    assert r.status_code == 200, r.text
    today = cal.local_date(datetime.now(UTC))
    assert r.json()["state"] == ("on_time" if today <= due.due else "late")

    # 报送情况: the city sees each county's state for the period, as JSON and as CSV.
    r = await api.http.get(f"/orgs/{city['org_id']}/reports", params={"period": last}, headers=city_admin)
    assert r.status_code == 200, r.text
    states = {o["org_id"]: o["state"] for o in r.json()["orgs"]}
    assert states == {east["org_id"]: "late", west["org_id"]: "overdue"} and r.json()["counts"] == {
        "late": 1, "overdue": 1}
    r = await api.http.get(f"/orgs/{city['org_id']}/reports", params={"period": this}, headers=city_admin)
    this_states = {o["org_id"]: o["state"] for o in r.json()["orgs"]}
    assert this_states[east["org_id"]] == ("pending" if today <= due.due else "overdue")
    r = await api.http.get(f"/orgs/{city['org_id']}/reports", params={"period": last, "format": "csv"},
                           headers=city_admin)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert rows[0][:4] == ["org_id", "name", "org_type", "state"] and len(rows) == 3
    r = await api.http.get(f"/orgs/{city['org_id']}/reports", params={"period": "Q1"}, headers=city_admin)
    assert r.status_code == 422

    # Every step is an event on the CONTACTS stream, with the text and the lateness.
    events = await api.published(js, until=lambda es: sum(e["event_type"] == "WorkReportSubmitted" for e in es) >= 3)
    reports = [e for e in events if e["event_type"].startswith("WorkReport")]
    assert [(e["event_type"], e["payload"]["org_id"], e["payload"]["revision"]) for e in reports][:3] == [
        ("WorkReportSubmitted", east["org_id"], 1), ("WorkReportReturned", east["org_id"], 1),
        ("WorkReportSubmitted", east["org_id"], 2)]
    assert reports[0]["payload"]["late"] is True and reports[0]["payload"]["due_on"] == cal.report_owed(
        OrgRules(), last).due.isoformat()
