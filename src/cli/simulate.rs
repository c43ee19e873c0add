//! `singularity simulate`: the field, streaming telecell reports for the server's estate.

use chrono::{DateTime, Duration, Utc};
use clap::Args;
use color_eyre::eyre::{Result, eyre};

use super::client::connect;
use super::{DEFAULT_SERVER, init_logging, shutdown_signal};
use crate::domain::local_time;
use crate::sim::model::FaultRates;
use crate::sim::runner::{self, SimConfig};

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Server to report to; several separated by commas: reports move to another when one
    /// stops serving.
    #[arg(long, env = "SINGULARITY_SERVER", default_value = DEFAULT_SERVER)]
    server: String,
    /// Simulated seconds per real second (simulated time never passes the present).
    #[arg(long, default_value_t = 1.0)]
    speed: f64,
    /// Where simulated time starts (RFC 3339); by default now, or a day ago when --speed > 1.
    /// The server refuses reports older than its --readings-retention-hours (48 by default).
    #[arg(long)]
    start: Option<DateTime<Utc>>,
    /// Multiplies every fault rate (1 = about 5% of lamps failing a year).
    #[arg(long, default_value_t = 1.0)]
    fault_rate: f64,
    /// Minutes between two reports of one node.
    #[arg(long, default_value_t = 15)]
    interval_minutes: u32,
    /// Seed of the simulation: the same seed gives the same field.
    #[arg(long, default_value_t = 1)]
    rng_seed: u64,
    /// Time zone of the dimming schedule (50% from 00:00 to 05:00 local).
    #[arg(long, env = "SINGULARITY_TZ", default_value = "Europe/London")]
    time_zone: String,
    /// Reports per stream to the server.
    #[arg(long, default_value_t = 2_000)]
    batch: usize,
    /// Appends every report the server acknowledged as stored (telecell, lamp, instant; one
    /// per line) to this file: what the field was told is safe, to check against the
    /// database.
    #[arg(long)]
    journal: Option<std::path::PathBuf>,
    /// Log filter.
    #[arg(long, env = "RUST_LOG", default_value = "info")]
    log_level: String,
    /// The ingest credential: a user with the dev (or admin) role.
    #[command(flatten)]
    sign_in: super::sign_in::SignInArgs,
}

pub async fn run(args: SimulateArgs) -> Result<()> {
    init_logging(&args.log_level, super::LogFormat::Human)?;
    if !(args.speed.is_finite() && args.speed > 0.0 && args.speed <= 100_000.0) {
        return Err(eyre!("--speed must be a number in (0, 100000]"));
    }
    if !(args.fault_rate.is_finite() && args.fault_rate >= 0.0) {
        return Err(eyre!("--fault-rate must be 0 or more"));
    }
    if args.interval_minutes == 0 || args.interval_minutes > 24 * 60 {
        return Err(eyre!("--interval-minutes must be between 1 and 1440"));
    }
    if args.batch == 0 || args.batch > 100_000 {
        return Err(eyre!("--batch must be between 1 and 100000"));
    }
    let time_zone =
        local_time::time_zone("--time-zone", &args.time_zone).map_err(|e| eyre!("{e}"))?;
    let start = args.start.unwrap_or_else(|| {
        if args.speed > 1.0 {
            Utc::now() - Duration::days(1)
        } else {
            Utc::now()
        }
    });
    if args.sign_in.user.is_none() && args.sign_in.token.is_none() {
        return Err(eyre!(
            "the simulator sends telemetry as a user with the dev (or admin) role: give --user dev (the password is asked for, or read from SINGULARITY_PASSWORD) or set SINGULARITY_TOKEN to a session from `singularity client login --user dev`"
        ));
    }
    let journal = match &args.journal {
        Some(path) => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| {
                    eyre!(
                        "--journal {}: cannot open it for appending ({e})",
                        path.display()
                    )
                })?,
        ),
        None => None,
    };
    let ca = args.sign_in.ca_pem().map_err(|e| eyre!(e))?;
    let channel = connect(&args.server, ca.as_deref())
        .await
        .map_err(|e| eyre!(e))?;
    let (channel, _) = args.sign_in.link(channel).await.map_err(|e| eyre!(e))?;
    let lamps = runner::load_estate(&channel).await?;
    tracing::info!(lamps = lamps.len(), speed = args.speed, %start, "simulating the field");
    let config = SimConfig {
        speed: args.speed,
        start,
        rates: FaultRates::default().scaled(args.fault_rate),
        report_interval: Duration::minutes(i64::from(args.interval_minutes)),
        seed: args.rng_seed,
        time_zone,
        batch: args.batch,
        journal,
    };
    runner::run(channel, lamps, config, shutdown_signal()).await;
    Ok(())
}
