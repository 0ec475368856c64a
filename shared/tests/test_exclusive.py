"""Exclusive consumers (``ServiceSpec.build_exclusive_consumers``): one replica at a time runs a
durable, through real JetStream and Postgres."""

from __future__ import annotations

import platform_support as ps
from nats.js import JetStreamContext
from tuanlian.shared.db import Database
from tuanlian.shared.late import LateConsumer
from tuanlian.shared.testing import wait_until


async def _states(*replicas: LateConsumer) -> list[str]:
    return [r.state for r in replicas]


async def test_one_replica_runs_an_exclusive_consumer_and_another_takes_over_when_its_session_ends(
    probe_db: Database, demo_stream: str, js: JetStreamContext, nats_url: str
) -> None:
    first, second = (LateConsumer(ps.make_consumer(probe_db), nats_url, poll=0.1, lock=probe_db, lock_check=0.1)
                     for _ in range(2))
    first.start()
    try:
        await wait_until(lambda: _states(first), until=lambda s: s == ["bound"], message="first bound")
        second.start()
        await wait_until(lambda: _states(second), until=lambda s: s == ["standby"], message="second standing by")
        for v in range(1, 6):
            await ps.publish(js, ps.envelope("a", v))
        await wait_until(lambda: ps.applied_versions(probe_db), until=lambda a: a == {"a": [1, 2, 3, 4, 5]})
        assert await _states(first, second) == ["bound", "standby"]

        # The session holding the lock ends (Postgres failed over, the network cut it): the first
        # replica stops consuming and stands by, the second takes over where it stopped.
        key = f"consumer {demo_stream} {first.consumer.durable}"
        async with probe_db.connection() as conn:
            ended = await conn.fetchval(
                "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                "AND ((classid::bigint << 32) | objid::bigint) = hashtextextended($1, 0)", key)
        assert ended is True
        await wait_until(lambda: _states(first, second), until=lambda s: s == ["standby", "bound"],
                         message="the second bound, the first standing by")
        for v in range(6, 11):
            await ps.publish(js, ps.envelope("a", v))
        await wait_until(lambda: ps.applied_versions(probe_db), until=lambda a: a == {"a": list(range(1, 11))})
    finally:
        await first.stop()
        await second.stop()
