-- When each event reached the projection (应用记录): one row per batch a consumer applied, its
-- last stream sequence and the instant its ledger entries, facts, flags and paths were stamped
-- with (``applied_at``). Each row covers the events after the row before it, up to ``through_seq``.
-- A rebuild stamps its rows from here, so that leaderboards and circulars recomputed as of any
-- instant answer on the rebuilt version as they did on the live one, and copies the rows it used
-- into its own version's log for the rebuild after it. ``applied_at`` NULL: those events were
-- stamped with the instant they reached the bus (a rebuild read them before any consumer of the
-- version it replaced had applied them).
-- Every projection version that still exists gets the table (a rebuilt one may be serving). The
-- serving one's starts with what its consumers applied before it had a log, undated: a rebuild
-- dates those events by the bus and the circulars, as rebuilds did before.
DO $$
DECLARE
    target text;
    serving boolean;
BEGIN
    FOR target, serving IN
        SELECT v.schema_name, v.status = 'current' FROM {schema}.projection_versions v
        WHERE EXISTS (SELECT 1 FROM pg_namespace n WHERE n.nspname = v.schema_name)
    LOOP
        EXECUTE format('CREATE TABLE IF NOT EXISTS %I.applied_log ('
                       'id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, consumer text NOT NULL, '
                       'through_seq bigint NOT NULL, applied_at timestamptz)', target);
        EXECUTE format('CREATE INDEX IF NOT EXISTS applied_log_consumer ON %I.applied_log (consumer, id)', target);
        IF serving AND to_regclass('{schema}.consumer_checkpoint') IS NOT NULL THEN
            EXECUTE format('INSERT INTO %I.applied_log (consumer, through_seq) '
                           'SELECT consumer, stream_sequence FROM {schema}.consumer_checkpoint '
                           'WHERE starts_with(consumer, %L)', target, '{schema}_points_');
        END IF;
    END LOOP;
END $$;

-- >>> projection (a rebuild applies this part to its fresh schema after 0002's)
DO $$
BEGIN
    IF to_regnamespace('{schema}_proj') IS NOT NULL THEN
        CREATE TABLE IF NOT EXISTS {schema}_proj.applied_log (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,  -- a consumer's batches in the order applied
            consumer text NOT NULL,                              -- the durable (one per producer)
            through_seq bigint NOT NULL,
            applied_at timestamptz
        );
        -- A rebuild reads one consumer's rows in order, a page at a time.
        CREATE INDEX IF NOT EXISTS applied_log_consumer ON {schema}_proj.applied_log (consumer, id);
    END IF;
END $$;
