-- Wishes' read model of contacts: organisations, their rules (limits) and youths' membership.
CREATE TABLE {schema}.orgs (
    org_id text PRIMARY KEY,
    org_path text NOT NULL,
    org_type text NOT NULL
);
CREATE INDEX orgs_path ON {schema}.orgs (org_path text_pattern_ops);

CREATE TABLE {schema}.org_rules (
    org_id text NOT NULL,
    org_path text NOT NULL,
    effective_from date NOT NULL,
    limits jsonb NOT NULL,
    PRIMARY KEY (org_id, effective_from)
);
CREATE INDEX org_rules_path ON {schema}.org_rules (org_path);

CREATE TABLE {schema}.youths (
    youth_id text PRIMARY KEY,
    org_id text,
    org_path text
);
CREATE INDEX youths_path ON {schema}.youths (org_path text_pattern_ops);

-- 微心愿 and 心愿池. Text and photos live here, never in events: a wish may carry personal
-- details, so the pool lists only the admin-edited public_text, and erasure can scrub it.
CREATE TABLE {schema}.wishes (
    wish_id text PRIMARY KEY,
    youth_id text NOT NULL,
    cadre_id text NOT NULL,
    org_path text NOT NULL,
    category text NOT NULL,
    estimated_value_yuan int,
    state text NOT NULL,
    version int NOT NULL,
    raised_at timestamptz NOT NULL,
    touched_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    accepted_at timestamptz,
    pooled_at timestamptz,
    claimed_at timestamptz,
    fulfilled_at timestamptz,
    confirmed_at timestamptz,
    days_to_fulfil double precision,
    claim_id text,
    claimant_kind text,
    claimant_id text,
    claim_deadline timestamptz,
    pledged_yuan int NOT NULL DEFAULT 0,
    text text NOT NULL,
    public_text text,
    photos text[] NOT NULL DEFAULT '{}',
    evidence text,
    state_reason text
);
CREATE INDEX wishes_cadre ON {schema}.wishes (cadre_id, state);
CREATE INDEX wishes_youth ON {schema}.wishes (youth_id);
CREATE INDEX wishes_path ON {schema}.wishes (org_path text_pattern_ops);
CREATE INDEX wishes_untouched ON {schema}.wishes (touched_at) WHERE state IN ('raised', 'accepted');
CREATE INDEX wishes_expiry ON {schema}.wishes (expires_at)
    WHERE state IN ('raised', 'accepted', 'awaiting_review', 'pooled');
CREATE INDEX wishes_claims ON {schema}.wishes (claim_deadline) WHERE state = 'claimed';

CREATE TABLE {schema}.pledges (
    wish_id text NOT NULL,
    contributor_kind text NOT NULL,
    contributor_id text NOT NULL,
    amount_yuan int NOT NULL,
    pledged_at timestamptz NOT NULL
);

CREATE TABLE {schema}.partners (
    partner_id text PRIMARY KEY,
    kind text NOT NULL,
    name text NOT NULL,
    org_path text NOT NULL
);

-- 青年之声 and 问题清单.
CREATE TABLE {schema}.voice_posts (
    post_id text PRIMARY KEY,
    youth_id text NOT NULL,
    cadre_id text,
    org_id text NOT NULL,
    org_path text NOT NULL,
    kind text NOT NULL,
    text text NOT NULL,
    state text NOT NULL,
    version int NOT NULL,
    posted_at timestamptz NOT NULL,
    due_at timestamptz NOT NULL,
    answered_at timestamptz,
    answered_by text,
    answer text,
    in_time boolean,
    escalated_at timestamptz,
    issue_id text
);
CREATE INDEX voice_due ON {schema}.voice_posts (due_at) WHERE state = 'open';
CREATE INDEX voice_path ON {schema}.voice_posts (org_path text_pattern_ops);

CREATE TABLE {schema}.voice_issues (
    issue_id text PRIMARY KEY,
    org_path text NOT NULL,
    title text NOT NULL,
    status text NOT NULL,
    post_count int NOT NULL,
    version int NOT NULL,
    updated_at timestamptz NOT NULL
);

-- Ratings: who rated whom in a period (to allow one rating) is kept apart from the scores.
CREATE TABLE {schema}.rating_marks (
    cadre_id text NOT NULL,
    youth_id text NOT NULL,
    period text NOT NULL,
    PRIMARY KEY (cadre_id, youth_id, period)
);
CREATE TABLE {schema}.ratings (
    rating_id text PRIMARY KEY,
    cadre_id text NOT NULL,
    org_path text NOT NULL,
    period text NOT NULL,
    score int NOT NULL,
    comment text
);
CREATE INDEX ratings_cadre ON {schema}.ratings (cadre_id, period);

-- 满意度测评. The electorate says who may vote and who has; the tally is one row of counters
-- per ballot, updated in place: no per-vote row, time or sequence exists to join the two.
CREATE TABLE {schema}.ballots (
    ballot_id text PRIMARY KEY,
    branch_org_id text NOT NULL,
    org_path text NOT NULL,
    secretary_cadre_id text NOT NULL,
    year int NOT NULL,
    eligible int NOT NULL,
    closes_at timestamptz NOT NULL,
    state text NOT NULL,
    version int NOT NULL,
    turnout int,
    published boolean,
    satisfied int,
    basically_satisfied int,
    unsatisfied int,
    reelection_flag boolean NOT NULL DEFAULT false,
    UNIQUE (branch_org_id, secretary_cadre_id, year)
);
CREATE TABLE {schema}.ballot_electorate (
    ballot_id text NOT NULL,
    youth_id text NOT NULL,
    voted boolean NOT NULL DEFAULT false,
    PRIMARY KEY (ballot_id, youth_id)
);
CREATE TABLE {schema}.ballot_tally (
    ballot_id text PRIMARY KEY,
    satisfied int NOT NULL DEFAULT 0,
    basically_satisfied int NOT NULL DEFAULT 0,
    unsatisfied int NOT NULL DEFAULT 0
);
