"""Delivery channels (推送渠道): an HMAC-signed webhook and email over SMTP."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any, Protocol

import aiosmtplib
import httpx
from tuanlian.notify.settings import NotifySettings

SIGNATURE_HEADER = "X-Tuanlian-Signature"
TIMESTAMP_HEADER = "X-Tuanlian-Timestamp"
DELIVERY_HEADER = "X-Tuanlian-Delivery"


class DeliveryFailed(Exception):
    """The channel refused or could not be reached; the reason is kept on the delivery."""


@dataclass(frozen=True)
class Outgoing:
    message_id: str
    recipient_id: str
    kind: str
    title: str
    body: str
    urgent: bool
    address: str | None = None  # email address, or the phone number of a one-time delivery


class Channel(Protocol):
    name: str

    async def send(self, out: Outgoing) -> None: ...


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>`` over ``timestamp.body``: the receiver rejects replays and forgeries."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


class WebhookChannel:
    name = "webhook"

    def __init__(self, url: str, secret: str, timeout: float = 5.0) -> None:
        self.url, self.secret, self.timeout = url, secret, timeout
        self._client: httpx.AsyncClient | None = None

    async def send(self, out: Outgoing) -> None:
        payload: dict[str, Any] = {
            "message_id": out.message_id,
            "recipient_id": out.recipient_id,
            "kind": out.kind,
            "title": out.title,
            "body": out.body,
            "urgent": out.urgent,
        }
        if out.address:
            payload["address"] = out.address
        body = json.dumps(payload, ensure_ascii=False, sort_keys=True).encode()
        ts = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(self.secret, ts, body),
            TIMESTAMP_HEADER: ts,
            DELIVERY_HEADER: out.message_id,  # lets the gateway drop a retried duplicate
        }
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout)
        try:
            r = await self._client.post(self.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise DeliveryFailed(f"{type(exc).__name__}: {exc}") from exc
        if r.status_code >= 300:
            raise DeliveryFailed(f"HTTP {r.status_code} from the webhook: {r.text[:200]}")

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()


class EmailChannel:
    name = "email"

    def __init__(self, host: str, port: int, sender: str, timeout: float = 10.0) -> None:
        self.host, self.port, self.sender, self.timeout = host, port, sender, timeout

    async def send(self, out: Outgoing) -> None:
        if not out.address:
            raise DeliveryFailed("no email address in the recipient's preferences")
        msg = EmailMessage()
        msg["From"] = self.sender
        msg["To"] = out.address
        msg["Subject"] = " ".join(out.title.split())  # a line break in a header is refused (an org's name may hold one)
        msg["Message-ID"] = f"<{out.message_id}@tuanlian>"
        msg.set_content(out.body)
        try:
            await aiosmtplib.send(msg, hostname=self.host, port=self.port, timeout=self.timeout)
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise DeliveryFailed(f"{type(exc).__name__}: {exc}") from exc

    async def close(self) -> None:
        return None


def channels_from(settings: NotifySettings) -> dict[str, WebhookChannel | EmailChannel]:
    out: dict[str, WebhookChannel | EmailChannel] = {}
    if settings.webhook_url:
        out["webhook"] = WebhookChannel(settings.webhook_url, settings.webhook_secret, settings.webhook_timeout)
    if settings.smtp_host:
        out["email"] = EmailChannel(settings.smtp_host, settings.smtp_port, settings.smtp_sender,
                                    settings.smtp_timeout)
    return out
