"""Connecting to NATS: a cluster list, and one clear line when nothing answers."""

from __future__ import annotations

import pytest
from tuanlian.shared.infra import free_port
from tuanlian.shared.streams import connect_nats, nats_servers


def test_a_url_list_names_every_server() -> None:
    assert nats_servers("nats://a:4222, nats://b:4222,,") == ["nats://a:4222", "nats://b:4222"]


async def test_one_answering_server_of_the_list_is_enough(nats_url: str) -> None:
    dead = f"nats://127.0.0.1:{free_port()}"
    nc = await connect_nats(f"{dead},{nats_url}", name="tuanlian-test", timeout=2)
    try:
        assert nc.is_connected
        assert nc.connected_url is not None and nc.connected_url.port == int(nats_url.rsplit(":", 1)[1])
    finally:
        await nc.close()


async def test_no_answering_server_is_one_line_naming_each() -> None:
    dead = [f"nats://127.0.0.1:{free_port()}" for _ in range(2)]
    with pytest.raises(ConnectionError) as caught:
        await connect_nats(",".join(dead), name="tuanlian-test", timeout=2)
    message = str(caught.value)
    assert "\n" not in message and all(d in message for d in dead)
