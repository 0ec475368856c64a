"""Reading a producer's stream from a sequence on (重放), for rebuilding a projection from the
streams alone: scoring's versions, wishes' read model of contacts.

Through an ephemeral pull consumer that acknowledges nothing: the server deletes it after
``idle`` seconds without a fetch, so a rebuild that died leaves nothing behind.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from typing import TypeVar

from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError, ServiceUnavailableError
from tuanlian.shared.streams import event_stream_name, event_subjects

# One message read: its stream sequence, the instant it reached the bus, its bytes.
Read = tuple[int, datetime, bytes]
T = TypeVar("T")


def seq_time_pending(m: Msg) -> tuple[int, datetime, int]:
    """The stream sequence, the instant the message reached the bus and how many matching ones
    are still pending after it, from its reply subject (``Msg.metadata`` builds three objects
    per message: a tenth of a scoring rebuild's time)."""
    tokens = Msg.Metadata._get_metadata_fields(m.reply)
    if len(tokens) == 9:  # $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ns>.<pending>
        seq, ns, pending = tokens[5], tokens[7], tokens[8]
    else:
        seq, ns, pending = tokens[Msg.Ack.StreamSeq], tokens[Msg.Ack.Timestamp], tokens[Msg.Ack.NumPending]
    return int(seq), datetime.fromtimestamp(int(ns) / 1e9, UTC), int(pending)


async def read_range(js: JetStreamContext, producer: str, first: int, last: int, *,
                     subjects: Sequence[str] = (), batch: int = 1000, idle: float = 60.0,
                     description: str = "replay (ephemeral)") -> AsyncIterator[list[Read]]:
    """Messages ``first``..``last`` of a producer's stream (those on ``subjects`` only, if given),
    in order, a fetched batch at a time. A reader held up past ``idle`` (its caller busy writing,
    Postgres stalling) finds its consumer gone and goes on with a new one from the next message.
    Ends at ``last`` or when nothing matching is left."""
    if last < first:
        return
    stream = event_stream_name(producer)

    async def subscribe(start: int) -> JetStreamContext.PullSubscription:
        config = ConsumerConfig(ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                                opt_start_seq=start, inactive_threshold=idle, max_ack_pending=-1,
                                description=description, filter_subjects=list(subjects) or None)
        return await js.pull_subscribe(event_subjects(producer), stream=stream, config=config)

    sub = await subscribe(first)
    try:
        # None matching (a filtered tail of interactions only): do not wait out a fetch for it.
        seq, gone, pending = first - 1, 0, (await sub.consumer_info()).num_pending
        while seq < last and pending:
            try:
                try:
                    msgs: list[Msg] = await sub.fetch(min(batch, last - seq), timeout=5)
                except NatsTimeout:
                    if (await sub.consumer_info()).num_pending == 0:
                        break  # nothing matching left (the rest deleted, or not on these subjects)
                    continue
            except (ServiceUnavailableError, NotFoundError):  # the consumer was deleted meanwhile
                gone += 1
                if gone > 3:
                    raise
                with contextlib.suppress(Exception):
                    await sub.unsubscribe()
                sub = await subscribe(seq + 1)
                continue
            gone = 0
            out: list[Read] = []
            for m in msgs:
                seq, at, pending = seq_time_pending(m)
                if seq > last:
                    break
                out.append((seq, at, m.data))
            if out:
                yield out
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()


async def by_arrival(sources: dict[str, AsyncIterator[list[T]]], at: Callable[[T], datetime]
                     ) -> AsyncGenerator[list[T], None]:
    """Several streams' batches merged by the instant each message reached the bus (``at``), as
    live consumers running side by side saw them; each stream's own order is kept."""
    heads: dict[str, list[T]] = {}

    async def refill(p: str) -> None:
        try:
            heads[p] = list(await sources[p].__anext__())
        except StopAsyncIteration:
            heads.pop(p, None)

    for p in list(sources):
        await refill(p)
    while heads:
        if len(heads) == 1:
            (p, buf), = heads.items()
            yield buf
            await refill(p)
            continue
        # Take from each buffer everything up to the earliest of the buffers' last messages.
        horizon = min(at(buf[-1]) for buf in heads.values())
        out: list[T] = []
        for p in list(heads):
            buf = heads[p]
            n = 0
            while n < len(buf) and at(buf[n]) <= horizon:
                n += 1
            out.extend(buf[:n])
            heads[p] = buf[n:]
        out.sort(key=at)  # stable: each stream's order is kept
        yield out
        for p in list(heads):
            if not heads[p]:
                await refill(p)
