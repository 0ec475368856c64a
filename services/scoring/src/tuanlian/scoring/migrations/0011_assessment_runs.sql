-- Every assessment of an org subtree (年中/年终考核), on demand or at the period's close: the
-- scheduler (application/schedule.py) assesses an org's period once, if no run of it is here.
CREATE TABLE {schema}.assessment_runs (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id text NOT NULL,
    org_path text COLLATE "C" NOT NULL,
    period_kind text NOT NULL,
    period_key text NOT NULL,
    cadres int NOT NULL,
    run_by text NOT NULL,
    run_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX assessment_runs_org_period ON {schema}.assessment_runs (org_id, period_kind, period_key);
-- An org's view of a period's results (GET /assessments): its subtree as an index range.
CREATE INDEX assessments_period_path ON {schema}.assessments (period_kind, period_key, org_path);
