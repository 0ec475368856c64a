-- Each projection version keeps its own aggregate positions (跟踪记录随版本): the live durables'
-- rows are keyed '<durable>@<schema of the version they apply to>' (consumer.positions_key). A
-- rebuild copies its replay's positions in under its own version's key before its swap, which
-- then has none to hand over: comparing every aggregate's position under the swap's lock held
-- the live consumers ~1.7 s at a million aggregates, and would have held them for minutes at
-- national scale. The rows written so far belong to the version serving.
UPDATE {schema}.consumer_positions p SET consumer = p.consumer || '@' || v.schema_name
FROM {schema}.projection_versions v
WHERE v.status = 'current' AND position('@' IN p.consumer) = 0;
