-- Work reports each org has sent upward (工作情况报送, from contacts' WorkReportSubmitted /
-- WorkReportReturned): an org whose report for a period is in is not reminded of it again; a
-- returned one is (its admins also get a message saying why).
CREATE TABLE {schema}.work_reports (
    org_id text NOT NULL,
    period text NOT NULL,
    org_path text NOT NULL,
    status text NOT NULL CHECK (status IN ('submitted', 'returned')),
    PRIMARY KEY (org_id, period)
);
CREATE INDEX work_reports_path ON {schema}.work_reports (org_path);
