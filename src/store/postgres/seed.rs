//! Bulk loading of a generated estate with binary COPY (one statement per table, not per
//! record), and clearing the database for `seed --reset`.

use super::Conn as Client;
use chrono::Utc;
use futures::pin_mut;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};

use super::db_error;
use super::rows::millis;
use crate::domain::estate::Estate;
use crate::domain::inventory::EntityStatus;
use crate::store::StoreResult;

/// Copies rows into `table`'s `columns`, typed `types`.
async fn copy(
    c: &Client,
    table: &str,
    columns: &str,
    types: &[Type],
    rows: Vec<Vec<Box<dyn ToSql + Sync + Send>>>,
) -> StoreResult<()> {
    let sink = c
        .copy_in(&format!("COPY {table} ({columns}) FROM STDIN BINARY"))
        .await
        .map_err(db_error)?;
    let writer = BinaryCopyInWriter::new(sink, types);
    pin_mut!(writer);
    for row in &rows {
        let values: Vec<&(dyn ToSql + Sync)> = row
            .iter()
            .map(|v| v.as_ref() as &(dyn ToSql + Sync))
            .collect();
        writer.as_mut().write(&values).await.map_err(db_error)?;
    }
    writer.finish().await.map_err(db_error)?;
    Ok(())
}

macro_rules! row {
    ($($value:expr),* $(,)?) => {
        vec![$(Box::new($value) as Box<dyn ToSql + Sync + Send>),*]
    };
}

/// Inserts every record of the estate with its generated id, then moves each id sequence past
/// the largest id so records created later get fresh ones.
pub(super) async fn insert_estate(c: &Client, estate: &Estate) -> StoreResult<()> {
    let now = millis(Utc::now());
    let active = EntityStatus::Active.as_str();
    let (int8, text, float8) = (Type::INT8, Type::TEXT, Type::FLOAT8);
    copy(
        c,
        "lamp_types",
        "id, name, technology, wattage_w, control_type",
        &[
            int8.clone(),
            text.clone(),
            text.clone(),
            int8.clone(),
            text.clone(),
        ],
        estate
            .lamp_types
            .iter()
            .map(|t| {
                row![
                    t.id,
                    t.name.to_string(),
                    t.technology.as_str(),
                    i64::from(t.wattage_w),
                    t.control_type.as_str()
                ]
            })
            .collect(),
    )
    .await?;
    copy(
        c,
        "zones",
        "id, name",
        &[int8.clone(), text.clone()],
        estate
            .zones
            .iter()
            .map(|z| row![z.id, z.name.clone()])
            .collect(),
    )
    .await?;
    copy(
        c,
        "circuits",
        "id, name, zone_id",
        &[int8.clone(), text.clone(), int8.clone()],
        estate
            .circuits
            .iter()
            .map(|k| row![k.id, k.name.clone(), k.zone_id])
            .collect(),
    )
    .await?;
    copy(
        c,
        "basestations",
        "id, uuid, name, firmware_version, lat, lon, status, version, created_at, updated_at",
        &[
            int8.clone(),
            text.clone(),
            text.clone(),
            text.clone(),
            float8.clone(),
            float8.clone(),
            text.clone(),
            int8.clone(),
            int8.clone(),
            int8.clone(),
        ],
        estate
            .basestations
            .iter()
            .map(|b| {
                row![
                    b.id,
                    b.uuid.to_string(),
                    b.name.clone(),
                    b.firmware_version.clone(),
                    b.location.lat(),
                    b.location.lon(),
                    active,
                    1i64,
                    now,
                    now
                ]
            })
            .collect(),
    )
    .await?;
    copy(
        c,
        "telecells",
        "id, uuid, basestation_id, relay_via_id, lat, lon, firmware_version, status, version, created_at, updated_at",
        &[
            int8.clone(),
            text.clone(),
            int8.clone(),
            int8.clone(),
            float8.clone(),
            float8.clone(),
            text.clone(),
            text.clone(),
            int8.clone(),
            int8.clone(),
            int8.clone(),
        ],
        estate
            .telecells
            .iter()
            .map(|t| {
                row![
                    t.id,
                    t.uuid.to_string(),
                    t.basestation_id,
                    t.relay_via_id,
                    t.location.lat(),
                    t.location.lon(),
                    t.firmware_version.clone(),
                    active,
                    1i64,
                    now,
                    now
                ]
            })
            .collect(),
    )
    .await?;
    copy(
        c,
        "assets",
        "id, reference, lat, lon, zone_id, circuit_id, status, version, created_at, updated_at",
        &[
            int8.clone(),
            text.clone(),
            float8.clone(),
            float8.clone(),
            int8.clone(),
            int8.clone(),
            text.clone(),
            int8.clone(),
            int8.clone(),
            int8.clone(),
        ],
        estate
            .assets
            .iter()
            .map(|a| {
                row![
                    a.id,
                    a.reference.clone(),
                    a.location.lat(),
                    a.location.lon(),
                    a.zone_id,
                    a.circuit_id,
                    active,
                    1i64,
                    now,
                    now
                ]
            })
            .collect(),
    )
    .await?;
    copy(
        c,
        "lamps",
        "id, reference, asset_id, lamp_type_id, telecell_id, status, version, created_at, updated_at",
        &[
            int8.clone(),
            text.clone(),
            int8.clone(),
            int8.clone(),
            int8.clone(),
            text.clone(),
            int8.clone(),
            int8.clone(),
            int8,
        ],
        estate
            .lamps
            .iter()
            .map(|l| {
                row![
                    l.id,
                    l.reference.clone(),
                    l.asset_id,
                    l.lamp_type_id,
                    l.telecell_id,
                    active,
                    1i64,
                    now,
                    now
                ]
            })
            .collect(),
    )
    .await?;
    for table in ["basestations", "telecells", "assets", "lamps"] {
        c.execute(
            &format!(
                "SELECT setval(pg_get_serial_sequence('{table}', 'id'), coalesce((SELECT max(id) FROM {table}), 0) + 1, false)"
            ),
            &[],
        )
        .await
        .map_err(db_error)?;
    }
    Ok(())
}

/// Deletes every record, children before parents, keeping the schema (what the SQLite
/// backend deletes: the fault log and the audit trail stay).
pub(super) async fn clear_all(c: &Client) -> StoreResult<()> {
    c.batch_execute(
        "TRUNCATE energy_days, energy_months, energy_zone_days, energy_zone_months, energy_cursors, \
         tariffs, readings, latest_readings; \
         DELETE FROM lamps; DELETE FROM users; UPDATE telecells SET relay_via_id = NULL; \
         DELETE FROM telecells; DELETE FROM assets; DELETE FROM basestations; DELETE FROM circuits; \
         DELETE FROM zones; DELETE FROM lamp_types;",
    )
    .await
    .map_err(db_error)
}
