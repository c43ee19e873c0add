-- Field telemetry, faults and the fault event log. Instants are INTEGER milliseconds, UTC.

-- The latest reading per lamp: what the status panes show.
CREATE TABLE lamp_status (
    lamp_id           INTEGER PRIMARY KEY REFERENCES lamps (id) ON DELETE CASCADE,
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

-- Raw history for a bounded window; (lamp, instant) makes a resent report a no-op.
CREATE TABLE readings (
    lamp_id           INTEGER NOT NULL,
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
    alarms            INTEGER NOT NULL,
    PRIMARY KEY (lamp_id, at)
) WITHOUT ROWID;
CREATE INDEX readings_by_time ON readings (at);

CREATE TABLE faults (
    id             INTEGER PRIMARY KEY,
    type           TEXT NOT NULL,
    severity       TEXT NOT NULL,
    state          TEXT NOT NULL,
    lamp_id        INTEGER,
    circuit_id     INTEGER,
    basestation_id INTEGER,
    zone_id        INTEGER,
    parent_id      INTEGER REFERENCES faults (id),
    count          INTEGER NOT NULL,
    first_seen     INTEGER NOT NULL,
    last_seen      INTEGER NOT NULL,
    cleared_at     INTEGER,
    acknowledged   INTEGER NOT NULL,
    flapping       INTEGER NOT NULL,
    assignee       TEXT NOT NULL,
    version        INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
);
CREATE INDEX faults_by_lamp_type ON faults (lamp_id, type, id);
CREATE INDEX faults_by_first_seen ON faults (first_seen);
CREATE INDEX faults_by_state ON faults (state, id);

-- The audit trail: every transition and note, who and when.
CREATE TABLE fault_history (
    fault_id   INTEGER NOT NULL REFERENCES faults (id),
    at         INTEGER NOT NULL,
    actor      TEXT NOT NULL,
    kind       TEXT NOT NULL,
    from_state TEXT,
    to_state   TEXT NOT NULL,
    note       TEXT NOT NULL
);
CREATE INDEX fault_history_by_fault ON fault_history (fault_id);

-- The durable event log behind Faults.Watch: strictly increasing seq, never reused.
CREATE TABLE fault_events (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    at       INTEGER NOT NULL,
    kind     TEXT NOT NULL,
    fault_id INTEGER NOT NULL,
    actor    TEXT NOT NULL,
    note     TEXT NOT NULL,
    fault    TEXT NOT NULL
);
