-- Energy billing. Days are local dates (YYYY-MM-DD) of the settlement time zone, months
-- YYYY-MM; energy in Wh and money in milli-pence, all integers. zone_id 0: lamp in no zone.

CREATE TABLE tariffs (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    time_zone  TEXT NOT NULL,
    valid_from TEXT NOT NULL,
    valid_to   TEXT,
    -- JSON array of {"name", "starts_at" (HH:MM), "price_millipence_per_kwh"}.
    bands      TEXT NOT NULL
);

-- One lamp's day: totals, and its slots (energy units, seconds covered, baseline Wh) packed
-- in `slots`. The zone is the lamp's zone when the day was first settled.
CREATE TABLE energy_days (
    day              TEXT NOT NULL,
    lamp_id          INTEGER NOT NULL,
    zone_id          INTEGER NOT NULL,
    wh               INTEGER NOT NULL,
    cost_mp          INTEGER NOT NULL,
    baseline_wh      INTEGER NOT NULL,
    baseline_cost_mp INTEGER NOT NULL,
    covered          INTEGER NOT NULL,
    unpriced_wh      INTEGER NOT NULL,
    slots            BLOB NOT NULL,
    PRIMARY KEY (day, lamp_id)
) WITHOUT ROWID;

-- Month rollup per lamp and zone, so month totals never read the days.
CREATE TABLE energy_months (
    month            TEXT NOT NULL,
    zone_id          INTEGER NOT NULL,
    lamp_id          INTEGER NOT NULL,
    wh               INTEGER NOT NULL,
    cost_mp          INTEGER NOT NULL,
    baseline_wh      INTEGER NOT NULL,
    baseline_cost_mp INTEGER NOT NULL,
    covered          INTEGER NOT NULL,
    unpriced_wh      INTEGER NOT NULL,
    -- Days of the lamp in this row (tells a new row from an updated one).
    lamp_days        INTEGER NOT NULL,
    PRIMARY KEY (month, zone_id, lamp_id)
) WITHOUT ROWID;

-- A lamp's rows in a month, to tell when it moved zone (it then has more than one).
CREATE INDEX energy_months_lamp ON energy_months (month, lamp_id);

-- Month rollup per zone, for totals by zone of a finished month without reading the lamps.
-- `lamps_full`: lamps with every slot of the month accounted. zone_id -1 counts in `lamps`
-- the lamps that moved zone within the month (their totals then need the lamp rows).
CREATE TABLE energy_zone_months (
    month            TEXT NOT NULL,
    zone_id          INTEGER NOT NULL,
    wh               INTEGER NOT NULL,
    cost_mp          INTEGER NOT NULL,
    baseline_wh      INTEGER NOT NULL,
    baseline_cost_mp INTEGER NOT NULL,
    covered          INTEGER NOT NULL,
    unpriced_wh      INTEGER NOT NULL,
    lamps            INTEGER NOT NULL,
    lamps_full       INTEGER NOT NULL,
    PRIMARY KEY (month, zone_id)
) WITHOUT ROWID;

-- Day rollup per zone, for totals by day. `lamps_full`: lamp-days with every slot accounted.
CREATE TABLE energy_zone_days (
    day              TEXT NOT NULL,
    zone_id          INTEGER NOT NULL,
    wh               INTEGER NOT NULL,
    cost_mp          INTEGER NOT NULL,
    baseline_wh      INTEGER NOT NULL,
    baseline_cost_mp INTEGER NOT NULL,
    covered          INTEGER NOT NULL,
    unpriced_wh      INTEGER NOT NULL,
    lamps            INTEGER NOT NULL,
    lamps_full       INTEGER NOT NULL,
    PRIMARY KEY (day, zone_id)
) WITHOUT ROWID;

-- The instant of the last reading each lamp's energy has been settled up to: after a restart,
-- readings stored later are settled again from here.
CREATE TABLE energy_cursors (
    lamp_id INTEGER PRIMARY KEY,
    at      INTEGER NOT NULL
);
