-- Organisations: lifecycle and rule sets (实施细则); people: profiles and erasure; identity.

ALTER TABLE {schema}.orgs
    ADD COLUMN status text NOT NULL DEFAULT 'open',
    ADD COLUMN closed_at timestamptz,
    ADD COLUMN merged_into text,
    ADD COLUMN secretary_cadre_id text,
    ADD COLUMN member_count int,
    ADD COLUMN region_code text;
CREATE INDEX orgs_parent ON {schema}.orgs (parent_id);

-- Every rule set an org adopted, by the date it takes effect; never updated, only added to.
CREATE TABLE {schema}.org_rules (
    org_id text NOT NULL REFERENCES {schema}.orgs (org_id),
    effective_from date NOT NULL,
    preset text,
    rules jsonb NOT NULL,
    set_at timestamptz NOT NULL,
    PRIMARY KEY (org_id, effective_from)
);

ALTER TABLE {schema}.cadres ADD COLUMN deactivated_at timestamptz;

ALTER TABLE {schema}.youths
    ADD COLUMN industry text,
    ADD COLUMN erased_at timestamptz;
CREATE INDEX youths_path ON {schema}.youths (org_path text_pattern_ops);

-- Major and native place identify a youth in a small branch: sealed with the person's key.
ALTER TABLE {schema}.people ADD COLUMN profile_enc bytea;

-- Accounts: the credential side of identity (never in events). Youths log in by phone (found
-- through people.phone_hash), so their account row holds no login name.
CREATE TABLE {schema}.accounts (
    account_id text PRIMARY KEY,
    subject_id text NOT NULL,
    role text NOT NULL,
    org_id text,
    login text UNIQUE,
    password_hash text,
    must_change_password boolean NOT NULL DEFAULT false,
    failed_attempts int NOT NULL DEFAULT 0,
    locked_until timestamptz,
    disabled_at timestamptz,
    activated_at timestamptz,
    issued_at timestamptz NOT NULL
);
CREATE INDEX accounts_subject ON {schema}.accounts (subject_id);

-- One-time login codes: only a keyed hash, short-lived, single use, few attempts.
CREATE TABLE {schema}.login_codes (
    code_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    subject_id text NOT NULL,
    code_hash bytea NOT NULL,
    expires_at timestamptz NOT NULL,
    attempts int NOT NULL DEFAULT 0,
    used_at timestamptz,
    void boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX login_codes_subject ON {schema}.login_codes (subject_id, created_at);

-- Every login attempt, successful or not. ``login_masked`` never holds a whole phone number.
CREATE TABLE {schema}.login_attempts (
    attempt_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT now(),
    method text NOT NULL,
    login_masked text,
    subject_id text,
    success boolean NOT NULL,
    reason text NOT NULL
);
