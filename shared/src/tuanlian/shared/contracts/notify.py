"""What other services may ask of notify directly, outside the event streams.

A one-time login code must reach the youth within seconds and must not sit in an immutable,
replayable stream, so contacts asks notify over a NATS core request (not JetStream) and waits for
the reply. Anything that is a fact worth keeping travels as an event instead.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

DIRECT_SUBJECT = "notify.direct"


class DirectMessage(BaseModel):
    """Request body on :data:`DIRECT_SUBJECT`.

    ``address`` is the channel address for this one delivery (e.g. the phone number for the SMS
    gateway webhook); notify uses it once and stores only a masked form.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    recipient_id: str
    template: str  # e.g. "login_code"
    params: dict[str, str] = {}
    urgent: bool = True  # ignores quiet hours and digests
    address: str | None = None


class DirectReply(BaseModel):
    model_config = ConfigDict(frozen=True)
    message_id: str | None = None
    error: str | None = None
