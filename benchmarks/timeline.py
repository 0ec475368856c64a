"""A benchmark run with a timeline of every scoring projector run, to catch a slow one in the act.

    uv run python benchmarks/timeline.py [run.py's arguments, e.g. --only scoring]

Runs ``run.py`` as it is, with timers around the consumer runtime (each ``submit``, ``_process``
and ``_apply_ahead``), the fold (each ``PeriodFolder.once`` and its rows), garbage collections,
event loop stalls over 80 ms, and every 0.25 s the busy Postgres backends and the applied
checkpoints. Prints a summary per projector run and writes every event to the JSON file named by
``TUANLIAN_TIMELINE_OUT`` (default: ``tuanlian-timeline.json`` in the temporary directory).
Diagnostics only: the timers cost a little, so its figures are not the benchmark's.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import gc
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

T = time.perf_counter
EVENTS: list[tuple[float, str, dict[str, Any]]] = []
RUNS: list[tuple[float, float, int]] = []
_on = False


def _record(kind: str, **data: Any) -> None:
    if _on:
        EVENTS.append((T(), kind, data))


def _timed(cls: Any, name: str, kind: str, extra: Any = None) -> None:
    original = getattr(cls, name)

    @functools.wraps(original)
    async def wrapper(self: Any, *args: Any, **kw: Any) -> Any:
        t0 = T()
        result = await original(self, *args, **kw)
        _record(kind, dur=T() - t0, who=getattr(self, "durable", ""), **(extra(result, args) if extra else {}))
        return result

    setattr(cls, name, wrapper)


def _gc_timer() -> None:
    started: list[float] = [0.0]

    def callback(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started[0] = T()
        else:
            _record("gc", gen=info["generation"], dur=T() - started[0])

    gc.callbacks.append(callback)


def _summary(out: Path) -> None:
    for t0, t1, n in RUNS:
        events = [e for e in EVENTS if t0 <= e[0] <= t1]
        print(f"projector run: {t1 - t0:.2f} s for {n:,} events")
        totals: dict[str, list[float]] = collections.defaultdict(lambda: [0, 0.0, 0.0])
        for _t, kind, data in events:
            if "dur" in data:
                key = f"{kind} gen{data['gen']}" if kind == "gc" else kind
                agg = totals[key]
                agg[0] += 1
                agg[1] += data["dur"]
                agg[2] = max(agg[2], data["dur"])
        for key, (count, total, longest) in sorted(totals.items()):
            print(f"  {key:<14} {count:5.0f}× {total:6.2f} s, longest {longest:5.2f} s")
        progress = [f"{t - t0:.1f}s:{d['applied'] // 1000}k" for t, k, d in events if k == "pg"]
        print("  applied:", " ".join(progress[::2]))
    out.write_text(json.dumps({"runs": RUNS, "events": EVENTS}, default=str))
    print(f"timeline written to {out}")


def main() -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    import asyncpg
    import bench_scoring
    import run
    from tuanlian.scoring.adapters.folding import PeriodFolder
    from tuanlian.shared.consumer import EventConsumer

    _timed(EventConsumer, "submit", "submit", lambda r, a: {"n": len(a[0])})
    _timed(EventConsumer, "_process", "process", lambda r, a: {"n": len(a[0])})
    _timed(EventConsumer, "_apply_ahead", "ahead", lambda r, a: {"kept": r is not None})
    _timed(PeriodFolder, "once", "fold", lambda r, a: {"rows": r})
    _gc_timer()
    projector = bench_scoring._projector

    async def timed_projector(ctx: Any, js: Any, url: str, n: int) -> Any:
        global _on
        stop = asyncio.Event()

        async def sample() -> None:
            conn = await asyncpg.connect(url)
            try:
                while not stop.is_set():
                    busy = await conn.fetch(
                        "SELECT state, wait_event_type, wait_event, left(query, 60) AS query FROM pg_stat_activity "
                        "WHERE state <> 'idle' AND pid <> pg_backend_pid() AND backend_type = 'client backend'")
                    applied = await conn.fetchval(
                        "SELECT coalesce(sum(stream_sequence), 0) FROM scoring.consumer_checkpoint")
                    _record("pg", busy=[dict(r) for r in busy], applied=int(applied))
                    await asyncio.sleep(0.25)
            finally:
                await conn.close()

        async def stalls() -> None:
            while not stop.is_set():
                t0 = T()
                await asyncio.sleep(0.01)
                if T() - t0 > 0.08:
                    _record("stall", dur=T() - t0)

        _on = True
        t0 = T()
        watchers = [asyncio.create_task(sample()), asyncio.create_task(stalls())]
        try:
            return await projector(ctx, js, url, n)
        finally:
            stop.set()
            await asyncio.gather(*watchers, return_exceptions=True)
            _on = False
            RUNS.append((t0, T(), n))

    bench_scoring._projector = timed_projector
    sys.argv = ["run.py", *sys.argv[1:]]
    try:
        run.main()
    finally:
        _summary(Path(os.environ.get("TUANLIAN_TIMELINE_OUT") or Path(tempfile.gettempdir()) / "tuanlian-timeline.json"))


if __name__ == "__main__":  # the rebuild's reader process imports this module again
    main()
