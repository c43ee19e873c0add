-- History in time order. Keyed (lamp, instant), each 15-minute round of reports inserted one
-- row into every lamp's part of the table: once the history outgrew the cache, every reading
-- dirtied a page of its own, written whole to the log at each commit. Keyed (instant, lamp),
-- a round appends at the end of the table, and retention deletes from the front. Each lamp's
-- newest reading, which the engine reloads at start-up and the status panes show, has a small
-- table of its own, updated in place.
CREATE TABLE latest_readings (
    lamp_id           INTEGER PRIMARY KEY,
    at                INTEGER NOT NULL,
    lamp_on           INTEGER NOT NULL,
    dim_target_pct    INTEGER NOT NULL,
    dim_actual_pct    INTEGER NOT NULL,
    voltage_v         REAL NOT NULL,
    current_a         REAL NOT NULL,
    power_w           REAL NOT NULL,
    power_factor      REAL NOT NULL,
    energy_wh         INTEGER NOT NULL,
    burn_hours        INTEGER NOT NULL,
    switch_count      INTEGER NOT NULL,
    supply_loss_count INTEGER NOT NULL,
    temperature_c     REAL NOT NULL,
    link_quality_pct  INTEGER NOT NULL,
    alarms            INTEGER NOT NULL
);
-- With max(), SQLite takes the other columns from the row that holds the maximum.
INSERT INTO latest_readings (lamp_id, at, lamp_on, dim_target_pct, dim_actual_pct, voltage_v,
    current_a, power_w, power_factor, energy_wh, burn_hours, switch_count, supply_loss_count,
    temperature_c, link_quality_pct, alarms)
SELECT lamp_id, max(at), lamp_on, dim_target_pct, dim_actual_pct, voltage_v, current_a,
    power_w, power_factor, energy_wh, burn_hours, switch_count, supply_loss_count,
    temperature_c, link_quality_pct, alarms
FROM readings GROUP BY lamp_id;

CREATE TABLE readings_in_time_order (
    at                INTEGER NOT NULL,
    lamp_id           INTEGER NOT NULL,
    lamp_on           INTEGER NOT NULL,
    dim_target_pct    INTEGER NOT NULL,
    dim_actual_pct    INTEGER NOT NULL,
    voltage_v         REAL NOT NULL,
    current_a         REAL NOT NULL,
    power_w           REAL NOT NULL,
    power_factor      REAL NOT NULL,
    energy_wh         INTEGER NOT NULL,
    burn_hours        INTEGER NOT NULL,
    switch_count      INTEGER NOT NULL,
    supply_loss_count INTEGER NOT NULL,
    temperature_c     REAL NOT NULL,
    link_quality_pct  INTEGER NOT NULL,
    alarms            INTEGER NOT NULL,
    PRIMARY KEY (at, lamp_id)
) WITHOUT ROWID;
INSERT INTO readings_in_time_order (at, lamp_id, lamp_on, dim_target_pct, dim_actual_pct,
    voltage_v, current_a, power_w, power_factor, energy_wh, burn_hours, switch_count,
    supply_loss_count, temperature_c, link_quality_pct, alarms)
SELECT at, lamp_id, lamp_on, dim_target_pct, dim_actual_pct, voltage_v, current_a, power_w,
    power_factor, energy_wh, burn_hours, switch_count, supply_loss_count, temperature_c,
    link_quality_pct, alarms
FROM readings ORDER BY at, lamp_id;
DROP TABLE readings;
ALTER TABLE readings_in_time_order RENAME TO readings;
