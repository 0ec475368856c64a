"""The whole service on real NATS and Postgres: consumers of the three streams, the direct
request, and the HTTP API (auth, validation, scope)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest_asyncio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from support import SCHEMA, WebhookReceiver, inbox, publish, served
from tuanlian.notify.adapters import inbox as inbox_feed
from tuanlian.notify.app import make_spec
from tuanlian.notify.application.fanout import FanoutWorker
from tuanlian.notify.settings import NotifySettings
from tuanlian.shared.auth import Principal, Role, TokenIssuer
from tuanlian.shared.contracts import contacts as c
from tuanlian.shared.contracts import scoring as sc
from tuanlian.shared.contracts import wishes as w
from tuanlian.shared.contracts.notify import DIRECT_SUBJECT
from tuanlian.shared.db import Database
from tuanlian.shared.service import Runtime, create_app
from tuanlian.shared.settings import Settings
from tuanlian.shared.streams import declare_stream, producer_stream
from tuanlian.shared.testing import wait_until


@dataclass
class Service:
    runtime: Runtime
    http: httpx.AsyncClient
    issuer: TokenIssuer
    hook: WebhookReceiver
    app: FastAPI

    def auth(self, subject: str, role: Role, org_path: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.issuer.issue(Principal(subject, role, org_path))}"}


@pytest_asyncio.fixture(loop_scope="session")
async def service(database_url: str, nats_url: str, js: JetStreamContext) -> AsyncIterator[Service]:
    for producer in ("contacts", "wishes", "scoring"):
        await declare_stream(js, producer_stream(producer), storage="memory")
    async with WebhookReceiver() as hook:
        ns = NotifySettings(webhook_url=hook.url, run_workers=False, dev_inbox=True, sse_poll_seconds=0.05)
        app = create_app(make_spec(ns), Settings(database_url=database_url, nats_url=nats_url,
                                                 stream_storage="memory", retry_base_delay=0.05))
        runtime: Runtime = app.state.runtime
        runtime.issuer = TokenIssuer(Ed25519PrivateKey.generate(), kid="test")
        # The app's whole lifespan: runtime, workers (off here) and the late-bound scoring consumer.
        async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://notify"
        ) as http:
            yield Service(runtime, http, runtime.issuer, hook, app)


async def test_events_of_all_three_streams_become_messages_and_erasure_removes_them(
    service: Service, js: JetStreamContext
) -> None:
    db = service.runtime.db
    t = datetime(2026, 6, 1, 2, tzinfo=UTC)
    await publish(js, c.CadreRegistered(cadre_id="c1", org_id="b", org_path="/c/b", kind=c.CadreKind.part_time,
                                        in_leadership_organ=False))
    await publish(js, c.YouthRegistered(youth_id="y1", org_id="b", org_path="/c/b"))
    await publish(js, c.ContactLinkInvited(link_id="l1", cadre_id="c1", youth_id="y1", org_path="/c/b",
                                           initiated_by="cadre"))
    # Streams are not ordered with each other: the youth must be known before the ballot asks them.
    async with db.connection() as conn:
        await wait_until(lambda: conn.fetchval(f"SELECT count(*) FROM {SCHEMA}.recipients"), until=lambda n: n == 2,
                         message="cadre and youth known")
    wish = f"wish-{t.timestamp()}"
    await publish(js, w.WishRaised(wish_id="w1", youth_id="y1", cadre_id="c1", org_path="/c/b",
                                   category=w.WishCategory.study), t, stream_id=wish)
    await publish(js, w.WishReleasedToPool(wish_id="w1", youth_id="y1", cadre_id="c1", org_path="/c/b",
                                           automatic=True), t, stream_id=wish)
    await publish(js, w.PoolWishClaimed(wish_id="w1", claim_id="k1", org_path="/c/b", claimant_kind=w.ClaimantKind.partner,
                                        claimant_id="p1", deadline=t + timedelta(days=14)), t, stream_id=wish)
    await publish(js, w.BallotOpened(ballot_id="b1", branch_org_id="b", org_path="/c/b", secretary_cadre_id="c1",
                                     year=2026, eligible=30, closes_at=t + timedelta(days=7)))
    await publish(js, sc.CircularPublished(circular_id="circ", number="2026-05", org_id="c", org_path="/c",
                                           period_kind=sc.PeriodKind.month, period_start=date(2026, 5, 1),
                                           period_end=date(2026, 5, 31), title="五月通报", positions={}))
    kinds = ["link_invitation", "wish_released", "wish_claimed", "ballot_opened"]
    await wait_until(lambda: inbox(db, "y1"), until=lambda rows: sorted(r["kind"] for r in rows) == sorted(kinds),
                     message="the youth's messages")
    await wait_until(lambda: _fanout_jobs(db), until=lambda n: n == 1, message="the circular's job")
    await FanoutWorker(db, SCHEMA).drain(t)
    assert [m["kind"] for m in await inbox(db, "c1")] == ["circular"]

    youth = service.auth("y1", Role.youth)
    r = await service.http.get("/inbox", headers=youth)
    assert r.status_code == 200 and r.json()["unread"] == 4
    first = r.json()["messages"][0]["message_id"]
    assert (await service.http.post(f"/inbox/{first}/read", headers=youth)).json()["read"] is True
    assert (await service.http.get("/inbox/unread", headers=youth)).json() == {"unread": 3}
    other = service.auth("y2", Role.youth)
    assert (await service.http.post(f"/inbox/{first}/read", headers=other)).status_code == 404
    assert (await service.http.post("/inbox/read-all", headers=youth)).json() == {"marked": 3}

    await publish(js, c.OrgMoved(org_id="c", old_parent_id=None, new_parent_id="x", old_path="/c",
                                 new_path="/x/c", depth=2))
    await publish(js, c.YouthErased(youth_id="y1"), stream_id="youth-erase-y1")
    await wait_until(lambda: inbox(db, "y1"), until=lambda rows: rows == [], message="the erased youth's inbox")
    async with db.connection() as conn:
        await wait_until(lambda: conn.fetchval(f"SELECT org_path FROM {SCHEMA}.recipients WHERE subject_id = 'c1'"),
                         until=lambda p: p == "/x/c/b", message="paths rewritten")
        assert await conn.fetchval(f"SELECT count(*) FROM {SCHEMA}.recipients WHERE subject_id = 'y1'") == 0


async def _fanout_jobs(db: Database) -> int:
    async with db.connection() as conn:
        return int(await conn.fetchval(f"SELECT count(*) FROM {SCHEMA}.fanouts"))


async def test_a_login_code_is_answered_delivered_by_webhook_and_stored_masked(service: Service, nc: NATS) -> None:
    request = {"recipient_id": "y9", "template": "login_code", "params": {"code": "482913", "minutes": "5"},
               "address": "13812345678"}
    reply = json.loads((await nc.request(DIRECT_SUBJECT, json.dumps(request).encode(), timeout=10)).data)
    assert reply["error"] is None and reply["message_id"]
    [(_, body)] = service.hook.received
    sent = json.loads(body)
    assert (sent["address"], sent["kind"], sent["urgent"]) == ("13812345678", "login_code", True)
    assert "482913" in sent["body"]
    db = service.runtime.db
    async with db.connection() as conn:
        d = await conn.fetchrow(f"SELECT status, address_masked FROM {SCHEMA}.deliveries WHERE message_id = $1::uuid",
                                reply["message_id"])
        stored = await conn.fetchval(
            f"SELECT count(*) FROM {SCHEMA}.deliveries d WHERE d::text LIKE '%13812345678%'")
    assert d is not None and (d["status"], d["address_masked"]) == ("sent", "138****5678")
    assert stored == 0
    # The dev inbox shows it when running locally.
    dev = (await service.http.get("/dev/inbox")).json()["messages"]
    assert dev[0]["recipient_id"] == "y9" and "482913" in dev[0]["body"]
    bad = json.loads((await nc.request(DIRECT_SUBJECT, b'{"template": "login_code"}', timeout=10)).data)
    assert bad["message_id"] is None and "recipient_id" in bad["error"]
    unknown = json.loads((await nc.request(DIRECT_SUBJECT, json.dumps({**request, "template": "nope"}).encode(),
                                           timeout=10)).data)
    assert "unknown template" in unknown["error"]


async def test_preferences_are_validated_field_by_field(service: Service) -> None:
    me = service.auth("c1", Role.cadre, "/c/b")
    r = await service.http.put("/preferences", headers=me, json={"channels": ["email"], "email": "not-an-email"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "email"]
    r = await service.http.put("/preferences", headers=me, json={"channels": ["email"]})
    assert r.status_code == 422 and "needs an email address" in r.text
    r = await service.http.put("/preferences", headers=me, json={"channels": ["pigeon"]})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][:2] == ["body", "channels"]
    r = await service.http.put("/preferences", headers=me, json={"quiet_hours": {"start": "09:00", "end": "09:00"}})
    assert r.status_code == 422
    ok = {"channels": ["email", "webhook"], "email": "c1@example.cn", "digest": True,
          "quiet_hours": {"enabled": True, "start": "23:00:00", "end": "07:00:00"}, "lang": "en"}
    assert (await service.http.put("/preferences", headers=me, json=ok)).status_code == 200
    got = (await service.http.get("/preferences", headers=me)).json()
    assert (got["channels"], got["email"], got["digest"], got["quiet_hours"]["start"]) == (
        ["email", "webhook"], "c1@example.cn", True, "23:00:00")
    default = (await service.http.get("/preferences", headers=service.auth("new", Role.youth))).json()
    assert default["quiet_hours"] == {"enabled": True, "start": "22:00:00", "end": "08:00:00"}
    assert (await service.http.get("/preferences")).status_code == 401


async def test_delivery_status_is_for_admins_of_the_subtree(service: Service, nc: NATS) -> None:
    db = service.runtime.db
    async with db.connection() as conn:
        await conn.execute(f"INSERT INTO {SCHEMA}.recipients (subject_id, role, org_path, joined_at) "
                           "VALUES ('y5', 'youth', '/c/b', now())")
    req = {"recipient_id": "y5", "template": "login_code", "params": {"code": "1", "minutes": "5"},
           "address": "13900001111"}
    mid = json.loads((await nc.request(DIRECT_SUBJECT, json.dumps(req).encode(), timeout=10)).data)["message_id"]
    admin = service.auth("a1", Role.org_admin, "/c")
    r = await service.http.get("/deliveries", params={"org_path": "/c"}, headers=admin)
    assert r.status_code == 200
    assert [(d["recipient_id"], d["status"], d["address_masked"]) for d in r.json()["deliveries"]] == [
        ("y5", "sent", "139****1111")]
    assert (await service.http.get("/deliveries", params={"org_path": "/d"}, headers=admin)).status_code == 403
    cadre = service.auth("c1", Role.cadre, "/c/b")
    assert (await service.http.get("/deliveries", params={"org_path": "/c/b"}, headers=cadre)).status_code == 403
    assert (await service.http.get("/deliveries", headers=admin)).status_code == 422
    assert (await service.http.get(f"/messages/{mid}/deliveries", headers=admin)).status_code == 200
    outsider = service.auth("a2", Role.org_admin, "/d")
    assert (await service.http.get(f"/messages/{mid}/deliveries", headers=outsider)).status_code == 403
    mine = await service.http.get(f"/messages/{mid}/deliveries", headers=service.auth("y5", Role.youth))
    assert mine.json()["channels"][0]["channel"] == "webhook"
    missing = "00000000-0000-0000-0000-000000000000"
    assert (await service.http.get(f"/messages/{missing}/deliveries", headers=admin)).status_code == 404
    r = await service.http.get("/reminders", params={"org_path": "/c", "outcome": "maybe"}, headers=admin)
    assert r.status_code == 422


async def test_the_live_feed_yields_messages_as_they_arrive(service: Service, nc: NATS) -> None:
    db = service.runtime.db
    start = await inbox_feed.latest_seq(db, SCHEMA, "y7")
    feed = inbox_feed.watch(db, SCHEMA, "y7", start, poll=0.05)
    req = {"recipient_id": "y7", "template": "login_code", "params": {"code": "777", "minutes": "5"}}
    await nc.request(DIRECT_SUBJECT, json.dumps(req).encode(), timeout=10)
    got: Any = await feed.__anext__()
    assert got["kind"] == "login_code" and "777" in got["body"]
    await feed.aclose()


async def test_notify_starts_before_scoring_and_binds_once_scoring_declares_its_stream(
    database_url: str, nats_url: str, js: JetStreamContext
) -> None:
    for producer in ("contacts", "wishes"):
        await declare_stream(js, producer_stream(producer), storage="memory")

    def notify() -> FastAPI:
        app = create_app(make_spec(NotifySettings(run_workers=False, late_bind_poll_seconds=0.05)),
                         Settings(database_url=database_url, nats_url=nats_url, stream_storage="memory"))
        app.state.runtime.issuer = TokenIssuer(Ed25519PrivateKey.generate(), kid="test")
        return app

    app = notify()
    runtime: Runtime = app.state.runtime
    async with app.router.lifespan_context(app):
        late = app.state.notify_late_scoring
        assert (await runtime.readiness()) == {"postgres": "ok", "nats": "ok"}
        # Up and serving while SCORING does not exist; the late consumer keeps looking for it.
        await wait_until(lambda: late.polls, until=lambda n: n >= 5, message="the late consumer kept waiting")
        assert late.state == "waiting" and late.binds == 0
        r = await httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://n").get("/inbox")
        assert r.status_code == 401  # the API answers meanwhile
        await declare_stream(js, producer_stream("scoring"), storage="memory")
        await wait_until(lambda: late.state, until=lambda st: st == "bound", message="bound once the stream appeared")
        await publish(js, sc.CircularPublished(circular_id="late", number="1", org_id="c", org_path="/c",
                                               period_kind=sc.PeriodKind.month, period_start=date(2026, 5, 1),
                                               period_end=date(2026, 5, 31), title="t", positions={}))
        await wait_until(lambda: _fanout_jobs(runtime.db), until=lambda n: n == 1, message="circular consumed")
        durable = late.consumer.durable

    # A redeploy finds the durable with an old config (JetStream keeps it): the bind brings it up to date.
    stale = await js.consumer_info("SCORING", durable)
    stale.config.ack_wait, stale.config.filter_subject = 5.0, "scoring.events.nothing.>"
    await js.add_consumer("SCORING", stale.config)
    assert (await js.consumer_info("SCORING", durable)).config.filter_subject == "scoring.events.nothing.>"
    app = notify()
    async with app.router.lifespan_context(app):
        late = app.state.notify_late_scoring
        await wait_until(lambda: late.state, until=lambda st: st == "bound", message="bound again")
        fresh = (await js.consumer_info("SCORING", durable)).config
        assert (fresh.filter_subject, fresh.ack_wait) == (late.consumer.subject, 30.0) == ("scoring.events.>", 30.0)
        await publish(js, sc.CircularPublished(circular_id="after-redeploy", number="2", org_id="c", org_path="/c",
                                               period_kind=sc.PeriodKind.month, period_start=date(2026, 6, 1),
                                               period_end=date(2026, 6, 30), title="t2", positions={}))
        await wait_until(lambda: _fanout_jobs(app.state.runtime.db), until=lambda n: n == 2,
                         message="consumed with the updated durable")


async def _next_event(lines: AsyncIterator[str]) -> dict[str, Any]:
    """The next SSE event off the wire: its ``id:`` and ``data:`` lines up to the blank line."""
    event: dict[str, Any] = {}
    async for line in lines:
        if line.startswith("id:"):
            event["id"] = line[3:].strip()
        elif line.startswith("data:"):
            event["data"] = json.loads(line[5:].strip())
        elif line == "" and "data" in event:
            return event
    raise AssertionError(f"stream ended before an event (got {event})")


async def test_the_live_stream_over_real_http_delivers_as_messages_arrive_and_closes_with_the_client(
    service: Service, nc: NATS
) -> None:
    feeds = service.app.state.notify_live_feeds
    youth = service.auth("y8", Role.youth)
    async with served(service.app) as base, httpx.AsyncClient(base_url=base, timeout=30) as client:
        assert (await client.get("/inbox/stream")).status_code == 401
        bad = await client.get("/inbox/stream", headers={"Authorization": "Bearer not-a-token"})
        assert bad.status_code == 401
        system = await client.get("/inbox/stream", headers=service.auth("svc", Role.system))
        assert system.status_code == 403 and "no inbox" in system.json()["detail"]
        garbled = await client.get("/inbox/stream", headers={**youth, "Last-Event-ID": "yesterday"})
        assert garbled.status_code == 400 and "Last-Event-ID" in garbled.json()["detail"]

        async with client.stream("GET", "/inbox/stream", headers=youth) as r:
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
            await wait_until(lambda: feeds.open, until=lambda n: n == 1, message="the stream is open")
            lines = r.aiter_lines()
            for code in ("111", "222"):  # each arrives while the stream is open, not before it
                req = {"recipient_id": "y8", "template": "login_code", "params": {"code": code, "minutes": "5"}}
                await nc.request(DIRECT_SUBJECT, json.dumps(req).encode(), timeout=10)
                got = await asyncio.wait_for(_next_event(lines), timeout=30)  # a guard against a hang only
                assert got["data"]["kind"] == "login_code" and code in got["data"]["body"]
        # The client went away: the server notices and ends the stream.
        await wait_until(lambda: feeds.open, until=lambda n: n == 0, message="the stream closed after the client left")
        first_id = int(got["id"]) - 1

        # A reconnecting client (EventSource sends Last-Event-ID) gets what it missed, then live ones.
        async with client.stream("GET", "/inbox/stream", headers={**youth, "Last-Event-ID": str(first_id)}) as r:
            missed = await asyncio.wait_for(_next_event(r.aiter_lines()), timeout=30)
            assert missed["id"] == got["id"] and "222" in missed["data"]["body"]
        await wait_until(lambda: feeds.open, until=lambda n: n == 0, message="the second stream closed")
        # Someone else's stream never sees y8's messages (y8's come first by seq, were they leaked).
        other = service.auth("y9", Role.youth)
        async with client.stream("GET", "/inbox/stream", headers={**other, "Last-Event-ID": "0"}) as r:
            await wait_until(lambda: feeds.open, until=lambda n: n == 1, message="the other stream is open")
            req = {"recipient_id": "y9", "template": "login_code", "params": {"code": "999", "minutes": "5"}}
            await nc.request(DIRECT_SUBJECT, json.dumps(req).encode(), timeout=10)
            mine = await asyncio.wait_for(_next_event(r.aiter_lines()), timeout=30)
            assert "999" in mine["data"]["body"]
        await wait_until(lambda: feeds.open, until=lambda n: n == 0, message="the third stream closed")


async def test_last_event_id_must_be_a_seq_the_stream_could_have_sent(service: Service, nc: NATS) -> None:
    feeds = service.app.state.notify_live_feeds
    youth = service.auth("y17", Role.youth)
    async with served(service.app) as base, httpx.AsyncClient(base_url=base, timeout=30) as client:
        # 5,000 digits broke int() (a 500); 2^64 passed, answered 200 and died in the first poll;
        # "²" (sent as Latin-1, as a header may be) is a digit to str.isdigit, not to int().
        bads = ("9" * 5000, "99999999999999999999", str(inbox_feed.SEQ_MAX + 1), "-1", "+1", "1.0", "²")
        for bad in bads:
            headers = {**youth, "Last-Event-ID": bad.encode("latin-1")}
            r = await client.get("/inbox/stream", headers=headers)  # type: ignore[arg-type]
            assert r.status_code == 400 and "Last-Event-ID" in r.json()["detail"], (bad[:30], r.status_code)
            assert len(r.text) < 1000  # the reason, not the header echoed back
        # The largest seq there can be is an id like any other: nothing after it yet, the stream stays open.
        highest = {**youth, "Last-Event-ID": str(inbox_feed.SEQ_MAX)}
        async with client.stream("GET", "/inbox/stream", headers=highest) as r:
            assert r.status_code == 200
            await wait_until(lambda: feeds.open, until=lambda n: n == 1, message="the stream is open")
        await wait_until(lambda: feeds.open, until=lambda n: n == 0, message="the stream closed")
        # Leading zeros are still the number (a client may pad); the stream replays from there.
        req = {"recipient_id": "y17", "template": "login_code", "params": {"code": "777", "minutes": "5"}}
        await nc.request(DIRECT_SUBJECT, json.dumps(req).encode(), timeout=10)
        async with client.stream("GET", "/inbox/stream", headers={**youth, "Last-Event-ID": "000"}) as r:
            got = await asyncio.wait_for(_next_event(r.aiter_lines()), timeout=30)
            assert "777" in got["data"]["body"]
        await wait_until(lambda: feeds.open, until=lambda n: n == 0, message="the last stream closed")


async def test_the_read_model_rebuilt_from_the_streams_equals_the_consumers_and_sends_nothing_again(
    service: Service, js: JetStreamContext, database_url: str
) -> None:
    """``tuanlian notify rebuild``: recipients, orgs, rules, links, contacts, activities, wishes,
    posts and ballots replayed from CONTACTS and WISHES and swapped in under the running service;
    the inbox and deliveries are as they were (nothing sent twice), a damaged table is mended."""
    from tuanlian.notify.adapters.rebuild import READ_MODEL, read_model_rebuild
    from tuanlian.shared.db import connect_raw

    db = service.runtime.db
    t = datetime(2026, 6, 1, 2, tzinfo=UTC)
    envs = [
        await publish(js, c.OrgCreated(org_id="b", parent_id="c", name="一支部", org_type=c.OrgType.branch, depth=1,
                                       is_leadership_organ=False, org_path="/c/b")),
        await publish(js, c.OrgRulesSet(org_id="b", org_path="/c/b", effective_from=date(2026, 1, 1),
                                        rules=c.OrgRules())),
        await publish(js, c.CadreRegistered(cadre_id="rc", org_id="b", org_path="/c/b", kind=c.CadreKind.part_time,
                                            in_leadership_organ=False)),
    ]
    for y in ("ry1", "ry2"):
        envs.append(await publish(js, c.YouthRegistered(youth_id=y, org_id="b", org_path="/c/b")))
    async with db.connection() as conn:  # the youths are known before the ballot asks them
        await wait_until(lambda: conn.fetchval(f"SELECT count(*) FROM {SCHEMA}.recipients WHERE subject_id LIKE 'r%'"),
                         until=lambda n: n == 3, message="cadre and youths known")
    envs += [
        await publish(js, c.ContactLinkInvited(link_id="rl1", cadre_id="rc", youth_id="ry1", org_path="/c/b",
                                               initiated_by="cadre")),
        await publish(js, c.ActivityRecorded(activity_id="ra1", kind=c.ActivityKind.league_lecture, organiser_cadre_id="rc",
                                             organiser_org_id="b", org_path="/c/b", collective=False,
                                             occurred_on=date(2026, 5, 20))),
        await publish(js, w.WishRaised(wish_id="rw1", youth_id="ry1", cadre_id="rc", org_path="/c/b",
                                       category=w.WishCategory.study)),
        await publish(js, w.VoicePosted(post_id="rp1", youth_id="ry2", cadre_id="rc", org_id="b", org_path="/c/b",
                                        kind=w.VoiceKind.suggestion, due_at=t + timedelta(days=3))),
        await publish(js, w.BallotOpened(ballot_id="rb1", branch_org_id="b", org_path="/c/b", secretary_cadre_id="rc",
                                         year=2026, eligible=2, closes_at=t + timedelta(days=7))),
    ]

    async def settled() -> bool:
        async with db.connection() as conn:
            got = {r[0] for r in await conn.fetch(f"SELECT stream_id FROM {SCHEMA}.consumer_positions")}
        return {e.stream_id for e in envs} <= got

    # The branch moves at once: the two streams' consumers race, and whichever order they apply
    # the move and the wishes events in, the paths end as a replay in arrival order makes them.
    envs.append(await publish(js, c.OrgMoved(org_id="b", old_parent_id="c", new_parent_id="d", old_path="/c/b",
                                             new_path="/d/b", depth=1)))
    await wait_until(settled, message="the live consumers reach every event")

    async def model() -> dict[str, list[tuple[Any, ...]]]:
        async with db.connection() as conn:
            return {t: sorted((tuple(r) for r in await conn.fetch(f"SELECT * FROM {SCHEMA}.{t}")), key=repr)
                    for t in READ_MODEL}

    async def sent() -> tuple[int, int]:
        async with db.connection() as conn:
            return (await conn.fetchval(f"SELECT count(*) FROM {SCHEMA}.inbox"),
                    await conn.fetchval(f"SELECT count(*) FROM {SCHEMA}.deliveries"))

    live, messages = await model(), await sent()
    assert messages[0] >= 3  # the link invitation and the two ballot invitations
    assert {r[0] for r in live["ballots"]} >= {"rb1"} and any(r[3] == "/d/b" for r in live["wishes"])
    async with db.connection() as conn:
        await conn.execute(f"DELETE FROM {SCHEMA}.recipients WHERE subject_id = 'ry2'")
    conn = await connect_raw(database_url)
    try:
        result = await read_model_rebuild(conn, js, batch=4).run()
    finally:
        await conn.close()
    assert await model() == live and await sent() == messages
    assert result.left_to_live == 0 and result.rows["recipients"] == len(live["recipients"])
    # The service goes on, on the rebuilt tables.
    youth = await publish(js, c.YouthRegistered(youth_id="ry3", org_id="b", org_path="/d/b"))
    envs.append(youth)
    await wait_until(settled, message="the new youth reaches notify")
    assert len((await model())["recipients"]) == len(live["recipients"]) + 1
