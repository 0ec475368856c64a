"""``make run``'s demo League, loaded into the real four-service stack, then rebuilt.

The demo ends with a reorganisation (a cadre transferred into 西山县, one of 东湖区's committees
moved there with its cadres) and then publishes the city's monthly circular. Published before
scoring had applied the move, the circular counted those cadres in their old county; and after
``tuanlian scoring rebuild``, whose version dated each event by its arrival on the bus, the
circular recomputed as of its publication no longer equalled what was published (a rebuild now
dates every event as the live version did: ``adapters/stamps.py``).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from tuanlian.cli.demo import load_demo_league
from tuanlian.cli.launcher import Stack, record_stack, running_stack
from tuanlian.shared.db import connect_raw
from tuanlian.shared.league_calendar import local_date, period_of

pytestmark = pytest.mark.slow


async def test_the_demo_circular_counts_the_reorganisation_and_survives_a_rebuild(stack: Stack) -> None:
    token = await load_demo_league(stack.database_url, stack.settings, stack.home)
    demo = json.loads((stack.home / "demo.json").read_text())
    assert demo["activity"]["reorganised"] == 1
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=stack.settings.url_of("scoring"), headers=headers, timeout=30) as http:
        doc = (await http.get(f"/circulars/{demo['circular']}")).json()
        rows = {r["org_id"]: r for r in doc["rows"]}
        # 西山县: its own four cadres and its two committees' two each, then the moved committee's
        # two and the transferred cadre; 东湖区 keeps its four and the one its committee kept.
        assert (rows[demo["counties"][1]]["cadres"], rows[demo["counties"][0]]["cadres"]) == (11, 5)
        before = (await http.get(f"/circulars/{demo['circular']}/as-of")).json()
        assert before["equal"] is True

        env = {**os.environ, "TUANLIAN_DATABASE_URL": stack.database_url, "TUANLIAN_NATS_URL": stack.nats_url,
               "TUANLIAN_HOME": str(stack.home)}
        out = await _tuanlian(env, "scoring", "rebuild")
        assert "version 2 (scoring_proj_v2) now serves" in out, out
        assert "phases: replay " in out and ", after " in out, out

        after = (await http.get(f"/circulars/{demo['circular']}/as-of")).json()
        assert after["equal"] is True, after

        # An auditor beside `make run` names no server: the launcher's record of them is found
        # under TUANLIAN_HOME (its pid alive: here, this process).
        record_stack(stack.home, stack.database_url, stack.nats_url)
        bare = {k: v for k, v in os.environ.items() if k not in ("TUANLIAN_DATABASE_URL", "TUANLIAN_NATS_URL")}
        bare["TUANLIAN_HOME"] = str(stack.home)
        out = await _tuanlian(bare, "audit", "explain", "--cadre", demo["top_cadre"])
        ledger = (await http.get(f"/cadres/{demo['top_cadre']}/ledger")).json()
        assert f"total {sum(e['points'] for e in ledger)} points in {len(ledger)} entries" in out

    # The first county's report upward, sent, returned and sent again; the second's still to come.
    async with httpx.AsyncClient(base_url=stack.settings.url_of("contacts"), headers=headers, timeout=30) as http:
        quarter = period_of("quarter", local_date(datetime.now(UTC))).label
        r = await http.get(f"/orgs/{demo['city_id']}/reports", params={"period": quarter})
        assert r.status_code == 200, r.text
        states = {o["org_id"]: (o["state"], o["revision"]) for o in r.json()["orgs"]}
        first, second = states[demo["counties"][0]], states[demo["counties"][1]]
        assert first[1] == 2 and first[0] in ("on_time", "late") and second[0] in ("pending", "overdue"), states

    # Wishes' and notify's read models of other services' events, rebuilt from the streams under
    # the running services, are the ones their consumers made (the demo's reorganisation
    # included), and notify sends nothing again.
    models = {
        "wishes": "SELECT (SELECT count(*) FROM wishes.pairs WHERE linked), (SELECT string_agg(org_id || org_path, "
                  "',' ORDER BY org_id) FROM wishes.orgs), (SELECT string_agg(cadre_id || org_path, ',' "
                  "ORDER BY cadre_id) FROM wishes.cadres)",
        "notify": "SELECT (SELECT count(*) FROM notify.inbox), (SELECT string_agg(subject_id || "
                  "coalesce(org_path, '') || active::text, ',' ORDER BY subject_id) FROM notify.recipients), "
                  "(SELECT count(*) FROM notify.deliveries), (SELECT string_agg(org_id || org_path || period || "
                  "status, ',' ORDER BY org_id, period) FROM notify.work_reports)",
    }
    conn = await connect_raw(stack.database_url)
    try:
        for service, model in models.items():
            live = tuple(await conn.fetchrow(model))
            out = await _tuanlian(bare, service, "rebuild")
            assert f"{service}: read model rebuilt" in out and "0 left to the live consumers" in out, out
            assert tuple(await conn.fetchrow(model)) == live and live[0] > 0
    finally:
        await conn.close()


async def _tuanlian(env: dict[str, str], *args: str) -> str:
    """The ``tuanlian`` command as an operator runs it; its output, once it has succeeded."""
    cli = await asyncio.create_subprocess_exec(sys.executable, "-m", "tuanlian.cli.main", *args, env=env,
                                               stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(cli.communicate(), timeout=300)
    assert cli.returncode == 0, err.decode()
    return out.decode()


def test_a_stack_record_counts_only_while_its_launcher_runs(tmp_path: Path) -> None:
    assert running_stack(tmp_path) is None  # none recorded
    record_stack(tmp_path, "postgresql://db/x", "nats://bus:4222")
    assert running_stack(tmp_path) == {"database_url": "postgresql://db/x", "nats_url": "nats://bus:4222"}
    assert (tmp_path / "stack.json").stat().st_mode & 0o077 == 0
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    record = json.loads((tmp_path / "stack.json").read_text())
    (tmp_path / "stack.json").write_text(json.dumps({**record, "pid": int(gone.stdout)}))
    assert running_stack(tmp_path) is None  # its launcher has exited
    (tmp_path / "stack.json").write_text("{not json")
    assert running_stack(tmp_path) is None
