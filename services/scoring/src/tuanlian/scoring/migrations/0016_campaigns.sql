-- The League-wide concentrated campaigns (全团集中活动: 五四开放日周, 最美青春故事征集…) and the
-- activities recorded for them: a circular counts, for each org it ranks, the campaigns run from
-- above that its cadres and organs took part in (000 五.1: "全团集中活动落实情况"). Each campaign
-- as opened, known since the instant it was applied (a circular recomputed as of before it
-- does not count it); each activity with the campaign it was recorded for. Campaigns opened and
-- activities recorded before this migration are not in a projection until it is rebuilt
-- (``tuanlian scoring rebuild``): their events are. Each activity keeps its headcount too: a
-- correction takes back the youths an open day counted (专题开放日, 002 二.4).
DO $$
DECLARE
    target text;
BEGIN
    FOR target IN
        SELECT v.schema_name FROM {schema}.projection_versions v
        WHERE EXISTS (SELECT 1 FROM pg_namespace n WHERE n.nspname = v.schema_name)
    LOOP
        IF to_regclass(format('%I.activities', target)) IS NOT NULL THEN
            EXECUTE format('ALTER TABLE %I.activities ADD COLUMN IF NOT EXISTS campaign_id text', target);
            EXECUTE format('ALTER TABLE %I.activities ADD COLUMN IF NOT EXISTS headcount int', target);
            EXECUTE format('CREATE TABLE IF NOT EXISTS %I.campaigns (campaign_id text PRIMARY KEY, '
                           'org_id text NOT NULL, key text NOT NULL, name text NOT NULL, starts_on date NOT NULL, '
                           'ends_on date NOT NULL, known_at timestamptz)', target);
        END IF;
    END LOOP;
END $$;

-- >>> projection (a rebuild applies this part to its fresh schema after 0002's)
DO $$
BEGIN
    IF to_regclass('{schema}_proj.activities') IS NOT NULL THEN
        ALTER TABLE {schema}_proj.activities ADD COLUMN IF NOT EXISTS campaign_id text;
        ALTER TABLE {schema}_proj.activities ADD COLUMN IF NOT EXISTS headcount int;
        CREATE TABLE IF NOT EXISTS {schema}_proj.campaigns (
            campaign_id text PRIMARY KEY,
            org_id text NOT NULL,
            key text NOT NULL,
            name text NOT NULL,
            starts_on date NOT NULL,
            ends_on date NOT NULL,
            known_at timestamptz
        );
    END IF;
END $$;
