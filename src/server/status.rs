//! Per-lamp status for the lamp panes: the latest reading plus what the server derives from
//! it and from the lamp's open faults, and a stream of changes for a set of lamps or a zone.

use crate::domain::inventory::EntityKind;
use crate::store::StoreError;
use std::collections::HashSet;

use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use super::context::Context;
use super::error::ServiceError;
use super::paging::PageStream;
use crate::domain::ValidationError;
use crate::domain::faults::FaultType;
use crate::domain::faults::lifecycle::FaultState;
use crate::domain::faults::record::FaultFilter;
use crate::proto;
use crate::store::{Scan, StatusFilter};
use crate::wire::faults as wire_faults;
use crate::wire::requests::{MAX_WATCHED_LAMPS, WatchedLamps};
use crate::wire::timestamp;

pub async fn status(context: &Context, lamp_id: i64) -> Result<proto::LampStatus, ServiceError> {
    context.lookup(move |s| s.lamp(lamp_id)).await?;
    let filter = FaultFilter {
        lamp_id: Some(lamp_id),
        states: vec![
            FaultState::Open,
            FaultState::Acknowledged,
            FaultState::Assigned,
        ],
        ..FaultFilter::default()
    };
    let (reading, faults) = context
        .blocking(move |s| Ok((s.lamp_status(lamp_id)?, s.faults(&filter, 0, 1_000)?)))
        .await?;
    let worst = faults.iter().map(|f| f.severity).max();
    let offline = faults
        .iter()
        .any(|f| f.fault_type == FaultType::NodeOffline);
    let health = match (&reading, offline, worst) {
        (None, _, _) => proto::LampHealth::Unknown,
        (_, true, _) => proto::LampHealth::Offline,
        (_, false, Some(_)) => proto::LampHealth::Fault,
        (_, false, None) => proto::LampHealth::Ok,
    };
    let mut status = proto::LampStatus {
        lamp_id,
        health: health.into(),
        worst_severity: worst.map(wire_faults::severity).unwrap_or_default().into(),
        open_faults: faults.len() as u32,
        ..Default::default()
    };
    if let Some(r) = reading {
        status.last_heard = Some(timestamp(r.at));
        status.lamp_on = r.lamp_on;
        status.dim_target_pct = r.dim_target_pct.into();
        status.dim_actual_pct = r.dim_actual_pct.into();
        status.voltage_v = r.voltage_v.into();
        status.current_a = r.current_a.into();
        status.power_w = r.power_w.into();
        status.power_factor = r.power_factor.into();
        status.energy_wh = r.energy_wh;
        status.burn_hours = r.burn_hours;
        status.temperature_c = r.temperature_c.into();
        status.link_quality_pct = r.link_quality_pct.into();
    }
    Ok(status)
}

pub async fn watch(
    context: &Context,
    watched: WatchedLamps,
) -> Result<PageStream<proto::LampStatus>, Status> {
    let lamps: HashSet<i64> = match watched {
        WatchedLamps::Named(lamps) => lamps.into_iter().collect(),
        WatchedLamps::Zone(zone) => {
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
            all.into_iter()
                .filter(|l| l.zone_id == Some(zone))
                .map(|l| l.id)
                .collect()
        }
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
    let readings = context.lamp_updates.subscribe();
    let faults = context.fault_feed.subscribe();
    let (sender, receiver) = mpsc::channel(256);
    tokio::spawn(follow(context.clone(), lamps, readings, faults, sender));
    Ok(Box::pin(ReceiverStream::new(receiver)))
}

async fn follow(
    context: Context,
    lamps: HashSet<i64>,
    mut readings: broadcast::Receiver<i64>,
    mut faults: broadcast::Receiver<crate::domain::faults::record::FaultEvent>,
    sender: mpsc::Sender<Result<proto::LampStatus, Status>>,
) {
    let mut ordered: Vec<i64> = lamps.iter().copied().collect();
    ordered.sort_unstable();
    let mut pending: Vec<i64> = ordered.clone();
    loop {
        for lamp_id in pending.drain(..) {
            let update = status(&context, lamp_id).await.map_err(Status::from);
            if sender.send(update).await.is_err() {
                return;
            }
        }
        let changed = tokio::select! {
            biased;
            () = context.shutdown.cancelled() => return,
            reading = readings.recv() => reading,
            event = faults.recv() => event.map(|e| e.fault.lamp_id.unwrap_or_default()),
        };
        match changed {
            Ok(lamp_id) if lamps.contains(&lamp_id) => pending.push(lamp_id),
            Ok(_) => {}
            // Status is state, not history: after falling behind, send everything afresh.
            Err(broadcast::error::RecvError::Lagged(_)) => pending.clone_from(&ordered),
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}
