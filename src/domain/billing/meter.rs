//! Turns a lamp's consecutive readings into energy per half-hour slot: calculated from the
//! switching and dimming timeline (wattage x dim level x time lit), or measured from the
//! node's cumulative energy counter. An interval longer than the allowed gap accounts for no
//! time, so its slots stay missing rather than silently zero.

use std::str::FromStr;

use chrono::{DateTime, Duration, NaiveDate, Utc};

use super::UNITS_PER_WH;
use super::calendar::{Calendar, SLOT_SECONDS};
use crate::domain::telemetry::Reading;

/// Where a lamp's energy comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MeterMode {
    /// From the lamp type's wattage and the reported on/off and dim level (the "equivalent
    /// meter" of unmetered supplies).
    Calculated,
    /// From the node's own cumulative energy counter.
    Measured,
}

impl FromStr for MeterMode {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.to_ascii_lowercase().as_str() {
            "calculated" => Ok(Self::Calculated),
            "measured" => Ok(Self::Measured),
            other => Err(format!(
                "{other:?} is not a metering mode: use calculated or measured"
            )),
        }
    }
}

/// What a lamp drew over an interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Draw {
    /// A steady draw of watts x dim percent.
    Power(u64),
    /// A known amount of energy (units, whole watt-hours), spread evenly over the interval.
    Energy(u64),
}

/// Part of an interval that falls in one slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotShare {
    pub date: NaiveDate,
    pub slot: u8,
    /// Energy in watt-seconds-percent (see `UNITS_PER_WH`).
    pub units: u64,
    /// Seconds of the slot this share accounts for (0 inside a gap).
    pub covered_s: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meter {
    pub mode: MeterMode,
    pub calendar: Calendar,
    /// Readings further apart than this leave the time between them unaccounted for.
    pub max_gap: Duration,
}

impl Meter {
    /// The energy a lamp used between two of its consecutive readings, by slot.
    pub fn interval(
        &self,
        previous: &Reading,
        current: &Reading,
        wattage_w: u32,
    ) -> Vec<SlotShare> {
        if current.at <= previous.at {
            return Vec::new();
        }
        let covered = current.at - previous.at <= self.max_gap;
        let draw = match self.mode {
            MeterMode::Calculated if !covered => return Vec::new(),
            MeterMode::Calculated => {
                let dim = if previous.lamp_on {
                    u64::from(previous.dim_actual_pct.min(100))
                } else {
                    0
                };
                Draw::Power(u64::from(wattage_w) * dim)
            }
            MeterMode::Measured => {
                // A counter lower than before was reset (node replaced or rebooted): what it
                // reads now is what it counted since.
                let wh = if current.energy_wh >= previous.energy_wh {
                    current.energy_wh - previous.energy_wh
                } else {
                    current.energy_wh
                };
                Draw::Energy(wh.saturating_mul(UNITS_PER_WH))
            }
        };
        self.split(previous.at, current.at, draw, covered)
    }

    /// Cuts `[from, to)` at slot boundaries and shares `draw` out over the pieces; energy
    /// spread over an interval is shared in proportion to time, and the pieces add up to it
    /// exactly.
    pub fn split(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        draw: Draw,
        covered: bool,
    ) -> Vec<SlotShare> {
        let total_s = (to - from).num_seconds().max(0) as u64;
        let mut shares = Vec::with_capacity((total_s / SLOT_SECONDS as u64 + 2) as usize);
        let mut allotted = 0u64;
        let mut elapsed = 0u64;
        let mut at = from;
        while at < to {
            let (date, slot) = self.calendar.slot_of(at);
            let slot_end = self.calendar.slot_start(date, slot) + Duration::seconds(SLOT_SECONDS);
            let piece_end = slot_end.min(to);
            let seconds = (piece_end - at).num_seconds().max(1) as u64;
            elapsed += seconds;
            let units = match draw {
                Draw::Power(rate) => rate * seconds,
                Draw::Energy(total) => {
                    // Shared in whole watt-hours, so rounding each slot keeps every one.
                    let total_wh = total / UNITS_PER_WH;
                    let due_wh = if elapsed >= total_s {
                        total_wh
                    } else {
                        (total_wh as u128 * elapsed as u128 / total_s as u128) as u64
                    };
                    let units = (due_wh - allotted) * UNITS_PER_WH;
                    allotted = due_wh;
                    units
                }
            };
            shares.push(SlotShare {
                date,
                slot: slot as u8,
                units,
                covered_s: if covered { seconds as u16 } else { 0 },
            });
            at = piece_end;
        }
        shares
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::domain::billing::units_to_wh;
    use crate::domain::telemetry::NodeAlarms;

    fn meter(mode: MeterMode) -> Meter {
        Meter {
            mode,
            calendar: Calendar::new("tz", "Europe/London".parse().unwrap()).unwrap(),
            max_gap: Duration::minutes(90),
        }
    }

    fn reading(at: DateTime<Utc>, on: bool, dim: u8, energy_wh: u64) -> Reading {
        Reading {
            at,
            lamp_on: on,
            dim_target_pct: dim,
            dim_actual_pct: dim,
            voltage_v: 230.0,
            current_a: 0.4,
            power_w: 100.0,
            power_factor: 0.95,
            energy_wh,
            burn_hours: 10,
            switch_count: 1,
            supply_loss_count: 0,
            temperature_c: 20.0,
            link_quality_pct: 90,
            alarms: NodeAlarms::default(),
        }
    }

    fn utc(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 28, h, m, 0).unwrap()
    }

    #[test]
    fn calculated_energy_splits_at_slot_boundaries() {
        let shares = meter(MeterMode::Calculated).interval(
            &reading(utc(17, 15), true, 100, 0),
            &reading(utc(17, 45), true, 100, 0),
            100,
        );
        assert_eq!(shares.len(), 2);
        assert_eq!((shares[0].slot, shares[1].slot), (34, 35));
        assert_eq!(units_to_wh(shares[0].units), 25);
        assert_eq!(units_to_wh(shares[1].units), 25);
        assert_eq!(shares[0].covered_s, 900);
    }

    #[test]
    fn dimmed_and_off_lamps_draw_in_proportion() {
        let m = meter(MeterMode::Calculated);
        let half = m.interval(
            &reading(utc(1, 0), true, 50, 0),
            &reading(utc(1, 30), true, 50, 0),
            100,
        );
        assert_eq!(units_to_wh(half[0].units), 25);
        let off = m.interval(
            &reading(utc(12, 0), false, 0, 0),
            &reading(utc(12, 30), false, 0, 0),
            100,
        );
        assert_eq!((off[0].units, off[0].covered_s), (0, 1800));
    }

    #[test]
    fn a_gap_accounts_for_no_time() {
        let m = meter(MeterMode::Calculated);
        let shares = m.interval(
            &reading(utc(1, 0), true, 100, 0),
            &reading(utc(4, 0), true, 100, 0),
            100,
        );
        assert!(shares.is_empty());
        let measured = meter(MeterMode::Measured).interval(
            &reading(utc(1, 0), true, 100, 1_000),
            &reading(utc(4, 0), true, 100, 1_300),
            100,
        );
        assert_eq!(measured.len(), 6);
        assert!(measured.iter().all(|s| s.covered_s == 0));
        let total: u64 = measured.iter().map(|s| s.units).sum();
        assert_eq!(total, 300 * UNITS_PER_WH, "the counter's energy is kept");
    }

    #[test]
    fn measured_energy_is_shared_exactly_and_survives_a_counter_reset() {
        let m = meter(MeterMode::Measured);
        let shares = m.interval(
            &reading(utc(17, 10), true, 100, 5_000),
            &reading(utc(17, 50), true, 100, 5_067),
            100,
        );
        let total: u64 = shares.iter().map(|s| s.units).sum();
        assert_eq!(total, 67 * UNITS_PER_WH);
        assert_eq!(shares[0].units, 33 * UNITS_PER_WH, "shared in whole Wh");
        let reset = m.interval(
            &reading(utc(18, 0), true, 100, 5_067),
            &reading(utc(18, 30), true, 100, 12),
            100,
        );
        assert_eq!(reset[0].units, 12 * UNITS_PER_WH);
    }

    #[test]
    fn modes_parse_with_a_clear_error() {
        assert_eq!("Measured".parse::<MeterMode>(), Ok(MeterMode::Measured));
        assert!(
            "metered"
                .parse::<MeterMode>()
                .unwrap_err()
                .contains("calculated or measured")
        );
    }
}
