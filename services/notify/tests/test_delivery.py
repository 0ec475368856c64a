"""Delivery through a real webhook receiver and a real SMTP server, with the clock in hand."""

from __future__ import annotations

import hmac
import json
from datetime import datetime, timedelta
from email import message_from_bytes
from email.header import decode_header, make_header
from uuid import uuid4

from support import SCHEMA, SmtpInbox, WebhookReceiver, apply, deliveries, set_preferences
from tuanlian.notify.adapters.channels import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Outgoing,
    WebhookChannel,
    channels_from,
    sign,
)
from tuanlian.notify.adapters.messages import NewMessage, deliveries_sql, insert_sql
from tuanlian.notify.application.delivery import DeliveryWorker
from tuanlian.notify.settings import NotifySettings
from tuanlian.shared.contracts import contacts as c
from tuanlian.shared.db import Database
from tuanlian.shared.league_calendar import SHANGHAI

SECRET = "test-secret"


def bj(y: int, m: int, d: int, h: int = 0, mi: int = 0, s: int = 0) -> datetime:
    return datetime(y, m, d, h, mi, s, tzinfo=SHANGHAI)


def invitation(youth: str, n: int = 1) -> c.ContactLinkInvited:
    return c.ContactLinkInvited(link_id=f"l-{youth}-{n}", cadre_id="c1", youth_id=youth, org_path="/c/b",
                                initiated_by="cadre")


def worker(db: Database, receiver_url: str | None = None, smtp_port: int | None = None,
           **overrides: object) -> DeliveryWorker:
    options: dict[str, object] = {"retry_base_seconds": 60, "max_attempts": 4, **overrides}
    ns = NotifySettings(webhook_url=receiver_url, webhook_secret=SECRET, smtp_host="127.0.0.1" if smtp_port else None,
                        smtp_port=smtp_port or 25, **options)  # type: ignore[arg-type]
    return DeliveryWorker(db, SCHEMA, channels_from(ns), ns)


async def test_webhook_is_hmac_signed_json_and_a_failing_receiver_is_retried_until_it_recovers(
    ndb: Database,
) -> None:
    await set_preferences(ndb, "y1", ["webhook"])
    t = bj(2026, 5, 4, 10)
    await apply(ndb, (invitation("y1"), t), channels=("webhook",))
    async with WebhookReceiver() as hook:
        w = worker(ndb, hook.url)
        hook.failures_left = 2
        assert (await w.run_once(t)).failed == 1
        assert (await w.run_once(t + timedelta(seconds=59))).failed == 0  # not due before the backoff
        assert (await w.run_once(t + timedelta(seconds=60))).failed == 1
        [d] = await deliveries(ndb)
        assert (d["status"], d["attempts"]) == ("pending", 2)
        assert "HTTP 503" in d["last_error"] and d["next_attempt_at"] == t + timedelta(seconds=60 + 120)
        assert (await w.run_once(t + timedelta(seconds=180))).sent == 1
        [(headers, body)] = hook.received
    payload = json.loads(body)
    assert (payload["recipient_id"], payload["kind"]) == ("y1", "link_invitation")
    expected = sign(SECRET, headers[TIMESTAMP_HEADER.lower()], body)
    assert hmac.compare_digest(headers[SIGNATURE_HEADER.lower()], expected)
    [d] = await deliveries(ndb)
    assert (d["status"], d["attempts"], d["sent_at"]) == ("sent", 3, t + timedelta(seconds=180))


async def test_a_receiver_that_never_recovers_ends_in_the_dead_letter_list_with_the_reason(ndb: Database) -> None:
    await set_preferences(ndb, "y1", ["webhook"])
    t = bj(2026, 5, 4, 10)
    await apply(ndb, (invitation("y1"), t), channels=("webhook",))
    async with WebhookReceiver() as hook:
        hook.failures_left = 100
        w = worker(ndb, hook.url)
        for minutes in (0, 1, 3, 7):
            await w.run_once(t + timedelta(minutes=minutes))
        assert (await w.run_once(t + timedelta(days=1))).sent == 0
    [d] = await deliveries(ndb)
    assert (d["status"], d["attempts"]) == ("dead", 4)
    assert "503" in d["last_error"]


async def test_quiet_hours_hold_a_message_until_eight_but_not_an_urgent_one(ndb: Database) -> None:
    await set_preferences(ndb, "y1", ["webhook"])
    night = bj(2026, 5, 4, 23, 30)
    await apply(ndb, (invitation("y1"), night), channels=("webhook",))
    urgent = NewMessage(uuid4(), "y1", "login_code", "登录验证码", "123456", None, uuid4(), night, urgent=True)
    async with ndb.transaction() as conn:
        await conn.execute(insert_sql(SCHEMA), *urgent.args())
        await conn.execute(deliveries_sql(SCHEMA), urgent.message_id, "y1", night, ["webhook"])
    async with WebhookReceiver() as hook:
        w = worker(ndb, hook.url)
        report = await w.run_once(night)
        assert (report.sent, report.held) == (1, 1)
        assert [json.loads(b)["kind"] for _, b in hook.received] == ["login_code"]
        held = [d for d in await deliveries(ndb) if d["status"] == "pending"]
        assert held[0]["next_attempt_at"] == bj(2026, 5, 5, 8) and held[0]["held_reason"] == "quiet hours"
        assert (await w.run_once(bj(2026, 5, 5, 7, 59))).sent == 0
        assert (await w.run_once(bj(2026, 5, 5, 8))).sent == 1
        assert [json.loads(b)["kind"] for _, b in hook.received] == ["login_code", "link_invitation"]


async def test_email_goes_through_a_real_smtp_server(ndb: Database) -> None:
    await set_preferences(ndb, "y1", ["email"], email="youth@example.cn")
    await set_preferences(ndb, "y2", ["email"])  # asked for email, gave no address
    t = bj(2026, 5, 4, 10)
    await apply(ndb, (invitation("y1"), t), (invitation("y2"), t), channels=("email",))
    with SmtpInbox() as smtp:
        w = worker(ndb, smtp_port=smtp.port, max_attempts=1)
        report = await w.run_once(t)
        assert (report.sent, report.dead) == (1, 1)
        [env] = smtp.messages
    assert env.rcpt_tos == ["youth@example.cn"]
    mail = message_from_bytes(env.original_content)
    assert str(make_header(decode_header(mail["Subject"]))) == "团干部邀请你建立联系"
    dead = [d for d in await deliveries(ndb) if d["status"] == "dead"]
    assert dead[0]["recipient_id"] == "y2" and "no email address" in dead[0]["last_error"]


async def test_a_title_with_a_line_break_is_mailed_on_one_line_and_holds_up_nothing(ndb: Database) -> None:
    # A circular's title carries its org's name, which an admin typed: a line break in a mail
    # header is refused by the email library, and that delivery failed every round, first in its
    # claim, so the mails behind it were never sent.
    await set_preferences(ndb, "a1", ["email"], email="admin@example.cn")
    t = bj(2026, 5, 4, 10)
    async with ndb.transaction() as conn:
        for i, title in enumerate(["通报：城关\n街道团工委 2026-Q1 通报", "通报：城关团委 2026-Q1 通报"]):
            m = NewMessage(uuid4(), "a1", "circular", title, "已发布", None, uuid4(), t + timedelta(seconds=i))
            await conn.execute(insert_sql(SCHEMA), *m.args())
            await conn.execute(deliveries_sql(SCHEMA), m.message_id, "a1", t + timedelta(seconds=i), ["email"])
    with SmtpInbox() as smtp:
        report = await worker(ndb, smtp_port=smtp.port).run_once(t + timedelta(minutes=1))
        assert (report.sent, report.failed, report.dead) == (2, 0, 0)
        subjects = [str(make_header(decode_header(message_from_bytes(e.original_content)["Subject"])))
                    for e in smtp.messages]
    assert subjects == ["通报：城关 街道团工委 2026-Q1 通报", "通报：城关团委 2026-Q1 通报"]


async def test_a_channel_failing_unexpectedly_fails_that_delivery_only(ndb: Database) -> None:
    class Flaky(WebhookChannel):
        """The real webhook channel with a bug for one recipient."""

        async def send(self, out: Outgoing) -> None:
            if out.recipient_id == "y1":
                raise KeyError("template field")
            await super().send(out)

    await set_preferences(ndb, "y1", ["webhook"])
    await set_preferences(ndb, "y2", ["webhook"])
    t = bj(2026, 5, 4, 10)
    await apply(ndb, (invitation("y1"), t), (invitation("y2"), t + timedelta(seconds=1)), channels=("webhook",))
    async with WebhookReceiver() as hook:
        ns = NotifySettings(webhook_url=hook.url, webhook_secret=SECRET, retry_base_seconds=60, max_attempts=4)
        report = await DeliveryWorker(ndb, SCHEMA, {"webhook": Flaky(hook.url, SECRET)}, ns).run_once(
            t + timedelta(minutes=1))
        assert (report.sent, report.failed) == (1, 1)
        assert [json.loads(b)["recipient_id"] for _, b in hook.received] == ["y2"]
    failed = {d["recipient_id"]: d for d in await deliveries(ndb)}["y1"]
    assert (failed["status"], failed["attempts"]) == ("pending", 1) and "KeyError" in failed["last_error"]


async def test_digest_users_get_one_message_a_day_after_quiet_hours(ndb: Database) -> None:
    await set_preferences(ndb, "y1", ["webhook"], digest=True)
    await apply(ndb, (invitation("y1", 1), bj(2026, 5, 4, 10)), (invitation("y1", 2), bj(2026, 5, 4, 15)),
                channels=("webhook",))
    async with WebhookReceiver() as hook:
        w = worker(ndb, hook.url)
        assert (await w.run_once(bj(2026, 5, 4, 15, 5))).digested == 2
        assert hook.received == []
        await w.run_once(bj(2026, 5, 5, 8, 0, 1))
        await w.run_once(bj(2026, 5, 5, 8, 0, 2))
        await w.run_once(bj(2026, 5, 5, 9))
        [(_, body)] = hook.received
    digest = json.loads(body)
    assert digest["kind"] == "digest" and "2" in digest["title"]
    assert digest["body"].count("团干部邀请你建立联系") == 2
    statuses = sorted(d["status"] for d in await deliveries(ndb))
    assert statuses == ["digested", "digested", "sent"]


async def test_rate_limit_per_channel(ndb: Database) -> None:
    t = bj(2026, 5, 4, 10)
    for i in range(5):
        await set_preferences(ndb, f"y{i}", ["webhook"])
        await apply(ndb, (invitation(f"y{i}"), t), channels=("webhook",))
    async with WebhookReceiver() as hook:
        w = worker(ndb, hook.url, webhook_rate=1.0, webhook_burst=2.0)
        assert (await w.run_once(t)).sent == 2
        assert (await w.run_once(t)).sent == 0
        assert (await w.run_once(t + timedelta(seconds=1))).sent == 1
        assert (await w.run_once(t + timedelta(seconds=10))).sent == 2
        assert len(hook.received) == 5


async def test_the_rate_limit_is_shared_by_every_replica(ndb: Database) -> None:
    t = bj(2026, 5, 4, 10)
    for i in range(6):
        await set_preferences(ndb, f"y{i}", ["webhook"])
        await apply(ndb, (invitation(f"y{i}"), t), channels=("webhook",))
    async with WebhookReceiver() as hook:
        a, b = (worker(ndb, hook.url, webhook_rate=1.0, webhook_burst=2.0) for _ in range(2))
        assert (await a.run_once(t)).sent + (await b.run_once(t)).sent == 2  # not 2 each
        assert (await b.run_once(t + timedelta(seconds=1))).sent == 1
        assert (await a.run_once(t + timedelta(seconds=1))).sent == 0
        assert (await a.run_once(t + timedelta(seconds=60))).sent == 2  # the burst, no more
        assert len(hook.received) == 5
