"""The direct request (``notify.direct``): a one-time login code, delivered now, kept masked.

Contacts asks over a NATS core request and waits for the reply. The message goes into the
youth's inbox (urgent: no quiet hours, no digest) and, when a webhook is configured (the SMS
gateway stand-in), straight out through it with the address given for this one delivery. Only a
masked address is stored; there is no retry — the youth asks for a new code instead.
"""

from __future__ import annotations

import json
from typing import Any
from uuid import uuid4

import structlog
from faststream.nats import NatsBroker
from pydantic import ValidationError
from tuanlian.notify.adapters.channels import DeliveryFailed, Outgoing, WebhookChannel
from tuanlian.notify.adapters.messages import NewMessage, insert_sql
from tuanlian.notify.domain.delivery import mask_address
from tuanlian.notify.domain.templates import TEMPLATES
from tuanlian.shared.contracts.notify import DIRECT_SUBJECT, DirectMessage, DirectReply
from tuanlian.shared.db import Database
from tuanlian.shared.events import utcnow

log = structlog.get_logger("tuanlian.notify.direct")


class DirectDelivery:
    def __init__(self, db: Database, schema: str, webhook: WebhookChannel | None) -> None:
        self.db, self.s, self.webhook = db, schema, webhook

    async def handle(self, raw: Any) -> DirectReply:
        try:
            data = json.loads(raw) if isinstance(raw, bytes | str) else raw
            req = DirectMessage.model_validate(data)
        except (ValueError, ValidationError) as exc:
            return DirectReply(error=f"invalid request: {exc}")
        tmpl = TEMPLATES.get(req.template)
        if tmpl is None:
            return DirectReply(error=f"unknown template {req.template!r}")
        text = tmpl.render_both(**req.params)
        now = utcnow()
        mid = uuid4()
        m = NewMessage(mid, req.recipient_id, req.template, text.title, text.body, None, mid, now, urgent=req.urgent,
                       title_en=text.title_en, body_en=text.body_en)
        async with self.db.transaction() as conn:
            await conn.execute(insert_sql(self.s), *m.args())
            stored = await conn.fetchrow(f"SELECT title, body FROM {self.s}.inbox WHERE message_id = $1", mid)
        title, body = (stored["title"], stored["body"]) if stored else (text.title, text.body)
        if self.webhook is not None and req.address:
            status, error = "sent", None
            try:
                await self.webhook.send(Outgoing(str(mid), req.recipient_id, req.template, title, body,
                                                 req.urgent, req.address))
            except DeliveryFailed as exc:
                status, error = "dead", f"{exc} (one-time delivery: not retried)"
            async with self.db.connection() as conn:
                await conn.execute(
                    f"INSERT INTO {self.s}.deliveries (message_id, channel, recipient_id, status, attempts, "
                    "next_attempt_at, last_error, address_masked, sent_at, updated_at) "
                    "VALUES ($1, 'webhook', $2, $3, 1, $4, $5, $6, $7, $4)",
                    mid, req.recipient_id, status, now, error, mask_address(req.address),
                    now if status == "sent" else None)
            log.info("direct message", template=req.template, address=mask_address(req.address), status=status)
            if error:
                return DirectReply(message_id=str(mid), error=error)
        return DirectReply(message_id=str(mid))


def register_direct(broker: NatsBroker, direct: DirectDelivery) -> None:
    @broker.subscriber(DIRECT_SUBJECT, queue="notify-direct", title="notify.direct:answer",
                       description="DirectMessage → DirectReply (one-time login codes)")
    async def answer(body: Any) -> dict[str, Any]:
        reply = await direct.handle(body)
        return reply.model_dump()
