//! Energy billing as UK half-hourly settlement does it: each lamp's energy in the 48 (46, 50)
//! half-hour slots of a local day, priced by tariff bands, against the unmetered dusk-to-dawn
//! baseline. Energy is counted in exact integer units and money in integer milli-pence.

pub mod calendar;
pub mod ledger;
pub mod meter;
pub mod rollup;
pub mod settle;
pub mod tariff;
pub mod totals;

pub use calendar::{Calendar, SLOT_SECONDS};
pub use meter::{Draw, Meter, MeterMode, SlotShare};
pub use settle::{DayTotals, SlotEnergy};
pub use tariff::{Band, NewTariff, Tariff, TariffBook};

/// Energy in watt-seconds-percent: watts x seconds x dim percent. A lamp's draw at any dim
/// level over any whole number of seconds is an integer in this unit, so energy adds up
/// exactly before it is rounded to watt-hours once per slot.
pub const UNITS_PER_WH: u64 = 3_600 * 100;

/// Watt-hours in `units`, rounded half up.
pub fn units_to_wh(units: u64) -> i64 {
    ((units + UNITS_PER_WH / 2) / UNITS_PER_WH) as i64
}

/// Milli-pence for `wh` at `price` milli-pence per kWh over `seconds` of an 1800-second slot,
/// rounded half up.
pub fn cost_millipence(wh: i64, price: u32, seconds: u32) -> i64 {
    let numerator = wh as i128 * price as i128 * seconds as i128;
    let denominator = 1_000i128 * SLOT_SECONDS as i128;
    ((numerator + denominator / 2) / denominator) as i64
}

#[cfg(test)]
mod fixtures {
    //! Hand-computed settlement of whole days, through the meter, the slots and the tariff.

    use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Utc};

    use super::calendar::Calendar;
    use super::settle::{self, SlotEnergy};
    use super::tariff::{SlotPrice, TariffBook};
    use super::*;
    use crate::domain::geo::GeoPoint;
    use crate::domain::sun::{SunDay, sun_day};
    use crate::domain::telemetry::{NodeAlarms, Reading};

    fn westminster() -> GeoPoint {
        GeoPoint::new(51.4975, -0.1357).unwrap()
    }

    fn london() -> Calendar {
        Calendar::new("tz", "Europe/London".parse().unwrap()).unwrap()
    }

    fn reading(at: DateTime<Utc>, on: bool, dim: u8) -> Reading {
        Reading {
            at,
            lamp_on: on,
            dim_target_pct: dim,
            dim_actual_pct: dim,
            voltage_v: 230.0,
            current_a: 0.4,
            power_w: 100.0,
            power_factor: 0.95,
            energy_wh: 0,
            burn_hours: 0,
            switch_count: 0,
            supply_loss_count: 0,
            temperature_c: 20.0,
            link_quality_pct: 90,
            alarms: NodeAlarms::default(),
        }
    }

    /// A 100 W lamp on a photocell, lit from dusk to dawn, dimmed to 50% from 00:00 to 05:00
    /// local, reporting at every slot boundary and when it switches. Returns its slots.
    fn dusk_to_dawn_day(date: NaiveDate) -> (Vec<SlotEnergy>, DateTime<Utc>, DateTime<Utc>) {
        let calendar = london();
        let meter = Meter {
            mode: MeterMode::Calculated,
            calendar,
            max_gap: Duration::minutes(75),
        };
        let SunDay::Normal { rise, set } = sun_day(date, westminster()) else {
            panic!("London has a sunrise");
        };
        let day = calendar.day(date);
        let dim_until = day.start
            + Duration::hours(5)
            + if calendar.slots_in(date) == 50 {
                Duration::hours(1)
            } else if calendar.slots_in(date) == 46 {
                -Duration::hours(1)
            } else {
                Duration::zero()
            };
        let mut instants: Vec<DateTime<Utc>> = (0..=calendar.slots_in(date))
            .map(|i| day.start + Duration::minutes(30 * i as i64))
            .chain([rise, set])
            .collect();
        instants.sort();
        let state = |at: DateTime<Utc>| {
            let lit = at < rise || at >= set;
            let dim = if at < dim_until { 50 } else { 100 };
            reading(at, lit, if lit { dim } else { 0 })
        };
        let baseline = settle::baseline(&calendar, date, 100, Some(westminster()));
        let mut slots = settle::new_day(&baseline);
        for pair in instants.windows(2) {
            let shares = meter.interval(&state(pair[0]), &state(pair[1]), 100);
            settle::merge(&mut slots, &shares);
        }
        (slots, rise, set)
    }

    /// Wh a 100 W lamp uses in `[from, to)` at `dim` percent, rounded half up.
    fn hand_wh(seconds: i64, dim: i64) -> i64 {
        (100 * dim * seconds + 180_000) / 360_000
    }

    #[test]
    fn a_100_w_lamp_lit_dusk_to_dawn_with_night_dimming_gives_exact_slots() {
        let date = NaiveDate::from_ymd_opt(2026, 11, 28).unwrap();
        let (slots, rise, set) = dusk_to_dawn_day(date);
        assert_eq!(slots.len(), 48);
        // 00:00-05:00 GMT: ten slots at 50% = 25 Wh each.
        for slot in &slots[..10] {
            assert_eq!(slot.wh(), 25);
        }
        // 05:00 until the slot of sunrise: full power.
        let calendar = london();
        let (_, rise_slot) = calendar.slot_of(rise);
        for slot in &slots[10..rise_slot] {
            assert_eq!(slot.wh(), 50);
        }
        let rise_slot_start = calendar.slot_start(date, rise_slot);
        assert_eq!(
            slots[rise_slot].wh(),
            hand_wh((rise - rise_slot_start).num_seconds(), 100)
        );
        let (_, set_slot) = calendar.slot_of(set);
        for slot in &slots[rise_slot + 1..set_slot] {
            assert_eq!(slot.wh(), 0, "dark lamp by day");
        }
        let set_slot_end = calendar.slot_start(date, set_slot + 1);
        assert_eq!(
            slots[set_slot].wh(),
            hand_wh((set_slot_end - set).num_seconds(), 100)
        );
        for slot in &slots[set_slot + 1..] {
            assert_eq!(slot.wh(), 50);
        }
        assert!(slots.iter().all(|s| s.is_complete()));
        // Baseline: full wattage in the dark; so the saving is exactly the dimming.
        let priced = vec![
            SlotPrice {
                parts: vec![(1800, Some(20_000))]
            };
            48
        ];
        let totals = settle::settle(&slots, &priced);
        assert_eq!(totals.baseline_wh - totals.wh, 10 * 25);
        assert_eq!(totals.cost_mp, totals.wh * 20);
        assert_eq!(totals.covered_slots, 48);
    }

    #[test]
    fn dst_change_days_settle_46_and_50_slots() {
        for (date, slots_expected, dimmed) in [("2026-03-29", 46, 8), ("2026-10-25", 50, 12)] {
            let date: NaiveDate = date.parse().unwrap();
            let (slots, _, _) = dusk_to_dawn_day(date);
            assert_eq!(slots.len(), slots_expected, "{date}");
            let half = slots.iter().take_while(|s| s.wh() == 25).count();
            assert_eq!(
                half, dimmed,
                "{date}: 00:00-05:00 local in elapsed half-hours"
            );
            assert!(slots.iter().all(|s| s.is_complete()));
        }
    }

    #[test]
    fn a_tariff_boundary_inside_a_slot_prices_each_part_of_it() {
        let date = NaiveDate::from_ymd_opt(2026, 11, 28).unwrap();
        let (slots, _, _) = dusk_to_dawn_day(date);
        let book = TariffBook {
            tariffs: vec![Tariff {
                id: 1,
                terms: NewTariff {
                    name: "split".into(),
                    time_zone: "Europe/London".parse().unwrap(),
                    valid_from: date,
                    valid_to: Some(date),
                    bands: vec![
                        Band {
                            name: "night".into(),
                            starts_at: NaiveTime::from_hms_opt(0, 0, 0).unwrap(),
                            price_millipence_per_kwh: 10_000,
                        },
                        Band {
                            name: "peak".into(),
                            starts_at: NaiveTime::from_hms_opt(5, 45, 0).unwrap(),
                            price_millipence_per_kwh: 30_000,
                        },
                    ],
                },
            }],
        };
        let calendar = london();
        let prices: Vec<SlotPrice> = (0..48)
            .map(|i| book.slot_price(calendar.slot_start(date, i)))
            .collect();
        // 05:30-06:00: 50 Wh, 15 min at 10 p and 15 min at 30 p: 0.25 p + 0.75 p = 1 p.
        let one = settle::settle(&slots[11..12], &prices[11..12]);
        assert_eq!(one.wh, 50);
        assert_eq!(one.cost_mp, 1_000);
        // Slot 10 is all night rate: 50 Wh x 10 p/kWh = 0.5 p.
        assert_eq!(settle::settle(&slots[10..11], &prices[10..11]).cost_mp, 500);
    }
}
