-- include: platform

CREATE TABLE {schema}.orgs (
    org_id text PRIMARY KEY,
    parent_id text REFERENCES {schema}.orgs (org_id),
    name text NOT NULL,
    org_type text NOT NULL,
    depth int NOT NULL,
    is_leadership_organ boolean NOT NULL,
    org_path text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL
);
CREATE INDEX orgs_path ON {schema}.orgs (org_path text_pattern_ops);

CREATE TABLE {schema}.cadres (
    cadre_id text PRIMARY KEY,
    org_id text NOT NULL REFERENCES {schema}.orgs (org_id),
    org_path text NOT NULL,
    kind text NOT NULL,
    in_leadership_organ boolean NOT NULL,
    active boolean NOT NULL DEFAULT true
);
CREATE INDEX cadres_path ON {schema}.cadres (org_path text_pattern_ops);

CREATE TABLE {schema}.youths (
    youth_id text PRIMARY KEY,
    org_id text REFERENCES {schema}.orgs (org_id),
    org_path text,
    field text,
    grade text,
    political_status text,
    family_situation text,
    special_care text[] NOT NULL DEFAULT '{}'
);

-- Personal data (names, phones) of cadres and youths: encrypted with a key per person, found by
-- a keyed hash of the phone. Destroying the person's key erases them (PIPL) without touching
-- the immutable event log, which never held the plaintext.
CREATE TABLE {schema}.subject_keys (
    subject_id text PRIMARY KEY,
    key bytea NOT NULL
);
CREATE TABLE {schema}.people (
    subject_id text PRIMARY KEY,
    kind text NOT NULL,
    name_enc bytea,
    phone_enc bytea,
    phone_hash bytea UNIQUE,
    erased_at timestamptz
);

CREATE TABLE {schema}.links (
    link_id text PRIMARY KEY,
    cadre_id text NOT NULL,
    youth_id text NOT NULL,
    org_path text NOT NULL,
    state text NOT NULL,
    initiated_by text NOT NULL,
    invited_at timestamptz NOT NULL,
    accepted_at timestamptz,
    ended_at timestamptz
);
CREATE INDEX links_cadre ON {schema}.links (cadre_id, state);
CREATE INDEX links_youth ON {schema}.links (youth_id, state);

CREATE TABLE {schema}.interactions (
    interaction_id text PRIMARY KEY,
    cadre_id text NOT NULL,
    youth_ids text[] NOT NULL,
    channel text NOT NULL,
    occurred_at timestamptz NOT NULL,
    summary text NOT NULL,
    logged_at timestamptz NOT NULL
);
CREATE INDEX interactions_cadre ON {schema}.interactions (cadre_id, occurred_at);
