-- Boards to move (调动 and org moves, 排名跟人走): a transfer or an org move appends here, in its
-- batch's transaction, what the boards must follow, and the next fold (adapters/folding.py)
-- moves them, in the order appended, before it folds. The consumer never waits for a fold: it
-- took the folds' lock to move the boards itself, and waited out the fold under way (0.1-0.4 s
-- on the bench mix; a backlog's fold after an outage holds that lock for many seconds).
-- owner_id set: that owner's boards to org_path and org_type (and cadre_kind, where set: a
-- cadre registered after a wishes batch had credited it as unknown); else every board under
-- old_path to start with org_path instead.
-- Every projection version that still exists gets the table (a rebuilt one may be serving).
DO $$
DECLARE
    target text;
BEGIN
    FOR target IN
        SELECT v.schema_name FROM {schema}.projection_versions v
        WHERE EXISTS (SELECT 1 FROM pg_namespace n WHERE n.nspname = v.schema_name)
    LOOP
        EXECUTE format('CREATE TABLE IF NOT EXISTS %I.board_moves ('
                       'id bigint GENERATED ALWAYS AS IDENTITY, owner_id text, old_path text COLLATE "C", '
                       'org_path text COLLATE "C" NOT NULL, org_type text, cadre_kind text, '
                       'CHECK ((owner_id IS NULL) <> (old_path IS NULL)))', target);
    END LOOP;
END $$;

-- >>> projection (a rebuild applies this part to its fresh schema after 0002's)
DO $$
BEGIN
    IF to_regnamespace('{schema}_proj') IS NOT NULL THEN
        CREATE TABLE IF NOT EXISTS {schema}_proj.board_moves (
            id bigint GENERATED ALWAYS AS IDENTITY,  -- the order the moves were made in
            owner_id text,                           -- an owner transferred: its boards …
            old_path text COLLATE "C",               -- … or every board under an org moved
            org_path text COLLATE "C" NOT NULL,      -- the new place (the new prefix for an org moved)
            org_type text,
            cadre_kind text,
            CHECK ((owner_id IS NULL) <> (old_path IS NULL))
        );
    END IF;
END $$;
