-- The instant each interaction and each satisfaction ballot's result was first applied (as the
-- append-only rows carry theirs): a circular recomputed as of its instant counts only those known
-- then, in its anti-fraud signals and its satisfaction column. Until now it read them all, so an
-- interaction logged after a circular (a burst of late logs, say) or a ballot closed after it made
-- its recomputation differ from what was published. Rows already projected keep NULL: known as of
-- any instant, as every as-of query counted them so far.
DO $$
DECLARE
    target text;
BEGIN
    FOR target IN
        SELECT v.schema_name FROM {schema}.projection_versions v
        WHERE EXISTS (SELECT 1 FROM pg_namespace n WHERE n.nspname = v.schema_name)
    LOOP
        IF to_regclass(format('%I.interactions', target)) IS NOT NULL THEN
            EXECUTE format('ALTER TABLE %I.interactions ADD COLUMN IF NOT EXISTS known_at timestamptz', target);
            EXECUTE format('ALTER TABLE %I.ballots ADD COLUMN IF NOT EXISTS known_at timestamptz', target);
        END IF;
    END LOOP;
END $$;

-- >>> projection (a rebuild applies this part to its fresh schema after 0002's)
DO $$
BEGIN
    IF to_regclass('{schema}_proj.interactions') IS NOT NULL THEN
        ALTER TABLE {schema}_proj.interactions ADD COLUMN IF NOT EXISTS known_at timestamptz;
        ALTER TABLE {schema}_proj.ballots ADD COLUMN IF NOT EXISTS known_at timestamptz;
    END IF;
END $$;
