//! Faults as stored and shown: the record, its history, the events of the durable log, and
//! the filter that listings and watchers share.

use chrono::{DateTime, Utc};

use super::lifecycle::FaultState;
use super::{FaultType, Severity};

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Fault {
    pub id: i64,
    pub fault_type: FaultType,
    pub severity: Severity,
    pub state: FaultState,
    pub lamp_id: Option<i64>,
    pub circuit_id: Option<i64>,
    pub basestation_id: Option<i64>,
    pub zone_id: Option<i64>,
    pub parent_id: Option<i64>,
    pub count: u32,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub cleared_at: Option<DateTime<Utc>>,
    pub acknowledged: bool,
    pub flapping: bool,
    pub assignee: String,
    pub version: i64,
    pub updated_at: DateTime<Utc>,
}

/// What happened to a fault: by the engine (raised .. cleared) or by an operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum EventKind {
    Raised,
    Repeated,
    Reopened,
    Escalated,
    Cleared,
    Acknowledged,
    Assigned,
    Resolved,
    Note,
    /// Put under a circuit or basestation fault (its `parent_id` was set).
    Grouped,
}

impl EventKind {
    pub const ALL: [EventKind; 10] = [
        EventKind::Raised,
        EventKind::Repeated,
        EventKind::Reopened,
        EventKind::Escalated,
        EventKind::Cleared,
        EventKind::Acknowledged,
        EventKind::Assigned,
        EventKind::Resolved,
        EventKind::Note,
        EventKind::Grouped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Raised => "RAISED",
            EventKind::Repeated => "REPEATED",
            EventKind::Reopened => "REOPENED",
            EventKind::Escalated => "ESCALATED",
            EventKind::Cleared => "CLEARED",
            EventKind::Acknowledged => "ACKNOWLEDGED",
            EventKind::Assigned => "ASSIGNED",
            EventKind::Resolved => "RESOLVED",
            EventKind::Note => "NOTE",
            EventKind::Grouped => "GROUPED",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == text)
    }

    /// Whether this change makes a triage action based on the fault as it was stale (bumps
    /// the version). What an operator decides on is the state, the assignment and the
    /// severity: another sighting (count, last seen), a note or being grouped under a
    /// roll-up changes none of them, so those never refuse anyone's action.
    pub fn changes_version(self) -> bool {
        !matches!(
            self,
            EventKind::Repeated | EventKind::Note | EventKind::Grouped
        )
    }

    /// The event in the past tense for people: "acknowledged", "assigned".
    pub fn past(self) -> &'static str {
        match self {
            EventKind::Raised => "raised",
            EventKind::Repeated => "seen again",
            EventKind::Reopened => "reopened",
            EventKind::Escalated => "escalated",
            EventKind::Cleared => "cleared",
            EventKind::Acknowledged => "acknowledged",
            EventKind::Assigned => "assigned",
            EventKind::Resolved => "resolved",
            EventKind::Note => "noted",
            EventKind::Grouped => "grouped",
        }
    }
}

/// What an event changed, in words, from the fault as it became: "to crew-north" for an
/// assignment, "to MAJOR" for an escalation, "under fault 12" for a roll-up. Empty when the
/// kind says it all.
pub fn change_words(kind: EventKind, fault: &Fault) -> String {
    match kind {
        EventKind::Assigned => format!("to {}", fault.assignee),
        EventKind::Escalated => format!("to {}", fault.severity.as_str()),
        EventKind::Grouped => fault
            .parent_id
            .map(|parent| format!("under fault {parent}"))
            .unwrap_or_default(),
        EventKind::Reopened if fault.flapping => "flapping".to_owned(),
        _ => String::new(),
    }
}

/// One line of a fault's history (the audit trail).
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryEntry {
    pub at: DateTime<Utc>,
    /// `system` for the engine, else the operator.
    pub actor: String,
    pub kind: EventKind,
    pub from_state: Option<FaultState>,
    pub to_state: FaultState,
    pub note: String,
    /// What changed besides the state, in words (`change_words`).
    pub change: String,
}

/// An entry of the durable event log: every fault change, numbered without gaps.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultEvent {
    pub seq: u64,
    pub at: DateTime<Utc>,
    pub kind: EventKind,
    pub fault: Fault,
    pub actor: String,
    pub note: String,
}

/// Which faults a listing or a watcher wants. Empty sets mean "any".
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FaultFilter {
    pub states: Vec<FaultState>,
    pub min_severity: Option<Severity>,
    pub types: Vec<FaultType>,
    pub zone_id: Option<i64>,
    pub lamp_id: Option<i64>,
    /// Only the lamp faults rolled up under this circuit or basestation fault.
    pub parent_id: Option<i64>,
    pub opened_from: Option<DateTime<Utc>>,
    pub opened_to: Option<DateTime<Utc>>,
}

impl FaultFilter {
    pub fn matches(&self, fault: &Fault) -> bool {
        (self.states.is_empty() || self.states.contains(&fault.state))
            && self.min_severity.is_none_or(|min| fault.severity >= min)
            && (self.types.is_empty() || self.types.contains(&fault.fault_type))
            && self.zone_id.is_none_or(|zone| fault.zone_id == Some(zone))
            && self.lamp_id.is_none_or(|lamp| fault.lamp_id == Some(lamp))
            && self
                .parent_id
                .is_none_or(|parent| fault.parent_id == Some(parent))
            && self.opened_from.is_none_or(|from| fault.first_seen >= from)
            && self.opened_to.is_none_or(|to| fault.first_seen < to)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn fault() -> Fault {
        let at = DateTime::parse_from_rfc3339("2026-11-28T22:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        Fault {
            id: 1,
            fault_type: FaultType::LampFailure,
            severity: Severity::Major,
            state: FaultState::Open,
            lamp_id: Some(7),
            circuit_id: Some(2),
            basestation_id: Some(1),
            zone_id: Some(3),
            parent_id: None,
            count: 1,
            first_seen: at,
            last_seen: at,
            cleared_at: None,
            acknowledged: false,
            flapping: false,
            assignee: String::new(),
            version: 1,
            updated_at: at,
        }
    }

    #[test]
    fn filters_combine() {
        let f = fault();
        assert!(FaultFilter::default().matches(&f));
        assert!(
            FaultFilter {
                min_severity: Some(Severity::Major),
                zone_id: Some(3),
                ..Default::default()
            }
            .matches(&f)
        );
        assert!(
            !FaultFilter {
                min_severity: Some(Severity::Critical),
                ..Default::default()
            }
            .matches(&f)
        );
        assert!(
            !FaultFilter {
                states: vec![FaultState::Cleared],
                ..Default::default()
            }
            .matches(&f)
        );
        assert!(
            !FaultFilter {
                types: vec![FaultType::DayBurner],
                ..Default::default()
            }
            .matches(&f)
        );
        assert!(
            !FaultFilter {
                opened_to: Some(f.first_seen),
                ..Default::default()
            }
            .matches(&f)
        );
    }

    #[test]
    fn only_decisions_change_the_version_and_changes_read_as_words() {
        assert!(!EventKind::Repeated.changes_version());
        assert!(!EventKind::Note.changes_version());
        assert!(!EventKind::Grouped.changes_version());
        for kind in [
            EventKind::Acknowledged,
            EventKind::Assigned,
            EventKind::Resolved,
            EventKind::Cleared,
            EventKind::Reopened,
            EventKind::Escalated,
        ] {
            assert!(kind.changes_version(), "{kind:?}");
        }
        let mut f = fault();
        f.assignee = "crew-north".into();
        f.parent_id = Some(12);
        assert_eq!(change_words(EventKind::Assigned, &f), "to crew-north");
        assert_eq!(change_words(EventKind::Escalated, &f), "to MAJOR");
        assert_eq!(change_words(EventKind::Grouped, &f), "under fault 12");
        assert_eq!(change_words(EventKind::Acknowledged, &f), "");
    }

    #[test]
    fn event_kinds_round_trip() {
        for kind in EventKind::ALL {
            assert_eq!(EventKind::parse(kind.as_str()), Some(kind));
        }
    }
}
