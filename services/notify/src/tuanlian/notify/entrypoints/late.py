"""A consumer of a stream whose owner may be deployed after notify (the SCORING stream).

The platform's runtime waits a minute for every consumed stream and then refuses to start;
notify's inbox and login codes must not depend on scoring being up. This consumer waits for its
stream in the background, as long as it takes, then runs on its own broker exactly as the
runtime would run it (durable ensured, bound to JetStream, manual-ack batch pull).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import structlog
from faststream.nats import NatsBroker
from nats.js.errors import NotFoundError
from tuanlian.shared.consumer import EventConsumer
from tuanlian.shared.streams import connect_nats

log = structlog.get_logger("tuanlian.notify.late")


class LateConsumer:
    """Binds ``consumer`` once its stream exists, however late; retries whatever fails on the way.

    ``state`` is ``starting`` → ``waiting`` (stream absent; ``polls`` counts the looks) → ``bound``;
    ``retrying`` with ``last_error`` after a failure (NATS away, a refused durable update…), with
    a backoff up to ``max_backoff``. The durable's config is brought up to date on every bind
    (:meth:`EventConsumer.ensure_durable`): JetStream keeps an old config across redeploys.
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
            except Exception as exc:  # nothing may end this task but stop(): scoring's circulars depend on it
                self.state, self.last_error = "retrying", f"{type(exc).__name__}: {exc}"
                log.error("late consumer failed; retrying", durable=self.consumer.durable, error=self.last_error,
                          retry_in=backoff)
                await self._pause(backoff)
                backoff = min(self.max_backoff, backoff * 2)

    async def _bind_and_serve(self) -> None:
        nc = await connect_nats(self.nats_url, name=f"tuanlian-notify-{self.consumer.name}")
        broker: NatsBroker | None = None
        try:
            js = nc.jetstream()
            while not self._stop.is_set():
                try:
                    await js.stream_info(self.consumer.stream)
                    break
                except NotFoundError:
                    if self.state != "waiting":
                        log.warning("waiting for stream", stream=self.consumer.stream)
                    self.state = "waiting"
                    self.polls += 1
                    await self._pause(self.poll)
            if self._stop.is_set():
                return
            await self.consumer.ensure_durable(js)
            self.consumer.bind_js(js)
            broker = NatsBroker(self.nats_url, logger=logging.getLogger("faststream"))
            self.consumer.register(broker)
            await broker.start()
            self.state, self.last_error = "bound", None
            self.binds += 1
            log.info("consumer bound", stream=self.consumer.stream, durable=self.consumer.durable)
            await self._stop.wait()
        finally:
            if broker is not None:
                with contextlib.suppress(Exception):
                    await broker.stop()
            with contextlib.suppress(Exception):
                await nc.drain()

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._task, timeout=10)
