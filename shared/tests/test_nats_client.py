"""The nats-py fixes of ``nats_client``: queued messages are taken at once, fetches keep their
order and accounting, a fetch with nothing to fetch times out the way FastStream expects."""

from __future__ import annotations

import asyncio

import nats.errors
import pytest
from nats.js.api import AckPolicy, ConsumerConfig, StreamConfig
from tuanlian.shared.streams import connect_nats


async def test_a_queued_message_is_taken_without_waiting_for_the_loop(nats_url: str) -> None:
    nc = await connect_nats(nats_url, name="tuanlian-test")
    try:
        sub = await nc.subscribe("queued.test")
        for i in range(3):
            await nc.publish("queued.test", f"m{i}".encode())
        await nc.flush()
        for _ in range(100):
            if sub.pending_msgs == 3:
                break
            await asyncio.sleep(0.01)
        assert sub.pending_msgs == 3
        # nats-py's own next_msg suspends at least once (it awaits a task it creates) even for a
        # message that is already there; the fix returns it on the first step of the coroutine.
        step = sub.next_msg(timeout=1)
        with pytest.raises(StopIteration) as done:
            step.send(None)
        assert done.value.value.data == b"m0"
        assert sub.pending_msgs == 2 and sub.pending_bytes == 4
        assert [(await sub.next_msg(timeout=1)).data for _ in range(2)] == [b"m1", b"m2"]
        assert sub.pending_msgs == 0 and sub.pending_bytes == 0
        with pytest.raises(nats.errors.TimeoutError):  # an empty queue still waits, then times out
            await sub.next_msg(timeout=0.05)
    finally:
        await nc.close()


async def test_pull_fetches_keep_stream_order_and_time_out_when_drained(nats_url: str) -> None:
    nc = await connect_nats(nats_url, name="tuanlian-test")
    js = nc.jetstream()
    try:
        await js.add_stream(StreamConfig(name="FETCHFIX", subjects=["fetchfix.>"]))
        acks = [await js.publish_async(f"fetchfix.{i % 7}", str(i).encode()) for i in range(250)]
        await asyncio.gather(*acks)
        sub = await js.pull_subscribe("fetchfix.>", stream="FETCHFIX",
                                      config=ConsumerConfig(ack_policy=AckPolicy.NONE, inactive_threshold=30.0))
        got: list[int] = []
        sizes = []
        while len(got) < 250:
            msgs = await sub.fetch(100, timeout=5)
            sizes.append(len(msgs))
            got.extend(int(m.data) for m in msgs)
        assert got == list(range(250)) and max(sizes) == 100
        assert sub.pending_msgs == 0 and sub.pending_bytes == 0
        with pytest.raises(nats.errors.TimeoutError):
            await sub.fetch(10, timeout=0.2)
        await sub.unsubscribe()
    finally:
        await js.delete_stream("FETCHFIX")
        await nc.close()
