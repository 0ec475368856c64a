"""Reading a producer's stream for a rebuild (``shared/replay.py``), on a real JetStream."""

from __future__ import annotations

from nats.js import JetStreamContext
from tuanlian.shared.replay import read_range
from tuanlian.shared.streams import declare_stream, event_stream_name, producer_stream


async def _read(js: JetStreamContext, first: int, last: int, **kw: object) -> list[tuple[int, bytes]]:
    return [(seq, data) async for chunk in read_range(js, "shop", first, last, **kw)  # type: ignore[arg-type]
            for seq, _at, data in chunk]


async def test_a_range_is_read_in_order_filtered_and_ends_when_nothing_matching_is_left(js: JetStreamContext) -> None:
    await declare_stream(js, producer_stream("shop"), storage="memory")
    for i in range(30):
        kind = "order" if i % 3 else "basket"
        await js.publish(f"shop.events.{kind}.Done", f"{kind}{i}".encode())
    last = (await js.stream_info(event_stream_name("shop"))).state.last_seq
    assert [d for _s, d in await _read(js, 1, last, batch=7)] == [f"{'order' if i % 3 else 'basket'}{i}".encode()
                                                                  for i in range(30)]
    assert [s for s, _d in await _read(js, 5, 12)] == list(range(5, 13))
    baskets = await _read(js, 1, last, subjects=["shop.events.basket.>"], batch=4)
    assert [s for s, _d in baskets] == list(range(1, 31, 3))
    # A range past the last basket (orders only), or past the stream's end: nothing.
    assert await _read(js, 29, last, subjects=["shop.events.basket.>"]) == []
    assert await _read(js, last + 1, last + 5) == []
