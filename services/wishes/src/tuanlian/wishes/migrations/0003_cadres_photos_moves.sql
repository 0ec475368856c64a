-- Wishes' read model of cadres: where they are, and whether they are still in the programme
-- (a deactivated cadre takes no wishes, posts or ratings).
CREATE TABLE {schema}.cadres (
    cadre_id text PRIMARY KEY,
    org_id text,
    org_path text NOT NULL,
    active boolean NOT NULL DEFAULT true,
    deactivated_at timestamptz
);
CREATE INDEX cadres_path ON {schema}.cadres (org_path text_pattern_ops);

-- Every org move or merge applied, in order: a path read from an event projected after the
-- move (a link accepted before it) is brought up to date by re-applying the later moves.
CREATE TABLE {schema}.org_moves (
    seq bigserial PRIMARY KEY,
    org_id text NOT NULL,
    old_path text NOT NULL,
    new_path text NOT NULL,
    moved_at timestamptz NOT NULL
);
CREATE INDEX org_moves_old ON {schema}.org_moves (old_path text_pattern_ops);

-- Wish photos, stored here (never on the bus). ``kept``: the reviewing admin let it into the
-- pool listing (photos may show faces).
CREATE TABLE {schema}.wish_photos (
    photo_id text PRIMARY KEY,
    wish_id text NOT NULL REFERENCES {schema}.wishes (wish_id),
    content_type text NOT NULL,
    size_bytes int NOT NULL,
    sha256 text NOT NULL,
    data bytea NOT NULL,
    uploaded_at timestamptz NOT NULL,
    kept boolean NOT NULL DEFAULT false,
    seq bigint GENERATED ALWAYS AS IDENTITY  -- upload order
);
CREATE INDEX wish_photos_wish ON {schema}.wish_photos (wish_id);

ALTER TABLE {schema}.wishes ADD COLUMN closed_at timestamptz;
CREATE INDEX wishes_fulfilled ON {schema}.wishes (fulfilled_at) WHERE state = 'fulfilled';
CREATE INDEX voice_cadre ON {schema}.voice_posts (cadre_id) WHERE state <> 'answered';
