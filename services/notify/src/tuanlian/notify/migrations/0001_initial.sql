-- include: platform

-- 站内信: one row per message and recipient; the source event id makes fan-out idempotent.
CREATE TABLE {schema}.inbox (
    message_id uuid PRIMARY KEY,
    recipient_id text NOT NULL,
    kind text NOT NULL,
    title text NOT NULL,
    body text NOT NULL,
    ref text,
    source_event_id uuid NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    read_at timestamptz,
    UNIQUE (source_event_id, recipient_id, kind)
);
CREATE INDEX inbox_recipient ON {schema}.inbox (recipient_id, created_at DESC);
