-- Who is who (收件人), derived from contacts events: cadres, org admins and youths with their org.
CREATE TABLE {schema}.recipients (
    subject_id text PRIMARY KEY,
    role text NOT NULL,                      -- cadre | org_admin | youth | leader | partner
    org_path text,
    cadre_kind text,                         -- full_time | seconded | part_time
    in_leadership_organ boolean NOT NULL DEFAULT false,
    joined_at timestamptz NOT NULL,
    has_account boolean NOT NULL DEFAULT false,
    active boolean NOT NULL DEFAULT true
);
CREATE INDEX recipients_path ON {schema}.recipients (org_path text_pattern_ops, subject_id);

-- 实施细则: an org's rules from a date on; the nearest ancestor's apply where an org has none.
CREATE TABLE {schema}.org_rules (
    org_path text NOT NULL,
    effective_from date NOT NULL,
    rules jsonb NOT NULL,
    PRIMARY KEY (org_path, effective_from)
);

-- Facts the reminder rules read, kept as small as the rules need.
CREATE TABLE {schema}.links (
    link_id text PRIMARY KEY,
    cadre_id text NOT NULL,
    youth_id text NOT NULL,
    accepted boolean NOT NULL DEFAULT false
);
CREATE INDEX links_cadre ON {schema}.links (cadre_id) WHERE accepted;
CREATE TABLE {schema}.online_contact (
    cadre_id text PRIMARY KEY,
    last_online_at timestamptz NOT NULL
);
CREATE TABLE {schema}.activities (
    activity_id text PRIMARY KEY,
    cadre_id text,
    org_path text NOT NULL,
    five_ones boolean NOT NULL,
    occurred_on date NOT NULL
);
CREATE INDEX activities_cadre ON {schema}.activities (cadre_id, occurred_on);
CREATE TABLE {schema}.voice_posts (
    post_id text PRIMARY KEY,
    cadre_id text,
    org_path text NOT NULL,
    posted_at timestamptz NOT NULL,
    due_at timestamptz NOT NULL,
    answered boolean NOT NULL DEFAULT false
);
CREATE TABLE {schema}.wishes (
    wish_id text PRIMARY KEY,
    youth_id text,
    cadre_id text NOT NULL,
    org_path text NOT NULL,
    raised_at timestamptz NOT NULL,
    touched boolean NOT NULL DEFAULT false
);

-- Inbox rows carry the recipient's org (admins' delivery status view) and urgency.
ALTER TABLE {schema}.inbox ADD COLUMN org_path text;
ALTER TABLE {schema}.inbox ADD COLUMN urgent boolean NOT NULL DEFAULT false;
CREATE INDEX inbox_created ON {schema}.inbox (created_at DESC);

-- One row per reminder occurrence: (rule, recipient, period) can be sent or dropped only once,
-- whichever replica or restart gets there first.
CREATE TABLE {schema}.reminders (
    rule text NOT NULL,
    recipient_id text NOT NULL,
    period text NOT NULL,
    due_at timestamptz NOT NULL,
    window_ends_at timestamptz NOT NULL,
    outcome text NOT NULL,                   -- sent | dropped
    reason text,
    message_id uuid,
    decided_at timestamptz NOT NULL,
    PRIMARY KEY (rule, recipient_id, period)
);
CREATE TABLE {schema}.scheduler_state (
    name text PRIMARY KEY,
    last_tick timestamptz NOT NULL
);

-- 推送偏好: channels beyond the inbox, quiet hours, daily digest.
CREATE TABLE {schema}.preferences (
    recipient_id text PRIMARY KEY,
    channels text[] NOT NULL DEFAULT '{}',   -- webhook, email (the inbox always)
    email text,
    quiet_start time,
    quiet_end time,
    quiet_enabled boolean NOT NULL DEFAULT true,
    digest boolean NOT NULL DEFAULT false,
    lang text NOT NULL DEFAULT 'zh',
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Outbox of external deliveries, one per (message, channel).
CREATE TABLE {schema}.deliveries (
    message_id uuid NOT NULL,
    channel text NOT NULL,
    recipient_id text NOT NULL,
    status text NOT NULL DEFAULT 'pending',  -- pending | sent | dead | digest | digested
    attempts int NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    last_error text,
    address_masked text,
    held_reason text,
    title text,                              -- set for digests, which have no inbox row
    body text,
    sent_at timestamptz,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (message_id, channel)
);
CREATE INDEX deliveries_due ON {schema}.deliveries (channel, next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_recipient ON {schema}.deliveries (recipient_id);
CREATE TABLE {schema}.digests (
    recipient_id text NOT NULL,
    channel text NOT NULL,
    day date NOT NULL,
    message_id uuid NOT NULL,
    PRIMARY KEY (recipient_id, channel, day)
);

-- Circular fan-out jobs: the cursor moves in the same transaction as each batch of inbox rows.
CREATE TABLE {schema}.fanouts (
    circular_id text PRIMARY KEY,
    source_event_id uuid NOT NULL,
    org_path text NOT NULL,
    title text NOT NULL,
    body text NOT NULL,
    cursor text NOT NULL DEFAULT '',
    written bigint NOT NULL DEFAULT 0,
    done boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL
);

-- Arrival order for the live stream (SSE): created_at is the source event's time, not arrival.
ALTER TABLE {schema}.inbox ADD COLUMN seq bigserial;
