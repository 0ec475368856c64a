"""Two fixes to nats-py 2.16, installed once per process by :func:`fix_nats_client` (idempotent).

Each replaces a public method of nats-py's classes and keeps its contract (the first reads the
subscription's queue and counters as the original does); each says which upstream behaviour it
works around, so that it can go when nats-py fixes it.
"""

from __future__ import annotations

import asyncio
from typing import Any

import nats.errors
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext


def fix_nats_client() -> None:
    """Install both fixes (called by ``connect_nats`` and by the consumer runtime)."""
    _take_queued_messages_at_once()
    _tolerate_bare_fetch_timeouts()


def _take_queued_messages_at_once() -> None:
    """``Subscription.next_msg`` returns a message already received without scheduling a task.

    nats-py's ``next_msg`` wraps every call in a new task running ``asyncio.wait_for`` (and names
    it with a fresh uuid4), even when the message is already in the subscription's queue. A pull
    ``fetch`` of a batch calls it once per message: ~30 µs per message, 31,000 messages/s on this
    machine, where taking what is queued gives ~95,000/s (upstream: nats-io/nats.py#703 and its
    open pull requests #752, #862). The bookkeeping is the original's; an empty queue, a closed
    connection or a callback subscription still go through the original.
    """
    original = Subscription.next_msg
    if getattr(original, "_tuanlian_queued", False):
        return

    async def next_msg(self: Subscription, timeout: float | None = 1.0) -> Msg:
        if self._cb is None and not self._conn.is_closed:
            try:
                msg = self._pending_queue.get_nowait()
            except asyncio.QueueEmpty:
                pass
            else:
                self._pending_size -= len(msg.data)
                self._pending_queue.task_done()
                return msg
        return await original(self, timeout)

    next_msg._tuanlian_queued = True  # type: ignore[attr-defined]
    Subscription.next_msg = next_msg  # type: ignore[method-assign]


def _tolerate_bare_fetch_timeouts() -> None:
    """Make nats-py's pull ``fetch`` time out with ``nats.errors.TimeoutError`` only.

    nats-py (2.16) raises a bare ``asyncio.TimeoutError`` when a fetch's deadline runs out
    between its two pull requests. FastStream's pull loop (0.7) catches only
    ``nats.errors.TimeoutError``; the bare one kills the loop, and the messages it had already
    fetched for the batch sit unacknowledged until the ack wait (30 s) expires.
    """
    pull = JetStreamContext.PullSubscription
    original = pull.fetch
    if getattr(original, "_tuanlian_timeouts", False):
        return

    async def fetch(self: Any, *args: Any, **kwargs: Any) -> list[Msg]:
        try:
            return await original(self, *args, **kwargs)
        except nats.errors.TimeoutError:
            raise
        except TimeoutError as exc:
            raise nats.errors.TimeoutError from exc

    fetch._tuanlian_timeouts = True  # type: ignore[attr-defined]
    pull.fetch = fetch  # type: ignore[method-assign]
