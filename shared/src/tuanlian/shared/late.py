"""Consumers of a stream whose owner may be deployed after the consuming service.

The runtime waits a minute for every stream in ``ServiceSpec.build_consumers`` and then refuses to
start. A consumer listed in ``ServiceSpec.build_late_consumers`` instead waits for its stream in the
background, as long as it takes, then runs on its own broker exactly as the runtime would run it
(durable ensured and brought up to date, bound to JetStream, manual-ack batch pull). This is the
approach notify first took for the SCORING stream, made generic; contacts and notify use it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import structlog
from faststream.nats import NatsBroker
from nats.js.errors import NotFoundError
from tuanlian.shared.consumer import EventConsumer
from tuanlian.shared.streams import connect_nats, nats_servers

log = structlog.get_logger("tuanlian.late")


class LateConsumer:
    """Binds ``consumer`` once its stream exists, however late; retries whatever fails on the way.

    ``state`` is ``starting`` → ``waiting`` (stream absent; ``polls`` counts the looks) → ``bound``;
    ``retrying`` with ``last_error`` after a failure (NATS away, a refused durable update…), with
    a backoff up to ``max_backoff``.
    """

    def __init__(self, consumer: EventConsumer, nats_url: str, poll: float = 1.0, max_backoff: float = 30.0) -> None:
        self.consumer, self.nats_url, self.poll, self.max_backoff = consumer, nats_url, poll, max_backoff
        self.state = "starting"
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
            self.binds += 1
            log.info("consumer bound", stream=c.stream, durable=c.durable)
            await self._stop.wait()
        finally:
            if broker is not None:
                with contextlib.suppress(Exception):
                    await broker.stop()
                await c.drain()  # its last batch settles while NATS is still there to ack
            with contextlib.suppress(Exception):
                await nc.drain()

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._task, timeout=10)
