-- A cadre's activity keeps its kind: which kinds count as five-ones is the org's rules'
-- (OrgRules.five_ones_kinds; 001 counts 谈心谈话 and 志愿服务), read when the reminders are
-- computed. Rows projected before this have no kind and keep ``five_ones`` as it was decided then
-- (000's five kinds); ``tuanlian notify rebuild`` gives them their kinds.
ALTER TABLE {schema}.activities ADD COLUMN kind text;
