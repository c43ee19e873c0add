//! The fault engine's memory inside the server: every lamp's tracker, rebuilt from the store
//! at start-up, fed by ingest and by the offline sweep. One lock serialises evaluation and
//! the commit that follows it, so the store sees decisions in the order they were made.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::Mutex;

use crate::domain::faults::lifecycle::FaultState;
use crate::domain::faults::rules::Thresholds;
use crate::domain::faults::tracker::{self, LampFaults, Policy, Track};
use crate::domain::telemetry::LampContext;
use crate::store::{EngineChange, Store, StoreResult, TelemetryBatch};

pub struct EngineState {
    pub lamps: HashMap<i64, LampFaults>,
    pub thresholds: Thresholds,
    pub policy: Policy,
    /// Where each lamp sits, for the sweep (ingest resolves its own, fresh, per batch).
    pub contexts: HashMap<i64, LampContext>,
}

pub type Engine = Arc<Mutex<EngineState>>;

/// Rebuilds the engine's memory: latest readings and the open faults as tracks.
pub fn load(store: &dyn Store, thresholds: Thresholds, policy: Policy) -> StoreResult<EngineState> {
    let mut lamps: HashMap<i64, LampFaults> = HashMap::new();
    for latest in store.latest_readings()? {
        lamps.entry(latest.lamp_id).or_default().last_reading = Some(latest.reading);
    }
    for fault in store.active_faults()? {
        let Some(lamp_id) = fault.lamp_id else {
            continue;
        };
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
        if fault.state != FaultState::Resolved {
            lamps
                .entry(lamp_id)
                .or_default()
                .tracks
                .insert(fault.fault_type, track);
        }
    }
    let contexts = store
        .lamp_contexts()?
        .into_iter()
        .map(|c| (c.lamp_id, c))
        .collect();
    Ok(EngineState {
        lamps,
        thresholds,
        policy,
        contexts,
    })
}

impl EngineState {
    /// Raises NODE_OFFLINE for lamps not heard from, except under a basestation that is down
    /// as a whole (most of its telecells silent), whose outage is one fault of its own.
    pub fn sweep(&mut self, now: DateTime<Utc>) -> TelemetryBatch {
        let mut silent: HashMap<i64, (usize, usize)> = HashMap::new();
        for (lamp_id, faults) in &self.lamps {
            let Some(context) = self.contexts.get(lamp_id) else {
                continue;
            };
            let entry = silent.entry(context.basestation_id).or_default();
            entry.1 += 1;
            if faults
                .last_reading
                .is_some_and(|r| now - r.at >= self.policy.offline_after)
            {
                entry.0 += 1;
            }
        }
        let mut changes = Vec::new();
        for (lamp_id, faults) in &mut self.lamps {
            let Some(context) = self.contexts.get(lamp_id) else {
                continue;
            };
            let (quiet, total) = silent
                .get(&context.basestation_id)
                .copied()
                .unwrap_or_default();
            let suppressed = tracker::basestation_down(quiet, total, &self.policy) && total > 1;
            if let Some(change) = faults.sweep(now, &self.policy, suppressed) {
                changes.push(EngineChange {
                    at: now,
                    lamp: *context,
                    change,
                });
            }
        }
        TelemetryBatch {
            readings: Vec::new(),
            changes,
        }
    }
}
