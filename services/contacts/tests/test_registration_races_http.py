"""Requests racing to create the same thing, over HTTP on real Postgres: the same phone for two
people, the same login for two accounts, two accounts for one cadre. The loser gets what a later
request would get (never a 500), and the database holds one of each.

Each race is made certain, not hoped for: a transaction holds the table the inserts go to in
SHARE mode (reads pass, writes wait) until every request has done its look-ups and waits."""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from tuanlian.contacts.testkit import ContactsApi, running_contacts
from tuanlian.shared.db import Database
from tuanlian.shared.migrations import load_migrations, migrate
from tuanlian.shared.testing import wait_until


@pytest.fixture
async def api(database_url: str, nats_url: str, tmp_path: Path) -> AsyncIterator[ContactsApi]:
    async with running_contacts(database_url, nats_url, tmp_path) as running:
        yield running


async def _waiting_on_locks(db: Database) -> int:
    async with db.connection() as conn:
        return int(await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"))


async def _race(
    db: Database, table: str, n: int, send: Callable[[], Awaitable[httpx.Response]]
) -> list[httpx.Response]:
    """``n`` requests at once, all past their look-ups before any of them writes to ``table``."""
    async with db.transaction() as hold:
        await hold.execute(f"LOCK TABLE contacts.{table} IN SHARE MODE")
        every = asyncio.gather(*(send() for _ in range(n)))
        task = asyncio.ensure_future(every)
        await wait_until(lambda: _waiting_on_locks(db), until=lambda k: k >= n, message=f"{n} requests wait")
    return list(await task)


def _one_created(responses: list[httpx.Response], created: int = 201) -> list[httpx.Response]:
    """The one that succeeded is alone; the others are returned."""
    assert sorted(r.status_code for r in responses).count(created) == 1, [r.text for r in responses]
    return [r for r in responses if r.status_code != created]


async def _count(db: Database, sql: str, *args: Any) -> int:
    async with db.connection() as conn:
        return int(await conn.fetchval(sql, *args))


async def test_parallel_cadres_with_one_phone_register_one_the_rest_get_the_sequential_422(
    api: ContactsApi, db: Database
) -> None:
    city = await api.org("江城市团委", "city")
    admin = api.admin(city["org_path"])
    body = {"org_id": city["org_id"], "name": "张三", "phone": "13900000001", "kind": "full_time"}

    lost = _one_created(await _race(db, "people", 10, lambda: api.http.post("/cadres", headers=admin, json=body)))
    sequential = await api.http.post("/cadres", headers=admin, json=body)
    assert sequential.status_code == 422 and sequential.json()["field"] == "phone"
    assert [(r.status_code, r.json()) for r in lost] == [(422, sequential.json())] * 9
    assert await _count(db, "SELECT count(*) FROM contacts.cadres") == 1
    assert await _count(db, "SELECT count(*) FROM contacts.events WHERE event_type = 'CadreRegistered'") == 1


async def test_parallel_youths_with_one_phone_register_one_the_rest_get_the_sequential_422(
    api: ContactsApi, db: Database
) -> None:
    city = await api.org("江城市团委", "city")
    admin = api.admin(city["org_path"])
    body = {"org_id": city["org_id"], "name": "小明", "phone": "13800000001"}

    lost = _one_created(await _race(db, "people", 10, lambda: api.http.post("/youths", headers=admin, json=body)))
    sequential = await api.http.post("/youths", headers=admin, json=body)
    assert sequential.status_code == 422 and sequential.json()["field"] == "phone"
    assert [(r.status_code, r.json()) for r in lost] == [(422, sequential.json())] * 9
    assert await _count(db, "SELECT count(*) FROM contacts.youths") == 1
    assert await _count(db, "SELECT count(*) FROM contacts.subject_keys") == 1


async def test_parallel_accounts_with_one_login_issue_one_the_rest_get_the_sequential_422(
    api: ContactsApi, db: Database
) -> None:
    city = await api.org("江城市团委", "city")
    admin = api.admin(city["org_path"])
    body = {"role": "org_admin", "org_id": city["org_id"], "login": "jiangcheng"}

    lost = _one_created(await _race(db, "accounts", 10, lambda: api.http.post("/accounts", headers=admin, json=body)))
    sequential = await api.http.post("/accounts", headers=admin, json=body)
    assert sequential.status_code == 422 and sequential.json()["field"] == "login"
    assert [(r.status_code, r.json()) for r in lost] == [(422, sequential.json())] * 9
    assert await _count(db, "SELECT count(*) FROM contacts.accounts") == 1
    assert await _count(db, "SELECT count(*) FROM contacts.events WHERE event_type = 'AccountIssued'") == 1


async def test_parallel_cadre_account_requests_make_one_account_the_later_ones_reset_it(
    api: ContactsApi, db: Database
) -> None:
    city = await api.org("江城市团委", "city")
    admin = api.admin(city["org_path"])
    r = await api.http.post("/cadres", headers=admin, json={"org_id": city["org_id"], "name": "张三", "kind": "full_time"})
    cadre = r.json()["cadre_id"]

    answers = await _race(db, "accounts", 8, lambda: api.http.post(f"/cadres/{cadre}/account", headers=admin))
    # As one after another: the first issues the account, each later one hands out a new password
    # for that same account (the endpoint's meaning), never a second account.
    assert [r.status_code for r in answers] == [201] * 8, [r.text for r in answers]
    assert len({r.json()["login"] for r in answers}) == 1
    assert await _count(db, "SELECT count(*) FROM contacts.accounts WHERE subject_id = $1", cadre) == 1
    assert await _count(db, "SELECT count(*) FROM contacts.events WHERE event_type = 'AccountIssued'") == 1
    # The next reset touches that one account, and its password opens it.
    again = (await api.http.post(f"/cadres/{cadre}/account", headers=admin)).json()
    assert again["login"] == answers[0].json()["login"]
    r = await api.http.post("/auth/login", json={"login": again["login"], "password": again["initial_password"]})
    assert r.status_code == 200 and r.json()["subject"] == cadre


async def test_the_unique_account_migration_sets_aside_existing_duplicates(db: Database) -> None:
    migrations = load_migrations("tuanlian.contacts.migrations", "contacts")
    upto = next(i for i, m in enumerate(migrations) if m.version == "0005_one_account_per_person")
    async with db.connection() as conn:
        await migrate(conn, "contacts", migrations[:upto])
        # A cadre with three accounts from the race, the second of which they used; a youth with two
        # unused ones; an admin account alone.
        await conn.execute(
            "INSERT INTO contacts.accounts (account_id, subject_id, role, login, activated_at, issued_at) VALUES "
            "('a1', 'c1', 'cadre', 'ca1', NULL, '2026-05-01'), ('a2', 'c1', 'cadre', 'ca2', '2026-05-03', '2026-05-01'), "
            "('a3', 'c1', 'cadre', 'ca3', NULL, '2026-05-01'), ('y2', 'y1', 'youth', NULL, NULL, '2026-05-02'), "
            "('y1', 'y1', 'youth', NULL, NULL, '2026-05-01'), ('o1', 'org_admin-x', 'org_admin', 'ox', NULL, '2026-05-01')"
        )
        assert await migrate(conn, "contacts", migrations) == [m.version for m in migrations[upto:]]
        kept = await conn.fetch("SELECT subject_id, account_id FROM contacts.accounts ORDER BY subject_id")
        aside = await conn.fetch("SELECT account_id, login FROM contacts.accounts_set_aside ORDER BY account_id")
        assert [tuple(r) for r in kept] == [("c1", "a2"), ("org_admin-x", "o1"), ("y1", "y1")]
        assert [tuple(r) for r in aside] == [("a1", "ca1"), ("a3", "ca3"), ("y2", None)]
        with pytest.raises(Exception, match="accounts_one_per_subject"):
            await conn.execute(
                "INSERT INTO contacts.accounts (account_id, subject_id, role, issued_at) VALUES ('a4', 'c1', 'cadre', now())"
            )
