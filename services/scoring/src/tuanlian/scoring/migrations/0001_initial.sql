-- include: platform

CREATE TABLE {schema}.cadres (
    cadre_id text PRIMARY KEY,
    org_path text NOT NULL,
    kind text,
    in_leadership_organ boolean NOT NULL DEFAULT false,
    linked_youths int NOT NULL DEFAULT 0,
    points int NOT NULL DEFAULT 0
);
CREATE INDEX scoring_cadres_path ON {schema}.cadres (org_path text_pattern_ops, points DESC);

CREATE TABLE {schema}.links (
    link_id text PRIMARY KEY,
    cadre_id text NOT NULL,
    youth_id text NOT NULL,
    active boolean NOT NULL,
    ever_scored boolean NOT NULL DEFAULT false
);

-- Every point, with the rule, rule-set version and event that produced it (审计).
CREATE TABLE {schema}.ledger (
    entry_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    cadre_id text NOT NULL,
    org_path text NOT NULL,
    points int NOT NULL,
    rule text NOT NULL,
    ruleset_version text NOT NULL,
    source_event_id uuid NOT NULL,
    youth_id text,
    occurred_at timestamptz NOT NULL
);
CREATE INDEX ledger_cadre ON {schema}.ledger (cadre_id, occurred_at);

CREATE TABLE {schema}.pair_days (
    cadre_id text NOT NULL,
    youth_id text NOT NULL,
    day date NOT NULL,
    scored int NOT NULL,
    PRIMARY KEY (cadre_id, youth_id, day)
);
