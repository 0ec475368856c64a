"""Writing messages: one inbox row per recipient, plus a delivery per external channel they chose."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5


def message_id_for(source: str, recipient_id: str, kind: str) -> UUID:
    """Deterministic, so a replayed event or a retried tick names the same message."""
    return uuid5(NAMESPACE_URL, f"{source}/{recipient_id}/{kind}")


@dataclass(frozen=True)
class NewMessage:
    message_id: UUID
    recipient_id: str
    kind: str
    title: str
    body: str
    ref: str | None
    source_id: UUID
    created_at: datetime
    urgent: bool = False
    org_path: str | None = None  # where the cause happened, when the recipient is not known yet
    title_en: str | None = None  # the English fallback, for recipients who chose English
    body_en: str | None = None

    def args(self) -> tuple[Any, ...]:
        return (self.message_id, self.recipient_id, self.kind, self.title, self.body, self.ref,
                self.source_id, self.created_at, self.urgent, self.org_path, self.title_en, self.body_en)


def insert_sql(s: str) -> str:
    """$1..$12 as :meth:`NewMessage.args`; the recipient's org path is copied for admins' views, and
    the English text is taken when the recipient chose English (Chinese otherwise, 中文优先)."""
    return (
        f"INSERT INTO {s}.inbox (message_id, recipient_id, kind, title, body, ref, source_event_id, "
        "created_at, urgent, org_path) SELECT $1, $2, $3, "
        "CASE WHEN pl.en THEN coalesce($11::text, $4::text) ELSE $4::text END, "
        "CASE WHEN pl.en THEN coalesce($12::text, $5::text) ELSE $5::text END, $6, $7, $8, $9, "
        f"coalesce((SELECT org_path FROM {s}.recipients WHERE subject_id = $2), $10) "
        f"FROM (SELECT coalesce((SELECT lang = 'en' FROM {s}.preferences WHERE recipient_id = $2), false) AS en) pl "
        "ON CONFLICT (source_event_id, recipient_id, kind) DO NOTHING"
    )


def localised(zh: str, en: str, lang_column: str = "p.lang") -> str:
    """SQL choosing the English text for a recipient whose preference (``lang_column``) is English."""
    return f"CASE WHEN {lang_column} = 'en' THEN coalesce({en}, {zh}) ELSE {zh} END"


def deliveries_sql(s: str) -> str:
    """$1 message id, $2 recipient, $3 first attempt time, $4 channels this deployment runs."""
    return (
        f"INSERT INTO {s}.deliveries (message_id, channel, recipient_id, next_attempt_at, updated_at) "
        f"SELECT $1, ch, p.recipient_id, $3, $3 FROM {s}.preferences p, unnest(p.channels) ch "
        "WHERE p.recipient_id = $2 AND ch = ANY($4::text[]) ON CONFLICT DO NOTHING"
    )


def deliveries_for_source_sql(s: str) -> str:
    """Deliveries for every inbox row of one source ($1) and kind ($2); $3 time, $4 channels."""
    return (
        f"INSERT INTO {s}.deliveries (message_id, channel, recipient_id, next_attempt_at, updated_at) "
        f"SELECT i.message_id, ch, i.recipient_id, $3, $3 FROM {s}.inbox i "
        f"JOIN {s}.preferences p ON p.recipient_id = i.recipient_id, unnest(p.channels) ch "
        "WHERE i.source_event_id = $1 AND i.kind = $2 AND ch = ANY($4::text[]) ON CONFLICT DO NOTHING"
    )


def prefix_like(org_path: str) -> str:
    """LIKE pattern for everything strictly below ``org_path`` (ids are escaped, not wildcards)."""
    escaped = org_path.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "/%"
