"""``tuanlian run``: the whole system on one machine, from nothing but Python."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
from rich.console import Console
from rich.table import Table
from tuanlian.shared.db import asyncpg_url
from tuanlian.shared.infra import EmbeddedNats, EmbeddedPostgres
from tuanlian.shared.league_calendar import period_of
from tuanlian.shared.league_calendar import today as league_today
from tuanlian.shared.settings import DEFAULT_PORTS, Settings

SERVICES = tuple(DEFAULT_PORTS)
console = Console()


STACK_FILE = "stack.json"


def record_stack(home: Path, database_url: str, nats_url: str) -> Path:
    """Where the running stack's servers are, for the ``tuanlian audit`` and ``scoring`` commands
    run beside it (an embedded server's port is free-chosen at each start). Readable by its owner
    only: an external database's URL may carry a password."""
    path = home / STACK_FILE
    path.touch(mode=0o600)
    path.write_text(json.dumps({"pid": os.getpid(), "database_url": database_url, "nats_url": nats_url}))
    return path


def running_stack(home: Path) -> dict[str, str] | None:
    """The URLs a ``tuanlian run`` under ``home`` recorded, if that launcher is still running."""
    try:
        recorded = json.loads((home / STACK_FILE).read_text())
        os.kill(int(recorded["pid"]), 0)  # raises if it is gone
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return {"database_url": str(recorded["database_url"]), "nats_url": str(recorded["nats_url"])}


async def ensure_database(server_url: str, name: str) -> str:
    """``server_url`` with database ``name``, created if missing."""
    conn = await asyncpg.connect(asyncpg_url(server_url))
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return server_url.rsplit("/", 1)[0] + f"/{name}"


@dataclass
class Stack:
    """The four service processes, on given (or embedded) Postgres and NATS."""

    settings: Settings
    home: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    postgres: EmbeddedPostgres | None = None
    nats: EmbeddedNats | None = None
    database_url: str = ""
    nats_url: str = ""

    def start_infrastructure(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        if self.settings.database_url:
            self.database_url = self.settings.database_url
        else:
            self.postgres = EmbeddedPostgres(self.home / "postgres")
            server = self.postgres.start()
            self.database_url = asyncio.run(ensure_database(server, "tuanlian"))
        if self.settings.nats_url:
            self.nats_url = self.settings.nats_url
        else:
            self.nats = EmbeddedNats(self.home / "nats")
            self.nats_url = self.nats.start()

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            TUANLIAN_DATABASE_URL=self.database_url,
            TUANLIAN_NATS_URL=self.nats_url,
            TUANLIAN_HOME=str(self.home),
            TUANLIAN_CONTACTS_URL=self.settings.url_of("contacts"),
        )
        # Running locally there is no SMS gateway: one-time login codes are read in notify's
        # dev inbox (/dev/inbox). Off unless a launcher like this one turns it on.
        env.setdefault("TUANLIAN_NOTIFY_DEV_INBOX", "1")
        for s in SERVICES:
            env[f"TUANLIAN_{s.upper()}_PORT"] = str(self.settings.port_of(s))
        return env

    def start_services(self, timeout: float = 120.0) -> None:
        logs = self.home / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        env = self.env()
        for s in SERVICES:
            out = (logs / f"{s}.log").open("ab")
            self.processes[s] = subprocess.Popen(
                [sys.executable, "-m", "tuanlian.cli.main", "serve", s],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
            )
        deadline = time.monotonic() + timeout
        for s in SERVICES:
            url = f"{self.settings.url_of(s)}/readyz"
            while True:
                proc = self.processes[s]
                if proc.poll() is not None:
                    tail = (logs / f"{s}.log").read_text(errors="replace")[-1500:]
                    raise RuntimeError(f"{s} exited with code {proc.returncode}; its log ends:\n{tail}")
                try:
                    if httpx.get(url, timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{s} did not become ready at {url}")
                time.sleep(0.2)

    def stop(self) -> None:
        for proc in self.processes.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.processes.values():
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.processes.clear()
        if self.nats:
            self.nats.stop()
        if self.postgres:
            self.postgres.stop()


def launch(settings: Settings, *, load_demo: bool = True) -> int:
    home = settings.home.resolve()
    stack = Stack(settings=settings, home=home)
    stopping = False

    def _stop(_sig: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, _stop)
    try:
        with console.status("starting Postgres and NATS…"):
            stack.start_infrastructure()
        record_stack(home, stack.database_url, stack.nats_url)
        with console.status("starting contacts, wishes, scoring, notify…"):
            stack.start_services()
        token = None
        if load_demo:
            from tuanlian.cli.demo import load_demo_league

            token = asyncio.run(load_demo_league(stack.database_url, settings, home))
        _print_welcome(stack, token)
        while not stopping:
            for name, proc in stack.processes.items():
                if proc.poll() is not None:
                    console.print(
                        f"[red]{name} stopped unexpectedly (exit {proc.returncode}); "
                        f"see {home / 'logs' / (name + '.log')}[/red]"
                    )
                    return 1
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    except RuntimeError as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 1
    finally:
        # A second Ctrl-C must not interrupt the shutdown half-way and orphan the servers.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        with console.status("stopping…"):
            stack.stop()
        (home / STACK_FILE).unlink(missing_ok=True)
        console.print("stopped; data kept in", str(home))
    return 0


def _print_welcome(stack: Stack, token: str | None) -> None:
    s = stack.settings
    table = Table(title="Tuanlian 团联 is running", show_lines=False)
    table.add_column("service")
    table.add_column("URL")
    table.add_column("API docs")
    for name in SERVICES:
        url = s.url_of(name)
        table.add_row(name, url, f"{url}/docs")
    console.print(table)
    console.print(
        f"Postgres: {stack.database_url}\nNATS:     {stack.nats_url}\nlogs:     {stack.home / 'logs'}"
    )
    marker = stack.home / "demo.json"
    if token and marker.exists():
        demo = json.loads(marker.read_text())
        console.print("\n[bold]Where to look first[/bold]")
        token_file = stack.home / "admin.token"
        token_file.write_text(token)
        token_file.chmod(0o600)
        console.print(
            f"  a city admin token (12 h) is in {token_file}; then the city's daily ranking (日常排名):"
        )
        print(
            f'    curl -H "Authorization: Bearer $(cat {token_file})" '
            f"'{s.url_of('scoring')}/leaderboards/cadres?org_path={demo['city_path']}&limit=10'"
        )
        print(
            f"  why a cadre has their points (ledger with rule and source event):\n"
            f'    curl -H "Authorization: Bearer $(cat {token_file})" '
            f"'{s.url_of('scoring')}/cadres/{demo['top_cadre']}/ledger'"
        )
        if demo.get("circular"):
            print(
                f"  this month's circular (月度通报), printable with its chart:\n"
                f'    curl -H "Authorization: Bearer $(cat {token_file})" '
                f"'{s.url_of('scoring')}/circulars/{demo['circular']}?format=html' > circular.html"
            )
        if demo.get("activity", {}).get("reports"):
            quarter = period_of("quarter", league_today()).label
            print(
                f"  who has sent this quarter's five-ones report upward (报送情况):\n"
                f'    curl -H "Authorization: Bearer $(cat {token_file})" '
                f"'{s.url_of('contacts')}/orgs/{demo['city_id']}/reports?period={quarter}'"
            )
        print(
            f"  micro-wishes of the city (微心愿), by category:\n"
            f'    curl -H "Authorization: Bearer $(cat {token_file})" '
            f"'{s.url_of('wishes')}/stats?org_path={demo['city_path']}'"
        )
        print(
            f"  the same ledger for an auditor, from the command line (this stack's servers are found by itself):\n"
            f"    uv run tuanlian audit explain --cadre {demo['top_cadre']}   # and: uv run tuanlian audit verify"
        )
        console.print(f"  every message sent, login codes included (dev only): {s.url_of('notify')}/dev/inbox")
        console.print(
            f"  interactive API docs: {s.url_of('contacts')}/docs (paste the token under Authorize)"
        )
    console.print("\nCtrl-C stops everything; data survives a restart.")
