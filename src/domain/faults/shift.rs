//! A shift's story from the fault log, for the handover: what was opened, cleared and
//! resolved, by type and severity; who did what; the notes written. Pure: fed the events of
//! the shift's window in log order.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::record::{EventKind, FaultEvent};
use super::{FaultType, Severity};

/// Notes a handover carries at most (the rest are counted).
pub const MAX_NOTES: usize = 500;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Raised or re-opened.
    pub opened: u32,
    pub cleared: u32,
    pub resolved: u32,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Activity {
    pub acknowledged: u32,
    pub assigned: u32,
    pub resolved: u32,
    pub notes: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Note {
    pub fault_id: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: EventKind,
    pub note: String,
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct Shift {
    pub totals: Counts,
    pub by_kind: BTreeMap<(FaultType, Severity), Counts>,
    /// Operators by name; the engine ("system") is not one.
    pub operators: BTreeMap<String, Activity>,
    pub notes: Vec<Note>,
    pub notes_total: usize,
}

impl Shift {
    pub fn add(&mut self, event: &FaultEvent) {
        let key = (event.fault.fault_type, event.fault.severity);
        let operator = event.actor != "system";
        match event.kind {
            EventKind::Raised | EventKind::Reopened => {
                self.totals.opened += 1;
                self.by_kind.entry(key).or_default().opened += 1;
            }
            EventKind::Cleared => {
                self.totals.cleared += 1;
                self.by_kind.entry(key).or_default().cleared += 1;
            }
            EventKind::Resolved => {
                self.totals.resolved += 1;
                self.by_kind.entry(key).or_default().resolved += 1;
            }
            _ => {}
        }
        if operator {
            let activity = self.operators.entry(event.actor.clone()).or_default();
            match event.kind {
                EventKind::Acknowledged => activity.acknowledged += 1,
                EventKind::Assigned => activity.assigned += 1,
                EventKind::Resolved => activity.resolved += 1,
                EventKind::Note => activity.notes += 1,
                _ => {}
            }
        }
        if !event.note.trim().is_empty() {
            self.notes_total += 1;
            if self.notes.len() < MAX_NOTES {
                self.notes.push(Note {
                    fault_id: event.fault.id,
                    at: event.at,
                    actor: event.actor.clone(),
                    action: event.kind,
                    note: event.note.clone(),
                });
            }
        }
    }
}
