"""Tuanlian benchmarks: platform throughput beside the raw limits of the same servers.

    uv run python benchmarks/run.py            # full run: results/latest.json + docs/benchmarks.md
    uv run python benchmarks/run.py --quick    # small smoke run: results/quick.json only
    uv run python benchmarks/run.py --only relay,append   # results/partial.json only

Starts its own embedded Postgres (fsync on) and embedded NATS (JetStream, file storage) on free
ports in a temporary directory, runs every registered benchmark, and writes the figures down.
Nothing here asserts on time: a benchmark reports, it does not pass or fail.

To add a benchmark: write ``bench_<what>.py`` with ``INFO = BenchInfo(...)`` and
``async def run(ctx: BenchContext) -> list[Result]``, and add it to ``BENCHMARKS`` below.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import asyncpg  # noqa: E402
import bench_append  # noqa: E402
import bench_consumer  # noqa: E402
import bench_contacts_http  # noqa: E402
import bench_fanout  # noqa: E402
import bench_relay  # noqa: E402
import bench_scoring  # noqa: E402
import nats  # noqa: E402
from common import BenchContext, BenchInfo, Result, make_progress, write_json  # noqa: E402
from report import write_docs  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from tuanlian.shared.infra import EmbeddedNats, EmbeddedPostgres  # noqa: E402

#: The benchmarks, in the order they run. Each module has ``INFO`` and ``run(ctx)``.
BENCHMARKS: list[ModuleType] = [
    bench_relay, bench_consumer, bench_append, bench_contacts_http, bench_scoring, bench_fanout,
]

RESULTS_DIR = HERE / "results"
DOCS_PATH = HERE.parent / "docs" / "benchmarks.md"


def _server_pids(pg: EmbeddedPostgres, ns: EmbeddedNats) -> dict[str, int]:
    return {name: s.proc.pid for name, s in (("postgres", pg), ("nats", ns)) if s.proc is not None}


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _memory_gib() -> float | None:
    with contextlib.suppress(OSError, ValueError, IndexError):
        first = Path("/proc/meminfo").read_text().splitlines()[0]
        return round(int(first.split()[1]) / 1024 / 1024, 1)
    return None


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


async def _machine(pg_url: str, nats_url: str) -> dict[str, Any]:
    conn = await asyncpg.connect(pg_url)
    try:
        pg_version = await conn.fetchval("SHOW server_version")
        pg_settings = {
            name: await conn.fetchval(f"SHOW {name}")
            for name in ("fsync", "synchronous_commit", "wal_sync_method", "shared_buffers")
        }
    finally:
        await conn.close()
    nc = await nats.connect(nats_url, connect_timeout=5)
    try:
        v = nc.connected_server_version
        nats_version = f"{v.major}.{v.minor}.{v.patch}" if v else "?"
    finally:
        await nc.close()
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gib": _memory_gib(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "postgres": pg_version,
        "postgres_settings": pg_settings,
        "nats_server": nats_version,
        "nats_jetstream": "file storage, sync_interval 2m (EmbeddedNats default)",
        "libraries": {
            d: _version(d)
            for d in ("nats-py", "faststream", "asyncpg", "sqlalchemy", "pydantic",
                      "eventsourcing", "psycopg")
        },
        "note": "shared, noisy machine: compare ratios, not absolute figures",
    }


async def _settle(pg_url: str, seconds: float = 3.0) -> None:
    """Let the previous benchmark's aftermath (dirty buffers, autovacuum) pass before the next.

    Without this the benchmark after a bulk load pays for its predecessor's writes.
    """
    conn = await asyncpg.connect(pg_url)
    try:
        await conn.execute("CHECKPOINT")
        deadline = time.perf_counter() + 30
        while time.perf_counter() < deadline:
            busy = await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autovacuum worker'")
            if not busy:
                break
            await asyncio.sleep(0.5)
    finally:
        await conn.close()
    await asyncio.sleep(seconds)


def _table(results: list[Result]) -> Table:
    table = Table(title="Tuanlian benchmarks")
    for col in ("benchmark", "value", "baseline", "baseline value", "ratio", "target", "met"):
        table.add_column(col, justify="right" if "value" in col or col == "ratio" else "left")
    for r in results:
        table.add_row(
            r.name,
            f"{r.value:,.0f} {r.unit}",
            r.baseline_name or "—",
            f"{r.baseline_value:,.0f}" if r.baseline_value is not None else "—",
            f"{r.ratio:.2f}" if r.ratio is not None else "—",
            r.target,
            "[green]yes[/green]" if r.meets_target else "[red]no[/red]",
        )
    return table


async def _main(args: argparse.Namespace) -> int:
    console = Console()
    selected = BENCHMARKS
    if args.only:
        keys = {k.strip() for k in args.only.split(",") if k.strip()}
        unknown = keys - {m.INFO.key for m in BENCHMARKS}
        if unknown:
            console.print(f"[red]unknown benchmark(s): {', '.join(sorted(unknown))}; "
                          f"known: {', '.join(m.INFO.key for m in BENCHMARKS)}[/red]")
            return 2
        selected = [m for m in BENCHMARKS if m.INFO.key in keys]
    started = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="tuanlian-bench-"))
    pg = EmbeddedPostgres(workdir / "pg", durable=True)
    ns = EmbeddedNats(workdir / "nats")
    results: list[Result] = []
    sections: list[tuple[BenchInfo, list[Result]]] = []
    failures: list[str] = []
    try:
        with console.status("starting embedded Postgres (fsync on) and NATS (JetStream)…"):
            pg_url = await asyncio.to_thread(pg.start)
            nats_url = await asyncio.to_thread(ns.start)
        machine = await _machine(pg_url, nats_url)
        console.print(
            f"Postgres {machine['postgres']} at {pg_url}, NATS {machine['nats_server']} at "
            f"{nats_url}; {machine['cpu_count']} CPUs; data in {workdir}"
        )
        with make_progress(console) as progress:
            ctx = BenchContext(pg_url=pg_url, nats_url=nats_url, quick=args.quick,
                               console=console, progress=progress, workdir=workdir,
                               server_pids=_server_pids(pg, ns))
            for index, module in enumerate(selected):
                if index:
                    await _settle(pg_url)
                info: BenchInfo = module.INFO
                runner: Callable[[BenchContext], Awaitable[list[Result]]] = module.run
                progress.console.rule(f"[bold]{info.title}")
                t0 = time.perf_counter()
                try:
                    got = await runner(ctx)
                except Exception as exc:  # report and go on with the others
                    progress.console.print_exception(max_frames=8)
                    failures.append(f"{info.key}: {type(exc).__name__}: {exc}")
                    continue
                sections.append((info, got))
                results.extend(got)
                for r in got:
                    ratio = f", ratio {r.ratio:.2f}" if r.ratio is not None else ""
                    progress.console.log(
                        f"[bold]{r.name}[/bold]: {r.value:,.0f} {r.unit} vs {r.baseline_name} "
                        f"{r.baseline_value or 0:,.0f}{ratio} — target {r.target}: "
                        f"{'met' if r.meets_target else 'NOT met'} "
                        f"({time.perf_counter() - t0:.0f}s)"
                    )
    finally:
        with console.status("stopping servers…"):
            ns.stop()
            pg.stop()
            shutil.rmtree(workdir, ignore_errors=True)
    machine["duration_seconds"] = round(time.perf_counter() - started, 1)
    machine["quick"] = args.quick
    machine["command"] = "uv run python benchmarks/run.py" + (" --quick" if args.quick else "")
    if args.only:
        machine["command"] += f" --only {args.only}"
    console.print(_table(results))
    # Only a full run replaces the recorded figures; smoke and partial runs go beside them.
    out = RESULTS_DIR / (
        "quick.json" if args.quick else "partial.json" if args.only else "latest.json"
    )
    write_json(out, {"machine": machine, "results": [r.record() for r in results]})
    console.print(f"wrote {out.relative_to(HERE.parent)}")
    if not args.quick and not args.only and not failures:
        write_docs(DOCS_PATH, machine, sections)
        console.print(f"wrote {DOCS_PATH.relative_to(HERE.parent)}")
    elif not args.quick:
        console.print("docs/benchmarks.md left as it was (partial run)")
    console.print(f"done in {machine['duration_seconds']:.0f}s")
    for f in failures:
        console.print(f"[red]failed: {f}[/red]")
    return 1 if failures else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small smoke run (results/quick.json)")
    parser.add_argument("--only", default="", help="comma-separated benchmark keys to run")
    args = parser.parse_args()
    raise SystemExit(asyncio.run(_main(args)))


if __name__ == "__main__":
    main()
