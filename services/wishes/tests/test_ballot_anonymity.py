"""满意度测评 "背靠背": nothing the system wrote tells which choice a given voter made."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta

import pytest
from tuanlian.shared.auth import Role
from tuanlian.shared.contracts.contacts import OrgType
from tuanlian.shared.testing import stream_messages, wait_until
from wishes_support import Harness

BRANCH = "/city/b1"
CHOICES = ("satisfied", "basically_satisfied", "unsatisfied")
# Six members vote (one abstains); the majority is unsatisfied, so the re-election flag goes up.
VOTES = {"m0": "unsatisfied", "m1": "satisfied", "m2": "unsatisfied", "m3": "basically_satisfied",
         "m4": "unsatisfied", "m5": "unsatisfied"}


async def _everything_written(h: Harness) -> list[str]:
    """Every row of every table of the wishes schema, every column as text; and the WISHES stream."""
    lines: list[str] = []
    tables = await h.rows("SELECT table_name FROM information_schema.tables WHERE table_schema = 'wishes' "
                          "AND table_type = 'BASE TABLE'")
    for t in tables:
        for row in await h.rows(f"SELECT t::text AS line FROM wishes.{t['table_name']} t"):
            lines.append(f"{t['table_name']}: {row['line']}")
    lines += [m.data.decode() for m in await stream_messages(h.js, "WISHES")]
    return lines


async def test_votes_cannot_be_linked_to_voters(harness: Harness, caplog: pytest.LogCaptureFixture,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    h = harness
    await h.contacts.org("b1", BRANCH, OrgType.branch)
    await h.contacts.cadre("sec1", "b1", BRANCH)
    for m in [*VOTES, "m6"]:
        await h.contacts.youth(m, "b1", BRANCH)
    await h.contacts.youth("outsider", "b2", "/city/b2")
    await wait_until(lambda: h.rows("SELECT 1 FROM wishes.youths"), until=lambda r: len(r) == 8)
    await wait_until(lambda: h.rows("SELECT 1 FROM wishes.orgs"))
    await wait_until(lambda: h.rows("SELECT 1 FROM wishes.cadres WHERE cadre_id = 'sec1'"))
    admin = h.auth(Role.org_admin, "a1", "/city")
    closes = (datetime.now(UTC) + timedelta(days=7)).isoformat()
    b = await h.call("POST", "/ballots", admin, 201, json={
        "branch_org_id": "b1", "secretary_cadre_id": "sec1", "year": 2026, "closes_at": closes})
    assert b["eligible"] == 7
    bid = b["ballot_id"]
    assert "satisfied" not in await h.call("GET", f"/ballots/{bid}", admin)

    capsys.readouterr()
    caplog.clear()
    with caplog.at_level(logging.DEBUG):
        for voter, choice in VOTES.items():
            await h.call("POST", f"/ballots/{bid}/votes", h.auth(Role.youth, voter), 204, json={"choice": choice})
        vote_logs = [r.getMessage() for r in caplog.records] + capsys.readouterr().out.splitlines()
    await h.call("POST", f"/ballots/{bid}/votes", h.auth(Role.youth, "m0"), 409, json={"choice": "satisfied"})
    await h.call("POST", f"/ballots/{bid}/votes", h.auth(Role.youth, "outsider"), 403, json={"choice": "satisfied"})
    await h.call("POST", f"/ballots/{bid}/votes", h.auth(Role.youth, "m6"), 422, json={"choice": "meh"})

    # Results only after closing.
    assert "unsatisfied" not in await h.call("GET", f"/ballots/{bid}", admin)
    result = await h.call("POST", f"/ballots/{bid}/close", admin)
    assert (result["satisfied"], result["basically_satisfied"], result["unsatisfied"]) == (1, 1, 4)
    assert result["turnout"] == 6 and result["reelection_flag"] is True
    await h.call("POST", f"/ballots/{bid}/votes", h.auth(Role.youth, "m6"), 409, json={"choice": "satisfied"})
    await wait_until(lambda: stream_messages(h.js, "WISHES", "wishes.events.ballot.BallotClosed"))

    written = await _everything_written(h)
    # 1. Nothing that names a voter also names a choice: no per-vote row, event or log line.
    for line in written + vote_logs:
        for voter in VOTES:
            if f"{voter}" in line.replace("\\", ""):
                assert not any(c in line for c in CHOICES), f"links {voter} to a choice: {line}"
    # 2. The vote path logged nothing naming a voter (the actor is bound to every log line there).
    assert not [line for line in vote_logs if any(v in line for v in VOTES)], vote_logs
    # 3. Voters appear only in the electorate, which holds no time, order or choice column.
    holders = {line.split(":")[0] for line in written for v in VOTES if f",{v}," in line or f"({v}," in line}
    assert holders <= {"ballot_electorate", "youths"}, holders
    cols = await h.rows("SELECT column_name FROM information_schema.columns WHERE table_schema = 'wishes' "
                        "AND table_name = 'ballot_electorate' ORDER BY ordinal_position")
    assert [c["column_name"] for c in cols] == ["ballot_id", "youth_id", "voted"]
    # 4. No events per vote: only the opening and the closing of the ballot.
    types = [json.loads(m.data)["event_type"] for m in await stream_messages(h.js, "WISHES")]
    assert types == ["BallotOpened", "BallotClosed"]


async def test_low_turnout_result_is_not_published(harness: Harness) -> None:
    h = harness
    await h.contacts.org("b1", BRANCH, OrgType.branch)
    await h.contacts.cadre("sec1", "b1", BRANCH)
    for m in ("m0", "m1", "m2"):
        await h.contacts.youth(m, "b1", BRANCH)
    await wait_until(lambda: h.rows("SELECT 1 FROM wishes.youths"), until=lambda r: len(r) == 3)
    await wait_until(lambda: h.rows("SELECT 1 FROM wishes.orgs"))
    await wait_until(lambda: h.rows("SELECT 1 FROM wishes.cadres WHERE cadre_id = 'sec1'"))
    admin = h.auth(Role.org_admin, "a1", "/city")
    now = datetime.now(UTC)
    b = await h.call("POST", "/ballots", admin, 201, json={
        "branch_org_id": "b1", "secretary_cadre_id": "sec1", "year": 2026,
        "closes_at": (now + timedelta(days=1)).isoformat()})
    await h.call("POST", f"/ballots/{b['ballot_id']}/votes", h.auth(Role.youth, "m0"), 204,
                 json={"choice": "unsatisfied"})
    assert not await h.service.scheduler.tick(now + timedelta(hours=1))
    assert (await h.service.scheduler.tick(now + timedelta(days=2)))["ballots_closed"] == 1
    r = await h.call("GET", f"/ballots/{b['ballot_id']}", admin)
    assert r["state"] == "closed" and r["published"] is False and r["turnout"] == 1
    assert "unsatisfied" not in r and "reelection_flag" not in r
