"""Contacts over HTTP: log-interaction commands per second at 64 concurrent clients, with latency.

The contacts service runs as a real process (``tuanlian serve contacts``, uvicorn, one worker) on
the bench's embedded Postgres and NATS, its outbox relay publishing to JetStream as in production.
64 clients (one asyncio task each, one httpx client) loop over a mix dominated by
``POST /interactions`` (each a full command: token check, one read of the cadre and their links,
then the event append with hash chain and its read-model row in one atomic statement) plus reads of the cadre's list and spread. Then an
open-loop phase offers log-interaction commands at a fixed 500/s and times each from its
*scheduled* start (so a stall is not hidden by the client waiting: no coordinated omission).

Baseline: the raw single-row ``INSERT`` + ``COMMIT`` rate with asyncpg on the same Postgres, 64
concurrent connections, same duration budget.
"""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil
from common import BenchContext, BenchInfo, Result, Stopwatch, cpu_seconds, fmt_rate
from tuanlian.cli.launcher import Stack, ensure_database
from tuanlian.shared.auth import Principal, Role, load_or_create_signing_key
from tuanlian.shared.infra import free_port
from tuanlian.shared.settings import Settings

INFO = BenchInfo(
    key="contacts_http",
    title="Contacts HTTP commands, 64 concurrent clients (log-interaction mix)",
    measures=(
        "Requests per second and p50/p95/p99 latency of the contacts service as a real process "
        "(uvicorn, one worker) under 64 concurrent closed-loop clients: 80% `POST /interactions` "
        "(token check, one query for the cadre and their links, then the event append with hash "
        "chain and its read-model row in one atomic statement; the relay publishes to JetStream "
        "meanwhile), 10% `GET /cadres/{id}/links`, "
        "10% `GET /cadres/{id}/spread`. Then p50/p95/p99 of log-interaction commands offered "
        "open-loop at 500/s, timed from their scheduled start. The load generator runs on the "
        "same 2 cores as the service and Postgres."
    ),
    baseline=(
        "Raw single-row `INSERT` + `COMMIT` per transaction with asyncpg on the same Postgres, "
        "64 concurrent connections (fsync on): the ceiling any one-commit-per-command service "
        "has on this machine."
    ),
)

CLIENTS = 64
YOUTHS_PER_CADRE = 4
OPEN_LOOP_RATE = 500
OPEN_LOOP_CONNECTIONS = 128


def _pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(p / 100 * len(s)))] * 1000 if s else float("nan")


async def _raw_commits(pg_url: str, seconds: float) -> tuple[float, float]:
    conns = [await asyncpg.connect(pg_url) for _ in range(CLIENTS)]
    try:
        await conns[0].execute("DROP TABLE IF EXISTS bench_raw; CREATE TABLE bench_raw (id bigint, payload text)")
        latencies: list[float] = []
        stop = time.perf_counter() + seconds
        count = 0

        async def writer(conn: asyncpg.Connection, w: int) -> None:
            nonlocal count
            i = 0
            while time.perf_counter() < stop:
                t = time.perf_counter()
                async with conn.transaction():
                    await conn.execute("INSERT INTO bench_raw VALUES ($1, $2)", w * 10_000_000 + i, "x" * 200)
                latencies.append(time.perf_counter() - t)
                i += 1
                count += 1

        with Stopwatch() as sw:
            await asyncio.gather(*(writer(c, w) for w, c in enumerate(conns)))
        await conns[0].execute("DROP TABLE bench_raw")
        return sw.rate(count), _pct(latencies, 99)
    finally:
        for c in conns:
            await c.close()


def _start_contacts(ctx: BenchContext, database_url: str) -> tuple[Stack, subprocess.Popen[bytes]]:
    home = ctx.workdir / "contacts_http"
    settings = Settings(home=home, database_url=database_url, nats_url=ctx.nats_url, contacts_port=free_port())
    stack = Stack(settings=settings, home=home)
    stack.start_infrastructure()
    env = {**stack.env(), "TUANLIAN_LOG_LEVEL": "WARNING"}
    (home / "logs").mkdir(parents=True, exist_ok=True)
    out = (home / "logs" / "contacts.log").open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tuanlian.cli.main", "serve", "contacts"], env=env,
        stdin=subprocess.DEVNULL, stdout=out, stderr=out,
    )
    url = f"{settings.url_of('contacts')}/readyz"
    deadline = time.monotonic() + 90
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"contacts exited: {(home / 'logs' / 'contacts.log').read_text()[-1500:]}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return stack, proc
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("contacts did not become ready")
        time.sleep(0.2)


class Conn:
    """A bare HTTP/1.1 keep-alive connection: the load generator shares the service's 2 cores, and
    httpx's pool costs more CPU per request than the service under test at this concurrency."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, auth: str, body: bytes = b"") -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\nAuthorization: {auth}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        try:
            self.writer.write(head.encode() + body)
            status_line = await self.reader.readuntil(b"\r\n")
            length = 0
            while (line := await self.reader.readuntil(b"\r\n")) != b"\r\n":
                name, _, value = line.decode("latin-1").partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            await self.reader.readexactly(length)
            return int(status_line.split()[1])
        except (OSError, asyncio.IncompleteReadError):
            self.writer = None  # reconnect on the next request
            raise

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class Population:
    def __init__(self, home: Path) -> None:
        self.issuer = load_or_create_signing_key(home / "keys")
        self.cadres: list[tuple[str, dict[str, str], list[str]]] = []

    def auth_of(self, headers: dict[str, str]) -> str:
        return headers["Authorization"]

    def h(self, role: Role, subject: str, org_path: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.issuer.issue(Principal(subject, role, org_path))}"}

    async def build(self, http: httpx.AsyncClient) -> None:
        system = self.h(Role.system, "bench")
        r = await http.post("/orgs", headers=system, json={"name": "压测市团委", "org_type": "city", "is_leadership_organ": True})
        org = r.json()
        admin = self.h(Role.org_admin, "bench-admin", org["org_path"])
        sem = asyncio.Semaphore(16)

        async def one(c: int) -> None:
            async with sem:
                r = await http.post("/cadres", headers=admin, json={"org_id": org["org_id"], "name": f"干部{c}", "kind": "full_time"})
                cadre_id = r.json()["cadre_id"]
                cadre = self.h(Role.cadre, cadre_id, org["org_path"])
                youths = []
                for y in range(YOUTHS_PER_CADRE):
                    r = await http.post("/youths", headers=admin, json={
                        "org_id": org["org_id"], "name": "青年", "phone": f"13{c:03d}{y:06d}", "field": "school"})
                    youth_id = r.json()["youth_id"]
                    r = await http.post("/links/invitations", headers=cadre, json={"cadre_id": cadre_id, "youth_id": youth_id})
                    await http.post(f"/links/{r.json()['link_id']}/accept", headers=self.h(Role.youth, youth_id))
                    youths.append(youth_id)
                self.cadres.append((cadre_id, cadre, youths))

        await asyncio.gather(*(one(c) for c in range(CLIENTS)))


def _log_body(cadre_id: str, youths: list[str], rng: random.Random) -> dict[str, Any]:
    return {
        "cadre_id": cadre_id,
        "youth_ids": rng.sample(youths, rng.choice((1, 1, 1, 2))),
        "channel": rng.choice(("wechat", "qq", "phone", "face_to_face")),
        "occurred_at": datetime.now(UTC).isoformat(),  # not before the links accepted just now
        "summary": "线上聊了聊最近的学习、工作和生活情况，了解了实际困难。",
    }


async def _closed_loop(ctx: BenchContext, base: tuple[str, int], pop: Population, seconds: float) -> dict[str, Any]:
    lat: dict[str, list[float]] = {"log": [], "read": []}
    errors: dict[int | str, int] = {}
    stop = time.perf_counter() + seconds

    async def client(i: int) -> None:
        rng = random.Random(i)
        cadre_id, headers, youths = pop.cadres[i]
        auth = pop.auth_of(headers)
        conn = Conn(*base)
        try:
            while time.perf_counter() < stop:
                roll = rng.random()
                kind = "log" if roll < 0.8 else "read"
                t = time.perf_counter()
                try:
                    if kind == "log":
                        body = json.dumps(_log_body(cadre_id, youths, rng)).encode()
                        status = await conn.request("POST", "/interactions", auth, body)
                    else:
                        path = "links" if roll < 0.9 else "spread"
                        status = await conn.request("GET", f"/cadres/{cadre_id}/{path}", auth)
                except (OSError, asyncio.IncompleteReadError) as exc:
                    errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                    continue
                if status >= 300:
                    errors[status] = errors.get(status, 0) + 1
                else:
                    lat[kind].append(time.perf_counter() - t)
        finally:
            conn.close()

    with ctx.task(f"contacts_http: {CLIENTS} clients, closed loop, {seconds:.0f}s", total=None), Stopwatch() as sw:
        await asyncio.gather(*(client(i) for i in range(CLIENTS)))
    every = lat["log"] + lat["read"]
    return {"rps": len(every) / sw.elapsed(), "cps": len(lat["log"]) / sw.elapsed(), "all": every,
            "log": lat["log"], "errors": errors}


async def _open_loop(ctx: BenchContext, base: tuple[str, int], pop: Population, seconds: float) -> dict[str, Any]:
    """Commands are due at a fixed rate whatever the service does; a pool of connections sends
    each as soon as one is free, and its latency counts from when it was due."""
    lat: list[float] = []
    errors: dict[int | str, int] = {}
    rng = random.Random(99)
    total = int(OPEN_LOOP_RATE * seconds)
    due: asyncio.Queue[tuple[int, float] | None] = asyncio.Queue()
    start = time.perf_counter() + 0.2

    async def scheduler() -> None:
        for n in range(total):
            at = start + n / OPEN_LOOP_RATE
            delay = at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            due.put_nowait((n, at))
        for _ in range(OPEN_LOOP_CONNECTIONS):
            due.put_nowait(None)

    async def sender() -> None:
        conn = Conn(*base)
        try:
            while (job := await due.get()) is not None:
                n, at = job
                cadre_id, headers, youths = pop.cadres[n % len(pop.cadres)]
                body = json.dumps(_log_body(cadre_id, youths, rng)).encode()
                try:
                    status = await conn.request("POST", "/interactions", pop.auth_of(headers), body)
                except (OSError, asyncio.IncompleteReadError) as exc:
                    errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                    continue
                if status >= 300:
                    errors[status] = errors.get(status, 0) + 1
                lat.append(time.perf_counter() - at)
        finally:
            conn.close()

    with ctx.task(f"contacts_http: open loop {OPEN_LOOP_RATE}/s, {seconds:.0f}s", total=None), Stopwatch() as sw:
        await asyncio.gather(scheduler(), *(sender() for _ in range(OPEN_LOOP_CONNECTIONS)))
    return {"lat": lat, "errors": errors, "achieved": len(lat) / sw.elapsed()}


async def run(ctx: BenchContext) -> list[Result]:
    seconds = float(ctx.size(30, 6))
    database_url = await ensure_database(ctx.pg_url, "bench_contacts_http")
    raw_rate, raw_p99 = await _raw_commits(ctx.pg_url, seconds / 2)
    stack, proc = _start_contacts(ctx, database_url)
    try:
        pop = Population(stack.home)
        limits = httpx.Limits(max_connections=600, max_keepalive_connections=600)
        async with httpx.AsyncClient(base_url=stack.settings.url_of("contacts"), timeout=60, limits=limits) as http:
            await pop.build(http)
        base = (stack.settings.host, stack.settings.port_of("contacts"))
        service = psutil.Process(proc.pid)
        cpu0 = cpu_seconds(service)
        closed = await _closed_loop(ctx, base, pop, seconds)
        closed["cpu_ms"] = (cpu_seconds(service) - cpu0) * 1000 / max(1, len(closed["all"]))
        opened = await _open_loop(ctx, base, pop, seconds / 2)
    finally:
        log_tail = (stack.home / "logs" / "contacts.log").read_text(errors="replace")[-3000:]
        if log_tail.strip():
            ctx.log(f"contacts log (tail): {log_tail}")
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        stack.stop()
    p = {q: _pct(closed["log"], q) for q in (50, 95, 99)}
    op = {q: _pct(opened["lat"], q) for q in (50, 95, 99)}
    notes_closed = (
        f"{len(closed['all']):,} requests in {seconds:.0f}s, {fmt_rate(closed['rps'])} req/s in all; "
        f"log-interaction p50/p95/p99 = {p[50]:.0f}/{p[95]:.0f}/{p[99]:.0f} ms; all requests p99 "
        f"{_pct(closed['all'], 99):.0f} ms; non-2xx: {closed['errors'] or 'none'}; service CPU "
        f"{closed['cpu_ms']:.2f} ms per request (the rest of its latency is waiting: for Postgres, "
        f"for a core). Raw commit p99 at 64 "
        f"connections {raw_p99:.1f} ms."
    )
    notes_open = (
        f"{len(opened['lat']):,} commands offered at {OPEN_LOOP_RATE}/s (achieved {opened['achieved']:.0f}/s), "
        f"timed from their scheduled start: p50/p95/p99 = {op[50]:.0f}/{op[95]:.0f}/{op[99]:.0f} ms; "
        f"non-2xx: {opened['errors'] or 'none'}."
    )
    return [
        Result("contacts HTTP log-interaction commands/s, 64 clients", closed["cps"], "commands/s",
               "raw INSERT+COMMIT/s, 64 connections", raw_rate, target="report", meets_target=True,
               notes=notes_closed),
        Result("contacts HTTP log-interaction p99, 64 clients", p[99], "ms", "raw INSERT+COMMIT p99", raw_p99,
               target="report", meets_target=True, notes=notes_closed),
        Result(f"contacts HTTP p99 at {OPEN_LOOP_RATE} commands/s offered", op[99], "ms",
               "raw INSERT+COMMIT p99", raw_p99, target="p99 <= 100 ms", meets_target=op[99] <= 100,
               notes=notes_open),
    ]


