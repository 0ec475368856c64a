-- A transfer (调动) moves every board row of the cadre to the new place: found by owner, not by
-- scanning the boards (at national scale ~100M rows, a transfer a few minutes apart on working
-- days, each holding its batch's transaction open for the scan).
-- Every projection version that still exists gets the index (a rebuilt one may be serving).
DO $$
DECLARE
    target text;
BEGIN
    FOR target IN
        SELECT v.schema_name FROM {schema}.projection_versions v
        WHERE EXISTS (SELECT 1 FROM pg_namespace n WHERE n.nspname = v.schema_name)
    LOOP
        EXECUTE format('CREATE INDEX IF NOT EXISTS period_points_owner ON %I.period_points (owner_id)', target);
    END LOOP;
END $$;

-- >>> projection (a rebuild applies this part to its fresh schema after 0002's)
DO $$
BEGIN
    IF to_regclass('{schema}_proj.period_points') IS NOT NULL THEN
        CREATE INDEX IF NOT EXISTS period_points_owner ON {schema}_proj.period_points (owner_id);
    END IF;
END $$;
