//! The latest stored report of named lamps (`Telemetry.GetLatest`, `Telemetry.WatchLatest`):
//! what the inventory, run apart from telemetry, shows as a lamp's status.

use std::collections::HashSet;

use prost::Message;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use super::context::Context;
use super::paging::{PageStream, next_page};
use crate::proto;
use crate::wire::report_of;

/// Replies buffered ahead of a slow watcher.
const REPLIES_IN_FLIGHT: usize = 256;

/// The latest report of each of `lamps` that was ever heard from.
pub async fn get(context: &Context, lamps: Vec<i64>) -> Result<Vec<proto::TelecellReport>, Status> {
    let reports = context
        .blocking(move |s| {
            let mut reports = Vec::with_capacity(lamps.len());
            for lamp_id in lamps {
                if let Some(reading) = s.lamp_status(lamp_id)? {
                    reports.push(report_of(String::new(), lamp_id, &reading));
                }
            }
            Ok(reports)
        })
        .await?;
    Ok(reports)
}

/// The latest reports of `lamps`, in pages that fit a message, then each newer one.
pub async fn watch(
    context: &Context,
    lamps: Vec<i64>,
) -> Result<PageStream<proto::LatestReports>, Status> {
    // Subscribed before the first read, so nothing stored in between is missed.
    let updates = context.lamp_updates.subscribe();
    let first = get(context, lamps.clone()).await?;
    let (sender, receiver) = mpsc::channel(REPLIES_IN_FLIGHT);
    tokio::spawn(follow(context.clone(), lamps, first, updates, sender));
    Ok(Box::pin(ReceiverStream::new(receiver)))
}

async fn follow(
    context: Context,
    lamps: Vec<i64>,
    first: Vec<proto::TelecellReport>,
    mut updates: broadcast::Receiver<i64>,
    sender: mpsc::Sender<Result<proto::LatestReports, Status>>,
) {
    let watched: HashSet<i64> = lamps.iter().copied().collect();
    let mut pending = first;
    let mut snapshot = true;
    loop {
        let mut rest = std::mem::take(&mut pending).into_iter().peekable();
        while rest.peek().is_some() {
            let reports = next_page(&mut rest, usize::MAX, context.page_bytes, |r| {
                r.encoded_len()
            });
            if sender
                .send(Ok(proto::LatestReports { reports, snapshot }))
                .await
                .is_err()
            {
                return;
            }
        }
        snapshot = false;
        let changed = tokio::select! {
            biased;
            () = context.shutdown.cancelled() => return,
            changed = updates.recv() => changed,
        };
        let asked = match changed {
            Ok(lamp_id) if watched.contains(&lamp_id) => vec![lamp_id],
            Ok(_) => continue,
            // The latest report is state, not history: after falling behind, all afresh.
            Err(broadcast::error::RecvError::Lagged(_)) => lamps.clone(),
            Err(broadcast::error::RecvError::Closed) => return,
        };
        match get(&context, asked).await {
            Ok(reports) => pending = reports,
            Err(status) => {
                let _ = sender.send(Err(status)).await;
                return;
            }
        }
    }
}
