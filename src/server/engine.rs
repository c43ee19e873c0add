//! The fault engine's memory inside the server: every lamp's tracker, rebuilt from the store
//! at start-up, fed by ingest and by the offline sweep, plus the correlation rules (circuit
//! supply loss, basestation outage). One lock serialises evaluation and the queueing of its
//! batch, so the store commits decisions in the order they were made; the commit itself is
//! awaited outside the lock, so the next batch is judged while the last one is written. The
//! energy ledger lives here too, since it is fed by the same readings in the same order.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::Mutex;

use super::context::Context;
use super::error::ServiceError;
use crate::domain::billing::Meter;
use crate::domain::billing::ledger::Ledger;
use crate::domain::faults::FaultType;
use crate::domain::faults::lifecycle::FaultState;
use crate::domain::faults::rules::Thresholds;
use crate::domain::faults::tracker::{self, Change, LampFaults, Policy, Track};
use crate::domain::telemetry::LampContext;
use crate::store::{EngineChange, GroupChange, Lineage, Store, StoreResult, TelemetryBatch};

pub struct EngineState {
    pub lamps: HashMap<i64, LampFaults>,
    pub thresholds: Thresholds,
    pub policy: Policy,
    /// Where each lamp sits, for the sweep (ingest resolves its own, fresh, per batch). A map
    /// built whole from sorted entries: at 1,000,000 lamps a hash map rounds up to 2^21 slots
    /// of 112 bytes (235 MiB), this packs them (about 120 MiB).
    pub contexts: BTreeMap<i64, LampContext>,
    /// The lamps of each circuit, for the supply-loss roll-up.
    pub circuit_lamps: HashMap<i64, Vec<i64>>,
    /// Circuit and basestation faults currently open, by (type, circuit or basestation id).
    pub open_groups: HashSet<(FaultType, i64)>,
    /// No node is judged silent before this: after a restart the field needs time to report.
    pub sweep_from: DateTime<Utc>,
    /// Energy metered by ingest and not yet settled.
    pub energy: Ledger,
    /// Whether ingest meters energy: this term settles it (else a billing process apart
    /// from telemetry meters the stored readings).
    pub metering: bool,
    /// The chain of batches decided here and not all committed yet (see `Lineage`).
    pub lineage: Lineage,
}

pub type Engine = Arc<Mutex<EngineState>>;

/// Rebuilds the engine's memory: latest readings and the open faults as tracks, with every
/// lamp's `wiring` (read from the inventory).
pub fn load(
    store: &dyn Store,
    wiring: Vec<LampContext>,
    thresholds: Thresholds,
    policy: Policy,
    sweep_from: DateTime<Utc>,
    meter: Meter,
) -> StoreResult<EngineState> {
    let Trackers { lamps, open_groups } = load_trackers(store)?;
    let contexts: BTreeMap<i64, LampContext> = wiring.into_iter().map(|c| (c.lamp_id, c)).collect();
    let mut circuit_lamps: HashMap<i64, Vec<i64>> = HashMap::new();
    for context in contexts.values() {
        if let Some(circuit) = context.circuit_id {
            circuit_lamps
                .entry(circuit)
                .or_default()
                .push(context.lamp_id);
        }
    }
    Ok(EngineState {
        lamps,
        thresholds,
        policy,
        contexts,
        circuit_lamps,
        open_groups,
        sweep_from,
        energy: Ledger::new(meter),
        metering: true,
        lineage: Lineage::new(),
    })
}

/// What the engine judges from: each lamp's latest reading and open faults, and the open
/// circuit and basestation faults.
pub struct Trackers {
    lamps: HashMap<i64, LampFaults>,
    open_groups: HashSet<(FaultType, i64)>,
}

/// Reads the engine's judgement state as committed.
pub fn load_trackers(store: &dyn Store) -> StoreResult<Trackers> {
    let mut lamps: HashMap<i64, LampFaults> = HashMap::new();
    for latest in store.latest_readings()? {
        lamps.entry(latest.lamp_id).or_default().last_reading = Some(latest.reading);
    }
    let active = store.active_faults()?;
    let mut open_groups = HashSet::new();
    for fault in active {
        let Some(lamp_id) = fault.lamp_id else {
            let group = match fault.fault_type {
                FaultType::CircuitSupplyLoss => fault.circuit_id,
                FaultType::BasestationOffline => fault.basestation_id,
                _ => None,
            };
            if let (Some(id), true) = (group, fault.state.is_active()) {
                open_groups.insert((fault.fault_type, id));
            }
            continue;
        };
        if fault.state == FaultState::Resolved {
            continue;
        }
        let track = Track {
            fault_type: fault.fault_type,
            severity: fault.severity,
            open: fault.state.is_active(),
            first_seen: fault.first_seen,
            last_seen: fault.last_seen,
            count: fault.count,
            absent_since: None,
            opened_at: vec![fault.first_seen],
            flapping: fault.flapping,
        };
        lamps
            .entry(lamp_id)
            .or_default()
            .tracks
            .insert(fault.fault_type, track);
    }
    Ok(Trackers { lamps, open_groups })
}

/// Makes sure the engine judges from committed state: after a batch of its lineage failed
/// to commit, its memory holds decisions the store refused, so it waits for the queue to
/// drain and reloads what was committed. Called under the engine lock before every judgement.
pub async fn resume_from_committed(
    context: &Context,
    state: &mut EngineState,
) -> Result<(), ServiceError> {
    if state.lineage.holds() {
        return Ok(());
    }
    tracing::warn!("a batch of fault decisions failed to commit; reloading the engine's state");
    let Trackers { lamps, open_groups } = context
        .blocking(|s| {
            s.flush()?;
            load_trackers(s)
        })
        .await?;
    state.lamps = lamps;
    state.open_groups = open_groups;
    state.lineage = state.lineage.successor();
    Ok(())
}

impl EngineState {
    /// Raises NODE_OFFLINE for lamps not heard from, except under a basestation that is down
    /// as a whole (most of its telecells silent): that is one BASESTATION_OFFLINE instead.
    pub fn sweep(&mut self, now: DateTime<Utc>) -> TelemetryBatch {
        if now < self.sweep_from {
            return TelemetryBatch::default();
        }
        let mut silent: HashMap<i64, (usize, usize)> = HashMap::new();
        for (lamp_id, context) in &self.contexts {
            let entry = silent.entry(context.basestation_id).or_default();
            entry.1 += 1;
            let heard = self
                .lamps
                .get(lamp_id)
                .and_then(|f| f.last_reading.map(|r| r.at));
            if heard.is_some_and(|at| now - at >= self.policy.offline_after) {
                entry.0 += 1;
            }
        }
        let down: HashSet<i64> = silent
            .iter()
            .filter(|(_, (quiet, total))| {
                *total > 1 && tracker::basestation_down(*quiet, *total, &self.policy)
            })
            .map(|(basestation, _)| *basestation)
            .collect();
        let mut changes = Vec::new();
        for (lamp_id, faults) in &mut self.lamps {
            let Some(context) = self.contexts.get(lamp_id) else {
                continue;
            };
            if let Some(change) =
                faults.sweep(now, &self.policy, down.contains(&context.basestation_id))
            {
                changes.push(EngineChange {
                    at: now,
                    lamp: *context,
                    change,
                });
            }
        }
        let mut groups = Vec::new();
        for basestation in silent.keys() {
            let key = (FaultType::BasestationOffline, *basestation);
            let is_down = down.contains(basestation);
            if is_down == self.open_groups.contains(&key) {
                continue;
            }
            if is_down {
                self.open_groups.insert(key);
            } else {
                self.open_groups.remove(&key);
            }
            groups.push(GroupChange {
                at: now,
                fault_type: FaultType::BasestationOffline,
                circuit_id: None,
                basestation_id: Some(*basestation),
                zone_id: None,
                raised: is_down,
                lamp_ids: Vec::new(),
                child_type: None,
            });
        }
        TelemetryBatch {
            readings: Vec::new(),
            changes,
            groups,
            lineage: Some(self.lineage.clone()),
        }
    }

    /// Rolls lamps that lost supply up under one CRITICAL fault per circuit, and clears it
    /// once every lamp of the circuit has its supply back.
    pub fn correlate(&mut self, at: DateTime<Utc>, batch: &mut TelemetryBatch) {
        let circuits: HashSet<i64> = batch
            .changes
            .iter()
            .filter(|c| change_type(&c.change) == FaultType::SupplyLoss)
            .filter_map(|c| c.lamp.circuit_id)
            .collect();
        for circuit in circuits {
            let Some(members) = self.circuit_lamps.get(&circuit) else {
                continue;
            };
            let without_supply: Vec<i64> = members
                .iter()
                .copied()
                .filter(|lamp| {
                    self.lamps
                        .get(lamp)
                        .is_some_and(|f| f.is_open(FaultType::SupplyLoss))
                })
                .collect();
            let key = (FaultType::CircuitSupplyLoss, circuit);
            let open = self.open_groups.contains(&key);
            let lost =
                tracker::circuit_lost_supply(without_supply.len(), members.len(), &self.policy);
            let raised = if lost || (open && !without_supply.is_empty()) {
                self.open_groups.insert(key);
                true
            } else if open {
                self.open_groups.remove(&key);
                false
            } else {
                continue;
            };
            let zone_id = members
                .first()
                .and_then(|lamp| self.contexts.get(lamp))
                .and_then(|c| c.zone_id);
            batch.groups.push(GroupChange {
                at,
                fault_type: FaultType::CircuitSupplyLoss,
                circuit_id: Some(circuit),
                basestation_id: None,
                zone_id,
                raised,
                lamp_ids: without_supply,
                child_type: Some(FaultType::SupplyLoss),
            });
        }
    }
}

fn change_type(change: &Change) -> FaultType {
    match *change {
        Change::Raised { fault_type, .. }
        | Change::Repeated { fault_type, .. }
        | Change::Reopened { fault_type, .. }
        | Change::Escalated { fault_type, .. }
        | Change::Cleared { fault_type } => fault_type,
    }
}
