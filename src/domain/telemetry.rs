//! What a telecell reports (after the TALQ LampMonitor attributes), and the physical-range
//! checks every report passes before it is stored.

use chrono::{DateTime, Duration, Utc};

use super::ValidationError;

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

/// Where a lamp sits in the estate, as the fault engine and the fault store need it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LampContext {
    pub lamp_id: i64,
    pub telecell_id: i64,
    pub basestation_id: i64,
    pub circuit_id: Option<i64>,
    pub zone_id: Option<i64>,
    pub profile: crate::domain::faults::rules::LampProfile,
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

impl RawReading {
    /// Checks every value against what a street-lighting node can physically measure.
    pub fn validate(self, now: DateTime<Utc>) -> Result<Reading, ValidationError> {
        if self.at > now + MAX_CLOCK_SKEW {
            return Err(ValidationError::new(
                "at",
                format!("{} is in the future (server time {now})", self.at),
            ));
        }
        Ok(Reading {
            at: self.at,
            lamp_on: self.lamp_on,
            dim_target_pct: percent("dim_target_pct", self.dim_target_pct)?,
            dim_actual_pct: percent("dim_actual_pct", self.dim_actual_pct)?,
            voltage_v: ranged("voltage_v", self.voltage_v, 0.0, 480.0)?,
            current_a: ranged("current_a", self.current_a, 0.0, 20.0)?,
            power_w: ranged("power_w", self.power_w, 0.0, 4_000.0)?,
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

    #[test]
    fn a_sane_reading_passes() {
        let now = Utc::now();
        assert!(raw(now).validate(now).is_ok());
    }

    #[test]
    fn out_of_range_nan_and_future_readings_name_the_field() {
        let now = Utc::now();
        let field = |r: RawReading| r.validate(now).unwrap_err().field;
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
            raw(now + Duration::minutes(2)).validate(now).is_ok(),
            "small clock skew is tolerated"
        );
    }
}
