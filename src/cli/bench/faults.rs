//! `singularity bench ingest` and `bench watch`: the telemetry and fault-feed load generators.

use crate::cli::output::outln;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::link::AuthedChannel;
use chrono::Utc;
use color_eyre::eyre::{Result, eyre};
use futures::StreamExt;

use super::measure::percentile;
use crate::proto::{self, faults_client::FaultsClient, telemetry_client::TelemetryClient};
use crate::sim::model::{FaultRates, Field};
use crate::sim::runner::load_estate;
use crate::wire::timestamp;

/// The stretch of simulated time `bench ingest` sends.
pub struct Span {
    pub start_hours_ago: u32,
    /// At most this many simulated hours; `None`: until the simulated clock reaches now.
    pub hours: Option<u32>,
}

/// Streams simulated reports (healthy field, real switching and dimming) as fast as the
/// server acknowledges them, from several streams at once.
pub async fn ingest(
    channel: &AuthedChannel,
    length: Duration,
    batch: usize,
    streams: usize,
    span: Span,
) -> Result<()> {
    let lamps = load_estate(channel).await?;
    let count = lamps.len();
    // Simulated time runs in 15-minute rounds from the start (inside the readings a server
    // keeps) and stops when it catches up with the clock: reports are never in the future,
    // nor older than the server keeps.
    let start = Utc::now() - chrono::Duration::hours(i64::from(span.start_hours_ago));
    let end = span
        .hours
        .map(|hours| start + chrono::Duration::hours(i64::from(hours)));
    let interval = chrono::Duration::minutes(15);
    let mut field = Field::new(
        lamps,
        FaultRates::default(),
        interval,
        chrono_tz::Europe::London,
        7,
        start,
    );
    let (sender, receiver) = async_channel(streams * 2);
    let generator = tokio::task::spawn_blocking(move || {
        let mut round = 1;
        loop {
            let until = start + interval * round;
            if until > Utc::now() || end.is_some_and(|end| until > end) {
                return;
            }
            let readings = field.step(until);
            round += 1;
            for chunk in readings.chunks(batch) {
                let reports: Vec<proto::TelecellReport> = chunk
                    .iter()
                    .map(|(uuid, lamp, r)| crate::wire::report_of(uuid.clone(), *lamp, r))
                    .collect();
                if sender.send_blocking(reports).is_err() {
                    return;
                }
            }
        }
    });
    let deadline = Instant::now() + length;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..streams {
        let receiver = receiver.clone();
        let mut client = TelemetryClient::new(channel.clone()).max_encoding_message_size(64 << 20);
        tasks.push(tokio::spawn(async move {
            let (mut stored, mut rejected, mut latencies) = (0u64, 0u64, Vec::new());
            while Instant::now() < deadline {
                let Ok(reports) = receiver.recv().await else {
                    break;
                };
                let sent = Instant::now();
                match client.report(futures::stream::iter(reports)).await {
                    Ok(ack) => {
                        let ack = ack.into_inner();
                        stored += ack.stored;
                        rejected += ack.rejected;
                        latencies.push(sent.elapsed());
                    }
                    Err(status) => return Err(eyre!("ingest failed: {status}")),
                }
            }
            Ok::<_, color_eyre::Report>((stored, rejected, latencies))
        }));
    }
    let (mut stored, mut rejected, mut latencies) = (0, 0, Vec::new());
    for task in tasks {
        let (s, r, mut l) = task.await??;
        stored += s;
        rejected += r;
        latencies.append(&mut l);
    }
    let elapsed = started.elapsed();
    receiver.close();
    let _ = generator.await;
    latencies.sort_unstable();
    outln!(
        "Telemetry.Report over {count} lamps, {streams} streams of {batch}: {stored} stored in {:.1} s = {:.0} reports/s ({rejected} rejected); per batch p50 {:.1} ms, p99 {:.1} ms",
        elapsed.as_secs_f64(),
        stored as f64 / elapsed.as_secs_f64(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99)
    );
    Ok(())
}

/// Causes `rate` fault events a second (each report repeats an open VOLTAGE_LOW on its lamp)
/// and measures how long each takes from the report being sent to each watcher receiving it.
/// Every watcher must see every event the log gains during the run (the reports' and anything
/// else the server records meanwhile, such as the offline sweep); the run counts those from
/// the log itself, not from the reports sent.
pub async fn watch(
    dialer: &super::measure::Dialer,
    channel: &AuthedChannel,
    watchers: usize,
    rate: usize,
    length: Duration,
) -> Result<()> {
    let lamps = load_estate(channel).await?;
    let targets: Vec<(String, i64)> = lamps
        .iter()
        .take(rate.max(100))
        .map(|l| (l.telecell_uuid.clone(), l.lamp_id))
        .collect();
    let mut telemetry = TelemetryClient::new(channel.clone()).max_encoding_message_size(64 << 20);
    // Simulated minutes the run will step through: one per round over the targets.
    let rounds = (rate as f64 * length.as_secs_f64() / targets.len().max(1) as f64).ceil() as i64;
    let base = report_base(channel, &targets, rounds + 2).await?;
    let sag = |uuid: &str, lamp: i64, minute: i64| proto::TelecellReport {
        telecell_uuid: uuid.to_owned(),
        lamp_id: lamp,
        at: Some(timestamp(base + chrono::Duration::minutes(minute))),
        lamp_on: false,
        voltage_v: 200.0,
        dim_target_pct: 100,
        dim_actual_pct: 100,
        temperature_c: 10.0,
        link_quality_pct: 80,
        ..Default::default()
    };
    // Open a fault on every target first, so each later report is exactly one event.
    let opening: Vec<_> = targets.iter().map(|(u, l)| sag(u, *l, 0)).collect();
    telemetry.report(futures::stream::iter(opening)).await?;

    let snapshot = log_head(channel).await?;
    let sent_at: Arc<Mutex<HashMap<i64, Instant>>> = Arc::default();
    let mut connections = Vec::new();
    for _ in 0..watchers.div_ceil(25) {
        connections.push(dialer.dial().await?);
    }
    let stop = Instant::now() + length + Duration::from_secs(2);
    let mut tasks = Vec::new();
    for index in 0..watchers {
        let mut client = FaultsClient::new(connections[index % connections.len()].clone());
        let sent_at = sent_at.clone();
        tasks.push(tokio::spawn(async move {
            let mut stream = client
                .watch(proto::WatchFaultsRequest {
                    after_seq: snapshot,
                    filter: None,
                })
                .await?
                .into_inner();
            let (mut latencies, mut seen, mut expected, mut gaps) =
                (Vec::new(), Vec::new(), snapshot + 1, 0u64);
            while let Ok(Some(item)) = tokio::time::timeout_at(stop.into(), stream.next()).await {
                let event = item?;
                if event.seq != expected {
                    gaps += 1;
                }
                expected = event.seq + 1;
                seen.push(event.seq);
                let lamp = event.fault.map(|f| f.lamp_id).unwrap_or_default();
                if let Some(sent) = sent_at.lock().ok().and_then(|m| m.get(&lamp).copied()) {
                    latencies.push(sent.elapsed());
                }
            }
            Ok::<_, tonic::Status>((latencies, seen, gaps))
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    let tick = Duration::from_millis(50);
    let per_tick = (rate / 20).max(1);
    let mut minute = 1;
    let mut next = 0usize;
    let (mut sent, mut stale) = (0usize, 0u64);
    while started.elapsed() < length {
        let due = Instant::now() + tick;
        let mut batch = Vec::with_capacity(per_tick);
        for _ in 0..per_tick {
            let (uuid, lamp) = &targets[next % targets.len()];
            next += 1;
            if next % targets.len() == 0 {
                minute += 1;
            }
            batch.push(sag(uuid, *lamp, minute));
        }
        {
            let now = Instant::now();
            if let Ok(mut map) = sent_at.lock() {
                for report in &batch {
                    map.insert(report.lamp_id, now);
                }
            }
        }
        sent += batch.len();
        let ack = telemetry
            .report(futures::stream::iter(batch))
            .await?
            .into_inner();
        stale += ack.out_of_order + ack.duplicates + ack.rejected;
        tokio::time::sleep_until(due.into()).await;
    }
    let elapsed = started.elapsed();
    // Everything up to here was committed before its acknowledgement: watchers must see it.
    let head = log_head(channel).await?;
    let must_see = head.saturating_sub(snapshot);
    let (mut all, mut fewest, mut gaps) = (Vec::new(), u64::MAX, 0);
    for task in tasks {
        let (mut l, seen, g) = task.await??;
        all.append(&mut l);
        fewest = fewest.min(seen.iter().filter(|seq| **seq <= head).count() as u64);
        gaps += g;
    }
    all.sort_unstable();
    outln!(
        "Faults.Watch: {watchers} watchers, {sent} reports in {:.1} s ({:.0}/s); the log gained {must_see} events, the fewest any watcher saw of them {fewest}, gaps {gaps}; delivery p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        elapsed.as_secs_f64(),
        sent as f64 / elapsed.as_secs_f64(),
        percentile(&all, 0.5),
        percentile(&all, 0.99),
        all.last()
            .map(|d| d.as_secs_f64() * 1e3)
            .unwrap_or_default()
    );
    if stale > 0 {
        outln!(
            "{stale} reports caused no event (older than their lamp's latest reading, repeated, or refused): the rate above overstates the events caused"
        );
    }
    Ok(())
}

/// The fault log's newest position, as a listing reports it.
async fn log_head(channel: &AuthedChannel) -> Result<u64> {
    Ok(FaultsClient::new(channel.clone())
        .list(proto::ListFaultsRequest {
            page_size: Some(1),
            ..Default::default()
        })
        .await?
        .into_inner()
        .next()
        .await
        .ok_or_else(|| eyre!("no fault listing"))??
        .snapshot_seq)
}

/// Where the run's simulated minutes start: after every target lamp's latest reading (a run
/// on a database an earlier run used would otherwise send reports the server sets aside as
/// late), inside the 48 h a server keeps, and early enough that `minutes` more stay in the
/// past. Refuses when no such start exists.
async fn report_base(
    channel: &AuthedChannel,
    targets: &[(String, i64)],
    minutes: i64,
) -> Result<chrono::DateTime<Utc>> {
    let now = Utc::now();
    let mut base = now - chrono::Duration::hours(40);
    let mut lamps = crate::proto::lamps_client::LampsClient::new(channel.clone());
    for (_, lamp) in targets {
        let status = lamps
            .get_status(proto::IdRequest { id: *lamp })
            .await?
            .into_inner();
        if let Some(heard) = status
            .last_heard
            .and_then(|t| crate::wire::from_timestamp("last_heard", &t).ok())
        {
            base = base.max(heard + chrono::Duration::minutes(1));
        }
    }
    if base + chrono::Duration::minutes(minutes) > now {
        return Err(eyre!(
            "the target lamps last reported at {base}, too recently for {minutes} more simulated minutes before now: run on a fresh database, or with a shorter --seconds or lower --rate"
        ));
    }
    Ok(base)
}

/// A small bounded multi-consumer channel over tokio's mpsc, shared by the sender tasks.
fn async_channel<T: Send + 'static>(capacity: usize) -> (BlockingSender<T>, SharedReceiver<T>) {
    let (sender, receiver) = tokio::sync::mpsc::channel(capacity);
    (
        BlockingSender(sender),
        SharedReceiver(Arc::new(tokio::sync::Mutex::new(receiver))),
    )
}

struct BlockingSender<T>(tokio::sync::mpsc::Sender<T>);

impl<T> BlockingSender<T> {
    fn send_blocking(&self, value: T) -> Result<(), ()> {
        self.0.blocking_send(value).map_err(|_| ())
    }
}

struct SharedReceiver<T>(Arc<tokio::sync::Mutex<tokio::sync::mpsc::Receiver<T>>>);

impl<T> Clone for SharedReceiver<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<T> SharedReceiver<T> {
    async fn recv(&self) -> Result<T, ()> {
        self.0.lock().await.recv().await.ok_or(())
    }

    fn close(&self) {
        if let Ok(mut receiver) = self.0.try_lock() {
            receiver.close();
        }
    }
}
