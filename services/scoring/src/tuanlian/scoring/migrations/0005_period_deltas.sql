-- Credits reach the leaderboards in two steps: a projector's batch appends them here (one row per
-- owner and day, a plain COPY beside its ledger entries) and the fold (adapters/folding.py) moves
-- them into period_points, one sorted upsert for many batches. The projector's transaction then
-- updates no indexed row per credit, and the two consumers no longer lock each other's
-- period_points rows. No index: the fold takes every row it can see at once.
-- Every projection version that still exists gets the table (a rebuilt one may be serving).
DO $$
DECLARE
    target text;
BEGIN
    FOR target IN
        SELECT v.schema_name FROM {schema}.projection_versions v
        WHERE EXISTS (SELECT 1 FROM pg_namespace n WHERE n.nspname = v.schema_name)
    LOOP
        EXECUTE format('CREATE TABLE IF NOT EXISTS %I.period_deltas ('
                       'id bigint GENERATED ALWAYS AS IDENTITY, owner_id text NOT NULL, day date NOT NULL, '
                       'owner_kind text NOT NULL, org_path text COLLATE "C" NOT NULL, cadre_kind text, '
                       'org_type text, points int NOT NULL)', target);
    END LOOP;
END $$;

-- >>> projection (a rebuild applies this part to its fresh schema after 0002's)
DO $$
BEGIN
    IF to_regnamespace('{schema}_proj') IS NOT NULL THEN
        CREATE TABLE IF NOT EXISTS {schema}_proj.period_deltas (
            id bigint GENERATED ALWAYS AS IDENTITY,  -- the order credits were made in
            owner_id text NOT NULL,
            day date NOT NULL,  -- China day of the credit: the fold files it under its day, month, quarter, year
            owner_kind text NOT NULL,
            org_path text COLLATE "C" NOT NULL,
            cadre_kind text,
            org_type text,
            points int NOT NULL
        );
    END IF;
END $$;
