-- contacts-work: cards and join codes, group links, interaction answers and corrections,
-- evidence, activities, campaigns and nominations, spot checks.

-- 亮身份: the channel ids are personal data, sealed with the cadre's own key (see people).
CREATE TABLE {schema}.cadre_cards (
    cadre_id text PRIMARY KEY,
    channels text[] NOT NULL DEFAULT '{}',
    channel_ids_enc bytea,
    join_code text UNIQUE,
    updated_at timestamptz NOT NULL
);

CREATE TABLE {schema}.group_links (
    cadre_id text NOT NULL,
    group_org_id text NOT NULL,
    group_org_type text NOT NULL,
    group_org_path text NOT NULL,
    added_at timestamptz NOT NULL,
    PRIMARY KEY (cadre_id, group_org_id)
);

ALTER TABLE {schema}.interactions
    ADD COLUMN corrected_at timestamptz,
    ADD COLUMN corrections int NOT NULL DEFAULT 0;

CREATE TABLE {schema}.interaction_answers (
    interaction_id text NOT NULL,
    youth_id text NOT NULL,
    answer text NOT NULL,
    reason text,
    answered_at timestamptz NOT NULL,
    PRIMARY KEY (interaction_id, youth_id)
);

CREATE TABLE {schema}.evidence (
    evidence_id text PRIMARY KEY,
    subject_type text NOT NULL,
    subject_id text NOT NULL,
    org_path text NOT NULL,
    owner_cadre_id text,
    content_type text NOT NULL,
    size_bytes int NOT NULL,
    sha256 text NOT NULL,
    data bytea NOT NULL,
    attached_at timestamptz NOT NULL
);
CREATE INDEX evidence_subject ON {schema}.evidence (subject_type, subject_id);

CREATE TABLE {schema}.activities (
    activity_id text PRIMARY KEY,
    kind text NOT NULL,
    organiser_cadre_id text,
    organiser_org_id text NOT NULL,
    org_path text NOT NULL,
    collective boolean NOT NULL,
    occurred_on date NOT NULL,
    youth_ids text[] NOT NULL,
    headcount int NOT NULL,
    campaign_id text,
    description text NOT NULL,
    recorded_at timestamptz NOT NULL,
    corrections int NOT NULL DEFAULT 0
);
CREATE INDEX activities_cadre ON {schema}.activities (organiser_cadre_id, occurred_on);
CREATE INDEX activities_path ON {schema}.activities (org_path text_pattern_ops);

CREATE TABLE {schema}.campaigns (
    campaign_id text PRIMARY KEY,
    org_id text NOT NULL,
    org_path text NOT NULL,
    key text NOT NULL,
    name text NOT NULL,
    starts_on date NOT NULL,
    ends_on date NOT NULL,
    deadline date
);

CREATE TABLE {schema}.nominations (
    nomination_id text PRIMARY KEY,
    campaign_id text NOT NULL,
    cadre_id text NOT NULL,
    org_path text NOT NULL,
    nominated_by_org_id text NOT NULL,
    nominated_at timestamptz NOT NULL,
    UNIQUE (campaign_id, cadre_id)
);

CREATE TABLE {schema}.spot_checks (
    spot_check_id text PRIMARY KEY,
    cadre_id text NOT NULL,
    org_path text NOT NULL,
    items text[] NOT NULL,
    drawn_by text,
    drawn_at timestamptz NOT NULL
);
CREATE TABLE {schema}.spot_check_items (
    spot_check_id text NOT NULL,
    item text NOT NULL,
    outcome text NOT NULL,
    recorded_at timestamptz NOT NULL,
    PRIMARY KEY (spot_check_id, item)
);
