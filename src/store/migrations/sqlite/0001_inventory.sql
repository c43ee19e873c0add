-- The estate's inventory. Instants are INTEGER milliseconds since the Unix epoch, in UTC.
-- Each located table has an R*Tree beside it, kept in step by triggers, for SearchByLocation.

CREATE TABLE zones (
    id   INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);

CREATE TABLE circuits (
    id      INTEGER PRIMARY KEY,
    name    TEXT NOT NULL UNIQUE,
    zone_id INTEGER NOT NULL REFERENCES zones (id)
);

CREATE TABLE lamp_types (
    id           INTEGER PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE,
    technology   TEXT NOT NULL,
    wattage_w    INTEGER NOT NULL CHECK (wattage_w > 0),
    control_type TEXT NOT NULL
);

CREATE TABLE basestations (
    id               INTEGER PRIMARY KEY,
    uuid             TEXT NOT NULL UNIQUE,
    name             TEXT NOT NULL,
    firmware_version TEXT NOT NULL,
    lat              REAL NOT NULL,
    lon              REAL NOT NULL,
    status           TEXT NOT NULL,
    version          INTEGER NOT NULL,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);

CREATE TABLE telecells (
    id               INTEGER PRIMARY KEY,
    uuid             TEXT NOT NULL UNIQUE,
    basestation_id   INTEGER NOT NULL REFERENCES basestations (id),
    relay_via_id     INTEGER REFERENCES telecells (id),
    lat              REAL NOT NULL,
    lon              REAL NOT NULL,
    firmware_version TEXT NOT NULL,
    status           TEXT NOT NULL,
    version          INTEGER NOT NULL,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);
CREATE INDEX telecells_by_basestation ON telecells (basestation_id);
CREATE INDEX telecells_by_relay ON telecells (relay_via_id) WHERE relay_via_id IS NOT NULL;

CREATE TABLE assets (
    id         INTEGER PRIMARY KEY,
    reference  TEXT NOT NULL UNIQUE,
    lat        REAL NOT NULL,
    lon        REAL NOT NULL,
    zone_id    INTEGER NOT NULL REFERENCES zones (id),
    circuit_id INTEGER REFERENCES circuits (id),
    status     TEXT NOT NULL,
    version    INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX assets_by_zone ON assets (zone_id);
CREATE INDEX assets_by_circuit ON assets (circuit_id);

CREATE TABLE lamps (
    id           INTEGER PRIMARY KEY,
    reference    TEXT NOT NULL UNIQUE,
    asset_id     INTEGER REFERENCES assets (id),
    lamp_type_id INTEGER NOT NULL REFERENCES lamp_types (id),
    telecell_id  INTEGER REFERENCES telecells (id),
    status       TEXT NOT NULL,
    version      INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);
CREATE INDEX lamps_by_asset ON lamps (asset_id);
CREATE INDEX lamps_by_telecell ON lamps (telecell_id);

CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    display_name  TEXT NOT NULL,
    role          TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    status        TEXT NOT NULL,
    version       INTEGER NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);

CREATE VIRTUAL TABLE basestations_rtree USING rtree (id, min_lat, max_lat, min_lon, max_lon);
CREATE TRIGGER basestations_rtree_insert AFTER INSERT ON basestations BEGIN
    INSERT INTO basestations_rtree VALUES (new.id, new.lat, new.lat, new.lon, new.lon);
END;
CREATE TRIGGER basestations_rtree_move AFTER UPDATE OF lat, lon ON basestations BEGIN
    UPDATE basestations_rtree SET min_lat = new.lat, max_lat = new.lat, min_lon = new.lon, max_lon = new.lon
    WHERE id = new.id;
END;
CREATE TRIGGER basestations_rtree_delete AFTER DELETE ON basestations BEGIN
    DELETE FROM basestations_rtree WHERE id = old.id;
END;

CREATE VIRTUAL TABLE telecells_rtree USING rtree (id, min_lat, max_lat, min_lon, max_lon);
CREATE TRIGGER telecells_rtree_insert AFTER INSERT ON telecells BEGIN
    INSERT INTO telecells_rtree VALUES (new.id, new.lat, new.lat, new.lon, new.lon);
END;
CREATE TRIGGER telecells_rtree_move AFTER UPDATE OF lat, lon ON telecells BEGIN
    UPDATE telecells_rtree SET min_lat = new.lat, max_lat = new.lat, min_lon = new.lon, max_lon = new.lon
    WHERE id = new.id;
END;
CREATE TRIGGER telecells_rtree_delete AFTER DELETE ON telecells BEGIN
    DELETE FROM telecells_rtree WHERE id = old.id;
END;

CREATE VIRTUAL TABLE assets_rtree USING rtree (id, min_lat, max_lat, min_lon, max_lon);
CREATE TRIGGER assets_rtree_insert AFTER INSERT ON assets BEGIN
    INSERT INTO assets_rtree VALUES (new.id, new.lat, new.lat, new.lon, new.lon);
END;
CREATE TRIGGER assets_rtree_move AFTER UPDATE OF lat, lon ON assets BEGIN
    UPDATE assets_rtree SET min_lat = new.lat, max_lat = new.lat, min_lon = new.lon, max_lon = new.lon
    WHERE id = new.id;
END;
CREATE TRIGGER assets_rtree_delete AFTER DELETE ON assets BEGIN
    DELETE FROM assets_rtree WHERE id = old.id;
END;
