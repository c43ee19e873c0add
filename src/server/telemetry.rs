//! The `Telemetry` service: a stream of telecell reports is validated report by report,
//! evaluated by the fault engine and stored in one commit per chunk; the reply counts only
//! what is durable. Only the leader judges: a server that follows forwards the stream to it.
//! Lamps' latest reports are read back through `latest.rs`.

use chrono::Utc;
use futures::StreamExt;
use tonic::{Request, Response, Status, Streaming};

use std::sync::Arc;

use super::context::Context;
use super::engine::Engine;
use super::error::ServiceError;
use super::forward::Forwarder;
use super::leadership::{Leadership, Role};
use super::wiring::WiringSource;
use crate::domain::billing::ledger::Ledger;
use crate::domain::faults::tracker::Skipped;
use crate::domain::telemetry::{LampContext, Reading};
use crate::proto::{self, telemetry_server::Telemetry};
use crate::remote::inventory::OnBehalf;
use crate::store::{EngineChange, LampReading, Notice, TelemetryBatch};
use crate::wire;

pub struct TelemetryService {
    pub context: Context,
    pub leadership: Arc<Leadership>,
    /// Where a report's telecell is looked up.
    pub wiring: Arc<WiringSource>,
    pub forwarder: Arc<Forwarder>,
    /// How far back readings are kept: an older report is refused, not stored to be pruned.
    pub readings_kept: chrono::Duration,
}

/// Reports evaluated and committed together.
const CHUNK: usize = 2_000;
/// Rejections listed in a reply; the rest are only counted.
const MAX_LISTED_REJECTIONS: usize = 100;
/// Characters of a rejected report's telecell uuid echoed back.
const MAX_ECHOED_UUID: usize = 64;

#[tonic::async_trait]
impl Telemetry for TelemetryService {
    type WatchLatestStream = super::paging::PageStream<proto::LatestReports>;

    async fn get_latest(
        &self,
        request: Request<proto::LatestRequest>,
    ) -> Result<Response<proto::LatestReports>, Status> {
        let lamps = wire::requests::latest(request.get_ref())?;
        let reports = super::latest::get(&self.context, lamps).await?;
        Ok(Response::new(proto::LatestReports {
            reports,
            snapshot: false,
        }))
    }

    async fn watch_latest(
        &self,
        request: Request<proto::LatestRequest>,
    ) -> Result<Response<Self::WatchLatestStream>, Status> {
        let lamps = wire::requests::latest(request.get_ref())?;
        Ok(Response::new(
            super::latest::watch(&self.context, lamps).await?,
        ))
    }
    async fn report(
        &self,
        request: Request<Streaming<proto::TelecellReport>>,
    ) -> Result<Response<proto::ReportAck>, Status> {
        let (term, engine) = match self.leadership.role() {
            Role::Leading { term, engine } => (term, engine),
            Role::Following {
                leader: Some(leader),
            } if leader.address != self.leadership.address
                && !Forwarder::was_forwarded(&request) =>
            {
                return self.forwarder.report(&leader.address, request).await;
            }
            _ => {
                return Err(ServiceError::unavailable(
                    "no server leads at the moment (one takes over within seconds); resend",
                )
                .into());
            }
        };
        let reporter = OnBehalf::of(&request);
        let mut stream = request.into_inner();
        let mut ack = proto::ReportAck::default();
        let mut chunk = Vec::with_capacity(CHUNK);
        loop {
            let next = stream.next().await;
            let end = match next {
                Some(Ok(report)) => {
                    chunk.push((ack.received, report));
                    ack.received += 1;
                    false
                }
                Some(Err(status)) => return Err(status),
                None => true,
            };
            if chunk.len() >= CHUNK || (end && !chunk.is_empty()) {
                self.ingest(
                    &engine,
                    term,
                    &reporter,
                    std::mem::take(&mut chunk),
                    &mut ack,
                )
                .await?;
            }
            if end {
                ack.rejections.sort_by_key(|r| r.index);
                return Ok(Response::new(ack));
            }
        }
    }
}

impl TelemetryService {
    async fn ingest(
        &self,
        engine: &Engine,
        term: i64,
        reporter: &OnBehalf,
        reports: Vec<(u64, proto::TelecellReport)>,
        ack: &mut proto::ReportAck,
    ) -> Result<(), Status> {
        let now = Utc::now();
        let mut valid: Vec<(u64, String, i64, Reading)> = Vec::with_capacity(reports.len());
        for (index, report) in reports {
            match wire::telecell_report(&report)
                .and_then(|raw| raw.validate(now, now - self.readings_kept))
            {
                Ok(reading) => valid.push((index, report.telecell_uuid, report.lamp_id, reading)),
                Err(error) => reject(ack, index, &report.telecell_uuid, error.to_string()),
            }
        }
        let uuids: Vec<String> = valid.iter().map(|(_, uuid, _, _)| uuid.clone()).collect();
        let known = self.wiring.resolve(&self.context, reporter, uuids).await?;

        let mut locked = engine.lock().await;
        if !self.leadership.leads_in(term) {
            return Err(ServiceError::unavailable(
                "this server stopped leading during the stream; resend",
            )
            .into());
        }
        let state = &mut *locked;
        super::engine::resume_from_committed(&self.context, state).await?;
        let mut batch = TelemetryBatch::default();
        let mut energy = Ledger::new(*state.energy.meter());
        for (index, uuid, lamp_id, reading) in valid {
            let Some(lamps) = known.get(&uuid) else {
                reject(
                    ack,
                    index,
                    &uuid,
                    format!(
                        "telecell_uuid: telecell {} is not in the estate",
                        crate::domain::validation::quoted(&uuid)
                    ),
                );
                continue;
            };
            let targets: Vec<&LampContext> = lamps
                .iter()
                .filter(|l| lamp_id == 0 || l.lamp_id == lamp_id)
                .collect();
            if targets.is_empty() {
                reject(
                    ack,
                    index,
                    &uuid,
                    format!("lamp_id: lamp {lamp_id} is not driven by telecell {uuid}"),
                );
                continue;
            }
            let impossible = targets.iter().find_map(|lamp| {
                let previous = state.lamps.get(&lamp.lamp_id)?.last_reading?;
                (reading.at > previous.at)
                    .then(|| reading.energy_step_from(&previous).err())
                    .flatten()
            });
            if let Some(error) = impossible {
                reject(ack, index, &uuid, error.to_string());
                continue;
            }
            for lamp in targets {
                state.contexts.insert(lamp.lamp_id, *lamp);
                let faults = state.lamps.entry(lamp.lamp_id).or_default();
                let previous = faults.last_reading;
                let latest =
                    match faults.observe(&reading, &lamp.profile, &state.thresholds, &state.policy)
                    {
                        Ok(changes) => {
                            if let Some(previous) = &previous
                                && state.metering
                            {
                                energy.record(lamp, previous, &reading);
                            }
                            batch
                                .changes
                                .extend(changes.into_iter().map(|change| EngineChange {
                                    at: reading.at,
                                    lamp: *lamp,
                                    change,
                                }));
                            true
                        }
                        Err(Skipped::Duplicate) => true,
                        Err(Skipped::OutOfOrder) => {
                            ack.out_of_order += 1;
                            false
                        }
                    };
                batch.readings.push(LampReading {
                    lamp_id: lamp.lamp_id,
                    reading,
                    latest,
                });
            }
        }
        state.correlate(now, &mut batch);
        batch.lineage = Some(state.lineage.clone());
        let updated: Vec<i64> = batch
            .readings
            .iter()
            .filter(|r| r.latest)
            .map(|r| r.lamp_id)
            .collect();
        // Queued while the lock is held, so batches commit in the order they were judged;
        // awaited without it, so the next chunk is judged meanwhile. If this batch fails, the
        // store refuses every later one of the lineage and the next judgement reloads.
        let queued = self
            .context
            .lookup(move |s| s.queue_telemetry(batch))
            .await?;
        drop(locked);
        let outcome = queued.committed().await.map_err(ServiceError::from)?;
        self.context.publish(outcome.events);
        ack.stored += outcome.stored;
        self.context.metrics.reports_stored(outcome.stored);
        ack.duplicates += outcome.duplicates;
        engine.lock().await.energy.absorb(energy);
        self.context
            .announce(vec![Notice::Readings(updated.clone())]);
        for lamp_id in updated {
            // Nobody watching is fine.
            let _ = self.context.lamp_updates.send(lamp_id);
        }
        Ok(())
    }
}

fn reject(ack: &mut proto::ReportAck, index: u64, uuid: &str, reason: String) {
    ack.rejected += 1;
    if ack.rejections.len() < MAX_LISTED_REJECTIONS {
        // A uuid is 36 characters; what a sender put there may be far longer, and the
        // acknowledgement must always fit in one message.
        ack.rejections.push(proto::Rejection {
            index,
            telecell_uuid: uuid.chars().take(MAX_ECHOED_UUID).collect(),
            reason,
        });
    }
}
