//! One lamp's faults over time: dedup by (lamp, type) with count and first/last seen,
//! clearing only after the condition has stayed away for a hold-down time, re-opening a
//! recently cleared fault (and marking it flapping) instead of opening a new one, escalating
//! persistent cycling, raising NODE_OFFLINE from silence, and the circuit and basestation
//! correlation rules.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};

use super::rules::{Thresholds, conditions};
use super::{FaultType, Severity};
use crate::domain::telemetry::LampProfile;
use crate::domain::telemetry::Reading;

/// Timings of the tracker. `Default` is what a 15-minute report interval suits.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// How long a condition must stay away before its fault clears.
    pub hold_down: Duration,
    /// A fault that re-opens this many times within `flapping_window` is flapping.
    pub flapping_reopens: usize,
    pub flapping_window: Duration,
    /// A cycling lamp seen this many times becomes MAJOR.
    pub cycling_major_after: u32,
    /// Silence after which a node is offline (a few report intervals).
    pub offline_after: Duration,
    /// Lamps of one circuit that must lose supply together, and the share of the circuit,
    /// for one CRITICAL circuit fault.
    pub circuit_rollup_min_lamps: usize,
    pub circuit_rollup_share: f64,
    /// Share of a basestation's telecells that must be silent for a basestation outage.
    pub basestation_silent_share: f64,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            hold_down: Duration::minutes(20),
            flapping_reopens: 3,
            flapping_window: Duration::hours(24),
            cycling_major_after: 4,
            offline_after: Duration::minutes(60),
            circuit_rollup_min_lamps: 5,
            circuit_rollup_share: 0.5,
            basestation_silent_share: 0.8,
        }
    }
}

/// One (lamp, fault type) pair over time.
#[derive(Debug, Clone, PartialEq)]
pub struct Track {
    pub fault_type: FaultType,
    pub severity: Severity,
    /// The condition is present (or has not yet been absent for the hold-down time).
    pub open: bool,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub count: u32,
    pub absent_since: Option<DateTime<Utc>>,
    /// When the fault (re)opened, within the flapping window.
    pub opened_at: Vec<DateTime<Utc>>,
    pub flapping: bool,
}

/// What happened to a track, for the fault store and the event log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Raised {
        fault_type: FaultType,
        severity: Severity,
    },
    Repeated {
        fault_type: FaultType,
        count: u32,
    },
    Reopened {
        fault_type: FaultType,
        flapping: bool,
    },
    Escalated {
        fault_type: FaultType,
        severity: Severity,
    },
    Cleared {
        fault_type: FaultType,
    },
}

impl Change {
    pub fn fault_type(&self) -> FaultType {
        match *self {
            Change::Raised { fault_type, .. }
            | Change::Repeated { fault_type, .. }
            | Change::Reopened { fault_type, .. }
            | Change::Escalated { fault_type, .. }
            | Change::Cleared { fault_type } => fault_type,
        }
    }
}

impl Track {
    fn new(fault_type: FaultType, at: DateTime<Utc>) -> Self {
        Self {
            fault_type,
            severity: fault_type.default_severity(),
            open: true,
            first_seen: at,
            last_seen: at,
            count: 1,
            absent_since: None,
            opened_at: vec![at],
            flapping: false,
        }
    }

    fn present(&mut self, at: DateTime<Utc>, policy: &Policy) -> Vec<Change> {
        let fault_type = self.fault_type;
        self.count += 1;
        self.last_seen = at;
        self.absent_since = None;
        let mut changes = Vec::new();
        if self.open {
            changes.push(Change::Repeated {
                fault_type,
                count: self.count,
            });
        } else {
            self.open = true;
            self.opened_at.retain(|t| at - *t <= policy.flapping_window);
            self.opened_at.push(at);
            if self.opened_at.len() >= policy.flapping_reopens {
                self.flapping = true;
            }
            changes.push(Change::Reopened {
                fault_type,
                flapping: self.flapping,
            });
        }
        if fault_type == FaultType::Cycling
            && self.count >= policy.cycling_major_after
            && self.severity < Severity::Major
        {
            self.severity = Severity::Major;
            changes.push(Change::Escalated {
                fault_type,
                severity: self.severity,
            });
        }
        changes
    }

    fn absent(&mut self, at: DateTime<Utc>, hold_down: Duration) -> Option<Change> {
        if !self.open || !self.fault_type.clears_by_itself() {
            return None;
        }
        let since = *self.absent_since.get_or_insert(at);
        if at - since >= hold_down {
            self.open = false;
            self.absent_since = None;
            return Some(Change::Cleared {
                fault_type: self.fault_type,
            });
        }
        None
    }
}

/// Everything the engine remembers about one lamp.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LampFaults {
    pub last_reading: Option<Reading>,
    pub tracks: BTreeMap<FaultType, Track>,
}

/// Why a reading was not evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skipped {
    /// Same instant as the latest reading: a duplicate.
    Duplicate,
    /// Older than the latest reading: it must not overwrite newer state.
    OutOfOrder,
}

impl LampFaults {
    /// Evaluates a reading: raises, repeats, re-opens and (after hold-down) clears faults.
    pub fn observe(
        &mut self,
        reading: &Reading,
        lamp: &LampProfile,
        thresholds: &Thresholds,
        policy: &Policy,
    ) -> Result<Vec<Change>, Skipped> {
        if let Some(last) = &self.last_reading {
            if reading.at == last.at {
                return Err(Skipped::Duplicate);
            }
            if reading.at < last.at {
                return Err(Skipped::OutOfOrder);
            }
        }
        let present = conditions(reading, self.last_reading.as_ref(), lamp, thresholds);
        let mut changes = Vec::new();
        // Hearing from the node at all ends NODE_OFFLINE at once.
        if let Some(change) = self
            .tracks
            .get_mut(&FaultType::NodeOffline)
            .and_then(|track| track.absent(reading.at, Duration::zero()))
        {
            changes.push(change);
        }
        for &fault_type in &present {
            match self.tracks.get_mut(&fault_type) {
                Some(track) => changes.extend(track.present(reading.at, policy)),
                None => {
                    let track = Track::new(fault_type, reading.at);
                    changes.push(Change::Raised {
                        fault_type,
                        severity: track.severity,
                    });
                    self.tracks.insert(fault_type, track);
                }
            }
        }
        for (fault_type, track) in &mut self.tracks {
            if *fault_type != FaultType::NodeOffline && !present.contains(fault_type) {
                changes.extend(track.absent(reading.at, policy.hold_down));
            }
        }
        self.last_reading = Some(*reading);
        Ok(changes)
    }

    /// The offline sweep: raises NODE_OFFLINE when nothing has been heard for too long,
    /// unless `suppressed` (the lamp's basestation is down, which is one fault of its own).
    pub fn sweep(
        &mut self,
        now: DateTime<Utc>,
        policy: &Policy,
        suppressed: bool,
    ) -> Option<Change> {
        let last = self.last_reading.as_ref()?.at;
        if suppressed || now - last < policy.offline_after {
            return None;
        }
        match self.tracks.get_mut(&FaultType::NodeOffline) {
            Some(track) if track.open => None,
            Some(track) => track.present(now, policy).into_iter().next(),
            None => {
                let track = Track::new(FaultType::NodeOffline, now);
                let change = Change::Raised {
                    fault_type: FaultType::NodeOffline,
                    severity: track.severity,
                };
                self.tracks.insert(FaultType::NodeOffline, track);
                Some(change)
            }
        }
    }

    /// Whether this lamp currently shows a fault of this type.
    pub fn is_open(&self, fault_type: FaultType) -> bool {
        self.tracks.get(&fault_type).is_some_and(|t| t.open)
    }
}

/// Whether the lamps of one circuit that lost supply amount to a circuit supply loss.
pub fn circuit_lost_supply(
    lamps_without_supply: usize,
    lamps_on_circuit: usize,
    policy: &Policy,
) -> bool {
    lamps_on_circuit > 0
        && lamps_without_supply >= policy.circuit_rollup_min_lamps.min(lamps_on_circuit)
        && lamps_without_supply as f64 / lamps_on_circuit as f64 >= policy.circuit_rollup_share
}

/// Whether so many of a basestation's telecells are silent that the basestation is down.
pub fn basestation_down(silent_telecells: usize, telecells: usize, policy: &Policy) -> bool {
    telecells > 0 && silent_telecells as f64 / telecells as f64 >= policy.basestation_silent_share
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::geo::GeoPoint;
    use crate::domain::telemetry::tests::raw;

    fn at(minutes: i64) -> DateTime<Utc> {
        // 22:00 UTC in late November: night in London.
        DateTime::parse_from_rfc3339("2026-11-28T22:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
            + Duration::minutes(minutes)
    }

    fn lamp() -> LampProfile {
        LampProfile {
            wattage_w: 36,
            dimmable: true,
            location: Some(GeoPoint::new(51.5, -0.13).unwrap()),
        }
    }

    fn healthy(minutes: i64) -> Reading {
        raw(at(minutes))
            .validate(at(minutes), at(minutes) - chrono::Duration::hours(48))
            .unwrap()
    }

    fn failed(minutes: i64) -> Reading {
        Reading {
            power_w: 0.0,
            current_a: 0.0,
            ..healthy(minutes)
        }
    }

    fn observe(faults: &mut LampFaults, reading: Reading) -> Vec<Change> {
        faults
            .observe(
                &reading,
                &lamp(),
                &Thresholds::default(),
                &Policy::default(),
            )
            .unwrap()
    }

    const LF: FaultType = FaultType::LampFailure;

    #[test]
    fn raise_then_dedup_with_count_and_last_seen() {
        let mut faults = LampFaults::default();
        assert_eq!(
            observe(&mut faults, failed(0)),
            vec![Change::Raised {
                fault_type: LF,
                severity: Severity::Major
            }]
        );
        assert_eq!(
            observe(&mut faults, failed(15)),
            vec![Change::Repeated {
                fault_type: LF,
                count: 2
            }]
        );
        let track = &faults.tracks[&LF];
        assert_eq!(
            (track.count, track.first_seen, track.last_seen),
            (2, at(0), at(15))
        );
    }

    #[test]
    fn clears_only_after_the_hold_down() {
        let mut faults = LampFaults::default();
        observe(&mut faults, failed(0));
        assert_eq!(
            observe(&mut faults, healthy(15)),
            vec![],
            "absent for 0 min"
        );
        assert!(faults.is_open(LF));
        assert_eq!(
            observe(&mut faults, healthy(30)),
            vec![],
            "absent for 15 min < 20 min hold-down"
        );
        assert_eq!(
            observe(&mut faults, healthy(45)),
            vec![Change::Cleared { fault_type: LF }]
        );
        assert!(!faults.is_open(LF));
    }

    #[test]
    fn a_blip_inside_the_hold_down_does_not_clear() {
        let mut faults = LampFaults::default();
        observe(&mut faults, failed(0));
        observe(&mut faults, healthy(15));
        assert_eq!(
            observe(&mut faults, failed(30)),
            vec![Change::Repeated {
                fault_type: LF,
                count: 2
            }]
        );
        assert_eq!(observe(&mut faults, healthy(45)), vec![]);
    }

    #[test]
    fn re_opening_often_marks_flapping_instead_of_new_faults() {
        let mut faults = LampFaults::default();
        let mut minute = 0;
        let mut reopenings = Vec::new();
        for _ in 0..3 {
            let changes = observe(&mut faults, failed(minute));
            reopenings.extend(changes);
            observe(&mut faults, healthy(minute + 15));
            observe(&mut faults, healthy(minute + 40));
            minute += 60;
        }
        assert_eq!(
            reopenings,
            vec![
                Change::Raised {
                    fault_type: LF,
                    severity: Severity::Major
                },
                Change::Reopened {
                    fault_type: LF,
                    flapping: false
                },
                Change::Reopened {
                    fault_type: LF,
                    flapping: true
                },
            ]
        );
        assert_eq!(faults.tracks.len(), 1, "still one fault for (lamp, type)");
    }

    #[test]
    fn repair_only_faults_never_clear_by_themselves() {
        let mut faults = LampFaults::default();
        let alarm = crate::domain::telemetry::NodeAlarms {
            earth_leakage: true,
            ..Default::default()
        };
        observe(
            &mut faults,
            Reading {
                alarms: alarm,
                ..healthy(0)
            },
        );
        for m in [15, 30, 45, 60, 120] {
            assert_eq!(observe(&mut faults, healthy(m)), vec![]);
        }
        assert!(faults.is_open(FaultType::EarthLeakage));
    }

    #[test]
    fn persistent_cycling_escalates_to_major() {
        let mut faults = LampFaults::default();
        let mut switches = 900;
        let mut escalated = false;
        for i in 0..5 {
            switches += 4;
            let changes = observe(
                &mut faults,
                Reading {
                    switch_count: switches,
                    ..healthy(i * 15)
                },
            );
            escalated |= changes.contains(&Change::Escalated {
                fault_type: FaultType::Cycling,
                severity: Severity::Major,
            });
        }
        assert!(escalated);
        assert_eq!(faults.tracks[&FaultType::Cycling].severity, Severity::Major);
    }

    #[test]
    fn duplicates_and_late_readings_are_skipped() {
        let mut faults = LampFaults::default();
        observe(&mut faults, healthy(30));
        let p = Policy::default();
        let t = Thresholds::default();
        assert_eq!(
            faults.observe(&healthy(30), &lamp(), &t, &p),
            Err(Skipped::Duplicate)
        );
        assert_eq!(
            faults.observe(&failed(15), &lamp(), &t, &p),
            Err(Skipped::OutOfOrder)
        );
        assert_eq!(
            faults.last_reading.unwrap().at,
            at(30),
            "a late report does not overwrite newer state"
        );
    }

    #[test]
    fn silence_raises_node_offline_and_the_next_report_clears_it() {
        let mut faults = LampFaults::default();
        let policy = Policy::default();
        observe(&mut faults, healthy(0));
        assert_eq!(faults.sweep(at(59), &policy, false), None);
        assert_eq!(
            faults.sweep(at(61), &policy, false),
            Some(Change::Raised {
                fault_type: FaultType::NodeOffline,
                severity: Severity::Major
            })
        );
        assert_eq!(faults.sweep(at(90), &policy, false), None, "raised once");
        assert_eq!(
            observe(&mut faults, healthy(95)),
            vec![Change::Cleared {
                fault_type: FaultType::NodeOffline
            }]
        );
    }

    #[test]
    fn a_basestation_outage_suppresses_node_offline() {
        let mut faults = LampFaults::default();
        let policy = Policy::default();
        observe(&mut faults, healthy(0));
        assert_eq!(faults.sweep(at(120), &policy, true), None);
        assert!(basestation_down(1_700, 2_000, &policy));
        assert!(!basestation_down(100, 2_000, &policy));
    }

    #[test]
    fn circuit_supply_loss_rolls_up() {
        let policy = Policy::default();
        assert!(circuit_lost_supply(27, 40, &policy));
        assert!(
            !circuit_lost_supply(3, 40, &policy),
            "three lamps are three lamp faults"
        );
        assert!(
            !circuit_lost_supply(10, 100, &policy),
            "a tenth of a circuit is not the circuit"
        );
        assert!(
            circuit_lost_supply(3, 3, &policy),
            "a tiny circuit rolls up when all of it is out"
        );
    }
}
