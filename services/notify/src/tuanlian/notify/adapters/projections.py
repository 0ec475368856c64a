"""Notify's reactions to contacts events: messages into inboxes."""

from __future__ import annotations

from uuid import NAMESPACE_URL, uuid5

from tuanlian.notify.domain.templates import LINK_INVITATION
from tuanlian.shared.consumer import Handler, ProjectionTx
from tuanlian.shared.contracts.contacts import ContactLinkInvited
from tuanlian.shared.events import DomainEvent, Envelope


def contacts_handlers(s: str) -> dict[str, Handler]:
    insert = (
        f"INSERT INTO {s}.inbox (message_id, recipient_id, kind, title, body, ref, source_event_id, "
        "created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
        "ON CONFLICT (source_event_id, recipient_id, kind) DO NOTHING"
    )

    async def link_invited(tx: ProjectionTx, env: Envelope, e: DomainEvent) -> None:
        assert isinstance(e, ContactLinkInvited)
        if e.initiated_by != "cadre":
            return
        title, body = LINK_INVITATION.render()
        message_id = uuid5(NAMESPACE_URL, f"{env.event_id}/{e.youth_id}/{LINK_INVITATION.kind}")
        tx.execute(
            insert,
            message_id,
            e.youth_id,
            LINK_INVITATION.kind,
            title,
            body,
            e.link_id,
            env.event_id,
            env.occurred_at,
        )

    return {"ContactLinkInvited": link_invited}
