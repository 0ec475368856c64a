"""Consumers of a stream whose owner may be deployed after the consuming service.

The runtime waits a minute for every stream in ``ServiceSpec.build_consumers`` and then refuses to
start. A consumer listed in ``ServiceSpec.build_late_consumers`` instead waits for its stream in the
background, as long as it takes, then runs on its own broker exactly as the runtime would run it
(durable ensured and brought up to date, bound to JetStream, manual-ack batch pull). This is the
approach notify first took for the SCORING stream, made generic; contacts and notify use it.

With ``lock`` (``ServiceSpec.build_exclusive_consumers``) one replica of the service at a time
runs the consumer: it binds only once it holds a Postgres advisory lock named after the durable,
and the other replicas stand by, taking over within ``poll`` seconds of the holder's session
ending. For a projection whose batches serialise anyway (scoring's), replicas taking turns on a
durable only fetch interleaved sequences: each batch then reads its rows afresh, and its
``applied_log`` row no longer covers the events after the row before it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncpg
import structlog
from faststream.nats import NatsBroker
from nats.js.errors import NotFoundError
from tuanlian.shared.consumer import EventConsumer
from tuanlian.shared.db import Database
from tuanlian.shared.streams import connect_nats, nats_servers

log = structlog.get_logger("tuanlian.late")


class LateConsumer:
    """Binds ``consumer`` once its stream exists, however late; retries whatever fails on the way.

    ``state`` is ``starting`` → ``waiting`` (stream absent; ``polls`` counts the looks) →
    (with ``lock``: ``standby`` while another replica holds it →) ``bound``; ``retrying`` with
    ``last_error`` after a failure (NATS away, a refused durable update, the lock's session
    lost…), with a backoff up to ``max_backoff``.
    """

    def __init__(self, consumer: EventConsumer, nats_url: str, poll: float = 1.0, max_backoff: float = 30.0,
                 lock: Database | None = None, lock_check: float = 2.0) -> None:
        self.consumer, self.nats_url, self.poll, self.max_backoff = consumer, nats_url, poll, max_backoff
        self.lock, self.lock_check = lock, lock_check
        self.state = "starting"
        self._settled = asyncio.Event()  # bound, or standing by behind another replica
        self.polls = 0
        self.binds = 0
        self.last_error: str | None = None
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"late-{self.consumer.durable}")

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), timeout=seconds)

    async def _run(self) -> None:
        backoff = self.poll
        while not self._stop.is_set():
            try:
                await self._bind_and_serve()
                return
            except Exception as exc:  # nothing may end this task but stop()
                self.state, self.last_error = "retrying", f"{type(exc).__name__}: {exc}"
                log.error("late consumer failed; retrying", durable=self.consumer.durable, error=self.last_error,
                          retry_in=backoff)
                await self._pause(backoff)
                backoff = min(self.max_backoff, backoff * 2)

    async def _bind_and_serve(self) -> None:
        if self.lock is None:
            await self._serve(None)
            return
        key = f"consumer {self.consumer.stream} {self.consumer.durable}"
        async with self.lock.connection() as lock_conn:
            while not await lock_conn.fetchval("SELECT pg_try_advisory_lock(hashtextextended($1, 0))", key):
                self.state = "standby"
                self._settled.set()
                await self._pause(self.poll)
                if self._stop.is_set():
                    return
            try:
                await self._serve(lock_conn)
            finally:  # after the last batch settled: the next holder starts where it ended
                with contextlib.suppress(Exception):
                    await lock_conn.execute("SELECT pg_advisory_unlock(hashtextextended($1, 0))", key)

    async def _serve(self, lock_conn: asyncpg.Connection | None) -> None:
        c = self.consumer
        nc = await connect_nats(self.nats_url, name=f"tuanlian-{c.service}-{c.name}")
        broker: NatsBroker | None = None
        try:
            js = nc.jetstream()
            while not self._stop.is_set():
                try:
                    await js.stream_info(c.stream)
                    break
                except NotFoundError:
                    if self.state != "waiting":
                        log.warning("waiting for stream", stream=c.stream, durable=c.durable)
                    self.state = "waiting"
                    self.polls += 1
                    await self._pause(self.poll)
            if self._stop.is_set():
                return
            await c.ensure_durable(js)
            c.bind_js(js)
            broker = NatsBroker(nats_servers(self.nats_url), logger=logging.getLogger("faststream"))
            c.register(broker)
            await broker.start()
            self.state, self.last_error = "bound", None
            self._settled.set()
            self.binds += 1
            log.info("consumer bound", stream=c.stream, durable=c.durable, exclusive=lock_conn is not None)
            while not self._stop.is_set():
                await self._pause(self.lock_check)
                if lock_conn is not None:
                    await lock_conn.fetchval("SELECT 1")  # the session holding the lock is gone: stop
        finally:
            if broker is not None:
                with contextlib.suppress(Exception):
                    await broker.stop()
                await c.drain()  # its last batch settles while NATS is still there to ack
            with contextlib.suppress(Exception):
                await nc.drain()

    async def settled(self, timeout: float) -> bool:
        """Wait until this replica runs the consumer or stands by for another (at most ``timeout``)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._settled.wait(), timeout=timeout)
        return self._settled.is_set()

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._task, timeout=10)
