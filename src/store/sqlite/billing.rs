//! Billing in SQLite (`BillingStore`): lamp-days with their packed slots, the month and zone rollup rows
//! (moved by the differences `domain/billing/rollup.rs` works out), tariffs, settlement
//! cursors, and the totals queries that read the rollups (whole months never read the days).

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use super::rows::millis;
use super::{SqliteStore, db_error};
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

fn load_day(c: &Connection, date: &str, lamp_id: i64) -> StoreResult<Option<LampDay>> {
    c.prepare_cached(
        "SELECT zone_id, wh, cost_mp, baseline_wh, baseline_cost_mp, covered, unpriced_wh, slots \
         FROM energy_days WHERE day = ?1 AND lamp_id = ?2",
    )
    .map_err(db_error)?
    .query_row(params![date, lamp_id], |row| {
        Ok(LampDay {
            zone_id: row.get(0)?,
            totals: DayTotals {
                wh: row.get(1)?,
                cost_mp: row.get(2)?,
                baseline_wh: row.get(3)?,
                baseline_cost_mp: row.get(4)?,
                covered_slots: row.get(5)?,
                unpriced_wh: row.get(6)?,
            },
            slots: settle::decode(&row.get::<_, Vec<u8>>(7)?),
        })
    })
    .optional()
    .map_err(db_error)
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
    fn finish(self, c: &Connection) -> StoreResult<()> {
        write_rollups(c, self.rollups)
    }
}

fn write_rollups(c: &Connection, rollups: Rollups) -> StoreResult<()> {
    for (table, key, rows) in [
        ("energy_zone_days", "day", rollups.days),
        ("energy_zone_months", "month", rollups.months),
    ] {
        let mut statement = c
                .prepare_cached(&format!(
                    "INSERT INTO {table} ({key}, zone_id, wh, cost_mp, baseline_wh, baseline_cost_mp, covered, unpriced_wh, lamps, lamps_full) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) \
                     ON CONFLICT ({key}, zone_id) DO UPDATE SET wh = wh + excluded.wh, cost_mp = cost_mp + excluded.cost_mp, \
                     baseline_wh = baseline_wh + excluded.baseline_wh, baseline_cost_mp = baseline_cost_mp + excluded.baseline_cost_mp, \
                     covered = covered + excluded.covered, unpriced_wh = unpriced_wh + excluded.unpriced_wh, \
                     lamps = lamps + excluded.lamps, lamps_full = lamps_full + excluded.lamps_full"
                ))
                .map_err(db_error)?;
        for ((period, zone), d) in rows {
            statement
                .execute(params![
                    period,
                    zone,
                    d.wh,
                    d.cost_mp,
                    d.baseline_wh,
                    d.baseline_cost_mp,
                    d.covered,
                    d.unpriced_wh,
                    d.lamps,
                    d.lamps_full
                ])
                .map_err(db_error)?;
        }
    }
    Ok(())
}

/// Settles a lamp-day again and stores it: the day's row, its month row moved by the
/// difference from the old totals, and the zone rollups' share gathered in the pass.
fn resettle(
    c: &Connection,
    pass: &mut Pass<'_>,
    date: NaiveDate,
    lamp_id: i64,
    stored: Option<LampDay>,
    fresh: impl FnOnce() -> LampDay,
    change: impl FnOnce(&mut [SlotEnergy]),
) -> StoreResult<()> {
    let Some((old, day)) = pass.prices.resettle(date, stored, fresh, change) else {
        return Ok(());
    };
    let t = &day.totals;
    c.prepare_cached(
        "INSERT INTO energy_days (day, lamp_id, zone_id, wh, cost_mp, baseline_wh, baseline_cost_mp, covered, unpriced_wh, slots) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) \
         ON CONFLICT (day, lamp_id) DO UPDATE SET wh = excluded.wh, cost_mp = excluded.cost_mp, \
         baseline_wh = excluded.baseline_wh, baseline_cost_mp = excluded.baseline_cost_mp, \
         covered = excluded.covered, unpriced_wh = excluded.unpriced_wh, slots = excluded.slots",
    )
    .map_err(db_error)?
    .execute(params![
        day_key(date),
        lamp_id,
        day.zone_id,
        t.wh,
        t.cost_mp,
        t.baseline_wh,
        t.baseline_cost_mp,
        t.covered_slots,
        t.unpriced_wh,
        settle::encode(&day.slots)
    ])
    .map_err(db_error)?;

    let d = ZoneDelta::of_day(old.as_ref(), t, pass.prices.calendar().slots_in(date));
    pass.rollups.add_day(date, day.zone_id, &d);

    let month = month_key(date);
    let (covered_after, lamp_days): (i64, i64) = c
        .prepare_cached(
            "INSERT INTO energy_months (month, zone_id, lamp_id, wh, cost_mp, baseline_wh, baseline_cost_mp, covered, unpriced_wh, lamp_days) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) \
             ON CONFLICT (month, zone_id, lamp_id) DO UPDATE SET wh = wh + excluded.wh, cost_mp = cost_mp + excluded.cost_mp, \
             baseline_wh = baseline_wh + excluded.baseline_wh, baseline_cost_mp = baseline_cost_mp + excluded.baseline_cost_mp, \
             covered = covered + excluded.covered, unpriced_wh = unpriced_wh + excluded.unpriced_wh, \
             lamp_days = lamp_days + excluded.lamp_days RETURNING covered, lamp_days",
        )
        .map_err(db_error)?
        .query_row(
            params![
                month,
                day.zone_id,
                lamp_id,
                d.wh,
                d.cost_mp,
                d.baseline_wh,
                d.baseline_cost_mp,
                d.covered,
                d.unpriced_wh,
                d.lamps
            ],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .map_err(db_error)?;
    // A lamp's first day in a month (in this zone) makes its month row.
    let made_month_row = old.is_none() && lamp_days == 1;
    let m = ZoneDelta::of_month(
        &d,
        made_month_row,
        covered_after,
        pass.prices.slots_in_month(date),
    );
    if made_month_row {
        let rows: i64 = c
            .prepare_cached("SELECT count(*) FROM energy_months WHERE month = ?1 AND lamp_id = ?2")
            .map_err(db_error)?
            .query_row(params![month, lamp_id], |row| row.get(0))
            .map_err(db_error)?;
        if rows > 1 {
            pass.rollups.moved_lamp(date);
        }
    }
    pass.rollups.add_month(date, day.zone_id, &m);
    Ok(())
}

fn load_book(c: &Connection) -> StoreResult<TariffBook> {
    let mut statement = c
        .prepare_cached(
            "SELECT id, name, time_zone, valid_from, valid_to, bands FROM tariffs ORDER BY valid_from",
        )
        .map_err(db_error)?;
    let rows = statement
        .query_map([], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, String>(3)?,
                row.get::<_, Option<String>>(4)?,
                row.get::<_, String>(5)?,
            ))
        })
        .map_err(db_error)?;
    let mut tariffs = Vec::new();
    for row in rows {
        let (id, name, zone, from, to, bands) = row.map_err(db_error)?;
        tariffs.push(tariff_from_columns(
            id,
            name,
            &zone,
            &from,
            to.as_deref(),
            &bands,
        )?);
    }
    Ok(TariffBook { tariffs })
}

fn fresh_day(calendar: Calendar, lamp: &LampDayEnergy) -> LampDay {
    LampDay::fresh(
        &calendar,
        lamp.date,
        lamp.wattage_w,
        lamp.location,
        lamp.zone_id,
    )
}

impl BillingStore for SqliteStore {
    fn record_energy(&self, calendar: Calendar, settlement: EnergySettlement) -> StoreResult<()> {
        self.write(move |c| {
            let book = load_book(c)?;
            let mut pass = Pass::new(calendar, &book);
            for lamp in &settlement.days {
                let old = load_day(c, &day_key(lamp.date), lamp.lamp_id)?;
                resettle(
                    c,
                    &mut pass,
                    lamp.date,
                    lamp.lamp_id,
                    old,
                    || fresh_day(calendar, lamp),
                    |slots| settle::merge(slots, &lamp.shares),
                )?;
            }
            pass.finish(c)?;
            let mut cursor = c
                .prepare_cached(
                    "INSERT INTO energy_cursors (lamp_id, at) VALUES (?1, ?2) \
                     ON CONFLICT (lamp_id) DO UPDATE SET at = max(at, excluded.at)",
                )
                .map_err(db_error)?;
            for (lamp_id, at) in &settlement.cursors {
                cursor
                    .execute(params![lamp_id, millis(*at)])
                    .map_err(db_error)?;
            }
            Ok(())
        })
    }

    fn close_energy_day(
        &self,
        calendar: Calendar,
        date: NaiveDate,
        lamps: Vec<LampDayEnergy>,
    ) -> StoreResult<u64> {
        self.write(move |c| {
            let day = day_key(date);
            let mut exists = c
                .prepare_cached("SELECT 1 FROM energy_days WHERE day = ?1 AND lamp_id = ?2")
                .map_err(db_error)?;
            let mut present: HashSet<i64> = HashSet::new();
            for lamp in &lamps {
                if exists
                    .exists(params![day, lamp.lamp_id])
                    .map_err(db_error)?
                {
                    present.insert(lamp.lamp_id);
                }
            }
            drop(exists);
            let book = load_book(c)?;
            let mut pass = Pass::new(calendar, &book);
            let mut added = 0;
            for lamp in lamps.iter().filter(|l| !present.contains(&l.lamp_id)) {
                resettle(
                    c,
                    &mut pass,
                    date,
                    lamp.lamp_id,
                    None,
                    || fresh_day(calendar, lamp),
                    |_| {},
                )?;
                added += 1;
            }
            pass.finish(c)?;
            Ok(added)
        })
    }

    /// Drops the slot detail of days before `before` in writer jobs of 20,000 lamp-days,
    /// keeping their totals and rollups.
    fn prune_energy_slots(&self, before: NaiveDate) -> StoreResult<u64> {
        let before = day_key(before);
        let mut pruned = 0;
        loop {
            let day = before.clone();
            let done: usize = self.write(move |c| {
                let changed = c
                    .prepare_cached(
                        "UPDATE energy_days SET slots = x'' WHERE (day, lamp_id) IN \
                         (SELECT day, lamp_id FROM energy_days WHERE day < ?1 AND length(slots) > 0 LIMIT 20000)",
                    )
                    .map_err(db_error)?
                    .execute([&day])
                    .map_err(db_error)?;
                Ok(changed)
            })?;
            pruned += done as u64;
            if done == 0 {
                return Ok(pruned);
            }
        }
    }

    fn energy_cursors(&self) -> StoreResult<Vec<(i64, DateTime<Utc>)>> {
        self.read(|c| {
            let mut statement = c
                .prepare("SELECT lamp_id, at FROM energy_cursors")
                .map_err(db_error)?;
            let rows = statement
                .query_map([], |row| {
                    let ms: i64 = row.get(1)?;
                    Ok((
                        row.get(0)?,
                        Utc.timestamp_millis_opt(ms).single().unwrap_or_default(),
                    ))
                })
                .map_err(db_error)?;
            rows.collect::<Result<_, _>>().map_err(db_error)
        })
    }

    fn unsettled_readings(&self) -> StoreResult<Vec<UnsettledReadings>> {
        self.read(|c| {
            let mut statement = c
                .prepare("SELECT r.lamp_id, c.at, r.at FROM latest_readings r LEFT JOIN energy_cursors c ON c.lamp_id = r.lamp_id WHERE c.at IS NULL OR r.at > c.at")
                .map_err(db_error)?;
            let rows = statement
                .query_map([], |row| {
                    let cursor: Option<i64> = row.get(1)?;
                    Ok(UnsettledReadings {
                        lamp_id: row.get(0)?,
                        cursor: cursor.map(super::rows::from_millis),
                        through: super::rows::from_millis(row.get(2)?),
                    })
                })
                .map_err(db_error)?;
            rows.collect::<Result<_, _>>().map_err(db_error)
        })
    }

    fn lamp_energy(
        &self,
        lamp_id: i64,
        date: NaiveDate,
    ) -> StoreResult<Option<(i64, Vec<SlotEnergy>)>> {
        self.read(|c| Ok(load_day(c, &day_key(date), lamp_id)?.map(|row| (row.zone_id, row.slots))))
    }

    fn tariffs(&self) -> StoreResult<TariffBook> {
        self.read(load_book)
    }

    fn set_tariff(
        &self,
        calendar: Calendar,
        id: Option<i64>,
        terms: NewTariff,
    ) -> StoreResult<Tariff> {
        self.write(move |c| {
            let mut book = load_book(c)?;
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
            let values = params![
                terms.name,
                terms.time_zone.name(),
                day_key(terms.valid_from),
                terms.valid_to.map(day_key),
                bands
            ];
            let id = match id {
                Some(id) => {
                    c.execute(
                        "UPDATE tariffs SET name = ?1, time_zone = ?2, valid_from = ?3, valid_to = ?4, bands = ?5 WHERE id = ?6",
                        rusqlite::params_from_iter(values.iter().copied().chain([&id as &dyn rusqlite::ToSql])),
                    )
                    .map_err(db_error)?;
                    id
                }
                None => {
                    c.execute(
                        "INSERT INTO tariffs (name, time_zone, valid_from, valid_to, bands) VALUES (?1, ?2, ?3, ?4, ?5)",
                        values,
                    )
                    .map_err(db_error)?;
                    c.last_insert_rowid()
                }
            };
            let tariff = Tariff { id, terms };
            book.tariffs.retain(|t| t.id != id);
            book.tariffs.push(tariff.clone());
            for (from, to) in repriced_days(&tariff.terms, previous.as_ref().map(|p| &p.terms)) {
                reprice(c, calendar, &book, from, to)?;
            }
            Ok(tariff)
        })
    }

    fn energy_totals(&self, query: &TotalsQuery, as_of: AsOf) -> StoreResult<Vec<TotalsRow>> {
        self.read(|c| match query.group {
            TotalsGroup::Day => totals_by_day(c, query, as_of),
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
                        ..*query
                    };
                    // A month without data is a row of zeros, so a chart has no holes.
                    let mut row = totals_for(c, &part, as_of)?.pop().unwrap_or_default();
                    row.key = month_key(first);
                    rows.push(row);
                    let Some(next) = month_end.succ_opt() else {
                        break;
                    };
                    first = next;
                }
                Ok(rows)
            }
            _ => totals_for(c, query, as_of),
        })
    }
}

/// Prices again every lamp-day in `[from, to]` (open-ended: to the last stored day).
fn reprice(
    c: &Connection,
    calendar: Calendar,
    book: &TariffBook,
    from: NaiveDate,
    to: Option<NaiveDate>,
) -> StoreResult<()> {
    let to = to.map_or_else(|| "9999-12-31".to_owned(), day_key);
    let keys: Vec<(String, i64)> = c
        .prepare("SELECT day, lamp_id FROM energy_days WHERE day BETWEEN ?1 AND ?2")
        .map_err(db_error)?
        .query_map(params![day_key(from), to], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
        .map_err(db_error)?
        .collect::<Result<_, _>>()
        .map_err(db_error)?;
    let mut pass = Pass::new(calendar, book);
    for (day, lamp_id) in keys {
        let date: NaiveDate = day
            .parse()
            .map_err(|_| StoreError::Database(format!("bad settlement day {day:?}")))?;
        let old = load_day(c, &day, lamp_id)?;
        // Every key was read in this transaction: the day is there.
        resettle(c, &mut pass, date, lamp_id, old, LampDay::default, |_| {})?;
    }
    pass.finish(c)
}

/// Totals by zone or all in one for one finished month come from the zone-month rollup (a
/// row per zone); anything else reads the lamps' rows.
fn totals_for(c: &Connection, query: &TotalsQuery, as_of: AsOf) -> StoreResult<Vec<TotalsRow>> {
    let (first, last) = month_bounds(query.from);
    let one_finished_month = query.from == first && query.to == last && as_of.is_complete(last);
    if one_finished_month && matches!(query.group, TotalsGroup::Zone | TotalsGroup::All) {
        let month = month_key(first);
        let moved = moved_lamps(c, &month)?;
        // A lamp in two zones is one lamp in the total, which only its rows can tell.
        if query.group == TotalsGroup::Zone || moved == 0 || query.zone_id.is_some() {
            let rows = zone_month_rows(c, &month, query.zone_id, as_of.expected(first, last))?;
            return Ok(if query.group == TotalsGroup::Zone {
                rows
            } else {
                vec![TotalsRow::sum(rows)]
            });
        }
    }
    totals_over(c, query, as_of)
}

/// Lamps that moved zone within `month` (each has a month row in two zones).
fn moved_lamps(c: &Connection, month: &str) -> StoreResult<i64> {
    Ok(
        c.prepare_cached("SELECT lamps FROM energy_zone_months WHERE month = ?1 AND zone_id = ?2")
            .map_err(db_error)?
            .query_row(params![month, MOVED_LAMPS], |row| row.get(0))
            .optional()
            .map_err(db_error)?
            .unwrap_or(0),
    )
}

fn zone_month_rows(
    c: &Connection,
    month: &str,
    zone_id: Option<i64>,
    expected: u32,
) -> StoreResult<Vec<TotalsRow>> {
    let zone = if zone_id.is_some() {
        " AND zone_id = ?2"
    } else {
        " AND ?2 = ?2"
    };
    let mut statement = c
        .prepare_cached(&format!(
            "SELECT zone_id, wh, cost_mp, baseline_wh, baseline_cost_mp, covered, unpriced_wh, lamps, lamps - lamps_full \
             FROM energy_zone_months WHERE month = ?1 AND zone_id >= 0{zone} AND lamps > 0 ORDER BY zone_id"
        ))
        .map_err(db_error)?;
    let rows = statement
        .query_map(params![month, zone_id.unwrap_or(0)], |row| {
            let lamps: u32 = row.get(7)?;
            let covered: i64 = row.get(5)?;
            Ok(TotalsRow {
                key: row.get::<_, i64>(0)?.to_string(),
                totals: DayTotals {
                    wh: row.get(1)?,
                    cost_mp: row.get(2)?,
                    baseline_wh: row.get(3)?,
                    baseline_cost_mp: row.get(4)?,
                    covered_slots: u32::try_from(covered).unwrap_or(u32::MAX),
                    unpriced_wh: row.get(6)?,
                },
                lamps,
                lamps_missing: row.get(8)?,
                missing_slots: i64::from(lamps) * i64::from(expected) - covered,
            })
        })
        .map_err(db_error)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(db_error)
}

/// Totals grouped by zone, by lamp, or all in one, from the month rollup for whole months and
/// the lamp-days for the rest. Lamps are counted once per group, with their slots summed
/// across the parts, so a lamp is missing data only if its whole period falls short.
fn totals_over(c: &Connection, query: &TotalsQuery, as_of: AsOf) -> StoreResult<Vec<TotalsRow>> {
    let expected = as_of.expected(query.from, query.to);
    let today = as_of.calendar.date_of(as_of.now);
    let Parts { months, days } = split_period(query.from, query.to, today);
    let zone = if query.zone_id.is_some() {
        " AND zone_id = ?1"
    } else {
        ""
    };
    let columns =
        "zone_id, lamp_id, wh, cost_mp, baseline_wh, baseline_cost_mp, covered, unpriced_wh";
    let mut parts = Vec::new();
    // Whether every part is a single day or month, where each lamp has at most one row per
    // zone; a part spanning several has a row per lamp and day (or month), and counting rows
    // would count lamp-days.
    let mut one_row_per_lamp = true;
    let mut values: Vec<String> = Vec::new();
    let mut bind = |value: String| {
        values.push(value);
        format!("?{}", values.len() + 1)
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
    let sums = "sum(wh) AS wh, sum(cost_mp), sum(baseline_wh), sum(baseline_cost_mp), sum(covered), sum(unpriced_wh)";
    let single_part = parts.len() == 1 && one_row_per_lamp;
    // One row per lamp in all: a single day, or a single month no lamp moved zone in (or
    // one zone of it). Then nothing needs grouping by lamp first.
    let lamp_once = single_part
        && match (&months, query.zone_id) {
            (Some(_), Some(_)) | (None, _) => true,
            (Some((month, _)), None) => moved_lamps(c, month)? == 0,
        };
    let parts = parts.join(" UNION ALL ");
    let sql = match query.group {
        TotalsGroup::Lamp if lamp_once => format!(
            "SELECT lamp_id AS k, wh, cost_mp, baseline_wh, baseline_cost_mp, covered, unpriced_wh, \
             1, covered < {expected} FROM ({parts}) ORDER BY wh DESC, k LIMIT {}",
            query.limit
        ),
        TotalsGroup::All if lamp_once => format!(
            "SELECT 0 AS k, {sums}, count(*), sum(covered < {expected}) FROM ({parts}) GROUP BY 1"
        ),
        // One row per lamp: no second grouping.
        TotalsGroup::Lamp => format!(
            "SELECT lamp_id AS k, {sums}, 1, sum(covered) < {expected} FROM ({parts}) \
             GROUP BY lamp_id ORDER BY wh DESC, k LIMIT {}",
            query.limit
        ),
        // Within one day or one month a lamp has one row per zone, so zones group directly.
        TotalsGroup::Zone if single_part => format!(
            "SELECT zone_id AS k, {sums}, count(*), sum(covered < {expected}) FROM ({parts}) \
             GROUP BY zone_id ORDER BY k"
        ),
        group => {
            let key = if group == TotalsGroup::Zone {
                "zone_id"
            } else {
                "0"
            };
            format!(
                "WITH per_lamp AS (SELECT {key} AS k, lamp_id, sum(wh) AS wh, sum(cost_mp) AS cost_mp, \
                   sum(baseline_wh) AS baseline_wh, sum(baseline_cost_mp) AS baseline_cost_mp, \
                   sum(covered) AS covered, sum(unpriced_wh) AS unpriced_wh FROM ({parts}) GROUP BY k, lamp_id) \
                 SELECT k, {sums}, count(*), sum(covered < {expected}) FROM per_lamp GROUP BY k ORDER BY k"
            )
        }
    };
    let zone_id = query.zone_id.unwrap_or(0);
    let mut statement = c.prepare_cached(&sql).map_err(db_error)?;
    let params = std::iter::once(&zone_id as &dyn rusqlite::ToSql)
        .chain(values.iter().map(|v| v as &dyn rusqlite::ToSql));
    let rows = statement
        .query_map(rusqlite::params_from_iter(params), |row| {
            let lamps: u32 = row.get(7)?;
            let covered: i64 = row.get(5)?;
            Ok(TotalsRow {
                key: row.get::<_, i64>(0)?.to_string(),
                totals: DayTotals {
                    wh: row.get(1)?,
                    cost_mp: row.get(2)?,
                    baseline_wh: row.get(3)?,
                    baseline_cost_mp: row.get(4)?,
                    covered_slots: u32::try_from(covered).unwrap_or(u32::MAX),
                    unpriced_wh: row.get(6)?,
                },
                lamps,
                lamps_missing: row.get(8)?,
                missing_slots: i64::from(lamps) * i64::from(expected) - covered,
            })
        })
        .map_err(db_error)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(db_error)
}

/// Totals by day from the zone-day rollup; a day still in progress is counted from its
/// lamp-days, since "complete" there means complete so far.
fn totals_by_day(c: &Connection, query: &TotalsQuery, as_of: AsOf) -> StoreResult<Vec<TotalsRow>> {
    let zone = if query.zone_id.is_some() {
        " AND zone_id = ?3"
    } else {
        ""
    };
    let mut statement = c
        .prepare_cached(&format!(
            "SELECT day, sum(wh), sum(cost_mp), sum(baseline_wh), sum(baseline_cost_mp), sum(covered), \
             sum(unpriced_wh), sum(lamps), sum(lamps - lamps_full) FROM energy_zone_days \
             WHERE day BETWEEN ?1 AND ?2 AND (?3 = ?3){zone} GROUP BY day ORDER BY day"
        ))
        .map_err(db_error)?;
    let rows = statement
        .query_map(
            params![
                day_key(query.from),
                day_key(query.to),
                query.zone_id.unwrap_or(0)
            ],
            |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    DayTotals {
                        wh: row.get(1)?,
                        cost_mp: row.get(2)?,
                        baseline_wh: row.get(3)?,
                        baseline_cost_mp: row.get(4)?,
                        covered_slots: row.get::<_, i64>(5)?.try_into().unwrap_or(u32::MAX),
                        unpriced_wh: row.get(6)?,
                    },
                    row.get::<_, u32>(7)?,
                    row.get::<_, u32>(8)?,
                ))
            },
        )
        .map_err(db_error)?;
    let mut out = Vec::new();
    let mut stored = HashMap::new();
    for row in rows {
        let (day, totals, lamps, missing) = row.map_err(db_error)?;
        stored.insert(day, (totals, lamps, missing));
    }
    // Every day of the range, a day without data as a row of zeros.
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
            totals_over(c, &single, as_of)?
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
