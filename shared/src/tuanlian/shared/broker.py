"""Starting the FastStream NATS broker, with one guard against a known pull-fetch trap.

nats-py (2.15–2.16) raises a bare ``asyncio.TimeoutError`` from ``PullSubscription.fetch`` when
its deadline runs out mid-batch, while FastStream 0.7's batch pull loop only catches
``nats.errors.TimeoutError``. The loop task then dies with the messages it already fetched (they
come back only after ``ack_wait``) and is restarted by FastStream's supervisor, so a quiet stream
sees deliveries stall for tens of seconds. We translate the error back into the type FastStream
expects on the subscriptions the broker creates. Remove once either library is fixed.
"""

from __future__ import annotations

from typing import Any

import nats.errors
from faststream.nats import NatsBroker


def _guard_fetch(subscription: Any) -> Any:
    fetch = subscription.fetch

    async def fetch_translating_timeouts(*args: Any, **kwargs: Any) -> Any:
        try:
            return await fetch(*args, **kwargs)
        except nats.errors.TimeoutError:
            raise
        except TimeoutError as exc:
            raise nats.errors.TimeoutError from exc

    subscription.fetch = fetch_translating_timeouts
    return subscription


async def start_broker(broker: NatsBroker) -> None:
    await broker.connect()
    js = broker.config.connection_state.stream
    pull_subscribe = js.pull_subscribe

    async def guarded_pull_subscribe(*args: Any, **kwargs: Any) -> Any:
        return _guard_fetch(await pull_subscribe(*args, **kwargs))

    js.pull_subscribe = guarded_pull_subscribe  # type: ignore[method-assign]
    await broker.start()
