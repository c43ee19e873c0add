//! Drives the simulated field against a lighting server: loads the estate over gRPC, advances
//! the simulated clock (optionally faster than real time, never past the present), and
//! streams the reports in batches. A batch leaves the queue only once the server has
//! acknowledged it, so a restart of the server loses nothing: the runner reconnects and
//! resends, and the server recognises anything it already stored.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration as StdDuration, Instant};

use crate::link::AuthedChannel;
use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use futures::StreamExt;

use super::model::{FaultRates, Field, SimLamp};
use crate::domain::geo::GeoPoint;
use crate::proto::{
    self, assets_client::AssetsClient, lamps_client::LampsClient,
    telecells_client::TelecellsClient, telemetry_client::TelemetryClient,
};

#[derive(Debug)]
pub struct SimConfig {
    /// Simulated seconds per real second.
    pub speed: f64,
    /// Where simulated time starts; it never runs past the present.
    pub start: DateTime<Utc>,
    pub rates: FaultRates,
    pub report_interval: Duration,
    pub seed: u64,
    pub time_zone: Tz,
    /// Reports per stream.
    pub batch: usize,
    /// Where each report acknowledged as stored is written down (see `write_journal`).
    pub journal: Option<std::fs::File>,
}

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("cannot load the estate from the server: {0}")]
    Estate(#[from] tonic::Status),
    #[error("the estate has no lamps driven by telecells; seed it first")]
    Empty,
}

/// Loads every live lamp that a telecell drives, with what the model needs.
pub async fn load_estate(channel: &AuthedChannel) -> Result<Vec<SimLamp>, SimError> {
    let mut telecells = TelecellsClient::new(channel.clone());
    let mut by_lamp: HashMap<i64, (String, i64)> = HashMap::new();
    let mut stream = telecells
        .list(proto::ListOptions::default())
        .await?
        .into_inner();
    while let Some(page) = stream.next().await {
        for t in page?.items {
            for lamp in t.lamp_ids {
                by_lamp.insert(lamp, (t.uuid.clone(), t.basestation_id));
            }
        }
    }
    let mut circuits: HashMap<i64, i64> = HashMap::new();
    let mut stream = AssetsClient::new(channel.clone())
        .list(proto::ListOptions::default())
        .await?
        .into_inner();
    while let Some(page) = stream.next().await {
        for a in page?.items {
            if a.circuit_id != 0 {
                circuits.insert(a.id, a.circuit_id);
            }
        }
    }
    let mut lamps = Vec::new();
    let mut stream = LampsClient::new(channel.clone())
        .list(proto::ListOptions::default())
        .await?
        .into_inner();
    while let Some(page) = stream.next().await {
        for l in page?.items {
            let (Some((uuid, basestation_id)), Some(location), Some(lamp_type)) =
                (by_lamp.get(&l.id), l.location, l.lamp_type)
            else {
                continue;
            };
            let Ok(location) = GeoPoint::new(location.lat, location.lon) else {
                continue;
            };
            lamps.push(SimLamp {
                lamp_id: l.id,
                telecell_uuid: uuid.clone(),
                basestation_id: *basestation_id,
                circuit_id: circuits.get(&l.asset_id).copied(),
                wattage_w: lamp_type.wattage_w,
                dimmable: lamp_type.control_type != proto::ControlType::Switch as i32,
                location,
            });
        }
    }
    if lamps.is_empty() {
        return Err(SimError::Empty);
    }
    Ok(lamps)
}

/// Writes down the reports of a batch the server acknowledged as stored: one line each,
/// `telecell lamp instant`. Rejected reports are left out (all of them when more were
/// rejected than the acknowledgement lists).
fn write_journal<'a>(
    journal: &mut std::fs::File,
    batch: impl Iterator<Item = &'a proto::TelecellReport>,
    ack: &proto::ReportAck,
) {
    use std::io::Write as _;
    let listed: std::collections::HashSet<u64> = ack.rejections.iter().map(|r| r.index).collect();
    let unlisted = ack.rejected > listed.len() as u64;
    let mut lines = String::new();
    for (index, report) in batch.enumerate() {
        if unlisted || listed.contains(&(index as u64)) {
            continue;
        }
        let Some(at) = report
            .at
            .and_then(|t| DateTime::from_timestamp(t.seconds, t.nanos as u32))
        else {
            continue;
        };
        lines.push_str(&format!(
            "{} {} {}\n",
            report.telecell_uuid,
            report.lamp_id,
            at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        ));
    }
    if let Err(e) = journal.write_all(lines.as_bytes()) {
        tracing::error!(error = %e, "cannot write the journal of acknowledged reports");
    }
}

/// Runs until `shutdown` resolves, then tries once more to deliver what is queued.
pub async fn run(
    channel: AuthedChannel,
    lamps: Vec<SimLamp>,
    config: SimConfig,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let mut field = Field::new(
        lamps,
        config.rates.clone(),
        config.report_interval,
        config.time_zone,
        config.seed,
        config.start,
    );
    let mut client = TelemetryClient::new(channel);
    let mut journal = config.journal;
    let mut pending: VecDeque<proto::TelecellReport> = VecDeque::new();
    let began = Instant::now();
    let mut backoff = StdDuration::from_millis(500);
    let mut retry_at = Instant::now();
    let mut last_log = Instant::now();
    let (mut sent, mut rejected) = (0u64, 0u64);
    tokio::pin!(shutdown);
    let mut ticks = tokio::time::interval(StdDuration::from_millis(250));
    loop {
        let stopping = tokio::select! {
            () = &mut shutdown => true,
            _ = ticks.tick() => false,
        };
        let simulated =
            Duration::milliseconds((began.elapsed().as_secs_f64() * config.speed * 1000.0) as i64);
        let now = (config.start + simulated).min(Utc::now());
        pending.extend(
            field
                .step(now)
                .into_iter()
                .map(|(uuid, lamp, reading)| crate::wire::report_of(uuid, lamp, &reading)),
        );
        while !pending.is_empty() && Instant::now() >= retry_at {
            let take = pending.len().min(config.batch);
            let batch: Vec<proto::TelecellReport> = pending.iter().take(take).cloned().collect();
            match client.report(futures::stream::iter(batch)).await {
                Ok(ack) => {
                    let ack = ack.into_inner();
                    if let Some(journal) = journal.as_mut() {
                        write_journal(journal, pending.iter().take(take), &ack);
                    }
                    pending.drain(..take);
                    sent += ack.stored;
                    rejected += ack.rejected;
                    for r in ack.rejections.iter().take(3) {
                        tracing::warn!(index = r.index, reason = %r.reason, "report rejected");
                    }
                    backoff = StdDuration::from_millis(500);
                }
                Err(status) => {
                    tracing::warn!(code = ?status.code(), message = status.message(), pending = pending.len(), retry_in = ?backoff, "server unavailable; will resend");
                    retry_at = Instant::now() + backoff;
                    backoff = (backoff * 2).min(StdDuration::from_secs(30));
                }
            }
        }
        if last_log.elapsed() >= StdDuration::from_secs(10) {
            last_log = Instant::now();
            tracing::info!(simulated = %now, lamps = field.lamp_count(), stored = sent, rejected, queued = pending.len(), "field");
        }
        if stopping {
            if !pending.is_empty() {
                tracing::warn!(
                    queued = pending.len(),
                    "stopping with reports the server has not acknowledged"
                );
            }
            return;
        }
    }
}
