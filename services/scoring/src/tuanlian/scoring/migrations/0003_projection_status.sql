-- A version's lifecycle: building (a rebuild fills it), current (serves reads and receives the
-- live consumers' writes; exactly one), retired (kept for comparison until dropped), failed.
ALTER TABLE {schema}.projection_versions
    ADD COLUMN status text NOT NULL DEFAULT 'current'
        CHECK (status IN ('building', 'current', 'retired', 'failed')),
    ADD COLUMN stream_sequences jsonb NOT NULL DEFAULT '{}',
    ADD COLUMN dropped_at timestamptz;
CREATE UNIQUE INDEX projection_versions_one_current ON {schema}.projection_versions (status)
    WHERE status = 'current';
