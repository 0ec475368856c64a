-- Work reports upward (工作情况报送): the latest revision of each org's report per period, kept
-- beside its events (WorkReportSubmitted / WorkReportReturned) in the same transaction. Keyed by
-- org id, not path: a moved org's reports stay its own, and summaries join ``orgs`` for the path.
CREATE TABLE {schema}.work_reports (
    org_id text NOT NULL,
    period text NOT NULL,
    revision int NOT NULL,
    status text NOT NULL CHECK (status IN ('submitted', 'returned')),
    due_on date NOT NULL,
    late boolean NOT NULL,          -- this revision was sent after the due date
    first_sent_at timestamptz NOT NULL,
    first_late boolean NOT NULL,    -- the first revision was: the report came in late
    sent_at timestamptz NOT NULL,
    sent_by text,
    returned_at timestamptz,
    returned_by text,
    returned_reason text,
    practice text NOT NULL,
    experience text NOT NULL,
    problems text NOT NULL,
    next_steps text NOT NULL,
    PRIMARY KEY (org_id, period)
);
CREATE INDEX work_reports_period ON {schema}.work_reports (period, org_id);
