//! Telemetry in PostgreSQL (`TelemetryStore`): a batch of readings in one statement of
//! unnested arrays (a resent report is a conflict, counted as a duplicate), each lamp's
//! newest in `latest_readings`, the engine's fault changes through `faults.rs`, the lamps
//! behind each telecell, and retention.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use tokio_postgres::Row;

use super::Conn as Client;

use super::faults::{apply_change, apply_group};
use super::rows::{from_millis, get, millis};
use super::{PgStore, db_error};
use crate::domain::geo::GeoPoint;
use crate::domain::inventory::ControlType;
use crate::domain::telemetry::{LampContext, LampProfile, NodeAlarms, Reading};
use crate::store::{
    LampReading, LatestReading, Queued, RecordOutcome, StoreResult, TelemetryBatch, TelemetryStore,
};

const CONTEXT_SQL: &str = "SELECT t.uuid, t.id, t.basestation_id, l.id, a.circuit_id, a.zone_id, lt.wattage_w, \
     lt.control_type, a.lat, a.lon, l.created_at \
     FROM telecells t JOIN lamps l ON l.telecell_id = t.id JOIN lamp_types lt ON lt.id = l.lamp_type_id \
     LEFT JOIN assets a ON a.id = l.asset_id \
     WHERE t.status <> 'deleted' AND l.status <> 'deleted'";

fn context_from_row(row: &Row) -> StoreResult<(String, LampContext)> {
    let control: &str = get(row, 7)?;
    let location = match (get::<Option<f64>>(row, 8)?, get::<Option<f64>>(row, 9)?) {
        (Some(lat), Some(lon)) => GeoPoint::new(lat, lon).ok(),
        _ => None,
    };
    let wattage: i64 = get(row, 6)?;
    Ok((
        get(row, 0)?,
        LampContext {
            telecell_id: get(row, 1)?,
            basestation_id: get(row, 2)?,
            lamp_id: get(row, 3)?,
            circuit_id: get(row, 4)?,
            zone_id: get(row, 5)?,
            profile: LampProfile {
                wattage_w: u32::try_from(wattage).unwrap_or(0),
                dimmable: ControlType::parse(control) != Some(ControlType::Switch),
                location,
            },
            since: from_millis(get(row, 10)?),
        },
    ))
}

const READING_COLUMNS: &str = "at, lamp_on, dim_target_pct, dim_actual_pct, voltage_v, current_a, power_w, \
     power_factor, energy_wh, burn_hours, switch_count, supply_loss_count, temperature_c, link_quality_pct, alarms";

/// Reads the reading columns starting at `first`, in `READING_COLUMNS` order.
fn reading_from_row(row: &Row, first: usize) -> StoreResult<Reading> {
    let small = |index: usize| -> StoreResult<u8> {
        Ok(u8::try_from(get::<i16>(row, index)?).unwrap_or(u8::MAX))
    };
    let count = |index: usize| -> StoreResult<u32> {
        Ok(u32::try_from(get::<i64>(row, index)?).unwrap_or(u32::MAX))
    };
    Ok(Reading {
        at: from_millis(get(row, first)?),
        lamp_on: get(row, first + 1)?,
        dim_target_pct: small(first + 2)?,
        dim_actual_pct: small(first + 3)?,
        voltage_v: get(row, first + 4)?,
        current_a: get(row, first + 5)?,
        power_w: get(row, first + 6)?,
        power_factor: get(row, first + 7)?,
        energy_wh: get::<i64>(row, first + 8)?.max(0) as u64,
        burn_hours: count(first + 9)?,
        switch_count: count(first + 10)?,
        supply_loss_count: count(first + 11)?,
        temperature_c: get(row, first + 12)?,
        link_quality_pct: small(first + 13)?,
        alarms: NodeAlarms::from_bits(get(row, first + 14)?),
    })
}

/// Readings column by column, for one statement of unnested arrays.
#[derive(Default)]
struct Columns {
    lamp: Vec<i64>,
    at: Vec<i64>,
    on: Vec<bool>,
    dim_target: Vec<i16>,
    dim_actual: Vec<i16>,
    volts: Vec<f32>,
    amps: Vec<f32>,
    watts: Vec<f32>,
    power_factor: Vec<f32>,
    wh: Vec<i64>,
    burn: Vec<i64>,
    switches: Vec<i64>,
    losses: Vec<i64>,
    temperature: Vec<f32>,
    link: Vec<i16>,
    alarms: Vec<i64>,
}

impl Columns {
    fn push(&mut self, lamp_id: i64, r: &Reading) {
        self.lamp.push(lamp_id);
        self.at.push(millis(r.at));
        self.on.push(r.lamp_on);
        self.dim_target.push(i16::from(r.dim_target_pct));
        self.dim_actual.push(i16::from(r.dim_actual_pct));
        self.volts.push(r.voltage_v);
        self.amps.push(r.current_a);
        self.watts.push(r.power_w);
        self.power_factor.push(r.power_factor);
        self.wh.push(i64::try_from(r.energy_wh).unwrap_or(i64::MAX));
        self.burn.push(i64::from(r.burn_hours));
        self.switches.push(i64::from(r.switch_count));
        self.losses.push(i64::from(r.supply_loss_count));
        self.temperature.push(r.temperature_c);
        self.link.push(i16::from(r.link_quality_pct));
        self.alarms.push(r.alarms.bits());
    }

    /// Inserts into `table`; `tail` finishes the statement (a conflict clause, RETURNING).
    async fn insert(&self, c: &Client, table: &str, tail: &str) -> StoreResult<Vec<Row>> {
        let statement = c
            .statement(&format!(
                "INSERT INTO {table} (lamp_id, {READING_COLUMNS}) SELECT * FROM unnest($1::bigint[], $2::bigint[], \
                 $3::boolean[], $4::smallint[], $5::smallint[], $6::real[], $7::real[], $8::real[], $9::real[], \
                 $10::bigint[], $11::bigint[], $12::bigint[], $13::bigint[], $14::real[], $15::smallint[], $16::bigint[]) {tail}"
            ))
            .await?;
        c.query(
            &statement,
            &[
                &self.lamp,
                &self.at,
                &self.on,
                &self.dim_target,
                &self.dim_actual,
                &self.volts,
                &self.amps,
                &self.watts,
                &self.power_factor,
                &self.wh,
                &self.burn,
                &self.switches,
                &self.losses,
                &self.temperature,
                &self.link,
                &self.alarms,
            ],
        )
        .await
        .map_err(db_error)
    }
}

/// Readings into history and each lamp's newest, then the engine's fault changes and group
/// faults, with the events they cause.
async fn store_telemetry(c: &Client, batch: &TelemetryBatch) -> StoreResult<RecordOutcome> {
    let mut outcome = RecordOutcome::default();
    if !batch.readings.is_empty() {
        let mut history = Columns::default();
        for item in &batch.readings {
            history.push(item.lamp_id, &item.reading);
        }
        let stored: HashSet<(i64, i64)> = history
            .insert(
                c,
                "readings",
                "ON CONFLICT DO NOTHING RETURNING lamp_id, at",
            )
            .await?
            .iter()
            .map(|row| Ok((get(row, 0)?, get(row, 1)?)))
            .collect::<StoreResult<_>>()?;
        outcome.stored = stored.len() as u64;
        outcome.duplicates = batch.readings.len() as u64 - outcome.stored;
        // Each lamp's newest stored reading of the batch; never an older one over a newer.
        let mut newest: HashMap<i64, &LampReading> = HashMap::new();
        for item in batch
            .readings
            .iter()
            .filter(|item| item.latest && stored.contains(&(item.lamp_id, millis(item.reading.at))))
        {
            let entry = newest.entry(item.lamp_id).or_insert(item);
            if item.reading.at > entry.reading.at {
                *entry = item;
            }
        }
        if !newest.is_empty() {
            let mut latest = Columns::default();
            for item in newest.values() {
                latest.push(item.lamp_id, &item.reading);
            }
            let updates = READING_COLUMNS
                .split(", ")
                .map(|column| format!("{column} = excluded.{column}"))
                .collect::<Vec<_>>()
                .join(", ");
            latest
                .insert(
                    c,
                    "latest_readings",
                    &format!(
                        "ON CONFLICT (lamp_id) DO UPDATE SET {updates} WHERE excluded.at > latest_readings.at"
                    ),
                )
                .await?;
        }
    }
    let mut events = Vec::new();
    for change in &batch.changes {
        events.extend(apply_change(c, change).await?);
    }
    for group in &batch.groups {
        events.extend(apply_group(c, group).await?);
    }
    outcome.events = events;
    Ok(outcome)
}

impl TelemetryStore for PgStore {
    fn resolve_telecells(
        &self,
        uuids: &[String],
    ) -> StoreResult<HashMap<String, Vec<LampContext>>> {
        let mut wanted = uuids.to_vec();
        wanted.sort_unstable();
        wanted.dedup();
        self.read(move |c| async move {
            let statement = c
                .statement(&format!("{CONTEXT_SQL} AND t.uuid = ANY($1) ORDER BY l.id"))
                .await?;
            let rows = c.query(&statement, &[&wanted]).await.map_err(db_error)?;
            let mut found: HashMap<String, Vec<LampContext>> = HashMap::new();
            for row in &rows {
                let (uuid, context) = context_from_row(row)?;
                found.entry(uuid).or_default().push(context);
            }
            Ok(found)
        })
    }

    fn lamp_contexts(&self) -> StoreResult<Vec<LampContext>> {
        self.read(|c| async move {
            let rows = c
                .query(&format!("{CONTEXT_SQL} ORDER BY l.id"), &[])
                .await
                .map_err(db_error)?;
            rows.iter()
                .map(|row| context_from_row(row).map(|(_, context)| context))
                .collect()
        })
    }

    fn record_telemetry(&self, batch: TelemetryBatch) -> StoreResult<RecordOutcome> {
        let queued = self.queue_telemetry(batch)?;
        self.wait(queued.committed())
    }

    fn queue_telemetry(&self, batch: TelemetryBatch) -> StoreResult<Queued<RecordOutcome>> {
        let lineage = batch.lineage.clone();
        self.queue_led(lineage, move |c| async move {
            store_telemetry(&c, &batch).await
        })
    }

    fn flush(&self) -> StoreResult<()> {
        self.write(|_| async { Ok(()) })
    }

    fn latest_readings(&self) -> StoreResult<Vec<LatestReading>> {
        self.read(|c| async move {
            let rows = c
                .query(
                    &format!(
                        "SELECT l.id, r.{columns} FROM lamps l JOIN latest_readings r ON r.lamp_id = l.id ORDER BY l.id",
                        columns = READING_COLUMNS.replace(", ", ", r.")
                    ),
                    &[],
                )
                .await
                .map_err(db_error)?;
            rows.iter()
                .map(|row| {
                    Ok(LatestReading {
                        lamp_id: get(row, 0)?,
                        reading: reading_from_row(row, 1)?,
                    })
                })
                .collect()
        })
    }

    fn lamp_status(&self, lamp_id: i64) -> StoreResult<Option<Reading>> {
        self.read(move |c| async move {
            c.query_opt(
                &format!("SELECT {READING_COLUMNS} FROM latest_readings WHERE lamp_id = $1"),
                &[&lamp_id],
            )
            .await
            .map_err(db_error)?
            .map(|row| reading_from_row(&row, 0))
            .transpose()
        })
    }

    /// Deletes readings older than `before` from the front of the history, in writer jobs
    /// of 20,000 rows so ingest is never held up for long.
    fn prune_readings(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        const ROWS_PER_JOB: i64 = 20_000;
        let mut deleted = 0;
        loop {
            let count = self.write_led(move |c| async move {
                c.execute(
                    "DELETE FROM readings WHERE (at, lamp_id) IN \
                     (SELECT at, lamp_id FROM readings WHERE at < $1 ORDER BY at LIMIT $2)",
                    &[&millis(before), &ROWS_PER_JOB],
                )
                .await
                .map_err(db_error)
            })?;
            deleted += count;
            if count < ROWS_PER_JOB as u64 {
                return Ok(deleted);
            }
        }
    }

    fn readings_from(
        &self,
        lamps: &[(i64, DateTime<Utc>)],
    ) -> StoreResult<Vec<(i64, Vec<Reading>)>> {
        let Some(earliest) = lamps.iter().map(|(_, from)| *from).min() else {
            return Ok(Vec::new());
        };
        let wanted: HashMap<i64, i64> = lamps
            .iter()
            .map(|(lamp_id, from)| (*lamp_id, millis(*from)))
            .collect();
        self.read(move |c| async move {
            let rows = c
                .query(
                    &format!(
                        "SELECT lamp_id, {READING_COLUMNS} FROM readings WHERE at >= $1 ORDER BY at, lamp_id"
                    ),
                    &[&millis(earliest)],
                )
                .await
                .map_err(db_error)?;
            let mut found: HashMap<i64, Vec<Reading>> = HashMap::new();
            for row in &rows {
                let lamp_id: i64 = get(row, 0)?;
                let at: i64 = get(row, 1)?;
                if wanted.get(&lamp_id).is_some_and(|from| at >= *from) {
                    found.entry(lamp_id).or_default().push(reading_from_row(row, 1)?);
                }
            }
            let mut found: Vec<(i64, Vec<Reading>)> = found.into_iter().collect();
            found.sort_unstable_by_key(|(lamp_id, _)| *lamp_id);
            Ok(found)
        })
    }
}
