//! Telemetry in SQLite (`TelemetryStore`): readings into the history (in time order) and
//! each lamp's latest, the engine's batches with the fault changes judged from them (written
//! through `faults.rs`), the lamps behind each telecell, and retention.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::faults::{apply_change, apply_group};
use super::lamp_index::Touched;
use super::rows::{from_millis, millis};
use super::{SqliteStore, db_error};
use crate::domain::geo::GeoPoint;
use crate::domain::inventory::ControlType;
use crate::domain::telemetry::{LampContext, LampProfile, NodeAlarms, Reading};
use crate::store::{LatestReading, RecordOutcome, StoreResult, TelemetryBatch, TelemetryStore};

const CONTEXT_SQL: &str = "SELECT t.uuid, t.id, t.basestation_id, l.id, a.circuit_id, a.zone_id, lt.wattage_w, \
     lt.control_type, a.lat, a.lon, l.created_at \
     FROM telecells t JOIN lamps l ON l.telecell_id = t.id JOIN lamp_types lt ON lt.id = l.lamp_type_id \
     LEFT JOIN assets a ON a.id = l.asset_id \
     WHERE t.status != 'deleted' AND l.status != 'deleted'";

fn context_from_row(row: &Row<'_>) -> rusqlite::Result<(String, LampContext)> {
    let control: String = row.get(7)?;
    let location = match (row.get::<_, Option<f64>>(8)?, row.get::<_, Option<f64>>(9)?) {
        (Some(lat), Some(lon)) => GeoPoint::new(lat, lon).ok(),
        _ => None,
    };
    Ok((
        row.get(0)?,
        LampContext {
            telecell_id: row.get(1)?,
            basestation_id: row.get(2)?,
            lamp_id: row.get(3)?,
            circuit_id: row.get(4)?,
            zone_id: row.get(5)?,
            profile: LampProfile {
                wattage_w: row.get(6)?,
                dimmable: ControlType::parse(&control) != Some(ControlType::Switch),
                location,
            },
            since: from_millis(row.get(10)?),
        },
    ))
}

const READING_COLUMNS: &str = "at, lamp_on, dim_target_pct, dim_actual_pct, voltage_v, current_a, power_w, \
     power_factor, energy_wh, burn_hours, switch_count, supply_loss_count, temperature_c, link_quality_pct, alarms";

/// Reads the reading columns starting at `first`, in `READING_COLUMNS` order.
fn reading_from_row(row: &Row<'_>, first: usize) -> rusqlite::Result<Reading> {
    Ok(Reading {
        at: from_millis(row.get(first)?),
        lamp_on: row.get(first + 1)?,
        dim_target_pct: row.get(first + 2)?,
        dim_actual_pct: row.get(first + 3)?,
        voltage_v: row.get(first + 4)?,
        current_a: row.get(first + 5)?,
        power_w: row.get(first + 6)?,
        power_factor: row.get(first + 7)?,
        energy_wh: row.get::<_, i64>(first + 8)? as u64,
        burn_hours: row.get(first + 9)?,
        switch_count: row.get(first + 10)?,
        supply_loss_count: row.get(first + 11)?,
        temperature_c: row.get(first + 12)?,
        link_quality_pct: row.get(first + 13)?,
        alarms: NodeAlarms::from_bits(row.get(first + 14)?),
    })
}

fn reading_params(lamp_id: i64, r: &Reading) -> [Box<dyn rusqlite::ToSql>; 16] {
    [
        Box::new(lamp_id),
        Box::new(millis(r.at)),
        Box::new(r.lamp_on),
        Box::new(r.dim_target_pct),
        Box::new(r.dim_actual_pct),
        Box::new(f64::from(r.voltage_v)),
        Box::new(f64::from(r.current_a)),
        Box::new(f64::from(r.power_w)),
        Box::new(f64::from(r.power_factor)),
        Box::new(r.energy_wh as i64),
        Box::new(r.burn_hours),
        Box::new(r.switch_count),
        Box::new(r.supply_loss_count),
        Box::new(f64::from(r.temperature_c)),
        Box::new(r.link_quality_pct),
        Box::new(r.alarms.bits()),
    ]
}

/// Readings into history, then the engine's fault changes and group faults, with the
/// events they cause.
fn store_telemetry(
    c: &Connection,
    batch: &TelemetryBatch,
) -> StoreResult<(RecordOutcome, Touched)> {
    let mut outcome = RecordOutcome::default();
    {
        let mut history = c
            .prepare_cached(&format!(
                "INSERT OR IGNORE INTO readings (lamp_id, {READING_COLUMNS}) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)"
            ))
            .map_err(db_error)?;
        // A late reading goes into history only; the lamp's newest is never replaced by an
        // older one, even if the engine's order and the commit's were to differ.
        let mut latest = c
            .prepare_cached(&format!(
                "INSERT INTO latest_readings (lamp_id, {READING_COLUMNS}) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16) \
                 ON CONFLICT (lamp_id) DO UPDATE SET {updates} WHERE excluded.at > latest_readings.at",
                updates = READING_COLUMNS
                    .split(", ")
                    .map(|column| format!("{column} = excluded.{column}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
            .map_err(db_error)?;
        for item in &batch.readings {
            let values = reading_params(item.lamp_id, &item.reading);
            let refs: Vec<&dyn rusqlite::ToSql> = values.iter().map(|v| v.as_ref()).collect();
            if history.execute(refs.as_slice()).map_err(db_error)? == 0 {
                outcome.duplicates += 1;
                continue;
            }
            outcome.stored += 1;
            if item.latest {
                latest.execute(refs.as_slice()).map_err(db_error)?;
            }
        }
    }
    let mut events = Vec::new();
    for change in &batch.changes {
        events.extend(apply_change(c, change)?);
    }
    for group in &batch.groups {
        events.extend(apply_group(c, group)?);
    }
    outcome.events = events;
    Ok((outcome, Touched::Nothing))
}

impl TelemetryStore for SqliteStore {
    fn resolve_telecells(
        &self,
        uuids: &[String],
    ) -> StoreResult<HashMap<String, Vec<LampContext>>> {
        self.read(|c| {
            let mut statement = c
                .prepare_cached(&format!("{CONTEXT_SQL} AND t.uuid = ?1 ORDER BY l.id"))
                .map_err(db_error)?;
            let mut found: HashMap<String, Vec<LampContext>> = HashMap::new();
            for uuid in uuids {
                if found.contains_key(uuid) {
                    continue;
                }
                let rows = statement
                    .query_map([uuid], context_from_row)
                    .map_err(db_error)?;
                for row in rows {
                    let (uuid, context) = row.map_err(db_error)?;
                    found.entry(uuid).or_default().push(context);
                }
            }
            Ok(found)
        })
    }

    fn lamp_contexts(&self) -> StoreResult<Vec<LampContext>> {
        self.read(|c| {
            let mut statement = c
                .prepare(&format!("{CONTEXT_SQL} ORDER BY l.id"))
                .map_err(db_error)?;
            let rows = statement
                .query_map([], context_from_row)
                .map_err(db_error)?;
            rows.map(|row| row.map(|(_, context)| context))
                .collect::<Result<_, _>>()
                .map_err(db_error)
        })
    }

    fn record_telemetry(&self, batch: TelemetryBatch) -> StoreResult<RecordOutcome> {
        let lineage = batch.lineage.clone();
        self.write_in(lineage, move |c| store_telemetry(c, &batch))
    }

    fn queue_telemetry(
        &self,
        batch: TelemetryBatch,
    ) -> StoreResult<crate::store::Queued<RecordOutcome>> {
        let lineage = batch.lineage.clone();
        self.queue_in(lineage, move |c| store_telemetry(c, &batch))
    }

    fn latest_readings(&self) -> StoreResult<Vec<LatestReading>> {
        self.read(|c| {
            let mut statement = c
                .prepare(&format!(
                    "SELECT l.id, r.{columns} FROM lamps l JOIN latest_readings r ON r.lamp_id = l.id \
                     ORDER BY l.id",
                    columns = READING_COLUMNS.replace(", ", ", r.")
                ))
                .map_err(db_error)?;
            let rows = statement
                .query_map([], |row| {
                    Ok(LatestReading {
                        lamp_id: row.get(0)?,
                        reading: reading_from_row(row, 1)?,
                    })
                })
                .map_err(db_error)?;
            rows.collect::<Result<_, _>>().map_err(db_error)
        })
    }

    fn readings_from(
        &self,
        lamps: &[(i64, DateTime<Utc>)],
    ) -> StoreResult<Vec<(i64, Vec<Reading>)>> {
        // History is in time order: one pass from the earliest instant asked for, each row
        // kept if it is at or after its own lamp's.
        let Some(earliest) = lamps.iter().map(|(_, from)| *from).min() else {
            return Ok(Vec::new());
        };
        let wanted: HashMap<i64, i64> = lamps
            .iter()
            .map(|(lamp_id, from)| (*lamp_id, millis(*from)))
            .collect();
        self.read(|c| {
            let mut statement = c
                .prepare_cached(&format!(
                    "SELECT lamp_id, {READING_COLUMNS} FROM readings WHERE at >= ?1 ORDER BY at, lamp_id"
                ))
                .map_err(db_error)?;
            let mut rows = statement.query([millis(earliest)]).map_err(db_error)?;
            let mut found: HashMap<i64, Vec<Reading>> = HashMap::new();
            while let Some(row) = rows.next().map_err(db_error)? {
                let lamp_id: i64 = row.get(0).map_err(db_error)?;
                let at: i64 = row.get(1).map_err(db_error)?;
                if wanted.get(&lamp_id).is_some_and(|from| at >= *from) {
                    found
                        .entry(lamp_id)
                        .or_default()
                        .push(reading_from_row(row, 1).map_err(db_error)?);
                }
            }
            let mut found: Vec<(i64, Vec<Reading>)> = found.into_iter().collect();
            found.sort_unstable_by_key(|(lamp_id, _)| *lamp_id);
            Ok(found)
        })
    }

    fn lamp_status(&self, lamp_id: i64) -> StoreResult<Option<Reading>> {
        self.read(|c| {
            c.prepare_cached(&format!(
                "SELECT {READING_COLUMNS} FROM latest_readings WHERE lamp_id = ?1"
            ))
            .and_then(|mut s| {
                s.query_row([lamp_id], |row| reading_from_row(row, 0))
                    .optional()
            })
            .map_err(db_error)
        })
    }

    /// Deletes readings older than `before` from the front of the history, in writer jobs
    /// of 20,000 rows so ingest is never held up for long. Each lamp's newest reading lives on
    /// in `latest_readings`.
    fn prune_readings(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        const ROWS_PER_JOB: i64 = 20_000;
        let mut deleted = 0;
        loop {
            let count = self.write(move |c| {
                c.prepare_cached(
                    "DELETE FROM readings WHERE (at, lamp_id) IN \
                     (SELECT at, lamp_id FROM readings WHERE at < ?1 ORDER BY at LIMIT ?2)",
                )
                .and_then(|mut s| s.execute(params![millis(before), ROWS_PER_JOB]))
                .map_err(db_error)
            })? as u64;
            deleted += count;
            if count < ROWS_PER_JOB as u64 {
                return Ok(deleted);
            }
        }
    }

    /// Waits for every change queued before: an empty change behind them.
    fn flush(&self) -> StoreResult<()> {
        self.write(|_| Ok(()))
    }
}
