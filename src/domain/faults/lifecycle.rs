//! The fault lifecycle: OPEN -> ACKNOWLEDGED -> ASSIGNED -> RESOLVED, and CLEARED when the
//! condition goes away by itself. Which operator actions are allowed from which state.

use super::super::ValidationError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum FaultState {
    Open,
    Acknowledged,
    Assigned,
    Resolved,
    Cleared,
}

impl FaultState {
    pub const ALL: [FaultState; 5] = [
        FaultState::Open,
        FaultState::Acknowledged,
        FaultState::Assigned,
        FaultState::Resolved,
        FaultState::Cleared,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FaultState::Open => "OPEN",
            FaultState::Acknowledged => "ACKNOWLEDGED",
            FaultState::Assigned => "ASSIGNED",
            FaultState::Resolved => "RESOLVED",
            FaultState::Cleared => "CLEARED",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str().eq_ignore_ascii_case(text))
    }

    /// Whether the condition may still be present (the fault is not closed).
    pub fn is_active(self) -> bool {
        matches!(
            self,
            FaultState::Open | FaultState::Acknowledged | FaultState::Assigned
        )
    }
}

/// What an operator does to a fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Acknowledge,
    /// Hand to a crew or work order.
    Assign {
        assignee: String,
    },
    Resolve,
    AddNote,
}

/// The outcome of an operator action: the new state and whether it now counts as acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub state: FaultState,
    pub acknowledged: bool,
}

/// Applies an operator action, or says why it does not apply in this state.
/// A cleared fault stays visible until someone acknowledges it; acknowledging keeps it CLEARED.
pub fn act(
    state: FaultState,
    acknowledged: bool,
    action: &Action,
) -> Result<Outcome, ValidationError> {
    let refuse = |what: &str| {
        Err(ValidationError::new(
            "action",
            format!("cannot {what} a fault that is {}", state.as_str()),
        ))
    };
    match action {
        Action::AddNote => Ok(Outcome {
            state,
            acknowledged,
        }),
        Action::Acknowledge => match state {
            FaultState::Open => Ok(Outcome {
                state: FaultState::Acknowledged,
                acknowledged: true,
            }),
            FaultState::Cleared if !acknowledged => Ok(Outcome {
                state,
                acknowledged: true,
            }),
            _ => refuse("acknowledge"),
        },
        Action::Assign { assignee } => {
            if assignee.trim().is_empty() {
                return Err(ValidationError::new(
                    "assignee",
                    "must name a crew or work order",
                ));
            }
            match state {
                FaultState::Open | FaultState::Acknowledged | FaultState::Assigned => Ok(Outcome {
                    state: FaultState::Assigned,
                    acknowledged: true,
                }),
                _ => refuse("assign"),
            }
        }
        Action::Resolve => match state {
            FaultState::Open
            | FaultState::Acknowledged
            | FaultState::Assigned
            | FaultState::Cleared => Ok(Outcome {
                state: FaultState::Resolved,
                acknowledged: true,
            }),
            FaultState::Resolved => refuse("resolve"),
        },
    }
}

/// The condition went away and stayed away for the hold-down time.
pub fn clear(state: FaultState) -> Option<FaultState> {
    state.is_active().then_some(FaultState::Cleared)
}

#[cfg(test)]
mod tests {
    use super::*;
    use FaultState::*;

    #[test]
    fn the_happy_path() {
        let ack = act(Open, false, &Action::Acknowledge).unwrap();
        assert_eq!(
            ack,
            Outcome {
                state: Acknowledged,
                acknowledged: true
            }
        );
        let assigned = act(
            ack.state,
            true,
            &Action::Assign {
                assignee: "Crew 7".into(),
            },
        )
        .unwrap();
        assert_eq!(assigned.state, Assigned);
        let resolved = act(assigned.state, true, &Action::Resolve).unwrap();
        assert_eq!(resolved.state, Resolved);
    }

    #[test]
    fn refusals_name_the_state() {
        let error = act(Resolved, true, &Action::Acknowledge).unwrap_err();
        assert!(error.reason.contains("RESOLVED"));
        assert!(act(Acknowledged, true, &Action::Acknowledge).is_err());
        assert!(act(Resolved, true, &Action::Resolve).is_err());
        assert!(
            act(
                Cleared,
                false,
                &Action::Assign {
                    assignee: "x".into()
                }
            )
            .is_err()
        );
        assert_eq!(
            act(
                Open,
                false,
                &Action::Assign {
                    assignee: " ".into()
                }
            )
            .unwrap_err()
            .field,
            "assignee"
        );
    }

    #[test]
    fn a_cleared_fault_waits_for_acknowledgement() {
        assert_eq!(clear(Open), Some(Cleared));
        assert_eq!(clear(Assigned), Some(Cleared));
        assert_eq!(clear(Resolved), None);
        let seen = act(Cleared, false, &Action::Acknowledge).unwrap();
        assert_eq!(
            seen,
            Outcome {
                state: Cleared,
                acknowledged: true
            }
        );
        assert!(act(Cleared, true, &Action::Acknowledge).is_err());
    }

    #[test]
    fn notes_never_change_the_state() {
        for state in FaultState::ALL {
            assert_eq!(act(state, false, &Action::AddNote).unwrap().state, state);
        }
    }
}
