-- The first skeleton's tables are replaced by a versioned projection schema; its durable consumer
-- ("ledger") is retired and new ones ("points") replay the streams from the start.
DROP TABLE IF EXISTS {schema}.cadres, {schema}.links, {schema}.ledger, {schema}.pair_days;

-- Documents scoring issues (not rebuilt from the streams: they are facts of their own).
CREATE TABLE {schema}.circulars (
    circular_id uuid PRIMARY KEY,
    number text NOT NULL UNIQUE,
    org_id text NOT NULL,
    org_path text COLLATE "C" NOT NULL,
    period_kind text NOT NULL,
    period_key text NOT NULL,
    period_start date NOT NULL,
    period_end date NOT NULL,
    title text NOT NULL,
    as_of timestamptz NOT NULL,
    positions jsonb NOT NULL,
    document jsonb NOT NULL,
    published_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX circulars_scope ON {schema}.circulars (org_path, period_kind, period_start);
CREATE TABLE {schema}.circular_numbers (prefix text PRIMARY KEY, last int NOT NULL);
CREATE TRIGGER circulars_immutable BEFORE UPDATE OR DELETE ON {schema}.circulars
    FOR EACH ROW EXECUTE FUNCTION {schema}.events_are_immutable();

CREATE TABLE {schema}.assessments (
    assessment_id uuid PRIMARY KEY,
    cadre_id text NOT NULL,
    org_path text COLLATE "C" NOT NULL,
    period_kind text NOT NULL,
    period_key text NOT NULL,
    passed boolean NOT NULL,
    eligible_for_excellence boolean NOT NULL,
    detail jsonb NOT NULL,
    assessed_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (cadre_id, period_kind, period_key)
);

-- Which projection schema serves (a rebuild builds another and swaps the names).
CREATE TABLE {schema}.projection_versions (
    version int PRIMARY KEY,
    schema_name text NOT NULL,
    ruleset_override text,
    events int NOT NULL DEFAULT 0,
    built_at timestamptz NOT NULL DEFAULT now(),
    retired_at timestamptz
);
INSERT INTO {schema}.projection_versions (version, schema_name) VALUES (1, '{schema}_proj');

-- >>> projection (a rebuild applies this part to a fresh schema in place of {schema}_proj)
CREATE SCHEMA {schema}_proj;
CREATE TABLE {schema}_proj.meta (key text PRIMARY KEY, value bigint NOT NULL);
INSERT INTO {schema}_proj.meta VALUES ('version', 1);

CREATE TABLE {schema}_proj.orgs (
    org_id text PRIMARY KEY,
    org_path text COLLATE "C" NOT NULL,
    name text,
    org_type text,
    depth int,
    is_leadership_organ boolean NOT NULL DEFAULT false,
    closed boolean NOT NULL DEFAULT false
);
CREATE INDEX orgs_path ON {schema}_proj.orgs (org_path);
CREATE INDEX orgs_type ON {schema}_proj.orgs (org_type, org_path);

-- OrgRulesSet per org path: a list of {org_id, effective_from, ruleset, rules}.
CREATE TABLE {schema}_proj.org_rules (org_path text COLLATE "C" PRIMARY KEY, records jsonb NOT NULL);

CREATE TABLE {schema}_proj.cadres (
    cadre_id text PRIMARY KEY,
    org_id text,
    org_path text COLLATE "C" NOT NULL,
    org_type text,
    kind text,
    in_leadership_organ boolean NOT NULL DEFAULT false,
    active boolean NOT NULL DEFAULT true,
    linked_youths int NOT NULL DEFAULT 0,
    last_online date,
    last_face_to_face date
);
CREATE INDEX cadres_path ON {schema}_proj.cadres (org_path);
CREATE TABLE {schema}_proj.cadre_paths (
    cadre_id text NOT NULL,
    org_path text COLLATE "C" NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX cadre_paths_cadre ON {schema}_proj.cadre_paths (cadre_id, applied_at);

CREATE TABLE {schema}_proj.links (link_id text PRIMARY KEY, cadre_id text NOT NULL, youth_id text NOT NULL, active boolean NOT NULL);
CREATE TABLE {schema}_proj.scored_youths (cadre_id text NOT NULL, youth_id text NOT NULL, PRIMARY KEY (cadre_id, youth_id));
CREATE TABLE {schema}_proj.groups (
    cadre_id text NOT NULL, group_org_id text NOT NULL, group_org_type text NOT NULL, active boolean NOT NULL,
    PRIMARY KEY (cadre_id, group_org_id)
);
-- Scoring interactions per pair and month ({day: n}) for the daily and monthly caps.
CREATE TABLE {schema}_proj.pair_months (
    cadre_id text NOT NULL, youth_id text NOT NULL, month text NOT NULL, by_day jsonb NOT NULL,
    PRIMARY KEY (cadre_id, youth_id, month)
);
-- Each interaction as scored now; ``youths`` maps youth → {base, status, credited, ruleset}.
CREATE TABLE {schema}_proj.interactions (
    interaction_id text PRIMARY KEY,
    cadre_id text NOT NULL,
    day date NOT NULL,
    occurred_at timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL,
    online boolean NOT NULL,
    channel text NOT NULL,
    summary_hash text NOT NULL,
    summary_length int NOT NULL,
    ruleset text NOT NULL,
    source_event_id uuid NOT NULL,
    youths jsonb NOT NULL
);
CREATE INDEX interactions_cadre ON {schema}_proj.interactions (cadre_id, day);
CREATE TABLE {schema}_proj.activities (
    activity_id text PRIMARY KEY,
    owner_id text NOT NULL,
    kind text NOT NULL,
    collective boolean NOT NULL,
    occurred_on date NOT NULL,
    period_key text,
    points int NOT NULL,
    ruleset text NOT NULL
);
CREATE TABLE {schema}_proj.five_ones (
    owner_id text NOT NULL, period_key text NOT NULL, kinds jsonb NOT NULL, bonus int NOT NULL,
    PRIMARY KEY (owner_id, period_key)
);
CREATE TABLE {schema}_proj.ballots (
    ballot_id text PRIMARY KEY, cadre_id text NOT NULL, org_path text COLLATE "C" NOT NULL, year int NOT NULL,
    eligible int NOT NULL, turnout int NOT NULL, published boolean NOT NULL, satisfied int, basically_satisfied int,
    unsatisfied int, reelection_flag boolean NOT NULL
);
CREATE INDEX ballots_cadre ON {schema}_proj.ballots (cadre_id, year);

-- Every point, with the rule, rule-set version and source events (审计); never updated: a later
-- fact adds a compensating entry. ``applied_at`` is when scoring learnt it (as-of queries).
CREATE TABLE {schema}_proj.ledger (
    entry_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    owner_id text NOT NULL,
    owner_kind text NOT NULL,
    org_path text COLLATE "C" NOT NULL,
    points int NOT NULL,
    rule text NOT NULL,
    ruleset_version text NOT NULL,
    source_event_ids uuid[] NOT NULL,
    youth_id text,
    ref text,
    occurred_at timestamptz NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX ledger_owner ON {schema}_proj.ledger (owner_id, entry_id);
CREATE INDEX ledger_applied ON {schema}_proj.ledger (applied_at);

-- Counted facts behind circulars and activity levels (links, interactions, wishes, voice…),
-- signed like the ledger so corrections subtract; ``subject`` is a youth id where distinctness matters.
CREATE TABLE {schema}_proj.facts (
    owner_id text NOT NULL,
    metric text NOT NULL,
    subject text,
    n int NOT NULL,
    occurred_on date NOT NULL,
    source_event_id uuid NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX facts_owner ON {schema}_proj.facts (owner_id, metric, occurred_on);

CREATE TABLE {schema}_proj.flags (
    owner_id text NOT NULL, code text NOT NULL, ref text, source_event_id uuid NOT NULL,
    occurred_on date NOT NULL, applied_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX flags_owner ON {schema}_proj.flags (owner_id);

-- Points per owner and period, with the owner's place in the tree copied in, so that a subtree's
-- top 50 is an index walk: (period, org_path range) for small subtrees, (period, points DESC)
-- filtered by path for large ones; period_kind 'all' holds the running total.
CREATE TABLE {schema}_proj.period_points (
    period_kind text NOT NULL,
    period_key text NOT NULL,
    owner_id text NOT NULL,
    owner_kind text NOT NULL,
    org_path text COLLATE "C" NOT NULL,
    cadre_kind text,
    org_type text,
    points int NOT NULL,
    PRIMARY KEY (period_kind, period_key, owner_id)
);
CREATE INDEX period_points_path ON {schema}_proj.period_points (period_kind, period_key, org_path) INCLUDE (points, owner_kind, cadre_kind, org_type);
CREATE INDEX period_points_top ON {schema}_proj.period_points (period_kind, period_key, points DESC, owner_id) INCLUDE (org_path, owner_kind, cadre_kind, org_type);

-- Which batch generation each consumer last committed (its in-memory state is valid only then).
CREATE TABLE {schema}_proj.projector_gen (consumer text PRIMARY KEY, gen bigint NOT NULL);
