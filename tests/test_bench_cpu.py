"""The benchmarks' CPU accounting: a server's CPU is its own, not the benchmark's that started it,
and a child that ended still counts (a rebuild's reader process, a closed Postgres backend)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from common import CpuMeter

BURN = "import time\nt = time.process_time()\nwhile time.process_time() - t < {s}: pass\n{tail}"


def test_a_server_counts_apart_and_an_ended_child_counts_for_its_parent() -> None:
    # A "server": our child, burning CPU for as long as the meter runs, then waiting to be stopped.
    server = subprocess.Popen([sys.executable, "-c", BURN.format(s=0.6, tail="time.sleep(60)")])
    try:
        with CpuMeter({"server": server.pid}) as meter:
            # A child of the benchmark that burns and ends before the meter stops (reaped by run()).
            subprocess.run([sys.executable, "-c", BURN.format(s=0.4, tail="")], check=True)
            while not _burnt(server.pid, 0.6):
                time.sleep(0.02)
    finally:
        server.kill()
        server.wait()
    assert meter.seconds["server"] >= 0.4
    # The benchmark's own figure holds the ended child's 0.4 s (and its start-up), not the server's.
    assert 0.35 <= meter.seconds["benchmark"] < 0.8
    assert "server" in meter.per_event(1000) and "µs" in meter.per_event(1000)


def _burnt(pid: int, seconds: float) -> bool:
    import psutil

    t = psutil.Process(pid).cpu_times()
    return t.user + t.system >= seconds
