//! The `Faults` service: listings, a fault with its history, Daily Faults on a local day,
//! triage actions carrying the version the operator saw, and `Watch`: replay from the
//! durable log, then live, with no gap and no duplicate at the hand-over.

use std::collections::BTreeMap;

use prost::Message as _;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::audit::{self, Change};
use super::context::Context;
use super::error::ServiceError;
use super::paging::PageStream;
use crate::domain::ValidationError;
use crate::domain::auth::Caller;
use crate::domain::faults::lifecycle::Action;
use crate::domain::faults::record::{FaultEvent, FaultFilter};
use crate::domain::local_time::LocalDay;
use crate::domain::paging::Cursor;
use crate::proto::{self, faults_server::Faults};
use crate::store::FaultAction;
use crate::wire::faults as wire_faults;
use crate::wire::requests::Triage;
use crate::wire::{self, timestamp};

pub struct FaultService {
    pub context: Context,
    /// Claims held, for the handover.
    pub presence: super::presence::PresenceHub,
    /// Events buffered towards one watcher (`Limits::watcher_buffer`).
    pub watcher_buffer: usize,
}

/// History entries a fault's detail carries at most (the newest), fewer when they are long.
const MAX_HISTORY: usize = 2_000;

/// Events replayed per read of the log.
const REPLAY_CHUNK: usize = 1_000;

#[tonic::async_trait]
impl Faults for FaultService {
    type ListStream = PageStream<proto::FaultPage>;
    type WatchStream = PageStream<proto::FaultEvent>;

    async fn list(
        &self,
        request: Request<proto::ListFaultsRequest>,
    ) -> Result<Response<Self::ListStream>, Status> {
        let asked = wire::requests::list_faults(request.get_ref())?;
        let (filter, page_size) = (asked.filter, asked.page_size);
        let (_, snapshot_seq) = self.context.blocking(|s| s.fault_log_bounds()).await?;
        let (sender, receiver) = mpsc::channel(4);
        let context = self.context.clone();
        tokio::spawn(async move {
            let mut after = asked.after_id;
            loop {
                let filter = filter.clone();
                let read = context
                    .blocking(move |s| s.faults(&filter, after, page_size + 1))
                    .await;
                let faults = match read {
                    Ok(faults) => faults,
                    Err(error) => {
                        let _ = sender.send(Err(Status::from(error))).await;
                        return;
                    }
                };
                let read = faults.len();
                let converted: Vec<(i64, proto::Fault)> = faults
                    .iter()
                    .map(|f| (f.id, proto::Fault::from(f)))
                    .collect();
                let mut items = converted.into_iter().peekable();
                let items = super::paging::next_page(
                    &mut items,
                    page_size,
                    context.page_bytes,
                    |(_, fault): &(i64, proto::Fault)| fault.encoded_len(),
                );
                let more = read > items.len();
                after = items.last().map_or(after, |(id, _)| *id);
                let page = proto::FaultPage {
                    items: items.into_iter().map(|(_, fault)| fault).collect(),
                    next_page_token: if more {
                        Cursor { after_id: after }.to_token()
                    } else {
                        String::new()
                    },
                    snapshot_seq,
                };
                if sender.send(Ok(page)).await.is_err() || !more {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }

    async fn get(
        &self,
        request: Request<proto::GetFaultRequest>,
    ) -> Result<Response<proto::FaultDetail>, Status> {
        let id = wire::requests::get_fault(request.get_ref())?;
        let (fault, history, total) = self
            .context
            .blocking(move |s| s.fault(id, MAX_HISTORY))
            .await?;
        let fault = proto::Fault::from(&fault);
        // The newest entries that fit beside the fault: cut from the newest end backwards.
        let mut newest_first = history
            .iter()
            .rev()
            .map(proto::HistoryEntry::from)
            .peekable();
        let mut history = super::paging::next_page(
            &mut newest_first,
            MAX_HISTORY,
            self.context.page_bytes.saturating_sub(fault.encoded_len()),
            prost::Message::encoded_len,
        );
        history.reverse();
        Ok(Response::new(proto::FaultDetail {
            fault: Some(fault),
            history_omitted: total.saturating_sub(history.len() as u64),
            history,
        }))
    }

    async fn daily_faults(
        &self,
        request: Request<proto::DailyFaultsRequest>,
    ) -> Result<Response<proto::DailyFaultsResponse>, Status> {
        let (date, zone) = wire::requests::daily_faults(request.get_ref())?;
        let day = LocalDay::new(date, zone);
        let counts = self
            .context
            .blocking(move |s| s.fault_counts_opened(day.start, day.end))
            .await?;
        let hours = day.hours();
        let mut by_hour = vec![0u32; hours as usize];
        let mut by_kind: BTreeMap<(i32, i32), u32> = BTreeMap::new();
        for c in &counts {
            if let Some(slot) = by_hour.get_mut(c.hour) {
                *slot += c.count;
            }
            let key = (
                wire_faults::fault_type(c.fault_type) as i32,
                wire_faults::severity(c.severity) as i32,
            );
            *by_kind.entry(key).or_default() += c.count;
        }
        Ok(Response::new(proto::DailyFaultsResponse {
            date: date.to_string(),
            time_zone: zone.name().to_owned(),
            day_start: Some(timestamp(day.start)),
            day_end: Some(timestamp(day.end)),
            hours,
            minutes: day.minutes(),
            total: by_hour.iter().sum(),
            counts: by_kind
                .into_iter()
                .map(|((r#type, severity), count)| proto::DailyFaultCount {
                    r#type,
                    severity,
                    count,
                })
                .collect(),
            by_hour,
        }))
    }

    async fn watch(
        &self,
        request: Request<proto::WatchFaultsRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let (filter, after_seq) = wire::requests::watch_faults(request.get_ref())?;
        // Subscribe before reading the log: whatever commits in between is in both, and the
        // seq tells the copies apart.
        let live = self.context.fault_feed.subscribe();
        let (oldest, newest) = self.context.blocking(|s| s.fault_log_bounds()).await?;
        if after_seq > newest {
            return Err(ValidationError::new(
                "after_seq",
                format!(
                    "{after_seq} is beyond the newest event ({newest}); resync: list faults, then watch from its snapshot_seq",
                ),
            )
            .into());
        }
        // 0 means "whatever the log still holds"; any other seq must still be in it.
        if after_seq != 0 && after_seq + 1 < oldest {
            return Err(ServiceError::OutOfRange(format!(
                "after_seq: events after {after_seq} are no longer kept (the log starts at {oldest}); resync: list faults, then watch from its snapshot_seq",
            ))
            .into());
        }
        let (sender, receiver) = mpsc::channel(self.watcher_buffer.max(1));
        tokio::spawn(follow(
            self.context.clone(),
            after_seq,
            filter,
            live,
            sender,
        ));
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }

    async fn acknowledge(
        &self,
        request: Request<proto::FaultActionRequest>,
    ) -> Result<Response<proto::Fault>, Status> {
        let triage = wire::requests::acknowledge(request.get_ref())?;
        self.act(request.extensions().get::<Caller>().cloned(), triage)
            .await
    }

    async fn assign(
        &self,
        request: Request<proto::AssignFaultRequest>,
    ) -> Result<Response<proto::Fault>, Status> {
        let triage = wire::requests::assign(request.get_ref())?;
        self.act(request.extensions().get::<Caller>().cloned(), triage)
            .await
    }

    async fn resolve(
        &self,
        request: Request<proto::FaultActionRequest>,
    ) -> Result<Response<proto::Fault>, Status> {
        let triage = wire::requests::resolve(request.get_ref())?;
        self.act(request.extensions().get::<Caller>().cloned(), triage)
            .await
    }

    async fn add_note(
        &self,
        request: Request<proto::FaultActionRequest>,
    ) -> Result<Response<proto::Fault>, Status> {
        let triage = wire::requests::add_note(request.get_ref())?;
        self.act(request.extensions().get::<Caller>().cloned(), triage)
            .await
    }

    async fn handover(
        &self,
        request: Request<proto::HandoverRequest>,
    ) -> Result<Response<proto::HandoverResponse>, Status> {
        let (since, until, zone) = wire::requests::handover(request.get_ref())?;
        self.handover_for(since, until, zone).await
    }

    async fn act_on_many(
        &self,
        request: Request<proto::ActOnManyRequest>,
    ) -> Result<Response<proto::ActOnManyResponse>, Status> {
        let many = wire::requests::act_on_many(request.get_ref())?;
        self.act_on_many_as(request.extensions().get::<Caller>().cloned(), many)
            .await
    }
}

impl FaultService {
    /// Acts as the signed-in caller: the request's `actor` field is not trusted.
    pub(super) async fn act(
        &self,
        caller: Option<Caller>,
        triage: Triage,
    ) -> Result<Response<proto::Fault>, Status> {
        let caller =
            caller.ok_or_else(|| ServiceError::signed_out("this call needs a signed-in user"))?;
        let verb = match &triage.action {
            Action::Acknowledge => "Faults.Acknowledge",
            Action::Assign { .. } => "Faults.Assign",
            Action::Resolve => "Faults.Resolve",
            Action::AddNote => "Faults.AddNote",
        };
        let request = FaultAction {
            fault_id: triage.fault_id,
            expected_version: triage.expected_version,
            action: triage.action,
            actor: wire_faults::actor(&caller.username)?,
            note: triage.note,
        };
        let id = request.fault_id;
        let before: Option<proto::Fault> = self
            .context
            .lookup(move |s| s.fault(id, 0))
            .await
            .ok()
            .map(|(fault, _, _)| (&fault).into());
        let event = self
            .context
            .blocking(move |s| s.act_on_fault(request))
            .await?;
        let fault = event.fault.clone();
        self.context.publish(vec![event]);
        let after: proto::Fault = (&fault).into();
        self.presence
            .renew(id, &caller.username, chrono::Utc::now());
        audit::record(
            &self.context,
            Some(&caller),
            Change {
                action: verb.to_owned(),
                entity: "fault",
                entity_id: id,
                before: before.as_ref(),
                after: Some(&after),
                also: None,
            },
        )
        .await;
        Ok(Response::new(after))
    }
}

/// Replays the log after `after_seq`, then forwards live events, skipping any already sent.
async fn follow(
    context: Context,
    after_seq: u64,
    filter: FaultFilter,
    mut live: broadcast::Receiver<FaultEvent>,
    sender: mpsc::Sender<Result<proto::FaultEvent, Status>>,
) {
    let mut last = after_seq;
    loop {
        let replay = context
            .blocking(move |s| s.fault_events_after(last, REPLAY_CHUNK))
            .await;
        let events = match replay {
            Ok(events) => events,
            Err(error) => {
                let _ = sender.send(Err(Status::from(error))).await;
                return;
            }
        };
        let done = events.len() < REPLAY_CHUNK;
        for event in events {
            last = event.seq;
            if filter.matches(&event.fault) && sender.send(Ok((&event).into())).await.is_err() {
                return;
            }
        }
        if done {
            break;
        }
    }
    loop {
        let received = tokio::select! {
            biased;
            () = context.shutdown.cancelled() => {
                let _ = sender
                    .send(Err(ServiceError::unavailable(format!("the server is shutting down; watch again after seq {last}")).into()))
                    .await;
                return;
            }
            received = live.recv() => received,
        };
        match received {
            Ok(event) if event.seq <= last => continue,
            Ok(event) => {
                last = event.seq;
                if !filter.matches(&event.fault) {
                    continue;
                }
                // A full buffer means this watcher is not reading: cut it off rather than wait.
                // The last free slot is kept for the status that tells it where to resume.
                if sender.capacity() <= 1 {
                    let _ = sender.try_send(Err(resync(event.seq - 1)));
                    return;
                }
                if sender.try_send(Ok((&event).into())).is_err() {
                    return;
                }
            }
            Err(broadcast::error::RecvError::Lagged(_)) => {
                let _ = sender.send(Err(resync(last))).await;
                return;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

fn resync(last_delivered: u64) -> Status {
    ServiceError::Exhausted {
        message: format!(
            "this watcher fell behind and was cut off; watch again with after_seq {last_delivered}"
        ),
        retry_after: None,
    }
    .into()
}
