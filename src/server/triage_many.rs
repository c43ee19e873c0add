//! `Faults.ActOnMany`: one triage action on several faults, a roll-up's lamp faults included
//! when asked, each judged as its single action would judge it, every refusal reported.

use std::collections::BTreeSet;

use futures::StreamExt;
use tonic::{Response, Status};

use super::error::ServiceError;
use super::faults::FaultService;
use crate::domain::ValidationError;
use crate::domain::auth::Caller;
use crate::domain::faults::lifecycle::FaultState;
use crate::domain::faults::record::FaultFilter;
use crate::proto;
use crate::wire::requests::{ManyTriage, triage};

/// Faults one call may reach, children included: the largest circuits and basestations.
const MAX_REACHED: usize = 5_000;
/// Single actions of one call in flight at once.
const IN_FLIGHT: usize = 32;

impl FaultService {
    pub(super) async fn act_on_many_as(
        &self,
        caller: Option<Caller>,
        many: ManyTriage,
    ) -> Result<Response<proto::ActOnManyResponse>, Status> {
        let mut targets: Vec<(i64, i64)> = Vec::new();
        let mut seen = BTreeSet::new();
        for &(fault_id, version) in &many.faults {
            if seen.insert(fault_id) {
                targets.push((fault_id, version));
            }
            if many.include_children {
                for child in self.children_of(fault_id).await? {
                    if seen.insert(child.0) {
                        targets.push(child);
                    }
                }
            }
            if targets.len() > MAX_REACHED {
                return Err(ValidationError::new(
                    "include_children",
                    format!("the roll-ups named hold more than {MAX_REACHED} faults; act on fewer at once"),
                )
                .into());
            }
        }
        // Several in flight, so the writer commits them in a few transactions rather than one
        // each, yet never thousands of blocking tasks at once.
        let outcomes: Vec<_> = futures::stream::iter(targets.clone())
            .map(|(id, version)| {
                // Each fault is judged as its single action would judge it: a fault named
                // without the version seen is refused alone, not the whole call.
                let triage = triage(id, version, many.action.clone(), &many.note);
                let caller = caller.clone();
                async move {
                    match triage {
                        Ok(triage) => self.act(caller, triage).await,
                        Err(invalid) => Err(Status::from(invalid)),
                    }
                }
            })
            .buffered(IN_FLIGHT)
            .collect()
            .await;
        let mut reply = proto::ActOnManyResponse::default();
        for ((fault_id, _), outcome) in targets.iter().zip(outcomes) {
            match outcome {
                Ok(fault) => reply.done.push(fault.into_inner()),
                // A caller who may not act at all is refused as a whole, not fault by fault.
                Err(status) if status.code() == tonic::Code::Unauthenticated => {
                    return Err(status);
                }
                Err(status) => reply.refused.push(proto::FaultRefusal {
                    fault_id: *fault_id,
                    code: code_name(status.code()).to_owned(),
                    reason: status.message().to_owned(),
                }),
            }
        }
        Ok(Response::new(reply))
    }

    /// The lamp faults still on the board under a roll-up, at their current versions; none
    /// for a lamp fault.
    async fn children_of(&self, parent: i64) -> Result<Vec<(i64, i64)>, ServiceError> {
        let filter = FaultFilter {
            parent_id: Some(parent),
            states: vec![
                FaultState::Open,
                FaultState::Acknowledged,
                FaultState::Assigned,
                FaultState::Cleared,
            ],
            ..FaultFilter::default()
        };
        let children = self
            .context
            .blocking(move |s| s.faults(&filter, 0, MAX_REACHED + 1))
            .await?;
        Ok(children.iter().map(|f| (f.id, f.version)).collect())
    }
}

fn code_name(code: tonic::Code) -> &'static str {
    match code {
        tonic::Code::Aborted => "ABORTED",
        tonic::Code::FailedPrecondition => "FAILED_PRECONDITION",
        tonic::Code::NotFound => "NOT_FOUND",
        tonic::Code::InvalidArgument => "INVALID_ARGUMENT",
        tonic::Code::PermissionDenied => "PERMISSION_DENIED",
        tonic::Code::Unavailable => "UNAVAILABLE",
        _ => "INTERNAL",
    }
}
