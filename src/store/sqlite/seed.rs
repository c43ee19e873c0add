//! Bulk loading of a generated estate, and clearing the database for `seed --reset`.

use chrono::Utc;
use rusqlite::{Connection, params};

use super::db_error;
use super::rows::millis;
use crate::domain::estate::Estate;
use crate::domain::inventory::EntityStatus;
use crate::store::StoreResult;

/// Inserts every record of the estate with its generated id, in one transaction.
pub(super) fn insert_estate(c: &Connection, estate: &Estate) -> StoreResult<()> {
    let now = millis(Utc::now());
    let active = EntityStatus::Active.as_str();
    let mut statement = c
        .prepare("INSERT INTO lamp_types (id, name, technology, wattage_w, control_type) VALUES (?1, ?2, ?3, ?4, ?5)")
        .map_err(db_error)?;
    for t in &estate.lamp_types {
        statement
            .execute(params![
                t.id,
                t.name,
                t.technology.as_str(),
                t.wattage_w,
                t.control_type.as_str()
            ])
            .map_err(db_error)?;
    }
    let mut statement = c
        .prepare("INSERT INTO zones (id, name) VALUES (?1, ?2)")
        .map_err(db_error)?;
    for zone in &estate.zones {
        statement
            .execute(params![zone.id, zone.name])
            .map_err(db_error)?;
    }
    let mut statement = c
        .prepare("INSERT INTO circuits (id, name, zone_id) VALUES (?1, ?2, ?3)")
        .map_err(db_error)?;
    for circuit in &estate.circuits {
        statement
            .execute(params![circuit.id, circuit.name, circuit.zone_id])
            .map_err(db_error)?;
    }
    let mut statement = c
        .prepare(
            "INSERT INTO basestations (id, uuid, name, firmware_version, lat, lon, status, version, created_at, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 1, ?8, ?8)",
        )
        .map_err(db_error)?;
    for b in &estate.basestations {
        statement
            .execute(params![
                b.id,
                b.uuid.to_string(),
                b.name,
                b.firmware_version,
                b.location.lat(),
                b.location.lon(),
                active,
                now
            ])
            .map_err(db_error)?;
    }
    let mut statement = c
        .prepare(
            "INSERT INTO telecells (id, uuid, basestation_id, relay_via_id, lat, lon, firmware_version, status, version, created_at, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 1, ?9, ?9)",
        )
        .map_err(db_error)?;
    for t in &estate.telecells {
        statement
            .execute(params![
                t.id,
                t.uuid.to_string(),
                t.basestation_id,
                t.relay_via_id,
                t.location.lat(),
                t.location.lon(),
                t.firmware_version,
                active,
                now
            ])
            .map_err(db_error)?;
    }
    let mut statement = c
        .prepare(
            "INSERT INTO assets (id, reference, lat, lon, zone_id, circuit_id, status, version, created_at, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 1, ?8, ?8)",
        )
        .map_err(db_error)?;
    for a in &estate.assets {
        statement
            .execute(params![
                a.id,
                a.reference,
                a.location.lat(),
                a.location.lon(),
                a.zone_id,
                a.circuit_id,
                active,
                now
            ])
            .map_err(db_error)?;
    }
    let mut statement = c
        .prepare(
            "INSERT INTO lamps (id, reference, asset_id, lamp_type_id, telecell_id, status, version, created_at, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1, ?7, ?7)",
        )
        .map_err(db_error)?;
    for l in &estate.lamps {
        statement
            .execute(params![
                l.id,
                l.reference,
                l.asset_id,
                l.lamp_type_id,
                l.telecell_id,
                active,
                now
            ])
            .map_err(db_error)?;
    }
    Ok(())
}

/// Deletes every record, children before parents, keeping the schema.
pub(super) fn clear_all(c: &Connection) -> StoreResult<()> {
    c.execute_batch(
        "DELETE FROM energy_days; DELETE FROM energy_months; DELETE FROM energy_zone_days; DELETE FROM energy_zone_months; DELETE FROM energy_cursors; DELETE FROM tariffs; DELETE FROM readings; DELETE FROM latest_readings;
         DELETE FROM lamps; DELETE FROM users; UPDATE telecells SET relay_via_id = NULL; DELETE FROM telecells;
         DELETE FROM assets; DELETE FROM basestations; DELETE FROM circuits; DELETE FROM zones; DELETE FROM lamp_types;",
    )
    .map_err(db_error)
}
