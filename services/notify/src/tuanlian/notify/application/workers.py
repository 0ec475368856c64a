"""The background loops of a notify replica: scheduler ticks, fan-out batches, deliveries."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import structlog
from tuanlian.notify.application.delivery import DeliveryWorker
from tuanlian.notify.application.fanout import FanoutWorker
from tuanlian.notify.application.scheduler import Scheduler
from tuanlian.shared.events import utcnow

log = structlog.get_logger("tuanlian.notify.workers")
Clock = Callable[[], datetime]


class Workers:
    def __init__(self, scheduler: Scheduler, fanout: FanoutWorker, delivery: DeliveryWorker,
                 pace: dict[str, float], clock: Clock = utcnow) -> None:
        self.scheduler, self.fanout, self.delivery, self.pace, self.clock = scheduler, fanout, delivery, pace, clock
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        async def fanout_step() -> None:
            while await self.fanout.step(self.clock()) is not None and not self._stop.is_set():
                pass

        async def scheduler_tick() -> None:
            await self.scheduler.tick(self.clock())

        async def deliver() -> None:
            await self.delivery.run_once(self.clock())

        for name, fn in (("scheduler", scheduler_tick), ("fanout", fanout_step), ("delivery", deliver)):
            self._tasks.append(asyncio.create_task(self._loop(name, fn, self.pace[name]), name=f"notify-{name}"))

    async def _loop(self, name: str, fn: Callable[[], Awaitable[Any]], every: float) -> None:
        while not self._stop.is_set():
            try:
                await fn()
            except Exception as exc:  # a loop must outlive a bad round; the next one retries
                log.error("worker round failed", worker=name, error=f"{type(exc).__name__}: {exc}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=every)

    async def stop(self) -> None:
        self._stop.set()
        for t in self._tasks:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(t, timeout=10)
        for ch in self.delivery.channels.values():
            close = getattr(ch, "close", None)
            if close is not None:
                await close()
