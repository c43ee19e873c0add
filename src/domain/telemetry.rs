//! What a telecell reports (after the TALQ LampMonitor attributes), and the physical-range
//! checks every report passes before it is stored.

use chrono::{DateTime, Duration, Utc};

use super::ValidationError;
use super::geo::GeoPoint;

/// Alarms a node raises by itself, independent of its measurements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NodeAlarms {
    pub relay_failure: bool,
    pub driver_failure: bool,
    pub earth_leakage: bool,
    pub tilt_or_impact: bool,
    /// The node's last gasp on losing mains power.
    pub supply_lost: bool,
}

impl NodeAlarms {
    /// The alarms as bits, as the databases store them.
    pub fn bits(self) -> i64 {
        i64::from(self.relay_failure)
            | i64::from(self.driver_failure) << 1
            | i64::from(self.earth_leakage) << 2
            | i64::from(self.tilt_or_impact) << 3
            | i64::from(self.supply_lost) << 4
    }

    pub fn from_bits(bits: i64) -> Self {
        Self {
            relay_failure: bits & 1 != 0,
            driver_failure: bits & 2 != 0,
            earth_leakage: bits & 4 != 0,
            tilt_or_impact: bits & 8 != 0,
            supply_lost: bits & 16 != 0,
        }
    }
}

/// One report from one telecell about the lamp it drives, validated.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    pub at: DateTime<Utc>,
    pub lamp_on: bool,
    /// Commanded and measured dim level, percent of full output.
    pub dim_target_pct: u8,
    pub dim_actual_pct: u8,
    pub voltage_v: f32,
    pub current_a: f32,
    pub power_w: f32,
    pub power_factor: f32,
    /// Cumulative active energy since the node was installed (or last reset).
    pub energy_wh: u64,
    pub burn_hours: u32,
    pub switch_count: u32,
    pub supply_loss_count: u32,
    pub temperature_c: f32,
    pub link_quality_pct: u8,
    pub alarms: NodeAlarms,
}

/// What the fault rules and the meter need to know about the lamp a reading is for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LampProfile {
    pub wattage_w: u32,
    /// Whether the lamp's gear follows dim commands (DALI, 1-10 V) or only switches.
    pub dimmable: bool,
    pub location: Option<GeoPoint>,
}

/// Where a lamp sits in the estate, as the fault engine and the fault store need it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LampContext {
    pub lamp_id: i64,
    pub telecell_id: i64,
    pub basestation_id: i64,
    pub circuit_id: Option<i64>,
    pub zone_id: Option<i64>,
    pub profile: LampProfile,
    /// When the lamp entered the inventory: billing days that ended before it are not its own.
    pub since: DateTime<Utc>,
}

/// A report as it arrives, before its ranges are checked.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RawReading {
    pub at: DateTime<Utc>,
    pub lamp_on: bool,
    pub dim_target_pct: u32,
    pub dim_actual_pct: u32,
    pub voltage_v: f64,
    pub current_a: f64,
    pub power_w: f64,
    pub power_factor: f64,
    pub energy_wh: u64,
    pub burn_hours: u32,
    pub switch_count: u32,
    pub supply_loss_count: u32,
    pub temperature_c: f64,
    pub link_quality_pct: u32,
    pub alarms: NodeAlarms,
}

/// How far ahead of the server's clock a report may be stamped (node clocks drift).
pub const MAX_CLOCK_SKEW: Duration = Duration::minutes(5);
/// The most a street-lighting circuit supplies one node: the ceiling of `power_w`.
pub const MAX_POWER_W: u64 = 4_000;
/// A node's lifetime energy counter cannot pass this: 4 kW around the clock for 57 years.
pub const MAX_ENERGY_WH: u64 = 2_000_000_000;
/// Burn hours cannot pass this: lit around the clock for 57 years.
pub const MAX_BURN_HOURS: u32 = 500_000;

impl RawReading {
    /// Checks every value against what a street-lighting node can physically measure, and its
    /// instant against the window the server keeps readings for (from `oldest` to a few
    /// minutes past `now`): an older report would be removed at the next retention sweep, yet
    /// could raise faults dated before anything the log still holds.
    pub fn validate(
        self,
        now: DateTime<Utc>,
        oldest: DateTime<Utc>,
    ) -> Result<Reading, ValidationError> {
        if self.at > now + MAX_CLOCK_SKEW {
            return Err(ValidationError::new(
                "at",
                format!("{} is in the future (server time {now})", self.at),
            ));
        }
        if self.at < oldest {
            return Err(ValidationError::new(
                "at",
                format!(
                    "{} is older than the readings this server keeps (from {oldest}); \
                     send current readings, or raise --readings-retention-hours",
                    self.at
                ),
            ));
        }
        if self.energy_wh > MAX_ENERGY_WH {
            return Err(ValidationError::new(
                "energy_wh",
                format!(
                    "{} Wh is more than a node can count in its life (at most {MAX_ENERGY_WH})",
                    self.energy_wh
                ),
            ));
        }
        if self.burn_hours > MAX_BURN_HOURS {
            return Err(ValidationError::new(
                "burn_hours",
                format!(
                    "{} h is more than a lamp can burn in its life (at most {MAX_BURN_HOURS})",
                    self.burn_hours
                ),
            ));
        }
        Ok(Reading {
            at: self.at,
            lamp_on: self.lamp_on,
            dim_target_pct: percent("dim_target_pct", self.dim_target_pct)?,
            dim_actual_pct: percent("dim_actual_pct", self.dim_actual_pct)?,
            voltage_v: ranged("voltage_v", self.voltage_v, 0.0, 480.0)?,
            current_a: ranged("current_a", self.current_a, 0.0, 20.0)?,
            power_w: ranged("power_w", self.power_w, 0.0, MAX_POWER_W as f64)?,
            power_factor: ranged("power_factor", self.power_factor, 0.0, 1.0)?,
            energy_wh: self.energy_wh,
            burn_hours: self.burn_hours,
            switch_count: self.switch_count,
            supply_loss_count: self.supply_loss_count,
            temperature_c: ranged("temperature_c", self.temperature_c, -60.0, 150.0)?,
            link_quality_pct: percent("link_quality_pct", self.link_quality_pct)?,
            alarms: self.alarms,
        })
    }
}

impl Reading {
    /// Refuses an energy counter that rose faster than a node can draw since `previous` (a
    /// counter that fell was reset, which the meter handles).
    pub fn energy_step_from(&self, previous: &Reading) -> Result<(), ValidationError> {
        let seconds = (self.at - previous.at).num_seconds().max(0) as u64;
        // Rounded up to the next watt-hour: counters report whole watt-hours.
        let most = (MAX_POWER_W * seconds).div_ceil(3_600) + 1;
        let rose = self.energy_wh.saturating_sub(previous.energy_wh);
        if rose > most {
            return Err(ValidationError::new(
                "energy_wh",
                format!(
                    "rose {rose} Wh in {seconds} s since the last report; a node draws at most \
                     {MAX_POWER_W} W ({most} Wh)"
                ),
            ));
        }
        Ok(())
    }
}

fn percent(field: &str, value: u32) -> Result<u8, ValidationError> {
    u8::try_from(value)
        .ok()
        .filter(|v| *v <= 100)
        .ok_or_else(|| {
            ValidationError::new(field, format!("must be a percentage 0-100 (got {value})"))
        })
}

fn ranged(field: &str, value: f64, min: f64, max: f64) -> Result<f32, ValidationError> {
    if !value.is_finite() || value < min || value > max {
        return Err(ValidationError::new(
            field,
            format!("must be a number in [{min}, {max}] (got {value})"),
        ));
    }
    Ok(value as f32)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn raw(at: DateTime<Utc>) -> RawReading {
        RawReading {
            at,
            lamp_on: true,
            dim_target_pct: 100,
            dim_actual_pct: 100,
            voltage_v: 236.0,
            current_a: 0.17,
            power_w: 36.0,
            power_factor: 0.95,
            energy_wh: 120_000,
            burn_hours: 4_000,
            switch_count: 900,
            supply_loss_count: 2,
            temperature_c: 21.0,
            link_quality_pct: 80,
            alarms: NodeAlarms::default(),
        }
    }

    /// `raw(at)` as validated: a healthy lamp's reading at `at`.
    pub fn reading(at: DateTime<Utc>) -> Reading {
        raw(at).validate(at, DateTime::<Utc>::MIN_UTC).unwrap()
    }

    #[test]
    fn a_sane_reading_passes() {
        let now = Utc::now();
        assert!(raw(now).validate(now, now - Duration::hours(48)).is_ok());
    }

    #[test]
    fn readings_older_than_the_kept_window_are_refused_by_instant() {
        let now = Utc::now();
        let oldest = now - Duration::hours(48);
        let old = raw(oldest - Duration::seconds(1)).validate(now, oldest);
        let error = old.unwrap_err();
        assert_eq!(error.field, "at");
        assert!(
            error.reason.contains("--readings-retention-hours"),
            "{error}"
        );
        assert!(raw(oldest).validate(now, oldest).is_ok());
    }

    #[test]
    fn counters_past_a_lifetime_and_energy_faster_than_a_node_draws_are_refused() {
        let now = Utc::now();
        let oldest = now - Duration::hours(48);
        let field = |r: RawReading| r.validate(now, oldest).unwrap_err().field;
        assert_eq!(
            field(RawReading {
                energy_wh: MAX_ENERGY_WH + 1,
                ..raw(now)
            }),
            "energy_wh"
        );
        assert_eq!(
            field(RawReading {
                burn_hours: MAX_BURN_HOURS + 1,
                ..raw(now)
            }),
            "burn_hours"
        );
        let before = raw(now - Duration::minutes(15))
            .validate(now, oldest)
            .unwrap();
        // 15 minutes at 4 kW is 1,000 Wh: that much is possible, a little more is not.
        let possible = RawReading {
            energy_wh: before.energy_wh + 1_000,
            ..raw(now)
        };
        assert!(
            possible
                .validate(now, oldest)
                .unwrap()
                .energy_step_from(&before)
                .is_ok()
        );
        let impossible = RawReading {
            energy_wh: before.energy_wh + 1_002,
            ..raw(now)
        };
        let error = impossible
            .validate(now, oldest)
            .unwrap()
            .energy_step_from(&before)
            .unwrap_err();
        assert_eq!(error.field, "energy_wh");
        // A counter that fell was reset: not refused here.
        let reset = RawReading {
            energy_wh: 5,
            ..raw(now)
        };
        assert!(
            reset
                .validate(now, oldest)
                .unwrap()
                .energy_step_from(&before)
                .is_ok()
        );
    }

    #[test]
    fn out_of_range_nan_and_future_readings_name_the_field() {
        let now = Utc::now();
        let field = |r: RawReading| {
            r.validate(now, now - Duration::hours(48))
                .unwrap_err()
                .field
        };
        assert_eq!(
            field(RawReading {
                voltage_v: f64::NAN,
                ..raw(now)
            }),
            "voltage_v"
        );
        assert_eq!(
            field(RawReading {
                power_factor: 1.2,
                ..raw(now)
            }),
            "power_factor"
        );
        assert_eq!(
            field(RawReading {
                current_a: -0.1,
                ..raw(now)
            }),
            "current_a"
        );
        assert_eq!(
            field(RawReading {
                dim_actual_pct: 101,
                ..raw(now)
            }),
            "dim_actual_pct"
        );
        assert_eq!(
            field(RawReading {
                temperature_c: f64::INFINITY,
                ..raw(now)
            }),
            "temperature_c"
        );
        assert_eq!(field(raw(now + Duration::hours(1))), "at");
        assert!(
            raw(now + Duration::minutes(2))
                .validate(now, now - Duration::hours(48))
                .is_ok(),
            "small clock skew is tolerated"
        );
    }
}
