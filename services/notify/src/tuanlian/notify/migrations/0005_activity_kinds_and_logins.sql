-- A cadre's activity keeps its kind: which kinds count as five-ones is the org's rules'
-- (OrgRules.five_ones_kinds; 001 counts 谈心谈话 and 志愿服务), read when the reminders are
-- computed. Rows projected before this have no kind and keep ``five_ones`` as it was decided then
-- (000's five kinds); ``tuanlian notify rebuild`` gives them their kinds.
ALTER TABLE {schema}.activities ADD COLUMN kind text;

-- Whether a recipient has logged in (contacts' AccountActivated, 账号激活): 000 and 001 ask cadres
-- and youths to be *using* the system by April (登录使用), not only to have an account. Rows from
-- before this are taken as logged in if they had an account, as the reminders counted them until
-- now; `tuanlian notify rebuild` reads the logins from the stream.
ALTER TABLE {schema}.recipients ADD COLUMN logged_in boolean NOT NULL DEFAULT false;
UPDATE {schema}.recipients SET logged_in = has_account;
