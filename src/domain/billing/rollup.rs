//! Settling a stored lamp-day again (new shares merged, or priced again after a tariff
//! change) and keeping the rollups in step by difference: what the lamp-day's new totals
//! add to its zone-day, to the lamp's month row and to its zone-month. A backend loads the
//! lamp-day, asks here, and writes the day and the differences.

use std::collections::HashMap;

use chrono::{Duration, NaiveDate};

use super::calendar::{Calendar, month_bounds, month_key};
use super::settle::{self, DayTotals, SlotEnergy};
use super::tariff::{SlotPrice, TariffBook};
use crate::domain::geo::GeoPoint;

/// The zone id of the zone-month row that counts lamps moved between zones in the month.
pub const MOVED_LAMPS: i64 = -1;

/// A lamp-day as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LampDay {
    /// The zone the lamp had when the day was first settled (0: none).
    pub zone_id: i64,
    pub totals: DayTotals,
    /// Empty once the day's half-hour detail is past its retention.
    pub slots: Vec<SlotEnergy>,
}

impl LampDay {
    /// A day not settled before: every slot missing, with the lamp's baseline per slot.
    pub fn fresh(
        calendar: &Calendar,
        date: NaiveDate,
        wattage_w: u32,
        location: Option<GeoPoint>,
        zone_id: Option<i64>,
    ) -> Self {
        let baseline = settle::baseline(calendar, date, wattage_w, location);
        Self {
            zone_id: zone_id.unwrap_or(0),
            totals: DayTotals::default(),
            slots: settle::new_day(&baseline),
        }
    }
}

/// Slot prices per day, worked out once per write and shared by every lamp.
pub struct Prices<'a> {
    calendar: Calendar,
    book: &'a TariffBook,
    days: HashMap<NaiveDate, Vec<SlotPrice>>,
}

impl<'a> Prices<'a> {
    pub fn new(calendar: Calendar, book: &'a TariffBook) -> Self {
        Self {
            calendar,
            book,
            days: HashMap::new(),
        }
    }

    pub fn calendar(&self) -> &Calendar {
        &self.calendar
    }

    /// The slots of the month `date` is in: a lamp whose month row covers them all reported
    /// the whole month.
    pub fn slots_in_month(&self, date: NaiveDate) -> i64 {
        let (first, last) = month_bounds(date);
        self.calendar
            .expected_slots(first, last, self.calendar.day(last).end, Duration::zero())
            as i64
    }

    fn day(&mut self, date: NaiveDate) -> &[SlotPrice] {
        let (calendar, book) = (self.calendar, self.book);
        self.days.entry(date).or_insert_with(|| {
            (0..calendar.slots_in(date))
                .map(|index| book.slot_price(calendar.slot_start(date, index)))
                .collect()
        })
    }

    /// Settles a lamp-day afresh from its slots after `change` (new shares merged, or none
    /// to price again): the totals it had (None: a new day) and the day as it becomes. None
    /// when the day's slots are past their retention: its totals stand as settled.
    pub fn resettle(
        &mut self,
        date: NaiveDate,
        stored: Option<LampDay>,
        fresh: impl FnOnce() -> LampDay,
        change: impl FnOnce(&mut [SlotEnergy]),
    ) -> Option<(Option<DayTotals>, LampDay)> {
        if stored.as_ref().is_some_and(|day| day.slots.is_empty()) {
            return None;
        }
        let (old, mut day) = match stored {
            Some(day) => (Some(day.totals), day),
            None => (None, fresh()),
        };
        change(&mut day.slots);
        day.totals = settle::settle(&day.slots, self.day(date));
        Some((old, day))
    }
}

/// A change to a zone's rollup row: the sums, and lamps counted in or out.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ZoneDelta {
    pub wh: i64,
    pub cost_mp: i64,
    pub baseline_wh: i64,
    pub baseline_cost_mp: i64,
    pub covered: i64,
    pub unpriced_wh: i64,
    /// Lamps newly counted: a lamp's first row in the period.
    pub lamps: i64,
    /// Lamps that now (+1) or no longer (-1) have data for every slot of the period.
    pub lamps_full: i64,
}

impl ZoneDelta {
    pub fn add(&mut self, other: &ZoneDelta) {
        self.wh += other.wh;
        self.cost_mp += other.cost_mp;
        self.baseline_wh += other.baseline_wh;
        self.baseline_cost_mp += other.baseline_cost_mp;
        self.covered += other.covered;
        self.unpriced_wh += other.unpriced_wh;
        self.lamps += other.lamps;
        self.lamps_full += other.lamps_full;
    }

    /// What a lamp-day going from `old` (None: new) to `new` adds to its zone-day.
    pub fn of_day(old: Option<&DayTotals>, new: &DayTotals, slots_in_day: usize) -> Self {
        let before = old.copied().unwrap_or_default();
        let full = |totals: &DayTotals| totals.covered_slots as usize >= slots_in_day;
        Self {
            wh: new.wh - before.wh,
            cost_mp: new.cost_mp - before.cost_mp,
            baseline_wh: new.baseline_wh - before.baseline_wh,
            baseline_cost_mp: new.baseline_cost_mp - before.baseline_cost_mp,
            covered: i64::from(new.covered_slots) - i64::from(before.covered_slots),
            unpriced_wh: new.unpriced_wh - before.unpriced_wh,
            lamps: i64::from(old.is_none()),
            lamps_full: i64::from(full(new)) - i64::from(old.is_some_and(full)),
        }
    }

    /// What the same change adds to the zone-month, given whether it made the lamp's month
    /// row (its first day in the month, in this zone) and the slots that row covers now.
    pub fn of_month(
        day: &ZoneDelta,
        made_month_row: bool,
        covered_after: i64,
        slots_in_month: i64,
    ) -> Self {
        let full = |covered: i64| covered >= slots_in_month;
        Self {
            lamps: i64::from(made_month_row),
            lamps_full: i64::from(full(covered_after))
                - i64::from(full(covered_after - day.covered)),
            ..*day
        }
    }
}

/// Zone rollup changes gathered over one write and applied once per zone-day and
/// zone-month, keyed by period ("2026-12-02", "2026-12") and zone.
#[derive(Debug, Default)]
pub struct Rollups {
    pub days: HashMap<(String, i64), ZoneDelta>,
    pub months: HashMap<(String, i64), ZoneDelta>,
}

impl Rollups {
    pub fn add_day(&mut self, date: NaiveDate, zone_id: i64, delta: &ZoneDelta) {
        self.days
            .entry((day_key(date), zone_id))
            .or_default()
            .add(delta);
    }

    pub fn add_month(&mut self, date: NaiveDate, zone_id: i64, delta: &ZoneDelta) {
        self.months
            .entry((month_key(date), zone_id))
            .or_default()
            .add(delta);
    }

    /// A lamp with rows in two zones this month: counted once in the month's total.
    pub fn moved_lamp(&mut self, date: NaiveDate) {
        self.months
            .entry((month_key(date), MOVED_LAMPS))
            .or_default()
            .lamps += 1;
    }
}

/// A settlement day as stored: "2026-12-02".
pub fn day_key(date: NaiveDate) -> String {
    date.format("%Y-%m-%d").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn totals(wh: i64, covered_slots: u32) -> DayTotals {
        DayTotals {
            wh,
            cost_mp: wh * 30,
            covered_slots,
            ..Default::default()
        }
    }

    #[test]
    fn a_day_counts_its_lamp_once_and_full_only_when_every_slot_is_covered() {
        let first = ZoneDelta::of_day(None, &totals(100, 20), 48);
        assert_eq!((first.wh, first.lamps, first.lamps_full), (100, 1, 0));
        let completed = ZoneDelta::of_day(Some(&totals(100, 20)), &totals(250, 48), 48);
        assert_eq!(
            (
                completed.wh,
                completed.covered,
                completed.lamps,
                completed.lamps_full
            ),
            (150, 28, 0, 1)
        );
        // Priced again with nothing new: the money moves, nothing is counted twice.
        let repriced = ZoneDelta::of_day(
            Some(&totals(250, 48)),
            &DayTotals {
                cost_mp: 9_000,
                ..totals(250, 48)
            },
            48,
        );
        assert_eq!(
            (
                repriced.wh,
                repriced.cost_mp,
                repriced.lamps,
                repriced.lamps_full
            ),
            (0, 1_500, 0, 0)
        );
    }

    #[test]
    fn a_month_is_full_once_its_row_covers_every_slot_of_the_month() {
        let day = ZoneDelta::of_day(Some(&totals(0, 40)), &totals(10, 48), 48);
        let month = ZoneDelta::of_month(&day, false, 1_488, 1_488);
        assert_eq!((month.lamps, month.lamps_full, month.wh), (0, 1, 10));
        let not_yet = ZoneDelta::of_month(&day, true, 1_000, 1_488);
        assert_eq!((not_yet.lamps, not_yet.lamps_full), (1, 0));
    }

    #[test]
    fn a_day_past_its_slot_retention_is_left_as_settled() {
        let book = TariffBook::default();
        let calendar = Calendar::new("tz", "Europe/London".parse().unwrap()).unwrap();
        let mut prices = Prices::new(calendar, &book);
        let date = NaiveDate::from_ymd_opt(2026, 3, 29).unwrap();
        let pruned = LampDay {
            zone_id: 1,
            totals: totals(500, 46),
            slots: Vec::new(),
        };
        assert_eq!(
            prices.resettle(date, Some(pruned), || unreachable!(), |_| {}),
            None
        );
        let (old, day) = prices
            .resettle(
                date,
                None,
                || LampDay::fresh(&calendar, date, 70, None, Some(3)),
                |_| {},
            )
            .unwrap();
        assert_eq!(old, None);
        assert_eq!(
            (day.zone_id, day.slots.len()),
            (3, 46),
            "the spring-forward day has 46 slots"
        );
    }
}
