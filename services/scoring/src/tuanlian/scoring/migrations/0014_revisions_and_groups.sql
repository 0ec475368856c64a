-- Four things a closed period or a published circular read as they are now, given a history:
--
-- * An interaction's corrections. A correction replaced its row (time, summary), so a circular's
--   anti-fraud signals recomputed as of before it read the corrected record. Each row now keeps
--   the versions it replaced (``earlier``: day, occurred_at, recorded_at, summary_hash and
--   ``until``, the instant the correction replacing it was applied) and the instant its current
--   version was (``revised_at``). Rows corrected before this migration have no such history: read
--   as corrected at any instant, as until now.
-- * The groups a cadre covers (覆盖团支部、团小组). ``groups`` holds them as they are now; each
--   GroupLinkAdded and GroupLinkEnded now also writes a ``group:<type>`` fact (+1 / -1, the day it
--   happened), so compliance judges a closed period by the groups covered on its last day. Groups
--   covered before this migration get one fact dated -infinity with the nil event id: from any
--   day, as every compliance check counted them so far.
-- * An org's rules. Each record now notes the instant it was applied (``known_at``), and one an
--   OrgRulesSet of the same org and effective day replaces moves to ``replaced`` with ``until``: a
--   progress circular recomputed as of its instant reads the rules it was computed with, not a
--   change adopted later that takes effect before the period's end. Records before this migration
--   count at any instant.
-- * The day a cadre joined. An assessment of a closed half-year assessed every cadre in the
--   subtree when it ran, so one who joined after the close was assessed on a half-year before
--   their time, failed and was marked ineligible for excellence. CadreRegistered now writes a
--   ``registered`` fact on its day; cadres registered before this migration get one dated
--   -infinity.
DO $$
DECLARE
    target text;
BEGIN
    FOR target IN
        SELECT v.schema_name FROM {schema}.projection_versions v
        WHERE EXISTS (SELECT 1 FROM pg_namespace n WHERE n.nspname = v.schema_name)
    LOOP
        IF to_regclass(format('%I.interactions', target)) IS NOT NULL THEN
            EXECUTE format('ALTER TABLE %I.org_rules ADD COLUMN IF NOT EXISTS replaced jsonb', target);
            EXECUTE format('ALTER TABLE %I.interactions ADD COLUMN IF NOT EXISTS revised_at timestamptz', target);
            EXECUTE format('ALTER TABLE %I.interactions ADD COLUMN IF NOT EXISTS earlier jsonb', target);
            EXECUTE format('CREATE INDEX IF NOT EXISTS interactions_revised ON %I.interactions (cadre_id) '
                           'WHERE earlier IS NOT NULL', target);
            EXECUTE format('INSERT INTO %I.facts (owner_id, metric, subject, n, occurred_on, source_event_id, '
                           'applied_at) SELECT cadre_id, ''group:'' || group_org_type, group_org_id, 1, '
                           '''-infinity'', ''00000000-0000-0000-0000-000000000000'', ''-infinity'' '
                           'FROM %I.groups g WHERE active AND NOT EXISTS (SELECT 1 FROM %I.facts f '
                           'WHERE f.owner_id = g.cadre_id AND f.metric LIKE ''group:%%'')',
                           target, target, target);
            EXECUTE format('INSERT INTO %I.facts (owner_id, metric, subject, n, occurred_on, source_event_id, '
                           'applied_at) SELECT cadre_id, ''registered'', NULL, 1, ''-infinity'', '
                           '''00000000-0000-0000-0000-000000000000'', ''-infinity'' FROM %I.cadres c '
                           'WHERE NOT EXISTS (SELECT 1 FROM %I.facts f WHERE f.owner_id = c.cadre_id '
                           'AND f.metric = ''registered'')', target, target, target);
        END IF;
    END LOOP;
END $$;

-- >>> projection (a rebuild applies this part to its fresh schema after 0002's)
DO $$
BEGIN
    IF to_regclass('{schema}_proj.interactions') IS NOT NULL THEN
        ALTER TABLE {schema}_proj.org_rules ADD COLUMN IF NOT EXISTS replaced jsonb;
        ALTER TABLE {schema}_proj.interactions ADD COLUMN IF NOT EXISTS revised_at timestamptz;
        ALTER TABLE {schema}_proj.interactions ADD COLUMN IF NOT EXISTS earlier jsonb;
        CREATE INDEX IF NOT EXISTS interactions_revised ON {schema}_proj.interactions (cadre_id)
            WHERE earlier IS NOT NULL;
    END IF;
END $$;
