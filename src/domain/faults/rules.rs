//! Detection: which fault conditions one telecell reading shows for one lamp, given its lamp
//! type, its position (for the sun) and the reading before it. Pure; thresholds are config.

use chrono::Duration;

use super::FaultType;
use crate::domain::sun;
use crate::domain::telemetry::{LampProfile, Reading};

/// Thresholds and timings of the fault engine. `Default` gives the values domain.md cites.
#[derive(Debug, Clone, PartialEq)]
pub struct Thresholds {
    /// UK supply: 230 V -6% / +10%.
    pub voltage_low_v: f32,
    pub voltage_high_v: f32,
    /// Below this the mains is taken as lost and electrical checks are skipped.
    pub supply_loss_v: f32,
    /// Power and current may differ from the lamp type's rating (times dim level) by this share.
    pub power_tolerance: f32,
    pub current_tolerance: f32,
    /// A lamp drawing less than this share of its expected power is not lit.
    pub unlit_power_share: f32,
    pub power_factor_min: f32,
    /// Measured and commanded dim level may differ by this many percentage points.
    pub dimming_tolerance_pct: u8,
    pub over_temperature_c: f32,
    /// Switch-ons between two readings that make a lamp CYCLING.
    pub cycling_switches: u32,
    /// The fastest a lamp can really switch on again (gear restrikes take seconds to
    /// minutes). A switch counter that moves faster than this was reset or replaced (a new
    /// node, a restarted simulator): a discontinuity, not cycling.
    pub min_seconds_per_switch: i64,
    /// Around sunrise and sunset photocells may lag: no day/night judgement within this margin.
    pub twilight_margin: Duration,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            voltage_low_v: 216.2,
            voltage_high_v: 253.0,
            supply_loss_v: 100.0,
            power_tolerance: 0.25,
            current_tolerance: 0.30,
            unlit_power_share: 0.10,
            power_factor_min: 0.5,
            dimming_tolerance_pct: 10,
            over_temperature_c: 85.0,
            cycling_switches: 3,
            min_seconds_per_switch: 10,
            twilight_margin: Duration::minutes(30),
        }
    }
}

/// The fault conditions present in `reading`, in a stable order.
pub fn conditions(
    reading: &Reading,
    previous: Option<&Reading>,
    lamp: &LampProfile,
    t: &Thresholds,
) -> Vec<FaultType> {
    let mut found = Vec::new();
    let alarms = reading.alarms;
    for (raised, fault) in [
        (alarms.relay_failure, FaultType::RelayFailure),
        (alarms.driver_failure, FaultType::DriverFailure),
        (alarms.earth_leakage, FaultType::EarthLeakage),
        (alarms.tilt_or_impact, FaultType::TiltOrImpact),
    ] {
        if raised {
            found.push(fault);
        }
    }
    if reading.temperature_c > t.over_temperature_c {
        found.push(FaultType::OverTemperature);
    }
    if alarms.supply_lost || reading.voltage_v < t.supply_loss_v {
        // Without mains every electrical reading is meaningless: report only the loss.
        found.push(FaultType::SupplyLoss);
        found.sort();
        return found;
    }
    if reading.voltage_v < t.voltage_low_v {
        found.push(FaultType::VoltageLow);
    } else if reading.voltage_v > t.voltage_high_v {
        found.push(FaultType::VoltageHigh);
    }

    let dim_share = if lamp.dimmable {
        f32::from(reading.dim_actual_pct) / 100.0
    } else {
        1.0
    };
    let expected_w = lamp.wattage_w as f32 * dim_share;
    let lit = reading.power_w >= expected_w * t.unlit_power_share && reading.power_w > 0.0;
    let phase = lamp
        .location
        .map(|point| sun::phase(reading.at, point, t.twilight_margin));
    let (day, night) = (
        phase == Some(sun::Phase::Day),
        phase == Some(sun::Phase::Night),
    );

    if reading.lamp_on && night && !lit && expected_w > 0.0 {
        found.push(FaultType::LampFailure);
    }
    if day && lit {
        found.push(FaultType::DayBurner);
    }
    if lit && expected_w > 0.0 {
        if reading.power_w > expected_w * (1.0 + t.power_tolerance) {
            found.push(FaultType::PowerHigh);
        } else if reading.power_w < expected_w * (1.0 - t.power_tolerance) {
            found.push(FaultType::PowerLow);
        }
        let apparent = reading.voltage_v * reading.power_factor.max(0.01);
        let expected_a = expected_w / apparent;
        if reading.current_a > expected_a * (1.0 + t.current_tolerance) {
            found.push(FaultType::CurrentHigh);
        } else if reading.current_a < expected_a * (1.0 - t.current_tolerance) {
            found.push(FaultType::CurrentLow);
        }
        if reading.power_factor < t.power_factor_min {
            found.push(FaultType::PowerFactorLow);
        }
    }
    if lamp.dimmable
        && reading.lamp_on
        && reading.dim_target_pct.abs_diff(reading.dim_actual_pct) > t.dimming_tolerance_pct
    {
        found.push(FaultType::DimmingFailure);
    }
    if let Some(before) = previous.filter(|p| p.at < reading.at) {
        let switches = reading.switch_count.saturating_sub(before.switch_count);
        let possible = (reading.at - before.at).num_seconds() / t.min_seconds_per_switch.max(1);
        if switches >= t.cycling_switches && i64::from(switches) <= possible {
            found.push(FaultType::Cycling);
        }
    }
    found.sort();
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::geo::GeoPoint;
    use crate::domain::telemetry::tests::raw;
    use chrono::{DateTime, Utc};

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    const NIGHT: &str = "2026-11-28T22:00:00Z";
    const NOON: &str = "2026-11-28T12:00:00Z";

    fn lamp() -> LampProfile {
        LampProfile {
            wattage_w: 36,
            dimmable: true,
            location: Some(GeoPoint::new(51.5, -0.13).unwrap()),
        }
    }

    fn reading(when: &str) -> Reading {
        let instant = at(when);
        raw(instant)
            .validate(instant, instant - chrono::Duration::hours(48))
            .unwrap()
    }

    fn check(r: &Reading) -> Vec<FaultType> {
        conditions(r, None, &lamp(), &Thresholds::default())
    }

    #[test]
    fn a_healthy_lamp_at_night_shows_nothing() {
        assert_eq!(check(&reading(NIGHT)), vec![]);
    }

    #[test]
    fn lamp_failure_only_when_it_should_be_lit() {
        let dark = Reading {
            power_w: 0.5,
            current_a: 0.0,
            ..reading(NIGHT)
        };
        assert_eq!(check(&dark), vec![FaultType::LampFailure]);
        let off_by_day = Reading {
            lamp_on: false,
            power_w: 0.0,
            current_a: 0.0,
            ..reading(NOON)
        };
        assert_eq!(check(&off_by_day), vec![]);
        let commanded_off = Reading {
            lamp_on: false,
            power_w: 0.0,
            current_a: 0.0,
            ..reading(NIGHT)
        };
        assert_eq!(
            check(&commanded_off),
            vec![],
            "switched off by schedule is not a failure"
        );
    }

    #[test]
    fn day_burner_uses_the_sun_at_the_lamp() {
        assert_eq!(check(&reading(NOON)), vec![FaultType::DayBurner]);
        // Noon UTC is 23:00 in Melbourne: the same reading there is a lamp doing its job.
        let melbourne = LampProfile {
            location: Some(GeoPoint::new(-37.81, 144.96).unwrap()),
            ..lamp()
        };
        assert_eq!(
            conditions(&reading(NOON), None, &melbourne, &Thresholds::default()),
            vec![]
        );
        // Twenty minutes after sunset the photocell may lag: not judged.
        let dusk = Reading {
            power_w: 0.0,
            current_a: 0.0,
            ..reading("2026-11-28T16:15:00Z")
        };
        assert_eq!(check(&dusk), vec![]);
    }

    #[test]
    fn voltage_thresholds_and_supply_loss() {
        assert_eq!(
            check(&Reading {
                voltage_v: 210.0,
                ..reading(NIGHT)
            }),
            vec![FaultType::VoltageLow]
        );
        assert_eq!(
            check(&Reading {
                voltage_v: 256.0,
                ..reading(NIGHT)
            }),
            vec![FaultType::VoltageHigh]
        );
        let lost = Reading {
            voltage_v: 0.0,
            power_w: 0.0,
            current_a: 0.0,
            ..reading(NIGHT)
        };
        assert_eq!(
            check(&lost),
            vec![FaultType::SupplyLoss],
            "no lamp failure while the mains is gone"
        );
        let gasp = Reading {
            alarms: crate::domain::telemetry::NodeAlarms {
                supply_lost: true,
                ..Default::default()
            },
            ..reading(NIGHT)
        };
        assert_eq!(check(&gasp), vec![FaultType::SupplyLoss]);
    }

    #[test]
    fn power_current_and_power_factor_against_the_rating() {
        // A lamp drawing too much power draws too much current too; both are reported.
        assert_eq!(
            check(&Reading {
                power_w: 50.0,
                current_a: 0.22,
                ..reading(NIGHT)
            }),
            vec![FaultType::CurrentHigh, FaultType::PowerHigh]
        );
        assert_eq!(
            check(&Reading {
                power_w: 20.0,
                current_a: 0.09,
                ..reading(NIGHT)
            }),
            vec![FaultType::CurrentLow, FaultType::PowerLow]
        );
        // Power high at a normal current (a meter fault, or a poor power factor elsewhere).
        assert_eq!(
            check(&Reading {
                power_w: 50.0,
                ..reading(NIGHT)
            }),
            vec![FaultType::PowerHigh]
        );
        assert_eq!(
            check(&Reading {
                current_a: 0.4,
                ..reading(NIGHT)
            }),
            vec![FaultType::CurrentHigh]
        );
        assert_eq!(
            check(&Reading {
                current_a: 0.05,
                ..reading(NIGHT)
            }),
            vec![FaultType::CurrentLow]
        );
        let poor_pf = Reading {
            power_factor: 0.4,
            current_a: 0.38,
            ..reading(NIGHT)
        };
        assert_eq!(check(&poor_pf), vec![FaultType::PowerFactorLow]);
    }

    #[test]
    fn dimmed_lamps_are_judged_at_their_dim_level() {
        let half = Reading {
            dim_target_pct: 50,
            dim_actual_pct: 50,
            power_w: 18.0,
            current_a: 0.08,
            ..reading(NIGHT)
        };
        assert_eq!(check(&half), vec![]);
        let stuck = Reading {
            dim_target_pct: 50,
            dim_actual_pct: 100,
            ..reading(NIGHT)
        };
        assert_eq!(check(&stuck), vec![FaultType::DimmingFailure]);
        let switch_only = LampProfile {
            dimmable: false,
            ..lamp()
        };
        assert_eq!(
            conditions(&stuck, None, &switch_only, &Thresholds::default()),
            vec![]
        );
    }

    #[test]
    fn node_alarms_and_temperature() {
        let alarms = crate::domain::telemetry::NodeAlarms {
            relay_failure: true,
            driver_failure: true,
            earth_leakage: true,
            tilt_or_impact: true,
            supply_lost: false,
        };
        let r = Reading {
            alarms,
            temperature_c: 90.0,
            ..reading(NIGHT)
        };
        assert_eq!(
            check(&r),
            vec![
                FaultType::RelayFailure,
                FaultType::DriverFailure,
                FaultType::OverTemperature,
                FaultType::EarthLeakage,
                FaultType::TiltOrImpact
            ]
        );
    }

    #[test]
    fn cycling_from_switch_counts_between_readings() {
        let before = reading("2026-11-28T21:45:00Z");
        let now = Reading {
            switch_count: before.switch_count + 4,
            ..reading(NIGHT)
        };
        assert_eq!(
            conditions(&now, Some(&before), &lamp(), &Thresholds::default()),
            vec![FaultType::Cycling]
        );
        let once = Reading {
            switch_count: before.switch_count + 1,
            ..reading(NIGHT)
        };
        assert_eq!(
            conditions(&once, Some(&before), &lamp(), &Thresholds::default()),
            vec![]
        );
    }

    #[test]
    fn a_counter_that_jumps_further_than_a_lamp_can_switch_is_not_cycling() {
        // A node replaced, or a restarted simulator: thousands of switches in 15 minutes.
        let before = reading("2026-11-28T21:45:00Z");
        let jumped = Reading {
            switch_count: before.switch_count + 2_500,
            ..reading(NIGHT)
        };
        assert_eq!(
            conditions(&jumped, Some(&before), &lamp(), &Thresholds::default()),
            vec![]
        );
        // A counter that went back (reset) is not cycling either.
        let reset = Reading {
            switch_count: 0,
            ..reading(NIGHT)
        };
        assert!(conditions(&reset, Some(&before), &lamp(), &Thresholds::default()).is_empty());
        // Four in a minute is still possible.
        let minute_before = reading("2026-11-28T21:59:00Z");
        let fast = Reading {
            switch_count: minute_before.switch_count + 4,
            ..reading(NIGHT)
        };
        assert_eq!(
            conditions(&fast, Some(&minute_before), &lamp(), &Thresholds::default()),
            vec![FaultType::Cycling]
        );
    }
}
