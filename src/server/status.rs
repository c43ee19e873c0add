//! Per-lamp status for the lamp panes: the latest reading plus what the server derives from
//! it and from the lamp's open faults, and a stream of changes for a set of lamps or a zone.
//! The lamps are the inventory's own; the reading and the faults come from this process's
//! tables when it serves telemetry and faults, else from those services, asked with the
//! caller's own token (`remote::observed::StatusSources`).

use crate::domain::inventory::EntityKind;
use crate::store::StoreError;
use std::collections::HashSet;
use std::pin::Pin;

use futures::{Stream, StreamExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::{BroadcastStream, ReceiverStream, errors::BroadcastStreamRecvError};
use tonic::Status;

use super::context::Context;
use super::paging::PageStream;
use crate::domain::ValidationError;
use crate::domain::faults::FaultType;
use crate::domain::faults::lifecycle::FaultState;
use crate::domain::faults::record::FaultFilter;
use crate::proto;
use crate::remote::inventory::OnBehalf;
use crate::store::{Scan, StatusFilter};
use crate::wire::faults as wire_faults;
use crate::wire::report_of;
use crate::wire::requests::{MAX_WATCHED_LAMPS, WatchedLamps};

/// What of an open fault counts towards a lamp's status.
struct OpenFault {
    severity: proto::Severity,
    offline: bool,
}

pub async fn status(
    context: &Context,
    caller: &OnBehalf,
    lamp_id: i64,
) -> Result<proto::LampStatus, Status> {
    context.lookup(move |s| s.lamp(lamp_id)).await?;
    let (latest, open) = match (&context.lamp_status.telemetry, &context.lamp_status.faults) {
        // Both from this process's tables, in one trip to the database.
        (None, None) => {
            let (reading, faults) = context
                .blocking(move |s| {
                    Ok((
                        s.lamp_status(lamp_id)?,
                        s.faults(&open_faults(lamp_id), 0, 1_000)?,
                    ))
                })
                .await?;
            (
                reading.map(|r| report_of(String::new(), lamp_id, &r)),
                stored_open(&faults),
            )
        }
        (telemetry, faults) => {
            let latest = match telemetry {
                None => context
                    .lookup(move |s| s.lamp_status(lamp_id))
                    .await?
                    .map(|r| report_of(String::new(), lamp_id, &r)),
                Some(telemetry) => telemetry.latest(caller, vec![lamp_id]).await?.pop(),
            };
            let open = match faults {
                None => stored_open(
                    &context
                        .blocking(move |s| s.faults(&open_faults(lamp_id), 0, 1_000))
                        .await?,
                ),
                Some(faults) => faults
                    .open_faults(caller, lamp_id)
                    .await?
                    .iter()
                    .map(|f| OpenFault {
                        severity: f.severity(),
                        offline: f.r#type() == proto::FaultType::NodeOffline,
                    })
                    .collect(),
            };
            (latest, open)
        }
    };
    Ok(derive(lamp_id, latest.as_ref(), &open))
}

/// The lamp's faults that count towards its status: open, acknowledged or assigned.
fn open_faults(lamp_id: i64) -> FaultFilter {
    FaultFilter {
        lamp_id: Some(lamp_id),
        states: vec![
            FaultState::Open,
            FaultState::Acknowledged,
            FaultState::Assigned,
        ],
        ..FaultFilter::default()
    }
}

fn stored_open(faults: &[crate::domain::faults::record::Fault]) -> Vec<OpenFault> {
    faults
        .iter()
        .map(|f| OpenFault {
            severity: wire_faults::severity(f.severity),
            offline: f.fault_type == FaultType::NodeOffline,
        })
        .collect()
}

/// The status a reading and the open faults make.
fn derive(
    lamp_id: i64,
    latest: Option<&proto::TelecellReport>,
    open: &[OpenFault],
) -> proto::LampStatus {
    let worst = open.iter().map(|f| f.severity).max();
    let offline = open.iter().any(|f| f.offline);
    let health = match (latest, offline, worst) {
        (None, _, _) => proto::LampHealth::Unknown,
        (_, true, _) => proto::LampHealth::Offline,
        (_, false, Some(_)) => proto::LampHealth::Fault,
        (_, false, None) => proto::LampHealth::Ok,
    };
    let mut status = proto::LampStatus {
        lamp_id,
        health: health.into(),
        worst_severity: worst.unwrap_or_default().into(),
        open_faults: open.len() as u32,
        ..Default::default()
    };
    if let Some(r) = latest {
        status.last_heard = r.at;
        status.lamp_on = r.lamp_on;
        status.dim_target_pct = r.dim_target_pct;
        status.dim_actual_pct = r.dim_actual_pct;
        status.voltage_v = r.voltage_v;
        status.current_a = r.current_a;
        status.power_w = r.power_w;
        status.power_factor = r.power_factor;
        status.energy_wh = r.energy_wh;
        status.burn_hours = r.burn_hours;
        status.temperature_c = r.temperature_c;
        status.link_quality_pct = r.link_quality_pct;
    }
    status
}

/// What a watcher hears: a lamp whose reading or faults changed, or that it fell behind.
enum Change {
    Lamp(i64),
    Lagged,
}

type Changes = Pin<Box<dyn Stream<Item = Result<Change, Status>> + Send>>;

pub async fn watch(
    context: &Context,
    caller: OnBehalf,
    watched: WatchedLamps,
) -> Result<PageStream<proto::LampStatus>, Status> {
    let (lamps, zone) = match watched {
        WatchedLamps::Named(lamps) => (lamps.into_iter().collect::<HashSet<i64>>(), 0),
        WatchedLamps::Zone(zone) => (zone_lamps(context, zone).await?, zone),
    };
    // Named lamps are held to the limit by the request's check; a zone may hold more.
    if lamps.len() > MAX_WATCHED_LAMPS {
        return Err(ValidationError::new(
            "zone_id",
            format!(
                "the zone holds {} lamps; a watcher follows at most {MAX_WATCHED_LAMPS}: name the lamps instead",
                lamps.len()
            ),
        )
        .into());
    }
    let mut ordered: Vec<i64> = lamps.iter().copied().collect();
    ordered.sort_unstable();
    // Both feeds are followed before the first status is read, so no change is missed.
    let sources = &context.lamp_status;
    let readings: Changes = match &sources.telemetry {
        None => local_changes(BroadcastStream::new(context.lamp_updates.subscribe())),
        // An empty zone has nothing to follow (and a request naming no lamp is refused).
        Some(_) if ordered.is_empty() => Box::pin(futures::stream::pending()),
        Some(telemetry) => Box::pin(telemetry.watch(&caller, ordered.clone()).await?.flat_map(
            |page| {
                futures::stream::iter(match page {
                    // The state when the watch began: each lamp's first status is read anyway
                    // (those never heard from are not in it).
                    Ok(page) if page.snapshot => Vec::new(),
                    Ok(page) => page
                        .reports
                        .into_iter()
                        .map(|r| Ok(Change::Lamp(r.lamp_id)))
                        .collect(),
                    Err(status) => vec![Err(status)],
                })
            },
        )),
    };
    let faults: Changes = match &sources.faults {
        None => local_changes(
            BroadcastStream::new(context.fault_feed.subscribe())
                .map(|event| event.map(|e| e.fault.lamp_id.unwrap_or_default())),
        ),
        Some(faults) => Box::pin(
            faults
                // One lamp (a lamp pane) is asked for by itself; a set of lamps hears every
                // event and keeps its own (the filter names one lamp at most).
                .watch(
                    &caller,
                    zone,
                    if ordered.len() == 1 { ordered[0] } else { 0 },
                )
                .await?
                .map(|event| event.map(|e| Change::Lamp(e.fault.map_or(0, |f| f.lamp_id)))),
        ),
    };
    let changes = futures::stream::select(readings, faults);
    let (sender, receiver) = mpsc::channel(256);
    tokio::spawn(follow(
        context.clone(),
        caller,
        lamps,
        ordered,
        changes,
        sender,
    ));
    Ok(Box::pin(ReceiverStream::new(receiver)))
}

/// The live lamps of `zone` (`NOT_FOUND` when there is no such zone).
async fn zone_lamps(context: &Context, zone: i64) -> Result<HashSet<i64>, Status> {
    let zones = context.blocking(|s| s.zone_names()).await?;
    if !zones.iter().any(|(id, _)| *id == zone) {
        return Err(StoreError::MissingReference {
            field: "zone_id",
            kind: EntityKind::Zone,
            id: zone,
        }
        .into());
    }
    let all = context
        .blocking(|s| {
            s.lamps(&Scan {
                after_id: 0,
                limit: usize::MAX,
                status: StatusFilter::Live,
                area: None,
            })
        })
        .await?;
    Ok(all
        .into_iter()
        .filter(|l| l.zone_id == Some(zone))
        .map(|l| l.id)
        .collect())
}

/// This process's own notices of changed lamps as changes.
fn local_changes<S>(notices: S) -> Changes
where
    S: Stream<Item = Result<i64, BroadcastStreamRecvError>> + Send + 'static,
{
    Box::pin(notices.map(|notice| {
        Ok(match notice {
            Ok(lamp_id) => Change::Lamp(lamp_id),
            Err(BroadcastStreamRecvError::Lagged(_)) => Change::Lagged,
        })
    }))
}

async fn follow(
    context: Context,
    caller: OnBehalf,
    lamps: HashSet<i64>,
    ordered: Vec<i64>,
    mut changes: impl Stream<Item = Result<Change, Status>> + Unpin,
    sender: mpsc::Sender<Result<proto::LampStatus, Status>>,
) {
    let mut pending: Vec<i64> = ordered.clone();
    loop {
        for lamp_id in pending.drain(..) {
            let update = status(&context, &caller, lamp_id).await;
            if sender.send(update).await.is_err() {
                return;
            }
        }
        let changed = tokio::select! {
            biased;
            () = context.shutdown.cancelled() => return,
            changed = changes.next() => changed,
        };
        match changed {
            Some(Ok(Change::Lamp(lamp_id))) if lamps.contains(&lamp_id) => pending.push(lamp_id),
            Some(Ok(Change::Lamp(_))) => {}
            // Status is state, not history: after falling behind, send everything afresh.
            Some(Ok(Change::Lagged)) => pending.clone_from(&ordered),
            // A feed of another process ended: the watcher resumes, as after any drop.
            Some(Err(status)) => {
                let _ = sender.send(Err(status)).await;
                return;
            }
            None => {
                let _ = sender
                    .send(Err(Status::unavailable(
                        "the feed of lamp changes ended; watch again",
                    )))
                    .await;
                return;
            }
        }
    }
}
