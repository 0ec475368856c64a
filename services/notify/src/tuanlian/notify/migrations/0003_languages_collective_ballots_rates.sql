-- English fallback of a circular: each recipient's language picks one at fan-out.
ALTER TABLE {schema}.fanouts ADD COLUMN title_en text, ADD COLUMN body_en text;

-- Leadership organs (团的领导机关) and their collective five-ones activities (org-level quota).
CREATE TABLE {schema}.orgs (
    org_id text PRIMARY KEY,
    org_path text NOT NULL,
    name text NOT NULL,
    leadership_organ boolean NOT NULL,
    closed boolean NOT NULL DEFAULT false
);
ALTER TABLE {schema}.activities ADD COLUMN collective_five_ones boolean NOT NULL DEFAULT false;
CREATE INDEX activities_collective ON {schema}.activities (org_path, occurred_on) WHERE collective_five_ones;

-- Open satisfaction ballots: a member notify learns of late (streams are not ordered with each
-- other) is still asked, once, while the ballot is open.
CREATE TABLE {schema}.ballots (
    ballot_id text PRIMARY KEY,
    source_event_id uuid NOT NULL,
    org_path text NOT NULL,
    opened_at timestamptz NOT NULL,
    closes_at timestamptz NOT NULL,
    title text NOT NULL,
    body text NOT NULL,
    title_en text NOT NULL,
    body_en text NOT NULL
);

-- Per-channel rate limits shared by every replica (the gateway's limit is for the deployment).
CREATE TABLE {schema}.rate_buckets (
    channel text PRIMARY KEY,
    tokens double precision NOT NULL,
    at timestamptz NOT NULL
);
