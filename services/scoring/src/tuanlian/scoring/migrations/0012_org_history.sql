-- Every org's place, name, level and state from each change on, stamped with the instant it was
-- applied (as cadre_paths are for cadres): a circular recomputed as of its instant lists the
-- orgs that existed then, under the names they had then. Until now it read today's orgs, so a
-- branch created or renamed after a circular made its recomputation differ from what was
-- published. Orgs already projected get one row stamped -infinity: before this migration their
-- history is today's state, as it was for every as-of query so far.
DO $$
DECLARE
    target text;
BEGIN
    FOR target IN
        SELECT v.schema_name FROM {schema}.projection_versions v
        WHERE EXISTS (SELECT 1 FROM pg_namespace n WHERE n.nspname = v.schema_name)
    LOOP
        EXECUTE format('CREATE TABLE IF NOT EXISTS %I.org_history (org_id text NOT NULL, '
                       'org_path text COLLATE "C" NOT NULL, name text, org_type text, '
                       'closed boolean NOT NULL DEFAULT false, '
                       'applied_at timestamptz NOT NULL DEFAULT clock_timestamp())', target);
        EXECUTE format('CREATE INDEX IF NOT EXISTS org_history_org ON %I.org_history (org_id, applied_at)', target);
        EXECUTE format('CREATE INDEX IF NOT EXISTS org_history_path ON %I.org_history (org_path)', target);
        IF to_regclass(format('%I.orgs', target)) IS NOT NULL THEN
            EXECUTE format('INSERT INTO %I.org_history (org_id, org_path, name, org_type, closed, applied_at) '
                           'SELECT org_id, org_path, name, org_type, closed, ''-infinity'' FROM %I.orgs '
                           'WHERE NOT EXISTS (SELECT 1 FROM %I.org_history)', target, target, target);
        END IF;
    END LOOP;
END $$;

-- >>> projection (a rebuild applies this part to its fresh schema after 0002's)
CREATE TABLE IF NOT EXISTS {schema}_proj.org_history (
    org_id text NOT NULL,
    org_path text COLLATE "C" NOT NULL,
    name text,
    org_type text,
    closed boolean NOT NULL DEFAULT false,
    applied_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX IF NOT EXISTS org_history_org ON {schema}_proj.org_history (org_id, applied_at);
CREATE INDEX IF NOT EXISTS org_history_path ON {schema}_proj.org_history (org_path);
