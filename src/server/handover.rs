//! `Faults.Handover`: a shift's story from the fault log (`domain::faults::shift`), and what
//! the next shift inherits, read now: the faults waiting for someone, the outages still
//! running, the claims held.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use tonic::{Response, Status};

use super::faults::FaultService;
use crate::domain::faults::FaultType;
use crate::domain::faults::lifecycle::FaultState;
use crate::domain::faults::record::Fault;
use crate::domain::faults::shift::Shift;
use crate::proto;
use crate::wire::faults as wire_faults;
use crate::wire::timestamp;

/// Events read from the log per query.
const EVENT_PAGE: usize = 5_000;
/// Waiting faults listed at most (all are counted).
const MAX_WAITING: usize = 200;

impl FaultService {
    pub(super) async fn handover_for(
        &self,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        zone: Tz,
    ) -> Result<Response<proto::HandoverResponse>, Status> {
        let shift = self
            .context
            .blocking(move |s| {
                let mut shift = Shift::default();
                let mut after = 0;
                loop {
                    let page = s.fault_events_between(since, until, after, EVENT_PAGE)?;
                    for event in &page {
                        shift.add(event);
                    }
                    match page.last() {
                        Some(last) if page.len() == EVENT_PAGE => after = last.seq,
                        _ => return Ok(shift),
                    }
                }
            })
            .await?;
        let active = self.context.blocking(|s| s.active_faults()).await?;

        let mut reply = proto::HandoverResponse {
            since: Some(timestamp(since)),
            until: Some(timestamp(until)),
            time_zone: zone.name().to_owned(),
            opened: shift.totals.opened,
            cleared: shift.totals.cleared,
            resolved: shift.totals.resolved,
            notes_total: u32::try_from(shift.notes_total).unwrap_or(u32::MAX),
            ..Default::default()
        };
        let mut counts: Vec<_> = shift.by_kind.iter().collect();
        counts.sort_by_key(|((t, s), c)| (std::cmp::Reverse(c.opened), *s, t.as_str()));
        reply.counts = counts
            .into_iter()
            .map(|((fault_type, severity), c)| proto::ShiftCount {
                r#type: wire_faults::fault_type(*fault_type) as i32,
                severity: wire_faults::severity(*severity) as i32,
                opened: c.opened,
                cleared: c.cleared,
                resolved: c.resolved,
            })
            .collect();
        reply.operators = shift
            .operators
            .iter()
            .map(|(actor, a)| proto::OperatorShift {
                actor: actor.clone(),
                acknowledged: a.acknowledged,
                assigned: a.assigned,
                resolved: a.resolved,
                notes: a.notes,
            })
            .collect();
        reply.notes = shift
            .notes
            .iter()
            .map(|n| proto::ShiftNote {
                fault_id: n.fault_id,
                at: Some(timestamp(n.at)),
                actor: n.actor.clone(),
                action: n.action.as_str().to_owned(),
                note: n.note.clone(),
            })
            .collect();

        let mut waiting: Vec<&Fault> = active.iter().filter(|f| is_waiting(f)).collect();
        waiting.sort_by_key(|f| (std::cmp::Reverse(f.severity), f.first_seen, f.id));
        reply.waiting_total = u32::try_from(waiting.len()).unwrap_or(u32::MAX);
        reply.waiting = waiting
            .into_iter()
            .take(MAX_WAITING)
            .map(proto::Fault::from)
            .collect();
        reply.outages = active
            .iter()
            .filter(|f| {
                matches!(
                    f.fault_type,
                    FaultType::CircuitSupplyLoss | FaultType::BasestationOffline
                ) && f.state.is_active()
            })
            .map(|outage| proto::ShiftOutage {
                fault: Some(outage.into()),
                lamps: u32::try_from(
                    active
                        .iter()
                        .filter(|f| f.parent_id == Some(outage.id) && f.state.is_active())
                        .count(),
                )
                .unwrap_or(u32::MAX),
            })
            .collect();
        reply.claims = self
            .presence
            .claims(Utc::now())
            .into_iter()
            .map(|(fault_id, claimed_by, until)| proto::ShiftClaim {
                fault_id,
                claimed_by,
                until: Some(timestamp(until)),
            })
            .collect();
        Ok(Response::new(reply))
    }
}

/// Open and nobody has acknowledged it (a cleared fault nobody acknowledged too).
fn is_waiting(fault: &Fault) -> bool {
    !fault.acknowledged && matches!(fault.state, FaultState::Open | FaultState::Cleared)
}
