-- 不合格不能参评 (000): the latest assessment of each cadre, as scoring published it
-- (AssessmentCompleted on the SCORING stream). Nominations read it; nothing else writes it.
CREATE TABLE {schema}.cadre_eligibility (
    cadre_id text PRIMARY KEY,
    assessment_id text NOT NULL,
    period_kind text NOT NULL,
    period_start date NOT NULL,
    period_end date NOT NULL,
    passed boolean NOT NULL,
    eligible_for_excellence boolean NOT NULL,
    completed_at timestamptz NOT NULL,
    source_event_id uuid NOT NULL
);
