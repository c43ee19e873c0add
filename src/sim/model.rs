//! The simulated field, pure and deterministic: given the estate, a seed and a clock, what
//! each telecell reports. Lamps switch by the sun at their own position, dim to 50% from
//! 00:00 to 05:00 local time, meter energy from power, and fall into faults at the rates of
//! `FaultRates`.

use chrono::{DateTime, Duration, Timelike, Utc};
use chrono_tz::Tz;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::domain::geo::GeoPoint;
use crate::domain::sun;
use crate::domain::telemetry::{NodeAlarms, Reading};

/// One lamp as the simulator needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct SimLamp {
    pub lamp_id: i64,
    pub telecell_uuid: String,
    pub basestation_id: i64,
    pub circuit_id: Option<i64>,
    pub wattage_w: u32,
    pub dimmable: bool,
    pub location: GeoPoint,
}

/// Expected new faults per lamp (or per circuit, per basestation) per day.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultRates {
    pub lamp_failure: f64,
    pub day_burner: f64,
    pub cycling: f64,
    pub node_silent: f64,
    pub voltage_sag: f64,
    pub circuit_supply_loss: f64,
    pub basestation_outage: f64,
}

impl Default for FaultRates {
    /// About 5% of lamps fail a year; other alarms are a few times as common (domain.md).
    fn default() -> Self {
        Self {
            lamp_failure: 0.05 / 365.0,
            day_burner: 0.02 / 365.0,
            cycling: 0.02 / 365.0,
            node_silent: 0.05 / 365.0,
            voltage_sag: 0.10 / 365.0,
            circuit_supply_loss: 0.5 / 365.0,
            basestation_outage: 1.0 / 365.0,
        }
    }
}

impl FaultRates {
    pub fn scaled(&self, factor: f64) -> Self {
        Self {
            lamp_failure: self.lamp_failure * factor,
            day_burner: self.day_burner * factor,
            cycling: self.cycling * factor,
            node_silent: self.node_silent * factor,
            voltage_sag: self.voltage_sag * factor,
            circuit_supply_loss: self.circuit_supply_loss * factor,
            basestation_outage: self.basestation_outage * factor,
        }
    }
}

/// A node's cumulative counters when the simulation starts. They depend on the lamp and the
/// start time only, never on the run's seed, so a simulator restarted over the same estate
/// carries on from about where the last run left the counters (a dusk-to-dawn lamp switches
/// on once a night and burns about 12 hours) instead of jumping to random values that the
/// fault engine would read as a lamp switching thousands of times.
struct Counters {
    energy_wh: f64,
    burn_seconds: f64,
    switch_count: u32,
    supply_losses: u32,
}

impl Counters {
    fn at(lamp: &SimLamp, start: DateTime<Utc>) -> Self {
        // The lamp's own installation age, 0.5 to 10 years before 2025, from its id.
        let spread = (lamp.lamp_id.unsigned_abs().wrapping_mul(2_654_435_761) % 3_468) as f64;
        let installed = DateTime::<Utc>::from_timestamp(1_735_689_600, 0).unwrap_or(start)
            - Duration::days(182 + spread as i64);
        let nights = (start - installed).num_days().max(0) as f64;
        Self {
            energy_wh: nights * 12.0 * f64::from(lamp.wattage_w),
            burn_seconds: nights * 12.0 * 3600.0,
            switch_count: nights as u32,
            supply_losses: (nights / 365.0) as u32,
        }
    }
}

/// What is wrong with a lamp, until when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Condition {
    Healthy,
    Failed,
    DayBurner,
    Cycling,
    Silent,
    VoltageSag,
}

#[derive(Debug, Clone)]
struct LampState {
    next_report: DateTime<Utc>,
    energy_wh: f64,
    burn_seconds: f64,
    switch_count: u32,
    supply_losses: u32,
    was_on: bool,
    condition: Condition,
    condition_until: DateTime<Utc>,
    last_update: DateTime<Utc>,
}

pub struct Field {
    lamps: Vec<SimLamp>,
    state: Vec<LampState>,
    rates: FaultRates,
    interval: Duration,
    zone: Tz,
    rng: ChaCha8Rng,
    /// Circuits without supply, and basestations down, until when.
    circuits_down: std::collections::HashMap<i64, DateTime<Utc>>,
    basestations_down: std::collections::HashMap<i64, DateTime<Utc>>,
    last_step: DateTime<Utc>,
}

impl Field {
    pub fn new(
        lamps: Vec<SimLamp>,
        rates: FaultRates,
        interval: Duration,
        zone: Tz,
        seed: u64,
        start: DateTime<Utc>,
    ) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let interval_ms = interval.num_milliseconds().max(1);
        let state = lamps
            .iter()
            .map(|lamp| {
                let counters = Counters::at(lamp, start);
                LampState {
                    // Spread first reports over one interval, as real nodes drift apart.
                    next_report: start + Duration::milliseconds(rng.random_range(0..interval_ms)),
                    energy_wh: counters.energy_wh,
                    burn_seconds: counters.burn_seconds,
                    switch_count: counters.switch_count,
                    supply_losses: counters.supply_losses,
                    was_on: false,
                    condition: Condition::Healthy,
                    condition_until: start,
                    last_update: start,
                }
            })
            .collect();
        Self {
            lamps,
            state,
            rates,
            interval,
            zone,
            rng,
            circuits_down: Default::default(),
            basestations_down: Default::default(),
            last_step: start,
        }
    }

    pub fn lamp_count(&self) -> usize {
        self.lamps.len()
    }

    /// Advances the field to `now` and returns the reports due by then, each with the
    /// telecell it comes from.
    pub fn step(&mut self, now: DateTime<Utc>) -> Vec<(String, i64, Reading)> {
        let elapsed_days = (now - self.last_step).num_milliseconds().max(0) as f64 / 86_400_000.0;
        self.last_step = now;
        self.inject(now, elapsed_days);
        let mut due = Vec::new();
        for index in 0..self.lamps.len() {
            while self.state[index].next_report <= now {
                let at = self.state[index].next_report;
                self.state[index].next_report = at + self.interval;
                if let Some(reading) = self.read(index, at) {
                    due.push((
                        self.lamps[index].telecell_uuid.clone(),
                        self.lamps[index].lamp_id,
                        reading,
                    ));
                }
            }
        }
        due
    }

    /// Rolls the dice for new faults over the elapsed time.
    fn inject(&mut self, now: DateTime<Utc>, days: f64) {
        if days <= 0.0 {
            return;
        }
        let lamps = self.lamps.len();
        let pick = |rate: f64, rng: &mut ChaCha8Rng| -> usize {
            // Expected events over the population; a Poisson draw would be finer, this is enough.
            let expected = rate * days * lamps as f64;
            let mut n = expected.floor() as usize;
            if rng.random_bool((expected - expected.floor()).clamp(0.0, 1.0)) {
                n += 1;
            }
            n
        };
        let plan = [
            (
                self.rates.lamp_failure,
                Condition::Failed,
                Duration::days(5),
            ),
            (
                self.rates.day_burner,
                Condition::DayBurner,
                Duration::days(3),
            ),
            (self.rates.cycling, Condition::Cycling, Duration::hours(12)),
            (
                self.rates.node_silent,
                Condition::Silent,
                Duration::hours(3),
            ),
            (
                self.rates.voltage_sag,
                Condition::VoltageSag,
                Duration::hours(1),
            ),
        ];
        for (rate, condition, lasts) in plan {
            for _ in 0..pick(rate, &mut self.rng) {
                let index = self.rng.random_range(0..lamps);
                let state = &mut self.state[index];
                if state.condition == Condition::Healthy {
                    state.condition = condition;
                    let jitter = self.rng.random_range(0.5..1.5);
                    state.condition_until =
                        now + Duration::seconds((lasts.num_seconds() as f64 * jitter) as i64);
                }
            }
        }
        let circuits: Vec<i64> = self.lamps.iter().filter_map(|l| l.circuit_id).collect();
        if !circuits.is_empty() {
            let expected = self.rates.circuit_supply_loss * days * (circuits.len() as f64 / 60.0);
            if self.rng.random_bool(expected.clamp(0.0, 1.0)) {
                let circuit = circuits[self.rng.random_range(0..circuits.len())];
                self.circuits_down.insert(
                    circuit,
                    now + Duration::minutes(self.rng.random_range(60..180)),
                );
            }
        }
        let basestations: Vec<i64> = self.lamps.iter().map(|l| l.basestation_id).collect();
        let expected =
            self.rates.basestation_outage * days * (basestations.len() as f64 / 2_000.0).max(1.0);
        if self.rng.random_bool(expected.clamp(0.0, 1.0)) {
            let basestation = basestations[self.rng.random_range(0..basestations.len())];
            self.basestations_down.insert(
                basestation,
                now + Duration::minutes(self.rng.random_range(30..90)),
            );
        }
        self.circuits_down.retain(|_, until| *until > now);
        self.basestations_down.retain(|_, until| *until > now);
    }

    /// The reading lamp `index` sends at `at`, or nothing while its node or basestation is silent.
    fn read(&mut self, index: usize, at: DateTime<Utc>) -> Option<Reading> {
        let lamp = &self.lamps[index];
        let no_supply = lamp
            .circuit_id
            .is_some_and(|c| self.circuits_down.contains_key(&c));
        let basestation_down = self.basestations_down.contains_key(&lamp.basestation_id);
        let noise = self.rng.random_range(-0.03..0.03_f32);
        let state = &mut self.state[index];
        if state.condition != Condition::Healthy && at >= state.condition_until {
            state.condition = Condition::Healthy;
        }
        let dt_hours = (at - state.last_update).num_milliseconds().max(0) as f64 / 3_600_000.0;
        state.last_update = at;
        let dark = !sun::is_day(at, lamp.location, Duration::zero());
        let local = at.with_timezone(&self.zone);
        let dim_pct: u8 = if lamp.dimmable && local.hour() < 5 {
            50
        } else {
            100
        };
        let lamp_on = match state.condition {
            Condition::DayBurner => true,
            _ => dark,
        };
        if lamp_on && !state.was_on {
            state.switch_count += 1;
        }
        if state.condition == Condition::Cycling {
            state.switch_count += 4;
        }
        state.was_on = lamp_on;
        let voltage = if no_supply {
            0.0
        } else if state.condition == Condition::VoltageSag {
            205.0
        } else {
            236.0 * (1.0 + noise / 3.0)
        };
        let lit = lamp_on && !no_supply && state.condition != Condition::Failed;
        let power = if lit {
            lamp.wattage_w as f32 * f32::from(dim_pct) / 100.0 * (1.0 + noise)
        } else {
            0.0
        };
        let power_factor = if lamp.dimmable { 0.95 } else { 0.9 };
        state.energy_wh += f64::from(power) * dt_hours;
        if lit {
            state.burn_seconds += dt_hours * 3600.0;
        }
        if no_supply {
            state.supply_losses += 1;
        }
        if basestation_down || state.condition == Condition::Silent {
            return None;
        }
        Some(Reading {
            at,
            lamp_on,
            dim_target_pct: dim_pct,
            dim_actual_pct: dim_pct,
            voltage_v: voltage,
            current_a: if voltage > 0.0 {
                power / (voltage * power_factor)
            } else {
                0.0
            },
            power_w: power,
            power_factor: if lit { power_factor } else { 0.0 },
            energy_wh: state.energy_wh as u64,
            burn_hours: (state.burn_seconds / 3600.0) as u32,
            switch_count: state.switch_count,
            supply_loss_count: state.supply_losses,
            temperature_c: 12.0 + noise * 50.0,
            link_quality_pct: 80,
            alarms: NodeAlarms {
                supply_lost: no_supply,
                ..NodeAlarms::default()
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::faults::FaultType;
    use crate::domain::faults::rules::{Thresholds, conditions};
    use crate::domain::telemetry::LampProfile;

    fn lamps(n: i64) -> Vec<SimLamp> {
        (1..=n)
            .map(|i| SimLamp {
                lamp_id: i,
                telecell_uuid: format!("t{i}"),
                basestation_id: 1,
                circuit_id: Some(i / 50 + 1),
                wattage_w: 36,
                dimmable: true,
                location: GeoPoint::new(51.5, -0.13).unwrap(),
            })
            .collect()
    }

    fn start() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-27T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn field(rates: FaultRates, seed: u64) -> Field {
        Field::new(
            lamps(200),
            rates,
            Duration::minutes(15),
            chrono_tz::Europe::London,
            seed,
            start(),
        )
    }

    #[test]
    fn every_lamp_reports_once_per_interval() {
        let mut f = field(FaultRates::scaled(&FaultRates::default(), 0.0), 1);
        let first = f.step(start() + Duration::minutes(15));
        assert_eq!(first.len(), 200);
        let next = f.step(start() + Duration::minutes(30));
        assert_eq!(next.len(), 200);
    }

    /// The reports of the last interval before `to`, after advancing silently to it.
    fn readings_at(f: &mut Field, to: DateTime<Utc>) -> Vec<(String, i64, Reading)> {
        f.step(to - Duration::minutes(15));
        f.step(to)
    }

    fn lamp_rates_only(factor: f64) -> FaultRates {
        FaultRates {
            circuit_supply_loss: 0.0,
            basestation_outage: 0.0,
            ..FaultRates::default().scaled(factor)
        }
    }

    #[test]
    fn lamps_are_off_by_day_on_at_night_and_dimmed_after_midnight() {
        let mut f = field(FaultRates::scaled(&FaultRates::default(), 0.0), 1);
        let noon = readings_at(&mut f, start() + Duration::minutes(30));
        assert!(noon.iter().all(|(_, _, r)| !r.lamp_on && r.power_w == 0.0));
        let evening = readings_at(&mut f, start() + Duration::hours(10));
        assert_eq!(evening.len(), 200);
        assert!(
            evening
                .iter()
                .all(|(_, _, r)| r.lamp_on && r.dim_actual_pct == 100 && r.power_w > 30.0)
        );
        let small_hours = readings_at(&mut f, start() + Duration::hours(14));
        assert!(
            small_hours
                .iter()
                .all(|(_, _, r)| r.dim_actual_pct == 50 && r.power_w < 20.0)
        );
        assert!(small_hours.iter().all(|(_, _, r)| r.energy_wh > 0));
    }

    #[test]
    fn a_healthy_field_raises_no_faults_and_injected_ones_are_detected() {
        let thresholds = Thresholds::default();
        let profile = LampProfile {
            wattage_w: 36,
            dimmable: true,
            location: Some(GeoPoint::new(51.5, -0.13).unwrap()),
        };
        let mut quiet = field(FaultRates::scaled(&FaultRates::default(), 0.0), 3);
        let night = readings_at(&mut quiet, start() + Duration::hours(11));
        assert!(
            night
                .iter()
                .all(|(_, _, r)| conditions(r, None, &profile, &thresholds).is_empty())
        );

        let mut busy = field(lamp_rates_only(2_000.0), 3);
        let readings = readings_at(&mut busy, start() + Duration::hours(11));
        let found: std::collections::HashSet<FaultType> = readings
            .iter()
            .flat_map(|(_, _, r)| conditions(r, None, &profile, &thresholds))
            .collect();
        assert!(found.contains(&FaultType::LampFailure), "{found:?}");
        assert!(found.contains(&FaultType::VoltageLow), "{found:?}");
        assert!(readings.len() < 200, "silent nodes send nothing");
    }

    #[test]
    fn circuits_lose_supply_and_basestations_go_quiet() {
        let rates = FaultRates {
            circuit_supply_loss: 100_000.0,
            ..FaultRates::default().scaled(0.0)
        };
        let mut f = field(rates, 4);
        let readings = readings_at(&mut f, start() + Duration::hours(11));
        assert!(
            readings
                .iter()
                .any(|(_, _, r)| r.alarms.supply_lost && r.voltage_v == 0.0)
        );
        let rates = FaultRates {
            basestation_outage: 100_000.0,
            ..FaultRates::default().scaled(0.0)
        };
        let mut f = field(rates, 4);
        assert!(readings_at(&mut f, start() + Duration::hours(11)).is_empty());
    }

    #[test]
    fn a_restarted_simulator_carries_its_counters_on_and_raises_no_cycling() {
        // The demo restarts its simulator with a new seed each time; the server compares the
        // first report of the new run with the last of the old one.
        let thresholds = Thresholds::default();
        let profile = LampProfile {
            wattage_w: 36,
            dimmable: true,
            location: Some(GeoPoint::new(51.5, -0.13).unwrap()),
        };
        let evening = start() + Duration::hours(9);
        let mut first = field(FaultRates::scaled(&FaultRates::default(), 0.0), 1);
        let last: std::collections::HashMap<i64, Reading> = readings_at(&mut first, evening)
            .into_iter()
            .map(|(_, lamp, r)| (lamp, r))
            .collect();
        let restart = evening + Duration::minutes(2);
        let mut second = Field::new(
            lamps(200),
            FaultRates::scaled(&FaultRates::default(), 0.0),
            Duration::minutes(1),
            chrono_tz::Europe::London,
            77,
            restart,
        );
        let next = second.step(restart + Duration::minutes(1));
        assert_eq!(next.len(), 200);
        for (_, lamp, reading) in &next {
            let before = &last[lamp];
            assert!(
                conditions(reading, Some(before), &profile, &thresholds).is_empty(),
                "lamp {lamp}: {} then {} switches",
                before.switch_count,
                reading.switch_count
            );
            assert!(reading.switch_count.abs_diff(before.switch_count) <= 2);
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_field() {
        let run = |seed| {
            let mut f = field(lamp_rates_only(500.0), seed);
            readings_at(&mut f, start() + Duration::hours(11))
        };
        assert_eq!(run(9), run(9));
        assert_ne!(run(9), run(10));
    }
}
