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
    def __init__(self, consumer: EventConsumer, nats_url: str, poll: float = 1.0) -> None:
        self.consumer, self.nats_url, self.poll = consumer, nats_url, poll
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"late-{self.consumer.durable}")

    async def _run(self) -> None:
        nc = await connect_nats(self.nats_url, name=f"tuanlian-notify-{self.consumer.name}")
        broker: NatsBroker | None = None
        try:
            js = nc.jetstream()
            waited = False
            while not self._stop.is_set():
                try:
                    await js.stream_info(self.consumer.stream)
                    break
                except NotFoundError:
                    if not waited:
                        log.warning("waiting for stream", stream=self.consumer.stream)
                        waited = True
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stop.wait(), timeout=self.poll)
            if self._stop.is_set():
                return
            broker = NatsBroker(self.nats_url, logger=logging.getLogger("faststream"))
            self.consumer.register(broker)
            await self.consumer.ensure_durable(js)
            self.consumer.bind_js(js)
            await broker.start()
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
