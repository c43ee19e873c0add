//! `singularity` with no command: the lighting server on an estate in the user's data
//! directory, seeded on first run.

use super::output::outln;
use std::net::SocketAddr;

use clap::Args;
use color_eyre::eyre::{Result, eyre};

use super::serve::{bind, open_store, serve_on};
use super::{DEFAULT_LISTEN, init_logging, shutdown_signal};
use crate::domain::estate::{City, EstateSpec};

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Address to listen on: IP:PORT or HOST:PORT (e.g. localhost:50051).
    #[arg(long, env = "SINGULARITY_LISTEN", default_value = DEFAULT_LISTEN, value_parser = super::listen_address)]
    pub listen: SocketAddr,
    /// Where the demo estate lives; defaults to a file in your data directory.
    #[arg(long)]
    pub database_url: Option<String>,
    /// Lamps to seed on first run.
    #[arg(long, default_value_t = 5_000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub lamps: u32,
    /// Log filter.
    #[arg(long, env = "RUST_LOG", default_value = "info")]
    pub log_level: String,
    #[command(flatten)]
    pub engine: super::serve::EngineArgs,
    /// Do not run the field simulator alongside the server.
    #[arg(long)]
    pub no_simulator: bool,
    /// Serve without the console (logs to the screen); the default when not on a terminal.
    #[arg(long)]
    pub headless: bool,
    #[command(flatten)]
    pub console: crate::console::ConsoleArgs,
    /// Fault rate of the demo's simulator, as a multiple of real-world rates (high, so that
    /// something happens every few seconds).
    #[arg(long, default_value_t = 5_000.0)]
    pub fault_rate: f64,
}

pub async fn run(args: DemoArgs) -> Result<()> {
    use std::io::IsTerminal;
    if !args.listen.ip().is_loopback() {
        return Err(eyre!(
            "the demo serves plaintext and signs itself in, so it listens on this machine only ({} is reachable from others); use 127.0.0.1, or run `singularity server` with --tls-cert and --tls-key",
            args.listen
        ));
    }
    let attached = !args.headless && std::io::stdout().is_terminal();
    // Checked before anything starts, so a bad keymap or theme is a plain error.
    let setup = if attached {
        let log = args
            .console
            .log_file
            .clone()
            .or_else(crate::console::default_log_path);
        super::log_to_file(log.as_deref(), &args.log_level)?;
        Some(args.console.setup()?)
    } else {
        init_logging(&args.log_level, super::LogFormat::Human)?;
        None
    };
    let config = args.engine.config()?;
    let url = match args.database_url {
        Some(url) => url,
        None => default_database_url()?,
    };
    // Taken first: a port in use is a plain error, and nothing claims to serve before it is.
    let listener = bind(args.listen).await?;
    let store = open_store(&url)?;
    let users_file = users_file_for(&url);
    if store.counts()?.lamps == 0 {
        let spec = EstateSpec {
            lamps: args.lamps,
            rng_seed: 1,
            city: City::by_key("london").map_err(|e| eyre!("{e}"))?,
        };
        let seeding = store.clone();
        let report =
            tokio::task::spawn_blocking(move || super::seed::seed(seeding.as_ref(), &spec, false))
                .await??;
        outln!("First run: {report}");
        if let Some(path) = &users_file {
            save_users(path, &report)?;
            outln!("The users and passwords are also in {}", path.display());
        }
    }
    if !attached {
        outln!(
            "Demo estate: {url}\nServing on http://{}  (Ctrl-C to stop)",
            args.listen
        );
    }
    if !args.no_simulator {
        if !(args.fault_rate.is_finite() && args.fault_rate >= 0.0) {
            return Err(eyre!("--fault-rate must be 0 or more"));
        }
        let token = crate::server::open_session_for(store.as_ref(), DEMO_FIELD_USER, DEMO_SESSION)
            .map_err(|e| eyre!("the demo's simulator cannot sign in: {e}"))?;
        tokio::spawn(simulate(
            format!("http://{}", args.listen),
            token,
            args.fault_rate,
        ));
    }
    let Some(mut setup) = setup else {
        return serve_on(listener, store, config, shutdown_signal()).await;
    };
    if let Some(path) = users_file.filter(|p| p.exists()) {
        // Short enough for the bottom line of an 80-column terminal.
        let shown = match std::env::var_os("HOME") {
            Some(home) => match path.strip_prefix(&home) {
                Ok(rest) => format!("~/{}", rest.display()),
                Err(_) => path.display().to_string(),
            },
            None => path.display().to_string(),
        };
        setup
            .state
            .say(format!("demo users and passwords: {shown}"));
    }
    let server_url = format!("http://{}", args.listen);
    setup.state.server = server_url.clone();
    let store_for_console = store.clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(serve_on(listener, store, config, async move {
        let _ = stopped.await;
    }));
    let token = crate::server::open_session_for(
        store_for_console.as_ref(),
        DEMO_CONSOLE_USER,
        DEMO_SESSION,
    )
    .map_err(|e| eyre!("the demo's console cannot sign in: {e}"))?;
    let channel = crate::console::net::channel(&server_url, None).map_err(|e| eyre!(e))?;
    let sign_in = crate::console::net::SignIn {
        slot: crate::link::TokenSlot::new(Some(&token)).map_err(|e| eyre!("{e}"))?,
        renewed: Default::default(),
    };
    let who = crate::proto::LoginResponse {
        user: store_for_console
            .credentials(DEMO_CONSOLE_USER)?
            .map(|(user, _)| user.into()),
        ..Default::default()
    };
    crate::console::signed_in_as(&mut setup.state, &who);
    let console = crate::console::attach(channel, sign_in, setup).await;
    let _ = stop.send(());
    let served = serving
        .await
        .map_err(|e| eyre!("the server task failed: {e}"))?;
    console.and(served)
}

/// Who the demo signs in as by itself: the console as an operator (triage), the simulator
/// with the ingest credential. Both are seeded on first run.
const DEMO_CONSOLE_USER: &str = "operator";
const DEMO_FIELD_USER: &str = "dev";
const DEMO_SESSION: chrono::Duration = chrono::Duration::days(30);

/// The field, in-process: waits for the server to answer, then reports in real time.
async fn simulate(server: String, token: String, fault_rate: f64) {
    let channel = loop {
        match super::client::connect(&server, None).await {
            Ok(channel) => break channel,
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(200)).await,
        }
    };
    let channel = match crate::link::with_token(channel, Some(&token)) {
        Ok(channel) => channel,
        Err(e) => {
            tracing::error!(error = %e, "the demo's simulator cannot sign in");
            return;
        }
    };
    let lamps = match crate::sim::runner::load_estate(&channel).await {
        Ok(lamps) => lamps,
        Err(e) => {
            tracing::error!(error = %e, "the demo's simulator cannot start");
            return;
        }
    };
    tracing::info!(
        lamps = lamps.len(),
        fault_rate,
        "demo field simulator running"
    );
    let config = crate::sim::runner::SimConfig {
        speed: 1.0,
        start: chrono::Utc::now(),
        rates: crate::sim::model::FaultRates::default().scaled(fault_rate),
        // Real nodes report every 10-60 minutes; the demo's report every minute, so that
        // what the simulator injects shows within a minute.
        report_interval: chrono::Duration::minutes(1),
        seed: rand::random(),
        time_zone: chrono_tz::Europe::London,
        batch: 2_000,
        journal: None,
    };
    crate::sim::runner::run(channel, lamps, config, std::future::pending()).await;
}

/// Where the demo keeps its first run's users and passwords: beside a SQLite database file
/// (`demo.db` -> `demo-users.txt`), readable by its owner only.
fn users_file_for(url: &str) -> Option<std::path::PathBuf> {
    let path = std::path::Path::new(url.strip_prefix("sqlite://")?);
    let stem = path.file_stem()?.to_string_lossy();
    Some(path.with_file_name(format!("{stem}-users.txt")))
}

fn save_users(path: &std::path::Path, report: &str) -> Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.create(true).write(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .map_err(|e| eyre!("cannot write {} ({e})", path.display()))?;
    file.write_all(report.as_bytes())
        .map_err(|e| eyre!("cannot write {} ({e})", path.display()))
}

fn default_database_url() -> Result<String> {
    let dirs = directories::ProjectDirs::from("", "", "singularity").ok_or_else(|| {
        eyre!("cannot find your data directory (is HOME set?); pass --database-url")
    })?;
    Ok(format!(
        "sqlite://{}",
        dirs.data_dir().join("demo.db").display()
    ))
}
