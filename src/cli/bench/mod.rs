//! `singularity bench`: the load generator. Measures a running server over real gRPC:
//! lookups by id, full listings and spatial searches, and prints throughput and latency.

mod billing;
mod console;
mod echo;
mod faults;
mod measure;

use super::output::outln;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use crate::link::AuthedChannel;
use clap::{Args, Subcommand};
use color_eyre::eyre::{Result, eyre};
use futures::StreamExt;
use rand::Rng;

use super::DEFAULT_SERVER;
use super::client::connect;
use crate::proto::{self, lamps_client::LampsClient};
use measure::{Dialer, percentile};

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Server to measure; several separated by commas spreads the calls over them.
    #[arg(long, env = "SINGULARITY_SERVER", default_value = DEFAULT_SERVER, global = true)]
    server: String,
    /// Who the benchmark signs in as (ingest needs the dev or admin role).
    #[command(flatten)]
    sign_in: super::sign_in::SignInArgs,
    #[command(subcommand)]
    what: Bench,
}

#[derive(Debug, Subcommand)]
enum Bench {
    /// Lamps.Get by random id from concurrent clients.
    Get {
        /// Requests in flight; a comma-separated list runs each in turn.
        #[arg(long, value_delimiter = ',', default_value = "1,32")]
        concurrency: Vec<usize>,
        /// Seconds per run.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// HTTP/2 connections the clients share.
        #[arg(long, default_value_t = 1)]
        connections: usize,
        /// Skip the ceiling: a bare tonic server answering with a lamp, measured after each
        /// run with the same load, so the figure reads as a share of what the transport allows.
        #[arg(long)]
        no_ceiling: bool,
    },
    /// The bare echo server the ceiling is measured against (started by `bench get`).
    #[command(hide = true)]
    EchoServer {
        /// The reply, an encoded lamp in hex.
        #[arg(long)]
        reply: String,
    },
    /// Lamps.List streaming every lamp.
    List {
        /// How many full listings.
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Lamps per page (the server's default when omitted).
        #[arg(long)]
        page_size: Option<i32>,
    },
    /// Telemetry.Report: sustained ingest with fault evaluation and durable storage.
    Ingest {
        /// How long to send for.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Reports per stream.
        #[arg(long, default_value_t = 2_000)]
        batch: usize,
        /// Streams in flight at once.
        #[arg(long, default_value_t = 2)]
        streams: usize,
        /// Where simulated time starts, in hours before now: inside the readings the server
        /// keeps (`--readings-retention-hours`, 48 by default).
        #[arg(long, default_value_t = 46)]
        start_hours_ago: u32,
        /// Simulated hours to send at most (to fill a history, say); by default until the
        /// simulated clock reaches now or `--seconds` run out.
        #[arg(long)]
        hours: Option<u32>,
    },
    /// Faults.Watch fan-out: watchers following a steady rate of fault events.
    Watch {
        /// Watchers following the feed at once.
        #[arg(long, default_value_t = 100)]
        watchers: usize,
        /// Fault events per second to cause.
        #[arg(long, default_value_t = 1_000)]
        rate: usize,
        /// How long to run.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// Faults.DailyFaults for one local day.
    Daily {
        /// YYYY-MM-DD.
        #[arg(long)]
        date: String,
        /// The time zone of the day.
        #[arg(long, default_value = "Europe/London")]
        tz: String,
        /// How many calls.
        #[arg(long, default_value_t = 20)]
        runs: usize,
    },
    /// Writes a month of settled energy for every lamp straight into a database (no server),
    /// for `bench totals` to read.
    FillEnergy {
        /// The database to write into (the server must not be running on it).
        #[arg(long, env = "SINGULARITY_DATABASE_URL", default_value = super::DEFAULT_DATABASE_URL)]
        database_url: String,
        /// YYYY-MM.
        #[arg(long)]
        month: String,
    },
    /// The console in-process (no server): frame cost, an event flood, bytes and idle CPU.
    Console {
        /// Faults on the board.
        #[arg(long, default_value_t = 100_000)]
        faults: i64,
        /// Fault events a second for the flood.
        #[arg(long, default_value_t = 5_000)]
        rate: u64,
        /// How long the flood and the idle measurement each run.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// Billing.GetTotals for a month.
    Totals {
        /// YYYY-MM.
        #[arg(long)]
        month: String,
        /// Group rows by zone, day, month or lamp.
        #[arg(long = "by", value_enum, default_value_t = super::billing::By::Zone)]
        by: super::billing::By,
        /// Lamp rows with --by lamp.
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// How many calls.
        #[arg(long, default_value_t = 20)]
        runs: usize,
    },
    /// Lamps.SearchByLocation for boxes holding a given share of the estate.
    Search {
        /// Share of all lamps each box holds.
        #[arg(long, default_value_t = 0.01)]
        fraction: f64,
        /// How many boxes.
        #[arg(long, default_value_t = 20)]
        runs: usize,
    },
}

fn month_arg(month: &str) -> Result<chrono::NaiveDate> {
    chrono::NaiveDate::parse_from_str(&format!("{month}-01"), "%Y-%m-%d")
        .map_err(|_| eyre!("--month {month:?} is not a month like 2026-10"))
}

pub async fn run(args: BenchArgs) -> Result<()> {
    if let Bench::EchoServer { reply } = &args.what {
        return echo::serve(reply).await;
    }
    if let Bench::Console {
        faults,
        rate,
        seconds,
    } = args.what
    {
        if faults < 1 || rate == 0 || seconds == 0 {
            return Err(eyre!("--faults, --rate and --seconds must be at least 1"));
        }
        console::render(faults, 500)?;
        console::flood(faults, rate, seconds).await?;
        return console::bytes_and_idle(seconds).await;
    }
    if let Bench::FillEnergy {
        database_url,
        month,
    } = &args.what
    {
        let month = month_arg(month)?;
        let store = super::serve::open_store(database_url)?;
        let filler = store.clone();
        tokio::task::spawn_blocking(move || billing::fill_energy(filler.as_ref(), month)).await??;
        store.close();
        return Ok(());
    }
    let ca_pem = args.sign_in.ca_pem().map_err(|e| eyre!(e))?;
    let channel = connect(&args.server, ca_pem.as_deref())
        .await
        .map_err(|e| eyre!(e))?;
    let (channel, session) = args.sign_in.link(channel).await.map_err(|e| eyre!(e))?;
    let dialer = Dialer {
        server: args.server.clone(),
        ca_pem,
        token: session
            .map(|s| s.token)
            .or_else(|| args.sign_in.token.clone()),
    };
    match args.what {
        Bench::Get {
            concurrency,
            seconds,
            connections,
            no_ceiling,
        } => {
            if connections == 0 || concurrency.contains(&0) {
                return Err(eyre!("--concurrency and --connections must be at least 1"));
            }
            let mut channels = vec![channel];
            for _ in 1..connections {
                channels.push(dialer.dial().await?);
            }
            let lamps = all_lamps(&channels[0], None).await?;
            let ids: Vec<i64> = lamps.iter().map(|l| l.id).collect();
            let Some(sample) = lamps.first() else {
                return Err(eyre!(
                    "the server holds no lamps; run singularity seed first"
                ));
            };
            let echo = if no_ceiling {
                None
            } else {
                let echo = echo::EchoProcess::start(sample).await?;
                let mut echo_channels = Vec::new();
                for _ in 0..connections {
                    echo_channels.push(
                        tonic::transport::Channel::from_shared(echo.url.clone())?
                            .connect()
                            .await?,
                    );
                }
                Some((echo, echo_channels))
            };
            outln!(
                "Lamps.Get over {} lamps, {connections} connection(s), {seconds} s per run{}",
                ids.len(),
                if echo.is_some() {
                    "; each run followed by the same load on a bare tonic echo (the ceiling)"
                } else {
                    ""
                }
            );
            let length = Duration::from_secs(seconds);
            for clients in concurrency {
                let real = measure(
                    (0..clients)
                        .map(|index| {
                            let client = LampsClient::new(channels[index % channels.len()].clone());
                            lookup(move |id| {
                                let mut client = client.clone();
                                async move { client.get(proto::IdRequest { id }).await.is_ok() }
                            })
                        })
                        .collect(),
                    &ids,
                    length,
                )
                .await?;
                outln!("  {clients:>3} in flight: {real}");
                if let Some((_, echo_channels)) = &echo {
                    let ceiling = measure(
                        (0..clients)
                            .map(|index| {
                                let grpc = tonic::client::Grpc::new(
                                    echo_channels[index % echo_channels.len()].clone(),
                                );
                                lookup(move |id| {
                                    let mut grpc = grpc.clone();
                                    async move { echo::EchoProcess::get(&mut grpc, id).await }
                                })
                            })
                            .collect(),
                        &ids,
                        length,
                    )
                    .await?;
                    outln!(
                        "      echo ceiling: {ceiling}  -> Lamps.Get at {:.2} of the ceiling",
                        real.rate / ceiling.rate.max(f64::MIN_POSITIVE)
                    );
                }
            }
        }
        Bench::List { runs, page_size } => {
            for run in 1..=runs {
                let started = Instant::now();
                let lamps = all_lamps(&channel, page_size).await?;
                let elapsed = started.elapsed();
                outln!(
                    "run {run}: {} lamps in {:.3} s = {:.0} lamps/s",
                    lamps.len(),
                    elapsed.as_secs_f64(),
                    lamps.len() as f64 / elapsed.as_secs_f64()
                );
            }
        }
        Bench::Ingest {
            seconds,
            batch,
            streams,
            start_hours_ago,
            hours,
        } => {
            if batch == 0 || streams == 0 {
                return Err(eyre!("--batch and --streams must be at least 1"));
            }
            if start_hours_ago == 0 || hours == Some(0) {
                return Err(eyre!("--start-hours-ago and --hours must be at least 1"));
            }
            let span = faults::Span {
                start_hours_ago,
                hours,
            };
            faults::ingest(&channel, Duration::from_secs(seconds), batch, streams, span).await?;
        }
        Bench::Watch {
            watchers,
            rate,
            seconds,
        } => {
            if watchers == 0 || rate == 0 {
                return Err(eyre!("--watchers and --rate must be at least 1"));
            }
            faults::watch(
                &dialer,
                &channel,
                watchers,
                rate,
                Duration::from_secs(seconds),
            )
            .await?;
        }
        Bench::Daily { date, tz, runs } => {
            let mut client = crate::proto::faults_client::FaultsClient::new(channel.clone());
            let mut timings = Vec::new();
            let mut total = 0;
            for _ in 0..runs.max(1) {
                let started = Instant::now();
                let request = proto::DailyFaultsRequest {
                    date: date.clone(),
                    time_zone: tz.clone(),
                };
                total = client.daily_faults(request).await?.into_inner().total;
                timings.push(started.elapsed());
            }
            timings.sort_unstable();
            outln!(
                "Faults.DailyFaults {date} ({tz}): {total} faults; {} runs: p50 {:.1} ms, max {:.1} ms",
                timings.len(),
                percentile(&timings, 0.5),
                percentile(&timings, 1.0)
            );
        }
        Bench::FillEnergy { .. } | Bench::Console { .. } | Bench::EchoServer { .. } => {}
        Bench::Totals {
            month,
            by,
            limit,
            runs,
        } => {
            let group = super::billing::group_by(by);
            billing::totals(&channel, month_arg(&month)?, group, limit, runs).await?;
        }
        Bench::Search { fraction, runs } => {
            if !(fraction > 0.0 && fraction <= 1.0) {
                return Err(eyre!("--fraction must be in (0, 1]"));
            }
            let lamps = all_lamps(&channel, None).await?;
            let points: Vec<(f64, f64)> = lamps
                .iter()
                .filter_map(|l| l.location.as_ref().map(|p| (p.lat, p.lon)))
                .collect();
            if points.is_empty() {
                return Err(eyre!(
                    "the server holds no mounted lamps; run singularity seed first"
                ));
            }
            bench_search(&channel, &points, fraction, runs).await?;
        }
    }
    Ok(())
}

async fn all_lamps(channel: &AuthedChannel, page_size: Option<i32>) -> Result<Vec<proto::Lamp>> {
    let mut client = LampsClient::new(channel.clone()).max_decoding_message_size(64 << 20);
    let mut stream = client
        .list(proto::ListOptions {
            page_size,
            ..Default::default()
        })
        .await?
        .into_inner();
    let mut lamps = Vec::new();
    while let Some(page) = stream.next().await {
        lamps.extend(page?.items);
    }
    Ok(lamps)
}

/// One client's way of making one lookup by id; true when it was answered.
type Lookup = Box<dyn FnMut(i64) -> Pin<Box<dyn Future<Output = bool> + Send>> + Send>;

fn lookup<F, Fut>(mut call: F) -> Lookup
where
    F: FnMut(i64) -> Fut + Send + 'static,
    Fut: Future<Output = bool> + Send + 'static,
{
    Box::new(move |id| Box::pin(call(id)))
}

/// Throughput and latency of one run.
struct Figures {
    rate: f64,
    p50_ms: f64,
    p99_ms: f64,
    ok: usize,
    errors: u64,
}

impl std::fmt::Display for Figures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:>8.0} req/s  p50 {:>7.3} ms  p99 {:>7.3} ms  ({} ok, {} errors)",
            self.rate, self.p50_ms, self.p99_ms, self.ok, self.errors
        )
    }
}

/// Runs every client's lookups of random ids for `length`, all at once.
async fn measure(clients: Vec<Lookup>, ids: &[i64], length: Duration) -> Result<Figures> {
    let deadline = Instant::now() + length;
    let mut tasks = Vec::new();
    for mut call in clients {
        let ids = ids.to_vec();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0u64;
            while Instant::now() < deadline {
                let id = ids[rand::rng().random_range(0..ids.len())];
                let started = Instant::now();
                if call(id).await {
                    latencies.push(started.elapsed());
                } else {
                    errors += 1;
                }
            }
            (latencies, errors)
        }));
    }
    let started = Instant::now();
    let mut latencies = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (mut l, e) = task.await?;
        latencies.append(&mut l);
        errors += e;
    }
    let elapsed = started.elapsed().max(length);
    latencies.sort_unstable();
    Ok(Figures {
        rate: latencies.len() as f64 / elapsed.as_secs_f64(),
        p50_ms: percentile(&latencies, 0.50),
        p99_ms: percentile(&latencies, 0.99),
        ok: latencies.len(),
        errors,
    })
}

async fn bench_search(
    channel: &AuthedChannel,
    points: &[(f64, f64)],
    fraction: f64,
    runs: usize,
) -> Result<()> {
    let mut client = LampsClient::new(channel.clone()).max_decoding_message_size(64 << 20);
    let wanted = ((points.len() as f64) * fraction).ceil() as usize;
    let mut timings = Vec::new();
    let mut found_total = 0usize;
    for _ in 0..runs {
        let centre = points[rand::rng().random_range(0..points.len())];
        let half = half_size_holding(points, centre, wanted);
        let area = proto::GeoBox {
            south: (centre.0 - half).max(-90.0),
            west: (centre.1 - half).max(-180.0),
            north: (centre.0 + half).min(90.0),
            east: (centre.1 + half).min(180.0),
        };
        let started = Instant::now();
        let mut stream = client
            .search_by_location(proto::SearchByLocationRequest {
                r#box: Some(area),
                ..Default::default()
            })
            .await?
            .into_inner();
        let mut found = 0;
        while let Some(page) = stream.next().await {
            found += page?.items.len();
        }
        timings.push(started.elapsed());
        found_total += found;
    }
    timings.sort_unstable();
    outln!(
        "SearchByLocation over {} lamps, boxes holding {:.1}% (~{} lamps; {:.0} returned on average), {runs} runs: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        points.len(),
        fraction * 100.0,
        wanted,
        found_total as f64 / runs as f64,
        percentile(&timings, 0.5),
        percentile(&timings, 0.99),
        timings
            .last()
            .map(|d| d.as_secs_f64() * 1e3)
            .unwrap_or_default()
    );
    Ok(())
}

/// Half the side (in degrees) of a square around `centre` holding about `wanted` points.
fn half_size_holding(points: &[(f64, f64)], centre: (f64, f64), wanted: usize) -> f64 {
    let mut distances: Vec<f64> = points
        .iter()
        .map(|(lat, lon)| (lat - centre.0).abs().max((lon - centre.1).abs()))
        .collect();
    let index = wanted.clamp(1, distances.len()) - 1;
    let (_, nth, _) = distances.select_nth_unstable_by(index, f64::total_cmp);
    *nth
}
