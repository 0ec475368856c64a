-- Circulars issued at each period's close (定期通报, application/schedule.py): who published a
-- circular (the scheduler or an admin; unknown for those published before this column), and the
-- lookup the scheduler makes before issuing one: has this org's period had a circular since it closed?
ALTER TABLE {schema}.circulars ADD COLUMN published_by text;
CREATE INDEX circulars_org_period ON {schema}.circulars (org_id, period_kind, period_key);
