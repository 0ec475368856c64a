"""The thread through all four services, over HTTP, through real NATS and Postgres.

An org, a cadre and a youth are created in contacts; the cadre invites the youth and the youth
accepts; scoring ranks the cadre in the org's leaderboard with one linked youth and points;
notify has put the invitation in the youth's inbox; wishes knows the pair may exchange wishes.
The four services run as separate processes started by the same launcher as ``make run``.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from tuanlian.cli.launcher import Stack
from tuanlian.shared.auth import Principal, Role, load_or_create_signing_key
from tuanlian.shared.infra import free_port
from tuanlian.shared.testing import wait_until

pytestmark = pytest.mark.slow


def _token(stack: Stack, role: Role, subject: str, org_path: str | None = None) -> dict[str, str]:
    issuer = load_or_create_signing_key(stack.home / "keys")
    return {"Authorization": f"Bearer {issuer.issue(Principal(subject, role, org_path))}"}


async def test_invitation_flows_through_all_four_services(stack: Stack) -> None:
    url = stack.settings.url_of
    system = _token(stack, Role.system, "test-operator")
    async with httpx.AsyncClient(timeout=10) as http:
        r = await http.post(
            f"{url('contacts')}/orgs",
            headers=system,
            json={"name": "江城市团委", "org_type": "city", "is_leadership_organ": True},
        )
        assert r.status_code == 201, r.text
        org = r.json()
        admin = _token(stack, Role.org_admin, "admin-1", org["org_path"])
        r = await http.post(
            f"{url('contacts')}/cadres",
            headers=admin,
            json={"org_id": org["org_id"], "name": "张三", "kind": "full_time"},
        )
        assert r.status_code == 201, r.text
        cadre_id = r.json()["cadre_id"]
        r = await http.post(
            f"{url('contacts')}/youths",
            headers=admin,
            json={"org_id": org["org_id"], "name": "李四", "phone": "13800138000", "field": "school"},
        )
        assert r.status_code == 201, r.text
        youth_id = r.json()["youth_id"]

        cadre = _token(stack, Role.cadre, cadre_id, org["org_path"])
        youth = _token(stack, Role.youth, youth_id)
        r = await http.post(
            f"{url('contacts')}/links/invitations",
            headers=cadre,
            json={"cadre_id": cadre_id, "youth_id": youth_id},
        )
        assert r.status_code == 201, r.text
        link_id = r.json()["link_id"]

        # Before consent the youth is not counted (never forced) and cannot exchange wishes.
        r = await http.get(f"{url('wishes')}/pairs/{cadre_id}/{youth_id}", headers=youth)
        assert r.json()["may_exchange_wishes"] is False

        # Someone else cannot accept on the youth's behalf.
        r = await http.post(f"{url('contacts')}/links/{link_id}/accept", headers=cadre)
        assert r.status_code == 403
        r = await http.post(f"{url('contacts')}/links/{link_id}/accept", headers=youth)
        assert r.status_code == 200, r.text
        assert r.json()["state"] == "active"

        async def leaderboard() -> list[dict[str, object]]:
            r = await http.get(
                f"{url('scoring')}/leaderboards/cadres", params={"org_path": org["org_path"]}, headers=admin
            )
            assert r.status_code == 200, r.text
            return list(r.json()["entries"])

        entries = await wait_until(
            leaderboard,
            until=lambda e: bool(e) and e[0]["linked_youths"] == 1,
            message="scoring ranks the cadre with one linked youth",
        )
        assert entries[0]["cadre_id"] == cadre_id
        assert entries[0]["rank"] == 1
        assert entries[0]["points"] > 0

        async def inbox() -> list[dict[str, object]]:
            r = await http.get(f"{url('notify')}/inbox", headers=youth)
            assert r.status_code == 200, r.text
            return list(r.json()["messages"])

        messages = await wait_until(inbox, message="the invitation reaches the youth's inbox")
        assert [m["kind"] for m in messages] == ["link_invitation"]
        assert messages[0]["ref"] == link_id

        async def pair() -> dict[str, object]:
            r = await http.get(f"{url('wishes')}/pairs/{cadre_id}/{youth_id}", headers=youth)
            return dict(r.json())

        await wait_until(
            pair, until=lambda p: p["may_exchange_wishes"] is True, message="wishes learns the pair is linked"
        )

        # The ledger explains the points: rule, rule-set version and the source event.
        r = await http.get(f"{url('scoring')}/cadres/{cadre_id}/ledger", headers=cadre)
        ledger = r.json()
        assert [e["rule"] for e in ledger] == ["link_accepted"]
        assert ledger[0]["ruleset_version"]

        # Every service answers health, readiness and its API description.
        for name in ("contacts", "wishes", "scoring", "notify"):
            assert (await http.get(f"{url(name)}/healthz")).status_code == 200
            ready = await http.get(f"{url(name)}/readyz")
            assert ready.json() == {"ready": True, "postgres": "ok", "nats": "ok"}
            assert (await http.get(f"{url(name)}/openapi.json")).json()["info"]["title"]


async def _login_with_code(http: httpx.AsyncClient, stack: Stack, phone: str, youth_id: str) -> dict[str, str]:
    """A youth's login: contacts asks notify to deliver a one-time code, read here from notify's
    dev inbox (as a developer running ``make run`` would), and exchanges it for a token."""
    url = stack.settings.url_of
    r = await http.post(f"{url('contacts')}/auth/otp", json={"phone": phone})
    assert r.status_code == 202, r.text

    async def code_message() -> list[dict[str, object]]:
        r = await http.get(f"{url('notify')}/dev/inbox")
        assert r.status_code == 200, r.text
        return [m for m in r.json()["messages"] if m["recipient_id"] == youth_id and m["kind"] == "login_code"]

    [message] = await wait_until(code_message, message="the login code reaches notify's dev inbox")
    code = re.search(r"\d{6}", str(message["body"]))
    assert code is not None, message
    r = await http.post(f"{url('contacts')}/auth/otp/verify", json={"phone": phone, "code": code.group()})
    assert r.status_code == 200, r.text
    assert r.json()["subject"] == youth_id and r.json()["role"] == "youth"
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


async def test_a_wish_from_login_to_points_and_a_circular_to_the_inbox(stack: Stack) -> None:
    """Issue threads across the services: a youth logs in with a code delivered by notify,
    raises a wish to their cadre, the cadre fulfils it and the youth confirms; scoring credits
    the cadre for it; the city publishes a circular and notify puts it in the cadre's inbox."""
    url = stack.settings.url_of
    system = _token(stack, Role.system, "test-operator")
    async with httpx.AsyncClient(timeout=10) as http:
        r = await http.post(
            f"{url('contacts')}/orgs",
            headers=system,
            json={"name": "江城市团委", "org_type": "city", "is_leadership_organ": True},
        )
        org = r.json()
        admin = _token(stack, Role.org_admin, "admin-1", org["org_path"])
        r = await http.post(
            f"{url('contacts')}/cadres",
            headers=admin,
            json={"org_id": org["org_id"], "name": "王五", "kind": "full_time"},
        )
        cadre_id = r.json()["cadre_id"]
        cadre = _token(stack, Role.cadre, cadre_id, org["org_path"])
        phone = "13900139000"
        r = await http.post(
            f"{url('contacts')}/youths",
            headers=admin,
            json={"org_id": org["org_id"], "name": "赵六", "phone": phone, "field": "enterprise"},
        )
        youth_id = r.json()["youth_id"]
        youth = await _login_with_code(http, stack, phone, youth_id)

        r = await http.post(
            f"{url('contacts')}/links/invitations", headers=cadre, json={"cadre_id": cadre_id, "youth_id": youth_id}
        )
        link_id = r.json()["link_id"]
        r = await http.post(f"{url('contacts')}/links/{link_id}/accept", headers=youth)
        assert r.status_code == 200, r.text

        async def pair() -> dict[str, object]:
            return dict((await http.get(f"{url('wishes')}/pairs/{cadre_id}/{youth_id}", headers=youth)).json())

        await wait_until(pair, until=lambda p: p["may_exchange_wishes"] is True, message="wishes learns the link")
        r = await http.post(
            f"{url('wishes')}/wishes",
            headers=youth,
            json={"cadre_id": cadre_id, "category": "work", "text": "想请团干部帮忙推荐一次技能培训"},
        )
        assert r.status_code == 201, r.text
        wish_id = r.json()["wish_id"]
        for step, body in (("accept", None), ("start", None), ("fulfil", {"evidence": "联系了区人社局的电工培训班"})):
            r = await http.post(f"{url('wishes')}/wishes/{wish_id}/{step}", headers=cadre, json=body)
            assert r.status_code == 200, (step, r.text)
        r = await http.post(f"{url('wishes')}/wishes/{wish_id}/confirm", headers=youth)
        assert r.status_code == 200, r.text

        async def ledger() -> list[dict[str, object]]:
            r = await http.get(f"{url('scoring')}/cadres/{cadre_id}/ledger", headers=cadre)
            assert r.status_code == 200, r.text
            return list(r.json())

        entries = await wait_until(
            ledger,
            until=lambda es: any(e["rule"] == "wish_fulfilled_confirmed" for e in es),
            message="scoring credits the confirmed wish",
        )
        [credit] = [e for e in entries if e["rule"] == "wish_fulfilled_confirmed"]
        assert credit["points"] == 5 and credit["ruleset_version"] == "default-2026.1"

        r = await http.post(f"{url('scoring')}/circulars", headers=admin, json={"org_id": org["org_id"]})
        assert r.status_code == 201, r.text
        number = r.json()["number"]

        async def cadre_inbox() -> list[dict[str, object]]:
            r = await http.get(f"{url('notify')}/inbox", headers=cadre)
            assert r.status_code == 200, r.text
            return [m for m in r.json()["messages"] if m["kind"] == "circular"]

        [circular] = await wait_until(cadre_inbox, message="notify fans the circular out to the cadre")
        assert number in str(circular["body"])


async def test_bad_input_gets_reasons_not_traces(stack: Stack) -> None:
    url = stack.settings.url_of("contacts")
    system = _token(stack, Role.system, "test-operator")
    async with httpx.AsyncClient(timeout=10) as http:
        r = await http.post(f"{url}/orgs", headers=system, json={"name": "", "org_type": "nope"})
        assert r.status_code == 422
        fields = {tuple(e["loc"]) for e in r.json()["detail"]}
        assert fields == {("body", "name"), ("body", "org_type")}
        r = await http.post(f"{url}/orgs", json={"name": "x", "org_type": "city"})
        assert r.status_code == 401
        r = await http.post(
            f"{url}/orgs", headers={"Authorization": "Bearer forged"}, json={"name": "x", "org_type": "city"}
        )
        assert r.status_code == 401
        r = await http.get(f"{url}/orgs/missing", headers=system)
        assert r.status_code == 404


@pytest.mark.parametrize("missing", ["nats", "postgres"])
def test_missing_dependency_is_one_clear_line(missing: str, database_url: str, tmp_path: Path) -> None:
    dead = f"127.0.0.1:{free_port()}"
    db = f"postgresql://postgres@{dead}/x" if missing == "postgres" else database_url
    nats = f"nats://{dead}" if missing == "nats" else "nats://127.0.0.1:1"
    env = {
        "TUANLIAN_DATABASE_URL": db,
        "TUANLIAN_NATS_URL": nats,
        "TUANLIAN_HOME": str(tmp_path),
        "PATH": "/usr/bin:/bin",
    }
    done = subprocess.run(
        [sys.executable, "-m", "tuanlian.cli.main", "serve", "scoring"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    what = "NATS" if missing == "nats" else "Postgres"
    assert f"{what} is not reachable" in lines[0] and dead in lines[0]


@pytest.mark.parametrize("service", ["contacts", "wishes", "scoring", "notify"])
def test_committed_asyncapi_document_is_current(service: str) -> None:
    import json

    from tuanlian.cli.docs import asyncapi_json
    from tuanlian.cli.main import _spec

    committed = Path(__file__).parents[1] / "services" / service / "asyncapi.json"
    assert json.loads(committed.read_text()) == json.loads(asyncapi_json(_spec(service))), (
        f"run `make docs`: {committed} no longer matches the code"
    )
