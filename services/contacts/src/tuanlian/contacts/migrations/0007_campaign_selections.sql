-- Whether a campaign is a selection (评选) taking nominations (CampaignOpened.nominations): any
-- campaign an org opens as one (001: 五四评选表彰, 三下乡评选先进), not only 最美青春故事, which was
-- the only one before; the rows from then are marked as that rule had them.
ALTER TABLE {schema}.campaigns ADD COLUMN nominations boolean NOT NULL DEFAULT false;
UPDATE {schema}.campaigns SET nominations = (key = 'most_beautiful_story');
