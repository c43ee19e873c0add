//! What a commit does to fault records, decided from the faults as stored: the engine's
//! changes (dedup onto the open fault, re-open a cleared one, a fresh fault when the repair
//! did not hold), roll-ups raised and cleared with their lamp faults put under them, and
//! operators' actions. A backend reads the fault, asks here, and writes what comes back.

use chrono::{DateTime, Utc};

use super::FaultType;
use super::lifecycle::{self, Action, FaultState};
use super::record::{EventKind, Fault};
use super::tracker::Change;
use crate::domain::ValidationError;
use crate::domain::telemetry::LampContext;

/// The actor the log names for what the engine decided.
pub const SYSTEM: &str = "system";

/// A fault change decided by the engine, with what a new fault record needs to know.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EngineChange {
    pub at: DateTime<Utc>,
    pub lamp: LampContext,
    pub change: Change,
}

/// A fault on a whole circuit or basestation, raised (with the lamp faults to put under it)
/// or cleared.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupChange {
    pub at: DateTime<Utc>,
    pub fault_type: FaultType,
    pub circuit_id: Option<i64>,
    pub basestation_id: Option<i64>,
    pub zone_id: Option<i64>,
    pub raised: bool,
    /// Lamps whose active faults of `child_type` go under the group fault.
    pub lamp_ids: Vec<i64>,
    pub child_type: Option<FaultType>,
}

/// An operator's action on a fault.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultAction {
    pub fault_id: i64,
    pub expected_version: i64,
    pub action: Action,
    pub actor: String,
    pub note: String,
}

/// One write to a fault record and the entry it adds to the fault's history and the log.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    /// The fault as it becomes; `id` 0 is a new fault, to insert.
    pub fault: Fault,
    pub kind: EventKind,
    pub from_state: Option<FaultState>,
    pub actor: String,
    pub note: String,
    pub at: DateTime<Utc>,
}

impl Transition {
    fn system(fault: Fault, kind: EventKind, from_state: Option<FaultState>) -> Self {
        let at = fault.updated_at;
        Self {
            fault,
            kind,
            from_state,
            actor: SYSTEM.to_owned(),
            note: String::new(),
            at,
        }
    }

    pub fn is_new(&self) -> bool {
        self.fault.id == 0
    }
}

fn new_fault(fault_type: FaultType, at: DateTime<Utc>) -> Fault {
    Fault {
        id: 0,
        fault_type,
        severity: fault_type.default_severity(),
        state: FaultState::Open,
        lamp_id: None,
        circuit_id: None,
        basestation_id: None,
        zone_id: None,
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

/// Applies one engine change to the lamp's latest fault of its type, if any: nothing to do
/// (clearing what is not active), the same fault moved on, or a new fault.
pub fn engine_change(latest: Option<Fault>, change: &EngineChange) -> Option<Transition> {
    let at = change.at;
    let lamp = &change.lamp;
    let fault_type = change.change.fault_type();
    let kind = match change.change {
        Change::Raised { .. } => EventKind::Raised,
        Change::Repeated { .. } => EventKind::Repeated,
        Change::Reopened { .. } => EventKind::Reopened,
        Change::Escalated { .. } => EventKind::Escalated,
        Change::Cleared { .. } => EventKind::Cleared,
    };
    let from_state = latest.as_ref().map(|f| f.state);
    let mut fault = match (latest, kind) {
        (Some(mut fault), EventKind::Cleared) => {
            // Already resolved or cleared: nothing to clear.
            fault.state = lifecycle::clear(fault.state)?;
            fault.cleared_at = Some(at);
            fault
        }
        (None, EventKind::Cleared) => return None,
        (Some(mut fault), _) if fault.state.is_active() => {
            fault.count += 1;
            fault.last_seen = at;
            if let Change::Escalated { severity, .. } = change.change {
                fault.severity = fault.severity.max(severity);
            }
            fault
        }
        (Some(mut fault), _) if fault.state == FaultState::Cleared => {
            fault.state = FaultState::Open;
            fault.acknowledged = false;
            fault.cleared_at = None;
            fault.count += 1;
            fault.last_seen = at;
            if let Change::Reopened { flapping, .. } = change.change {
                fault.flapping |= flapping;
            }
            fault.version += 1; // reopening is a change of state
            fault.updated_at = at;
            return Some(Transition::system(fault, EventKind::Reopened, from_state));
        }
        _ => {
            // None yet, or the last one was resolved: the repair did not hold.
            let mut fault = new_fault(fault_type, at);
            fault.lamp_id = Some(lamp.lamp_id);
            fault.circuit_id = lamp.circuit_id;
            fault.basestation_id = Some(lamp.basestation_id);
            fault.zone_id = lamp.zone_id;
            fault.flapping = matches!(change.change, Change::Reopened { flapping: true, .. });
            return Some(Transition::system(fault, EventKind::Raised, None));
        }
    };
    if kind.changes_version() {
        fault.version += 1;
    }
    fault.updated_at = at;
    Some(Transition::system(fault, kind, from_state))
}

/// What a roll-up change does to the group fault itself.
#[derive(Debug, Clone, PartialEq)]
pub enum GroupStep {
    /// Cleared with nothing active, or cleared: no lamp faults to put under it.
    Done(Option<Transition>),
    /// The group fault stands (`id` 0 until the transition's insert gives it one): its lamp
    /// faults go under it.
    Stands(Option<Transition>),
}

/// Raises, keeps or clears the group fault, given the active one of its kind if any.
pub fn group_change(active: Option<Fault>, group: &GroupChange) -> GroupStep {
    let at = group.at;
    match (active, group.raised) {
        (None, false) => GroupStep::Done(None),
        (Some(mut fault), false) => {
            let from = fault.state;
            fault.state = FaultState::Cleared;
            fault.cleared_at = Some(at);
            fault.version += 1;
            fault.updated_at = at;
            GroupStep::Done(Some(Transition::system(
                fault,
                EventKind::Cleared,
                Some(from),
            )))
        }
        (Some(_), true) => GroupStep::Stands(None),
        (None, true) => {
            let mut fault = new_fault(group.fault_type, at);
            fault.circuit_id = group.circuit_id;
            fault.basestation_id = group.basestation_id;
            fault.zone_id = group.zone_id;
            let mut raised = Transition::system(fault, EventKind::Raised, None);
            raised.note = format!("{} lamps", group.lamp_ids.len());
            GroupStep::Stands(Some(raised))
        }
    }
}

/// Puts a lamp's fault under its group fault, unless it is closed or already there.
/// Grouping changes nothing an operator decides on, so it leaves the version alone.
pub fn group_child(mut child: Fault, parent_id: i64, at: DateTime<Utc>) -> Option<Transition> {
    if !child.state.is_active() || child.parent_id == Some(parent_id) {
        return None;
    }
    child.parent_id = Some(parent_id);
    child.updated_at = at;
    let state = child.state;
    Some(Transition::system(child, EventKind::Grouped, Some(state)))
}

/// Why an operator's action does not apply.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// The fault moved on since the operator read it (the backend says by whom).
    Stale,
    /// Not possible in the fault's state.
    NotAllowed(ValidationError),
}

/// Applies an operator's action to the fault as stored.
pub fn operator_action(
    mut fault: Fault,
    request: &FaultAction,
    now: DateTime<Utc>,
) -> Result<Transition, Refusal> {
    // A note never conflicts: it changes nothing anyone decided on.
    if request.action != Action::AddNote && fault.version != request.expected_version {
        return Err(Refusal::Stale);
    }
    let outcome = lifecycle::act(fault.state, fault.acknowledged, &request.action)
        .map_err(Refusal::NotAllowed)?;
    let from_state = fault.state;
    fault.state = outcome.state;
    fault.acknowledged = outcome.acknowledged;
    let kind = match &request.action {
        Action::Acknowledge => EventKind::Acknowledged,
        Action::Assign { assignee } => {
            fault.assignee = assignee.clone();
            EventKind::Assigned
        }
        Action::Resolve => EventKind::Resolved,
        Action::AddNote => EventKind::Note,
    };
    if kind.changes_version() {
        fault.version += 1;
    }
    fault.updated_at = now;
    Ok(Transition {
        fault,
        kind,
        from_state: Some(from_state),
        actor: request.actor.clone(),
        note: request.note.clone(),
        at: now,
    })
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::domain::faults::Severity;

    fn at(minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 1, 22, minute, 0).unwrap()
    }

    fn lamp() -> LampContext {
        LampContext {
            lamp_id: 7,
            telecell_id: 3,
            basestation_id: 2,
            circuit_id: Some(5),
            zone_id: Some(1),
            profile: crate::domain::telemetry::LampProfile {
                wattage_w: 70,
                dimmable: true,
                location: None,
            },
            since: at(0),
        }
    }

    fn change(change: Change, minute: u32) -> EngineChange {
        EngineChange {
            at: at(minute),
            lamp: lamp(),
            change,
        }
    }

    fn stored(t: Transition, id: i64) -> Fault {
        Fault { id, ..t.fault }
    }

    #[test]
    fn a_raised_fault_dedups_clears_reopens_and_comes_back_new_after_a_repair() {
        let failure = FaultType::LampFailure;
        let raised = engine_change(
            None,
            &change(
                Change::Raised {
                    fault_type: failure,
                    severity: Severity::Major,
                },
                0,
            ),
        )
        .unwrap();
        assert!(raised.is_new());
        assert_eq!(raised.fault.lamp_id, Some(7));
        assert_eq!(raised.fault.circuit_id, Some(5));
        let fault = stored(raised, 1);

        let again = engine_change(
            Some(fault.clone()),
            &change(
                Change::Repeated {
                    fault_type: failure,
                    count: 2,
                },
                5,
            ),
        )
        .unwrap();
        assert_eq!(
            (again.kind, again.fault.count, again.fault.version),
            (EventKind::Repeated, 2, 1)
        );

        let cleared = engine_change(
            Some(again.fault),
            &change(
                Change::Cleared {
                    fault_type: failure,
                },
                9,
            ),
        )
        .unwrap();
        assert_eq!(
            (cleared.fault.state, cleared.fault.version),
            (FaultState::Cleared, 2)
        );
        assert_eq!(
            engine_change(
                Some(cleared.fault.clone()),
                &change(
                    Change::Cleared {
                        fault_type: failure
                    },
                    10
                )
            ),
            None
        );

        let reopened = engine_change(
            Some(cleared.fault),
            &change(
                Change::Reopened {
                    fault_type: failure,
                    flapping: true,
                },
                12,
            ),
        )
        .unwrap();
        assert_eq!(
            (reopened.kind, reopened.fault.state, reopened.fault.flapping),
            (EventKind::Reopened, FaultState::Open, true)
        );
        assert_eq!(reopened.fault.id, 1);

        let mut resolved = reopened.fault;
        resolved.state = FaultState::Resolved;
        let after_repair = engine_change(
            Some(resolved),
            &change(
                Change::Raised {
                    fault_type: failure,
                    severity: Severity::Major,
                },
                20,
            ),
        )
        .unwrap();
        assert!(after_repair.is_new(), "a resolved fault is never reopened");
    }

    #[test]
    fn a_stale_action_is_refused_but_a_note_never_is() {
        let fault = stored(
            engine_change(
                None,
                &change(
                    Change::Raised {
                        fault_type: FaultType::LampFailure,
                        severity: Severity::Major,
                    },
                    0,
                ),
            )
            .unwrap(),
            1,
        );
        let request = |action: Action, expected_version: i64| FaultAction {
            fault_id: 1,
            expected_version,
            action,
            actor: "ana".into(),
            note: String::new(),
        };
        assert_eq!(
            operator_action(fault.clone(), &request(Action::Acknowledge, 0), at(1)),
            Err(Refusal::Stale)
        );
        let note = operator_action(fault.clone(), &request(Action::AddNote, 0), at(1)).unwrap();
        assert_eq!(
            (note.kind, note.fault.version, note.actor.as_str()),
            (EventKind::Note, 1, "ana")
        );
        let acked = operator_action(fault, &request(Action::Acknowledge, 1), at(1)).unwrap();
        assert_eq!(
            (acked.fault.state, acked.fault.version),
            (FaultState::Acknowledged, 2)
        );
        assert!(matches!(
            operator_action(acked.fault, &request(Action::Acknowledge, 2), at(2)),
            Err(Refusal::NotAllowed(_))
        ));
    }

    #[test]
    fn a_roll_up_takes_its_active_lamp_faults_once_and_clears_alone() {
        let group = GroupChange {
            at: at(0),
            fault_type: FaultType::CircuitSupplyLoss,
            circuit_id: Some(5),
            basestation_id: None,
            zone_id: Some(1),
            raised: true,
            lamp_ids: vec![7, 8],
            child_type: Some(FaultType::SupplyLoss),
        };
        let GroupStep::Stands(Some(raised)) = group_change(None, &group) else {
            panic!("a new outage is raised");
        };
        assert_eq!(raised.note, "2 lamps");
        let parent = stored(raised, 40);
        assert_eq!(
            group_change(Some(parent.clone()), &group),
            GroupStep::Stands(None)
        );

        let child = stored(
            engine_change(
                None,
                &change(
                    Change::Raised {
                        fault_type: FaultType::SupplyLoss,
                        severity: Severity::Major,
                    },
                    0,
                ),
            )
            .unwrap(),
            41,
        );
        let grouped = group_child(child, 40, at(1)).unwrap();
        assert_eq!(
            (grouped.kind, grouped.fault.parent_id, grouped.fault.version),
            (EventKind::Grouped, Some(40), 1)
        );
        assert_eq!(group_child(grouped.fault, 40, at(2)), None);

        let cleared = GroupChange {
            raised: false,
            ..group
        };
        let GroupStep::Done(Some(clear)) = group_change(Some(parent), &cleared) else {
            panic!("an outage whose supply is back clears");
        };
        assert_eq!(
            (clear.fault.state, clear.fault.version),
            (FaultState::Cleared, 2)
        );
    }
}
