import platform_support as ps
from tuanlian.shared.testing import running_consumers, wait_until


async def test_probe(probe_db, js, nats_url, demo_stream):
    for v in (1, 2, 3):
        await ps.publish(js, ps.envelope("a", v))
    c = ps.make_consumer(probe_db)
    async with running_consumers(nats_url, js, c):
        got = await wait_until(lambda: ps.applied_versions(probe_db), timeout=10)
        await wait_until(lambda: _done(probe_db), timeout=10)
    print(await ps.applied_versions(probe_db))

async def _done(db):
    v = await ps.applied_versions(db)
    return v.get("a") == [1, 2, 3]
