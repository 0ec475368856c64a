-- include: platform

-- Who may exchange wishes with whom: wishes' own copy of accepted contact links.
CREATE TABLE {schema}.pairs (
    cadre_id text NOT NULL,
    youth_id text NOT NULL,
    org_path text NOT NULL,
    linked boolean NOT NULL,
    since timestamptz,
    PRIMARY KEY (cadre_id, youth_id)
);
CREATE INDEX pairs_youth ON {schema}.pairs (youth_id) WHERE linked;
