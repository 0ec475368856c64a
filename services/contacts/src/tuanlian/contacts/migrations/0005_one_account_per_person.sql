-- One account per person (a cadre, a youth, or a handed-out admin / leader / partner account):
-- every look-up reads "the" account of a subject_id. Parallel POST /cadres/{id}/account calls each
-- found none and issued one: a cadre ended up with several logins, all valid, and a later reset
-- touched only one of them. The handler now queues those calls on the cadre's row; this index
-- makes the rule the database's own.
--
-- A deployment may hold such duplicates already. They are not deleted and the migration does not
-- fail (that would stop the service until someone cleans up by hand): per person, the account
-- that was used first (activated) stays, or else the one issued first, and the others move,
-- whole, to accounts_set_aside, where an operator can see which logins stopped working and tell
-- their holders. Their AccountIssued / AccountActivated events stay in the log as they are.
CREATE TABLE {schema}.accounts_set_aside (
    LIKE {schema}.accounts,
    set_aside_at timestamptz NOT NULL DEFAULT now()
);

WITH ranked AS (
    SELECT account_id,
           row_number() OVER (
               PARTITION BY subject_id
               ORDER BY activated_at IS NULL, activated_at, issued_at, account_id
           ) AS n
    FROM {schema}.accounts
),
moved AS (
    DELETE FROM {schema}.accounts a USING ranked r
    WHERE a.account_id = r.account_id AND r.n > 1
    RETURNING a.*
)
INSERT INTO {schema}.accounts_set_aside SELECT moved.*, now() FROM moved;

DROP INDEX {schema}.accounts_subject;
CREATE UNIQUE INDEX accounts_one_per_subject ON {schema}.accounts (subject_id);
