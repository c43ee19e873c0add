//! Billing in PostgreSQL (`BillingStore`): lamp-days with their packed slots, the month and
//! zone rollup rows (moved by the differences `domain/billing/rollup.rs` works out), tariffs,
//! settlement cursors, and the totals queries that read the rollups.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, NaiveDate};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::Conn as Client;

use super::rows::{from_millis, get, millis};
use super::{PgStore, db_error};
use crate::domain::billing::calendar::{AsOf, Calendar, month_bounds, month_key};
use crate::domain::billing::rollup::{LampDay, MOVED_LAMPS, Prices, Rollups, ZoneDelta, day_key};
use crate::domain::billing::settle::{self, SlotEnergy};
use crate::domain::billing::tariff::repriced_days;
use crate::domain::billing::totals::{Parts, split_period};
use crate::domain::billing::{DayTotals, NewTariff, Tariff, TariffBook};
use crate::domain::inventory::EntityKind;
use crate::store::tariff_rows::{bands_json, tariff_from_columns};
use crate::store::{
    BillingStore, EnergySettlement, LampDayEnergy, StoreError, StoreResult, TotalsGroup,
    TotalsQuery, TotalsRow, UnsettledReadings,
};

fn covered(value: i64) -> u32 {
    u32::try_from(value.max(0)).unwrap_or(u32::MAX)
}

const DAY_COLUMNS: &str = "d.zone_id, d.wh, d.cost_mp, d.baseline_wh, d.baseline_cost_mp, d.covered, d.unpriced_wh, d.slots";

/// A stored lamp-day from `DAY_COLUMNS`, starting at column `first`.
fn lamp_day(row: &Row, first: usize) -> StoreResult<LampDay> {
    Ok(LampDay {
        zone_id: get(row, first)?,
        totals: DayTotals {
            wh: get(row, first + 1)?,
            cost_mp: get(row, first + 2)?,
            baseline_wh: get(row, first + 3)?,
            baseline_cost_mp: get(row, first + 4)?,
            covered_slots: covered(get(row, first + 5)?),
            unpriced_wh: get(row, first + 6)?,
        },
        slots: settle::decode(get(row, first + 7)?),
    })
}

async fn load_day(c: &Client, date: &str, lamp_id: i64) -> StoreResult<Option<LampDay>> {
    let statement = c
        .statement(&format!(
            "SELECT {DAY_COLUMNS} FROM energy_days d WHERE d.day = $1 AND d.lamp_id = $2 FOR UPDATE"
        ))
        .await?;
    let row = c
        .query_opt(&statement, &[&date, &lamp_id])
        .await
        .map_err(db_error)?;
    row.map(|row| lamp_day(&row, 0)).transpose()
}

/// The stored lamp-days among `keys` (date, lamp), locked for the write (in key order, so
/// writers lock them in one order), in one statement.
async fn load_days(
    c: &Client,
    keys: &[(NaiveDate, i64)],
) -> StoreResult<HashMap<(NaiveDate, i64), LampDay>> {
    let (days, lamps): (Vec<String>, Vec<i64>) = keys
        .iter()
        .map(|(date, lamp)| (day_key(*date), *lamp))
        .unzip();
    let statement = c
        .statement(&format!(
            "SELECT d.day, d.lamp_id, {DAY_COLUMNS} FROM energy_days d \
             JOIN unnest($1::text[], $2::bigint[]) AS k (day, lamp_id) \
             ON d.day = k.day AND d.lamp_id = k.lamp_id \
             ORDER BY d.day, d.lamp_id FOR UPDATE OF d"
        ))
        .await?;
    let rows = c
        .query(&statement, &[&days, &lamps])
        .await
        .map_err(db_error)?;
    let mut stored = HashMap::with_capacity(rows.len());
    for row in &rows {
        let day: String = get(row, 0)?;
        let date = NaiveDate::parse_from_str(&day, "%Y-%m-%d")
            .map_err(|e| StoreError::Database(format!("a stored day {day:?} is no date: {e}")))?;
        stored.insert((date, get(row, 1)?), lamp_day(row, 2)?);
    }
    Ok(stored)
}

/// What one write job carries from lamp-day to lamp-day: slot prices and rollup changes.
struct Pass<'a> {
    prices: Prices<'a>,
    rollups: Rollups,
}

impl<'a> Pass<'a> {
    fn new(calendar: Calendar, book: &'a TariffBook) -> Self {
        Self {
            prices: Prices::new(calendar, book),
            rollups: Rollups::default(),
        }
    }

    /// Adds the zone rollups' changes, gathered over the write, once per zone and period.
    async fn finish(self, c: &Client) -> StoreResult<()> {
        for (table, key, rows) in [
            ("energy_zone_days", "day", self.rollups.days),
            ("energy_zone_months", "month", self.rollups.months),
        ] {
            let sql = format!(
                "INSERT INTO {table} ({key}, zone_id, wh, cost_mp, baseline_wh, baseline_cost_mp, covered, unpriced_wh, lamps, lamps_full) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                 ON CONFLICT ({key}, zone_id) DO UPDATE SET wh = {table}.wh + excluded.wh, \
                 cost_mp = {table}.cost_mp + excluded.cost_mp, baseline_wh = {table}.baseline_wh + excluded.baseline_wh, \
                 baseline_cost_mp = {table}.baseline_cost_mp + excluded.baseline_cost_mp, \
                 covered = {table}.covered + excluded.covered, unpriced_wh = {table}.unpriced_wh + excluded.unpriced_wh, \
                 lamps = {table}.lamps + excluded.lamps, lamps_full = {table}.lamps_full + excluded.lamps_full"
            );
            let statement = c.prepare(&sql).await.map_err(db_error)?;
            // In key order, so that servers writing the same rows lock them in one order.
            let mut rows: Vec<_> = rows.into_iter().collect();
            rows.sort_by(|a, b| a.0.cmp(&b.0));
            for ((period, zone), d) in rows {
                c.execute(
                    &statement,
                    &[
                        &period,
                        &zone,
                        &d.wh,
                        &d.cost_mp,
                        &d.baseline_wh,
                        &d.baseline_cost_mp,
                        &d.covered,
                        &d.unpriced_wh,
                        &d.lamps,
                        &d.lamps_full,
                    ],
                )
                .await
                .map_err(db_error)?;
            }
        }
        Ok(())
    }
}

/// A lamp-day settled again, before it is written.
struct Resettled {
    date: NaiveDate,
    lamp_id: i64,
    day: LampDay,
    delta: ZoneDelta,
}

/// Settles a lamp-day again in memory (nothing when it is past slot retention) and adds its
/// share to the zone-day rollups gathered in the pass.
fn resettled(
    pass: &mut Pass<'_>,
    date: NaiveDate,
    lamp_id: i64,
    stored: Option<LampDay>,
    fresh: impl FnOnce() -> LampDay,
    change: impl FnOnce(&mut [SlotEnergy]),
) -> Option<Resettled> {
    let (old, day) = pass.prices.resettle(date, stored, fresh, change)?;
    let delta = ZoneDelta::of_day(
        old.as_ref(),
        &day.totals,
        pass.prices.calendar().slots_in(date),
    );
    pass.rollups.add_day(date, day.zone_id, &delta);
    Some(Resettled {
        date,
        lamp_id,
        day,
        delta,
    })
}

/// Every lamp-day row of a write in one statement (a replace: each row holds the day whole).
const UPSERT_DAYS: &str = "INSERT INTO energy_days (day, lamp_id, zone_id, wh, cost_mp, baseline_wh, baseline_cost_mp, covered, unpriced_wh, slots) \
     SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[], \
     $7::bigint[], $8::bigint[], $9::bigint[], $10::bytea[]) \
     ON CONFLICT (day, lamp_id) DO UPDATE SET wh = excluded.wh, cost_mp = excluded.cost_mp, \
     baseline_wh = excluded.baseline_wh, baseline_cost_mp = excluded.baseline_cost_mp, \
     covered = excluded.covered, unpriced_wh = excluded.unpriced_wh, slots = excluded.slots";

/// The month rows' changes of a write, one row each, added to what the rows hold; each row
/// answers with what it covers and how many lamp-days it counts now.
const UPSERT_MONTHS: &str = "INSERT INTO energy_months (month, zone_id, lamp_id, wh, cost_mp, baseline_wh, baseline_cost_mp, covered, unpriced_wh, lamp_days) \
     SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[], \
     $7::bigint[], $8::bigint[], $9::bigint[], $10::bigint[]) \
     ON CONFLICT (month, zone_id, lamp_id) DO UPDATE SET wh = energy_months.wh + excluded.wh, \
     cost_mp = energy_months.cost_mp + excluded.cost_mp, baseline_wh = energy_months.baseline_wh + excluded.baseline_wh, \
     baseline_cost_mp = energy_months.baseline_cost_mp + excluded.baseline_cost_mp, \
     covered = energy_months.covered + excluded.covered, unpriced_wh = energy_months.unpriced_wh + excluded.unpriced_wh, \
     lamp_days = energy_months.lamp_days + excluded.lamp_days \
     RETURNING month, zone_id, lamp_id, covered, lamp_days";

/// A month row: (month, zone, lamp).
type MonthKey = (String, i64, i64);

/// The month rows' changes of a write as arrays, for `UPSERT_MONTHS`.
#[derive(Default)]
struct MonthColumns {
    month: Vec<String>,
    zone_id: Vec<i64>,
    lamp_id: Vec<i64>,
    wh: Vec<i64>,
    cost_mp: Vec<i64>,
    baseline_wh: Vec<i64>,
    baseline_cost_mp: Vec<i64>,
    covered: Vec<i64>,
    unpriced_wh: Vec<i64>,
    lamp_days: Vec<i64>,
}

impl MonthColumns {
    fn push(&mut self, key: &MonthKey, d: &ZoneDelta) {
        self.month.push(key.0.clone());
        self.zone_id.push(key.1);
        self.lamp_id.push(key.2);
        self.wh.push(d.wh);
        self.cost_mp.push(d.cost_mp);
        self.baseline_wh.push(d.baseline_wh);
        self.baseline_cost_mp.push(d.baseline_cost_mp);
        self.covered.push(d.covered);
        self.unpriced_wh.push(d.unpriced_wh);
        self.lamp_days.push(d.lamps);
    }

    fn params(&self) -> [&(dyn ToSql + Sync); 10] {
        [
            &self.month,
            &self.zone_id,
            &self.lamp_id,
            &self.wh,
            &self.cost_mp,
            &self.baseline_wh,
            &self.baseline_cost_mp,
            &self.covered,
            &self.unpriced_wh,
            &self.lamp_days,
        ]
    }
}

/// The lamp-day rows of a write as arrays, for `UPSERT_DAYS`.
#[derive(Default)]
struct DayColumns {
    day: Vec<String>,
    lamp_id: Vec<i64>,
    zone_id: Vec<i64>,
    wh: Vec<i64>,
    cost_mp: Vec<i64>,
    baseline_wh: Vec<i64>,
    baseline_cost_mp: Vec<i64>,
    covered: Vec<i64>,
    unpriced_wh: Vec<i64>,
    slots: Vec<Vec<u8>>,
}

impl DayColumns {
    fn push(&mut self, r: &Resettled) {
        let t = &r.day.totals;
        self.day.push(day_key(r.date));
        self.lamp_id.push(r.lamp_id);
        self.zone_id.push(r.day.zone_id);
        self.wh.push(t.wh);
        self.cost_mp.push(t.cost_mp);
        self.baseline_wh.push(t.baseline_wh);
        self.baseline_cost_mp.push(t.baseline_cost_mp);
        self.covered.push(i64::from(t.covered_slots));
        self.unpriced_wh.push(t.unpriced_wh);
        self.slots.push(settle::encode(&r.day.slots));
    }

    fn params(&self) -> [&(dyn ToSql + Sync); 10] {
        [
            &self.day,
            &self.lamp_id,
            &self.zone_id,
            &self.wh,
            &self.cost_mp,
            &self.baseline_wh,
            &self.baseline_cost_mp,
            &self.covered,
            &self.unpriced_wh,
            &self.slots,
        ]
    }
}

/// Stores lamp-days settled again: every day's row in one statement, each month row moved
/// by the difference from the old totals (pipelined: sent together, run in order on the one
/// connection), and the zone-month shares gathered in the pass. A job costs a few round
/// trips, not three per lamp-day.
async fn write_resettled(c: &Client, pass: &mut Pass<'_>, all: Vec<Resettled>) -> StoreResult<()> {
    if all.is_empty() {
        return Ok(());
    }
    // The day rows as columns, the last state of each day only (a statement may not upsert
    // one row twice).
    let mut latest: HashMap<(NaiveDate, i64), &Resettled> = HashMap::new();
    for r in &all {
        latest.insert((r.date, r.lamp_id), r);
    }
    let mut columns = DayColumns::default();
    for r in latest.into_values() {
        columns.push(r);
    }
    let days = async {
        let statement = c.statement(UPSERT_DAYS).await?;
        c.execute(&statement, &columns.params())
            .await
            .map_err(db_error)
    };
    // Each month row's change, summed over the write's days of it: one row each, in the
    // order first met, all in one statement.
    let mut order: Vec<MonthKey> = Vec::new();
    let mut changes: HashMap<MonthKey, (NaiveDate, ZoneDelta)> = HashMap::new();
    for r in &all {
        let key = (month_key(r.date), r.day.zone_id, r.lamp_id);
        let change = changes.entry(key.clone()).or_insert_with(|| {
            order.push(key);
            (r.date, ZoneDelta::default())
        });
        change.1.add(&r.delta);
    }
    let mut columns = MonthColumns::default();
    for key in &order {
        columns.push(key, &changes[key].1);
    }
    let months = async {
        let statement = c.statement(UPSERT_MONTHS).await?;
        c.query(&statement, &columns.params())
            .await
            .map_err(db_error)
    };
    let (_, months) = futures::future::try_join(days, months).await?;
    let mut after: HashMap<MonthKey, (i64, i64)> = HashMap::new();
    for row in &months {
        after.insert(
            (get(row, 0)?, get(row, 1)?, get(row, 2)?),
            (get(row, 3)?, get(row, 4)?),
        );
    }
    let mut first_in_month: Vec<(NaiveDate, i64)> = Vec::new();
    for key in &order {
        let (date, change) = &changes[key];
        let Some(&(covered_after, lamp_days)) = after.get(key) else {
            return Err(StoreError::Database(format!(
                "the month row of lamp {} was not written",
                key.2
            )));
        };
        // The row is new when it holds only this write's lamp-days.
        let made_month_row = change.lamps > 0 && lamp_days == change.lamps;
        let m = ZoneDelta::of_month(
            change,
            made_month_row,
            covered_after,
            pass.prices.slots_in_month(*date),
        );
        pass.rollups.add_month(*date, key.1, &m);
        if made_month_row {
            first_in_month.push((*date, key.2));
        }
    }
    // A lamp with month rows in two zones moved during the month: counted when the row that
    // makes it two is made. The rows are counted once, after the write; a row made earlier in
    // the same write saw as many fewer as were made after it.
    let mut made: HashMap<(String, i64), i64> = HashMap::new();
    for (date, lamp_id) in &first_in_month {
        *made.entry((month_key(*date), *lamp_id)).or_default() += 1;
    }
    let keys: Vec<(String, i64)> = made.keys().cloned().collect();
    let counts = futures::future::try_join_all(keys.iter().map(|(month, lamp_id)| async move {
        c.query_one(
            "SELECT count(*) FROM energy_months WHERE month = $1 AND lamp_id = $2",
            &[month, lamp_id],
        )
        .await
    }))
    .await
    .map_err(db_error)?;
    let mut rows_now: HashMap<(String, i64), i64> = HashMap::new();
    for (key, row) in keys.into_iter().zip(&counts) {
        let after_all = get::<i64>(row, 0)?;
        rows_now.insert(key.clone(), after_all - made[&key]);
    }
    for (date, lamp_id) in &first_in_month {
        let Some(rows) = rows_now.get_mut(&(month_key(*date), *lamp_id)) else {
            continue;
        };
        *rows += 1;
        if *rows > 1 {
            pass.rollups.moved_lamp(*date);
        }
    }
    Ok(())
}

/// Settles one lamp-day again and stores it (`resettled`, then `write_resettled`).
async fn resettle(
    c: &Client,
    pass: &mut Pass<'_>,
    date: NaiveDate,
    lamp_id: i64,
    stored: Option<LampDay>,
    fresh: impl FnOnce() -> LampDay,
    change: impl FnOnce(&mut [SlotEnergy]),
) -> StoreResult<()> {
    let one = resettled(pass, date, lamp_id, stored, fresh, change);
    write_resettled(c, pass, one.into_iter().collect()).await
}

async fn load_book(c: &Client) -> StoreResult<TariffBook> {
    let rows = c
        .query(
            "SELECT id, name, time_zone, valid_from, valid_to, bands FROM tariffs ORDER BY valid_from",
            &[],
        )
        .await
        .map_err(db_error)?;
    let mut tariffs = Vec::new();
    for row in &rows {
        tariffs.push(tariff_from_columns(
            get(row, 0)?,
            get(row, 1)?,
            get(row, 2)?,
            get(row, 3)?,
            get(row, 4)?,
            get(row, 5)?,
        )?);
    }
    Ok(TariffBook { tariffs })
}

/// Prices again every lamp-day in `[from, to]` (open-ended: to the last stored day).
async fn reprice(
    c: &Client,
    calendar: Calendar,
    book: &TariffBook,
    from: NaiveDate,
    to: Option<NaiveDate>,
) -> StoreResult<()> {
    let to = to.map_or_else(|| "9999-12-31".to_owned(), day_key);
    let keys = c
        .query(
            "SELECT day, lamp_id FROM energy_days WHERE day BETWEEN $1 AND $2 ORDER BY day, lamp_id",
            &[&day_key(from), &to],
        )
        .await
        .map_err(db_error)?;
    let mut pass = Pass::new(calendar, book);
    for key in &keys {
        let (day, lamp_id): (String, i64) = (get(key, 0)?, get(key, 1)?);
        let date: NaiveDate = day
            .parse()
            .map_err(|_| StoreError::Database(format!("bad settlement day {day:?}")))?;
        let old = load_day(c, &day, lamp_id).await?;
        // Every key was read in this transaction: the day is there.
        resettle(c, &mut pass, date, lamp_id, old, LampDay::default, |_| {}).await?;
    }
    pass.finish(c).await
}

fn totals_row(row: &Row, expected: u32) -> StoreResult<TotalsRow> {
    let lamps: i64 = get(row, 7)?;
    let missing: i64 = get(row, 8)?;
    let covered_slots: i64 = get(row, 5)?;
    let lamps = u32::try_from(lamps.max(0)).unwrap_or(u32::MAX);
    Ok(TotalsRow {
        key: get::<i64>(row, 0)?.to_string(),
        totals: DayTotals {
            wh: get(row, 1)?,
            cost_mp: get(row, 2)?,
            baseline_wh: get(row, 3)?,
            baseline_cost_mp: get(row, 4)?,
            covered_slots: covered(covered_slots),
            unpriced_wh: get(row, 6)?,
        },
        lamps,
        lamps_missing: u32::try_from(missing.max(0)).unwrap_or(u32::MAX),
        missing_slots: i64::from(lamps) * i64::from(expected) - covered_slots,
    })
}

/// Totals by zone or all in one for one finished month come from the zone-month rollup (a
/// row per zone); anything else reads the lamps' rows.
async fn totals_for(c: &Client, query: &TotalsQuery, as_of: AsOf) -> StoreResult<Vec<TotalsRow>> {
    let (first, last) = month_bounds(query.from);
    let one_finished_month = query.from == first && query.to == last && as_of.is_complete(last);
    if one_finished_month && matches!(query.group, TotalsGroup::Zone | TotalsGroup::All) {
        let month = month_key(first);
        let moved = moved_lamps(c, &month).await?;
        // A lamp in two zones is one lamp in the total, which only its rows can tell.
        if query.group == TotalsGroup::Zone || moved == 0 || query.zone_id.is_some() {
            let expected = as_of.expected(first, last);
            let rows = c
                .query(
                    "SELECT zone_id, wh, cost_mp, baseline_wh, baseline_cost_mp, covered, unpriced_wh, lamps, lamps - lamps_full \
                     FROM energy_zone_months WHERE month = $1 AND zone_id >= 0 \
                     AND ($2::bigint IS NULL OR zone_id = $2) AND lamps > 0 ORDER BY zone_id",
                    &[&month, &query.zone_id],
                )
                .await
                .map_err(db_error)?
                .iter()
                .map(|row| totals_row(row, expected))
                .collect::<StoreResult<Vec<_>>>()?;
            return Ok(if query.group == TotalsGroup::Zone {
                rows
            } else {
                vec![TotalsRow::sum(rows)]
            });
        }
    }
    totals_over(c, query, as_of).await
}

/// Lamps that moved zone within `month` (each has a month row in two zones).
async fn moved_lamps(c: &Client, month: &str) -> StoreResult<i64> {
    Ok(c.query_opt(
        "SELECT lamps FROM energy_zone_months WHERE month = $1 AND zone_id = $2",
        &[&month, &MOVED_LAMPS],
    )
    .await
    .map_err(db_error)?
    .map(|row| get(&row, 0))
    .transpose()?
    .unwrap_or(0))
}

/// Totals grouped by zone, by lamp, or all in one, from the month rows for whole months and
/// the lamp-days for the rest; lamps are counted once per group.
async fn totals_over(c: &Client, query: &TotalsQuery, as_of: AsOf) -> StoreResult<Vec<TotalsRow>> {
    let expected = as_of.expected(query.from, query.to);
    let today = as_of.calendar.date_of(as_of.now);
    let Parts { months, days } = split_period(query.from, query.to, today);
    let mut values: Vec<String> = Vec::new();
    let zone = if query.zone_id.is_some() {
        " AND zone_id = $1"
    } else {
        " AND $1::bigint IS NULL"
    };
    let columns =
        "zone_id, lamp_id, wh, cost_mp, baseline_wh, baseline_cost_mp, covered, unpriced_wh";
    let mut parts = Vec::new();
    let mut one_row_per_lamp = true;
    let mut bind = |value: String| {
        values.push(value);
        format!("${}", values.len() + 1)
    };
    if let Some((first, last)) = &months {
        one_row_per_lamp &= first == last;
        let (a, b) = (bind(first.clone()), bind(last.clone()));
        parts.push(format!(
            "SELECT {columns} FROM energy_months WHERE month BETWEEN {a} AND {b}{zone}"
        ));
    }
    for (first, last) in days {
        one_row_per_lamp &= first == last;
        let (a, b) = (bind(day_key(first)), bind(day_key(last)));
        parts.push(format!(
            "SELECT {columns} FROM energy_days WHERE day BETWEEN {a} AND {b}{zone}"
        ));
    }
    if parts.is_empty() {
        return Ok(Vec::new());
    }
    let sums = "sum(wh)::bigint AS wh, sum(cost_mp)::bigint, sum(baseline_wh)::bigint, \
                sum(baseline_cost_mp)::bigint, sum(covered)::bigint, sum(unpriced_wh)::bigint";
    let single_part = parts.len() == 1 && one_row_per_lamp;
    // One row per lamp in all: a single day, or a single month no lamp moved zone in (or
    // one zone of it). Then nothing needs grouping by lamp first (at 1M lamps, the
    // difference between 0.1 s and 1 s for the month to date).
    let lamp_once = single_part
        && match (&months, query.zone_id) {
            (Some(_), Some(_)) | (None, _) => true,
            (Some((month, _)), None) => moved_lamps(c, month).await? == 0,
        };
    let parts = parts.join(" UNION ALL ");
    let sql = match query.group {
        TotalsGroup::Lamp if lamp_once => format!(
            "SELECT lamp_id AS k, wh, cost_mp, baseline_wh, baseline_cost_mp, covered, unpriced_wh, \
             1::bigint, (covered < {expected})::int::bigint FROM ({parts}) p ORDER BY wh DESC, k LIMIT {}",
            query.limit
        ),
        TotalsGroup::All if lamp_once => format!(
            "SELECT 0::bigint AS k, {sums}, count(*), count(*) FILTER (WHERE covered < {expected}) FROM ({parts}) p GROUP BY 1"
        ),
        TotalsGroup::Lamp => format!(
            "SELECT lamp_id AS k, {sums}, 1::bigint, (sum(covered) < {expected})::int::bigint FROM ({parts}) p \
             GROUP BY lamp_id ORDER BY wh DESC, k LIMIT {}",
            query.limit
        ),
        TotalsGroup::Zone if single_part => format!(
            "SELECT zone_id AS k, {sums}, count(*), count(*) FILTER (WHERE covered < {expected}) FROM ({parts}) p \
             GROUP BY zone_id ORDER BY k"
        ),
        group => {
            let key = if group == TotalsGroup::Zone {
                "zone_id"
            } else {
                "0::bigint"
            };
            format!(
                "WITH per_lamp AS (SELECT {key} AS k, lamp_id, sum(wh) AS wh, sum(cost_mp) AS cost_mp, \
                   sum(baseline_wh) AS baseline_wh, sum(baseline_cost_mp) AS baseline_cost_mp, \
                   sum(covered) AS covered, sum(unpriced_wh) AS unpriced_wh FROM ({parts}) p GROUP BY 1, lamp_id) \
                 SELECT k, {sums}, count(*), count(*) FILTER (WHERE covered < {expected}) FROM per_lamp GROUP BY k ORDER BY k"
            )
        }
    };
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&query.zone_id];
    params.extend(values.iter().map(|v| v as &(dyn ToSql + Sync)));
    let rows = c.query(&sql, &params).await.map_err(db_error)?;
    rows.iter().map(|row| totals_row(row, expected)).collect()
}

/// Totals by day from the zone-day rollup; a day still in progress is counted from its
/// lamp-days, since "complete" there means complete so far.
async fn totals_by_day(
    c: &Client,
    query: &TotalsQuery,
    as_of: AsOf,
) -> StoreResult<Vec<TotalsRow>> {
    let rows = c
        .query(
            "SELECT day, sum(wh)::bigint, sum(cost_mp)::bigint, sum(baseline_wh)::bigint, sum(baseline_cost_mp)::bigint, \
             sum(covered)::bigint, sum(unpriced_wh)::bigint, sum(lamps)::bigint, sum(lamps - lamps_full)::bigint \
             FROM energy_zone_days WHERE day BETWEEN $1 AND $2 AND ($3::bigint IS NULL OR zone_id = $3) \
             GROUP BY day ORDER BY day",
            &[&day_key(query.from), &day_key(query.to), &query.zone_id],
        )
        .await
        .map_err(db_error)?;
    let mut stored = HashMap::new();
    for row in &rows {
        let day: String = get(row, 0)?;
        let lamps: i64 = get(row, 7)?;
        let missing: i64 = get(row, 8)?;
        stored.insert(
            day,
            (
                DayTotals {
                    wh: get(row, 1)?,
                    cost_mp: get(row, 2)?,
                    baseline_wh: get(row, 3)?,
                    baseline_cost_mp: get(row, 4)?,
                    covered_slots: covered(get(row, 5)?),
                    unpriced_wh: get(row, 6)?,
                },
                u32::try_from(lamps.max(0)).unwrap_or(u32::MAX),
                u32::try_from(missing.max(0)).unwrap_or(u32::MAX),
            ),
        );
    }
    // Every day of the range, a day without data as a row of zeros.
    let mut out = Vec::new();
    let mut date = query.from;
    while date <= query.to {
        let day = day_key(date);
        let (totals, lamps, missing) = stored.remove(&day).unwrap_or_default();
        let due = as_of.expected(date, date);
        let lamps_missing = if !as_of.is_complete(date) {
            // A day in progress: count lamps short of what is due so far.
            let single = TotalsQuery {
                from: date,
                to: date,
                group: TotalsGroup::All,
                ..*query
            };
            totals_over(c, &single, as_of)
                .await?
                .first()
                .map_or(0, |r| r.lamps_missing)
        } else {
            missing
        };
        out.push(TotalsRow {
            key: day,
            missing_slots: i64::from(lamps) * i64::from(due) - i64::from(totals.covered_slots),
            totals,
            lamps,
            lamps_missing,
        });
        let Some(next) = date.succ_opt() else { break };
        date = next;
    }
    Ok(out)
}

impl BillingStore for PgStore {
    fn record_energy(&self, calendar: Calendar, settlement: EnergySettlement) -> StoreResult<()> {
        self.write_settling(move |c| async move {
            let book = load_book(&c).await?;
            let mut pass = Pass::new(calendar, &book);
            // In key order, so that servers settling the same days lock them in one order.
            let mut days: Vec<&LampDayEnergy> = settlement.days.iter().collect();
            days.sort_by_key(|d| (d.date, d.lamp_id));
            // Every stored day read at once, then settled in memory, then written.
            let keys: Vec<(NaiveDate, i64)> = days.iter().map(|d| (d.date, d.lamp_id)).collect();
            let stored = load_days(&c, &keys).await?;
            let mut all = Vec::with_capacity(days.len());
            // A day named twice settles the second time from the first's result.
            let mut settled: HashMap<(NaiveDate, i64), LampDay> = HashMap::new();
            for lamp in days {
                let key = (lamp.date, lamp.lamp_id);
                let old = settled.remove(&key).or_else(|| stored.get(&key).cloned());
                let next = resettled(
                    &mut pass,
                    lamp.date,
                    lamp.lamp_id,
                    old,
                    || LampDay::fresh(&calendar, lamp.date, lamp.wattage_w, lamp.location, lamp.zone_id),
                    |slots| settle::merge(slots, &lamp.shares),
                );
                if let Some(next) = next {
                    settled.insert(key, next.day.clone());
                    all.push(next);
                }
            }
            write_resettled(&c, &mut pass, all).await?;
            pass.finish(&c).await?;
            // One row per lamp: a statement may not upsert the same row twice.
            let mut cursors: HashMap<i64, i64> = HashMap::new();
            for (lamp, at) in &settlement.cursors {
                let at = millis(*at);
                cursors.entry(*lamp).and_modify(|a| *a = (*a).max(at)).or_insert(at);
            }
            let (lamps, ats): (Vec<i64>, Vec<i64>) = cursors.into_iter().unzip();
            c.execute(
                "INSERT INTO energy_cursors (lamp_id, at) SELECT * FROM unnest($1::bigint[], $2::bigint[]) \
                 ON CONFLICT (lamp_id) DO UPDATE SET at = GREATEST(energy_cursors.at, excluded.at)",
                &[&lamps, &ats],
            )
            .await
            .map_err(db_error)?;
            Ok(())
        })
    }

    fn close_energy_day(
        &self,
        calendar: Calendar,
        date: NaiveDate,
        lamps: Vec<LampDayEnergy>,
    ) -> StoreResult<u64> {
        self.write_settling(move |c| async move {
            let day = day_key(date);
            let present: HashSet<i64> = c
                .query("SELECT lamp_id FROM energy_days WHERE day = $1", &[&day])
                .await
                .map_err(db_error)?
                .iter()
                .map(|row| get(row, 0))
                .collect::<StoreResult<_>>()?;
            let book = load_book(&c).await?;
            let mut pass = Pass::new(calendar, &book);
            let mut added = 0;
            for lamp in lamps.iter().filter(|l| !present.contains(&l.lamp_id)) {
                resettle(
                    &c,
                    &mut pass,
                    date,
                    lamp.lamp_id,
                    None,
                    || {
                        LampDay::fresh(
                            &calendar,
                            lamp.date,
                            lamp.wattage_w,
                            lamp.location,
                            lamp.zone_id,
                        )
                    },
                    |_| {},
                )
                .await?;
                added += 1;
            }
            pass.finish(&c).await?;
            Ok(added)
        })
    }

    fn energy_cursors(&self) -> StoreResult<Vec<(i64, DateTime<chrono::Utc>)>> {
        self.read(|c| async move {
            let rows = c
                .query("SELECT lamp_id, at FROM energy_cursors", &[])
                .await
                .map_err(db_error)?;
            rows.iter()
                .map(|row| Ok((get(row, 0)?, from_millis(get(row, 1)?))))
                .collect()
        })
    }

    fn unsettled_readings(&self) -> StoreResult<Vec<UnsettledReadings>> {
        self.read(|c| async move {
            let rows = c
                .query(
                    "SELECT r.lamp_id, c.at, r.at FROM latest_readings r LEFT JOIN energy_cursors c ON c.lamp_id = r.lamp_id WHERE c.at IS NULL OR r.at > c.at",
                    &[],
                )
                .await
                .map_err(db_error)?;
            rows.iter()
                .map(|row| {
                    Ok(UnsettledReadings {
                        lamp_id: get(row, 0)?,
                        cursor: get::<Option<i64>>(row, 1)?.map(from_millis),
                        through: from_millis(get(row, 2)?),
                    })
                })
                .collect()
        })
    }

    /// Drops the slot detail of days before `before` in writer jobs of 20,000 lamp-days,
    /// keeping their totals and rollups.
    fn prune_energy_slots(&self, before: NaiveDate) -> StoreResult<u64> {
        let before = day_key(before);
        let mut pruned = 0;
        loop {
            let day = before.clone();
            let done = self.write_settling(move |c| async move {
                c.execute(
                    "UPDATE energy_days SET slots = ''::bytea WHERE (day, lamp_id) IN \
                     (SELECT day, lamp_id FROM energy_days WHERE day < $1 AND octet_length(slots) > 0 LIMIT 20000)",
                    &[&day],
                )
                .await
                .map_err(db_error)
            })?;
            pruned += done;
            if done == 0 {
                return Ok(pruned);
            }
        }
    }

    fn energy_totals(&self, query: &TotalsQuery, as_of: AsOf) -> StoreResult<Vec<TotalsRow>> {
        let query = *query;
        self.read(move |c| async move {
            match query.group {
                TotalsGroup::Day => totals_by_day(&c, &query, as_of).await,
                TotalsGroup::Month => {
                    let mut rows = Vec::new();
                    let mut first = query.from;
                    while first <= query.to {
                        let (_, month_end) = month_bounds(first);
                        let last = month_end.min(query.to);
                        let part = TotalsQuery {
                            from: first,
                            to: last,
                            group: TotalsGroup::All,
                            ..query
                        };
                        // A month without data is a row of zeros, so a chart has no holes.
                        let mut row = totals_for(&c, &part, as_of)
                            .await?
                            .pop()
                            .unwrap_or_default();
                        row.key = month_key(first);
                        rows.push(row);
                        let Some(next) = month_end.succ_opt() else {
                            break;
                        };
                        first = next;
                    }
                    Ok(rows)
                }
                _ => totals_for(&c, &query, as_of).await,
            }
        })
    }

    fn lamp_energy(
        &self,
        lamp_id: i64,
        date: NaiveDate,
    ) -> StoreResult<Option<(i64, Vec<SlotEnergy>)>> {
        self.read(move |c| async move {
            let row = c
                .query_opt(
                    "SELECT zone_id, slots FROM energy_days WHERE day = $1 AND lamp_id = $2",
                    &[&day_key(date), &lamp_id],
                )
                .await
                .map_err(db_error)?;
            row.map(|row| Ok((get(&row, 0)?, settle::decode(get(&row, 1)?))))
                .transpose()
        })
    }

    fn tariffs(&self) -> StoreResult<TariffBook> {
        self.read(|c| async move { load_book(&c).await })
    }

    fn set_tariff(
        &self,
        calendar: Calendar,
        id: Option<i64>,
        terms: NewTariff,
    ) -> StoreResult<Tariff> {
        self.write(move |c| async move {
            // One tariff change at a time across servers: the overlap check reads them all.
            c.execute("LOCK TABLE tariffs IN SHARE ROW EXCLUSIVE MODE", &[])
                .await
                .map_err(db_error)?;
            let mut book = load_book(&c).await?;
            let previous = match id {
                Some(id) => Some(
                    book.tariffs
                        .iter()
                        .find(|t| t.id == id)
                        .cloned()
                        .ok_or(StoreError::NotFound {
                            kind: EntityKind::Tariff,
                            id,
                        })?,
                ),
                None => None,
            };
            book.check_overlap(&terms, id)?;
            let bands = bands_json(&terms.bands)?;
            let (zone, from, to) = (
                terms.time_zone.name().to_owned(),
                day_key(terms.valid_from),
                terms.valid_to.map(day_key),
            );
            let id = match id {
                Some(id) => {
                    c.execute(
                        "UPDATE tariffs SET name = $1, time_zone = $2, valid_from = $3, valid_to = $4, bands = $5 WHERE id = $6",
                        &[&terms.name, &zone, &from, &to, &bands, &id],
                    )
                    .await
                    .map_err(db_error)?;
                    id
                }
                None => get(
                    &c.query_one(
                        "INSERT INTO tariffs (name, time_zone, valid_from, valid_to, bands) VALUES ($1, $2, $3, $4, $5) RETURNING id",
                        &[&terms.name, &zone, &from, &to, &bands],
                    )
                    .await
                    .map_err(db_error)?,
                    0,
                )?,
            };
            let tariff = Tariff { id, terms };
            book.tariffs.retain(|t| t.id != id);
            book.tariffs.push(tariff.clone());
            for (from, to) in repriced_days(&tariff.terms, previous.as_ref().map(|p| &p.terms)) {
                reprice(&c, calendar, &book, from, to).await?;
            }
            Ok(tariff)
        })
    }
}
