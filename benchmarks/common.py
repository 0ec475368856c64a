"""Shared pieces of the benchmarks: the run context, timing, and result records.

A benchmark is an ``async def run(ctx: BenchContext) -> list[Result]`` in its own module, plus a
:class:`BenchInfo` describing what it measures and against which baseline; ``run.py`` keeps the
list. Every figure is measured beside its raw baseline in the same run on the same servers, so
the *ratio* is what to compare between machines, not the absolute numbers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from tuanlian.shared.streams import connect_nats


@dataclass
class Result:
    """One figure beside its raw baseline (the record written to ``latest.json``)."""

    name: str
    value: float
    unit: str
    baseline_name: str | None
    baseline_value: float | None
    target: str
    meets_target: bool
    notes: str = ""
    ratio: float | None = None

    def __post_init__(self) -> None:
        if self.ratio is None and self.baseline_value:
            self.ratio = self.value / self.baseline_value

    def record(self) -> dict[str, Any]:
        d = asdict(self)
        order = ["name", "value", "unit", "baseline_name", "baseline_value", "ratio", "target",
                 "meets_target", "notes"]
        out = {k: d[k] for k in order}
        for k in ("value", "baseline_value"):
            if out[k] is not None:
                out[k] = round(out[k], 1)
        if out["ratio"] is not None:
            out["ratio"] = round(out["ratio"], 3)
        return out


def ratio_result(
    name: str,
    value: float,
    unit: str,
    baseline_name: str,
    baseline_value: float,
    min_ratio: float,
    notes: str = "",
) -> Result:
    ratio = value / baseline_value if baseline_value else 0.0
    return Result(name, value, unit, baseline_name, baseline_value,
                  target=f"ratio >= {min_ratio:g}", meets_target=ratio >= min_ratio,
                  notes=notes, ratio=ratio)


def absolute_result(
    name: str,
    value: float,
    unit: str,
    baseline_name: str,
    baseline_value: float,
    min_value: float,
    notes: str = "",
) -> Result:
    return Result(name, value, unit, baseline_name, baseline_value,
                  target=f"value >= {min_value:,.0f} {unit}", meets_target=value >= min_value,
                  notes=notes)


@dataclass(frozen=True)
class BenchInfo:
    """What a benchmark measures, for the report in ``docs/benchmarks.md``."""

    key: str
    title: str
    measures: str
    baseline: str


@dataclass
class BenchContext:
    """What every benchmark gets: the servers, the size of the run, and the progress display."""

    pg_url: str  # asyncpg-style URL of the `postgres` database on the embedded server
    nats_url: str
    quick: bool
    console: Console
    progress: Progress
    workdir: Path
    scratch: dict[str, Any] = field(default_factory=dict)
    #: The embedded servers' process ids (empty when run against servers found elsewhere): what
    #: they spend on CPU is reported beside a figure, see :class:`CpuMeter`.
    server_pids: dict[str, int] = field(default_factory=dict)

    def size(self, full: int, quick: int) -> int:
        return quick if self.quick else full

    def log(self, message: str) -> None:
        self.progress.console.log(message)

    @contextmanager
    def task(self, description: str, total: float | None) -> Iterator[Callable[..., None]]:
        """A progress bar for one phase; yields ``advance(n=1, **fields)``.

        A finished phase leaves the live display (one log line instead), so the display stays
        small and redrawing it costs the code under test next to nothing.
        """
        task_id: TaskID = self.progress.add_task(description, total=total)
        started = time.perf_counter()

        def advance(n: float = 1, **fields: Any) -> None:
            self.progress.update(task_id, advance=n, **fields)

        try:
            yield advance
        finally:
            seconds = time.perf_counter() - started
            self.progress.remove_task(task_id)
            rate = f", {total / seconds:,.0f}/s" if total and seconds > 0 else ""
            self.progress.console.log(f"[dim]{description}: {seconds:.2f}s{rate}[/dim]")

    @asynccontextmanager
    async def jetstream(self, name: str) -> AsyncIterator[tuple[NATS, JetStreamContext]]:
        nc = await connect_nats(self.nats_url, name=name)  # as the services connect (nats_client's fixes)
        try:
            yield nc, nc.jetstream()
        finally:
            await nc.drain()


def make_progress(console: Console) -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        refresh_per_second=4,
    )


class Stopwatch:
    """``with Stopwatch() as sw: ...`` then ``sw.seconds``; ``sw.rate(n)`` is n per second."""

    def __init__(self) -> None:
        self.started = 0.0
        self.seconds = 0.0

    def __enter__(self) -> Stopwatch:
        self.started = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.started

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def rate(self, count: float) -> float:
        return count / self.seconds if self.seconds > 0 else 0.0


def cpu_seconds(p: psutil.Process, *, apart: frozenset[int] = frozenset()) -> float:
    """User + system CPU of a process and its descendants: those running and those that ended and
    were reaped (a Postgres backend that closed, a reader process that exited). Processes in
    ``apart``, and theirs, are left out (the embedded servers are this benchmark's children)."""
    total, stack = 0.0, [p]
    while stack:
        q = stack.pop()
        with contextlib.suppress(psutil.Error):
            t = q.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
            stack.extend(c for c in q.children() if c.pid not in apart)
    return total


class CpuMeter:
    """CPU seconds spent while a block runs, by this process (and its children) and by each server.

    On a machine of few cores a throughput figure is bounded by what every process together
    spends per event, not only by the one being measured; these figures say where the cores went.
    """

    def __init__(self, server_pids: dict[str, int]) -> None:
        self.processes = {"benchmark": psutil.Process(), **{k: psutil.Process(v) for k, v in server_pids.items()}}
        self._apart = frozenset(server_pids.values())
        self.seconds: dict[str, float] = {}
        self._start: dict[str, float] = {}

    def _now(self) -> dict[str, float]:
        return {k: cpu_seconds(p, apart=self._apart) for k, p in self.processes.items()}

    def __enter__(self) -> CpuMeter:
        self._start = self._now()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = {k: v - self._start[k] for k, v in self._now().items()}

    def per_event(self, n: int) -> str:
        """``benchmark 98 µs, postgres 95 µs, nats 9 µs of CPU per event`` (empty if nothing measured)."""
        parts = [f"{k} {v / max(n, 1) * 1e6:,.0f} µs" for k, v in self.seconds.items()]
        return f"{', '.join(parts)} of CPU per event" if parts else ""


async def poll_until(
    check: Callable[[], Awaitable[int]],
    goal: int,
    *,
    interval: float = 0.05,
    give_up_after: float = 300.0,
    advance: Callable[[int], None] | None = None,
) -> int:
    """Poll ``check()`` until it returns at least ``goal``; returns the last value seen.
    ``advance`` (a progress task's) is given how much the value grew at each poll."""
    deadline = time.perf_counter() + give_up_after
    value = await check()
    while value < goal:
        if time.perf_counter() > deadline:
            raise TimeoutError(f"stuck at {value} of {goal} after {give_up_after:.0f}s")
        await asyncio.sleep(interval)
        last, value = value, await check()
        if advance is not None:
            advance(value - last)
    return value


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def fmt_rate(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f}"
