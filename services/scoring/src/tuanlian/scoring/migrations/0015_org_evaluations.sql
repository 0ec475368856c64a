-- A mid-year or year-end assessment evaluates the orgs directly under the assessing org as well
-- as its cadres (000 五.2: "在年中和年底分别对各市属团组织进行全面评估"): each run keeps what it
-- found of each (application/reports.org_evaluations). Runs before this have none.
ALTER TABLE {schema}.assessment_runs ADD COLUMN IF NOT EXISTS orgs jsonb;
