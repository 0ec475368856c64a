"""Bad input answers 4xx with a reason, whatever reaches Postgres or the validator: no 500."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI
from pydantic import BaseModel
from tuanlian.shared.db import Database
from tuanlian.shared.http import install_error_handlers

pytestmark = pytest.mark.asyncio(loop_scope="session")


class Rating(BaseModel):
    score: float
    comment: str


@pytest_asyncio.fixture(loop_scope="session")
async def client(db: Database) -> AsyncIterator[httpx.AsyncClient]:
    async with db.connection() as conn:
        await conn.execute("CREATE TABLE IF NOT EXISTS http_probe (name text PRIMARY KEY, note text)")
        await conn.execute("TRUNCATE http_probe")
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/things/{name}")
    async def create(name: str, body: dict[str, str]) -> dict[str, str]:
        async with db.connection() as conn:
            await conn.execute("INSERT INTO http_probe (name, note) VALUES ($1, $2)", name, body.get("k"))
        return {"name": name}

    @app.post("/ratings")
    async def rate(body: Rating) -> dict[str, float]:
        return {"score": body.score}

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
        yield http


async def test_nul_in_an_id_or_a_text_is_a_400(client: httpx.AsyncClient, db: Database) -> None:
    for url, body in (("/things/a%00b", {"k": "v"}), ("/things/ok", {"k": "a\u0000b"})):
        r = await client.post(url, json=body)
        assert r.status_code == 400 and "NUL" in r.json()["detail"], r.text
    assert (
        await client.post("/things/ok", json={"k": "v"})
    ).status_code == 200  # the refused one left nothing behind
    async with db.connection() as conn:
        assert await conn.fetchval("SELECT count(*) FROM http_probe") == 1


async def test_a_duplicate_lost_to_a_race_is_a_409(client: httpx.AsyncClient) -> None:
    assert (await client.post("/things/twice", json={})).status_code == 200
    r = await client.post("/things/twice", json={})
    assert r.status_code == 409 and r.json()["constraint"] == "http_probe_pkey", r.text


async def test_a_422_does_not_echo_what_it_could_not_encode(client: httpx.AsyncClient) -> None:
    # NaN and 1e400 are not JSON, a lone surrogate is not UTF-8: FastAPI's handler echoed them
    # back and failed to encode its own 422.
    for raw in (
        b'{"score": NaN, "comment": 1}',
        b'{"score": 1e400, "comment": 1}',
        b'{"score": "\\udfff", "comment": "x"}',
        b'{"score": "1", "comment": 5}',
    ):
        r = await client.post("/ratings", content=raw, headers={"content-type": "application/json"})
        assert r.status_code == 422, (raw, r.status_code, r.text)
        assert all(set(e) == {"loc", "msg", "type"} for e in r.json()["detail"])
    big = json.dumps({"score": 1, "comment": ["x" * 1000] * 1000}).encode()
    r = await client.post("/ratings", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 422 and len(r.content) < 1000  # the megabyte is not sent back
