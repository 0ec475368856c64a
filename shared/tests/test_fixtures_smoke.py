"""The test infrastructure itself: real servers, isolated per test."""

from __future__ import annotations

from tuanlian.shared.db import Database
from tuanlian.shared.streams import declare_stream, producer_stream
from tuanlian.shared.testing import create_platform_tables


async def test_database_is_fresh_and_usable(db: Database, database_url: str) -> None:
    async with db.connection() as conn:
        assert await conn.fetchval("SELECT current_database()") == database_url.rsplit("/", 1)[1]
        tables = await conn.fetchval(
            "SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')"
        )
    assert tables == 0
    await create_platform_tables(db, "svc")
    async with db.connection() as conn:
        names = {r[0] for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'svc'")}
    assert {"events", "relay_checkpoint", "consumer_inbox", "consumer_positions"} <= names


async def test_nats_has_jetstream_and_no_streams(js) -> None:
    assert await js.streams_info() == []
    await declare_stream(js, producer_stream("smoke"))
    ack = await js.publish("smoke.events.x.y", b"{}")
    assert ack.stream == "SMOKE" and ack.seq == 1


async def test_nats_is_isolated_between_tests(js) -> None:
    assert await js.streams_info() == []


def test_ports_asked_together_are_distinct_and_free() -> None:
    import socket

    from tuanlian.shared.infra import free_ports

    ports = free_ports(64)
    assert len(set(ports)) == 64
    for port in ports[:4]:
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))  # still free once handed out


async def test_embedded_postgres_compares_text_by_code_point(tmp_path) -> None:
    """The embedded cluster (tests, ``make run``, ``make bench``) uses the builtin C.UTF-8
    locale, as the compose file's does: text keys compare by code point without strcoll, as
    Python sorts them, while casing still knows Unicode."""
    import asyncpg
    from tuanlian.shared.infra import EmbeddedPostgres

    server = EmbeddedPostgres(tmp_path, durable=False)
    url = server.start()
    try:
        conn = await asyncpg.connect(url)
        try:
            provider, locale = await conn.fetchrow(
                "SELECT datlocprovider::text, datlocale FROM pg_database WHERE datname = current_database()")
            words = ["团支部", "b", "B", "é", "a", "Z", "团委", "ä"]
            ordered = await conn.fetchval("SELECT array_agg(w ORDER BY w) FROM unnest($1::text[]) w", words)
            upper = await conn.fetchval("SELECT upper('é团')")
        finally:
            await conn.close()
    finally:
        server.stop()
    assert (provider, locale) == ("b", "C.UTF-8")
    assert ordered == sorted(words)
    assert upper == "É团"
