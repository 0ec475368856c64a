-- A cadre's kind and org level kept with each place in the tree they held, so that leaderboards
-- and circulars recomputed as of an instant filter by what the cadre was then, not what they are
-- now. Rows from before this migration have neither (NULL): readers fall back to today's values.
-- Every projection version that still exists gets the columns (a rebuilt one may be serving).
DO $$
DECLARE
    target text;
BEGIN
    FOR target IN
        SELECT v.schema_name FROM {schema}.projection_versions v
        WHERE EXISTS (SELECT 1 FROM pg_namespace n WHERE n.nspname = v.schema_name)
    LOOP
        EXECUTE format('ALTER TABLE %I.cadre_paths ADD COLUMN IF NOT EXISTS kind text, '
                       'ADD COLUMN IF NOT EXISTS org_type text', target);
    END LOOP;
END $$;

-- >>> projection (a rebuild applies this part to its fresh schema after 0002's)
ALTER TABLE IF EXISTS {schema}_proj.cadre_paths ADD COLUMN IF NOT EXISTS kind text, ADD COLUMN IF NOT EXISTS org_type text;
