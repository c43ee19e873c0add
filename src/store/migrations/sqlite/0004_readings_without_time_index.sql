-- Each reading used to be written three times: the history row, an index entry by time (for
-- retention) and an upsert of the latest status. The history's primary key (lamp_id, at)
-- answers both of the others with one seek: the latest reading is the last row of the lamp,
-- and retention walks the key lamp by lamp (keeping every lamp's newest reading).
DROP INDEX readings_by_time;
DROP TABLE lamp_status;
