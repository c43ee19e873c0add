//! `singularity server`: the lighting server on a configured listener and database.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use color_eyre::eyre::{Result, WrapErr, eyre};
use tokio::net::TcpListener;

use super::{DEFAULT_DATABASE_URL, DEFAULT_LISTEN, init_logging, shutdown_signal};
use crate::domain::billing::calendar::Calendar;
use crate::domain::billing::{Meter, MeterMode};
use crate::domain::faults::rules::Thresholds;
use crate::domain::faults::tracker::Policy;
use crate::domain::local_time;
use crate::server::{BillingConfig, Limits, LoginLimits, ServerConfig, TlsIdentity};
use crate::store::prelude::*;

#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Address to listen on: IP:PORT or HOST:PORT (e.g. localhost:50051).
    #[arg(long, env = "SINGULARITY_LISTEN", default_value = DEFAULT_LISTEN, value_parser = super::listen_address)]
    pub listen: SocketAddr,
    /// Where the estate is stored: sqlite://path/to/file.db.
    #[arg(long, env = "SINGULARITY_DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
    pub database_url: String,
    /// Log filter: error, warn, info, debug, trace, or per module (singularity=debug).
    #[arg(long, env = "RUST_LOG", default_value = "info")]
    pub log_level: String,
    /// Log lines as text for people (human), or one JSON object per line for a log
    /// collector (json); each call's lines carry its request id either way.
    #[arg(long, env = "SINGULARITY_LOG_FORMAT", value_enum, default_value_t = super::LogFormat::Human)]
    pub log_format: super::LogFormat,
    /// Serve Prometheus metrics over HTTP at this address (GET /metrics), e.g.
    /// 127.0.0.1:9150. Keep it off public networks.
    #[arg(long, env = "SINGULARITY_METRICS_LISTEN", value_parser = super::listen_address)]
    pub metrics_listen: Option<SocketAddr>,
    /// Serve only these parts of the API, comma-separated, from inventory, telemetry,
    /// faults, billing and auth (default: all). Any mix can run in any number of processes
    /// on one PostgreSQL database; SQLite keeps every part in one process.
    #[arg(long, env = "SINGULARITY_SERVICES", value_parser = crate::server::Services::parse, default_value = "inventory,telemetry,faults,billing,auth")]
    pub services: crate::server::Services,
    /// Addresses of gateways in front of this server, comma-separated: for calls from
    /// them, the caller's address is the one they forward in x-forwarded-for (sign-in
    /// limits per address, the audit trail). Anyone else's x-forwarded-for is ignored.
    #[arg(long, env = "SINGULARITY_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// For a process without the auth service: the URLs of processes serving it,
    /// comma-separated. Each caller's token is checked by asking one of them
    /// (Auth.WhoAmI), never the sessions table; TLS URLs are checked against --peer-ca.
    #[arg(long = "auth-url", env = "SINGULARITY_AUTH_URL", value_delimiter = ',')]
    pub auth_urls: Vec<String>,
    /// For a process serving billing or telemetry without the inventory: the URLs of
    /// processes serving the inventory, comma-separated. Billing asks them for lamps and
    /// zones, ingest for the lamps each reporting telecell drives, with the caller's own
    /// token, never the inventory's tables; TLS URLs are checked against --peer-ca.
    #[arg(
        long = "inventory-url",
        env = "SINGULARITY_INVENTORY_URL",
        value_delimiter = ','
    )]
    pub inventory_urls: Vec<String>,
    /// For a process serving the inventory without telemetry: the URLs of processes serving
    /// telemetry, comma-separated. A lamp's status asks them for its latest reading
    /// (Telemetry.GetLatest, WatchLatest) with the caller's own token; TLS URLs are checked
    /// against --peer-ca.
    #[arg(
        long = "telemetry-url",
        env = "SINGULARITY_TELEMETRY_URL",
        value_delimiter = ','
    )]
    pub telemetry_urls: Vec<String>,
    /// For a process serving the inventory without faults: the URLs of processes serving
    /// faults, comma-separated. A lamp's status asks them for its open faults (Faults.List,
    /// Faults.Watch) with the caller's own token; TLS URLs are checked against --peer-ca.
    #[arg(
        long = "faults-url",
        env = "SINGULARITY_FAULTS_URL",
        value_delimiter = ','
    )]
    pub faults_urls: Vec<String>,
    /// For a process serving telemetry or billing without the inventory: the user it signs
    /// in as to read every lamp's wiring from the inventory when it takes the leader's role
    /// or settles energy (no caller asks for that). Any role will do. Its password is read
    /// from SINGULARITY_SERVICE_PASSWORD (not needed when the process serves auth itself);
    /// an account the auth service refuses stops the process at start.
    #[arg(long = "service-user", env = "SINGULARITY_SERVICE_USER")]
    pub service_user: Option<String>,
    #[command(flatten)]
    pub engine: EngineArgs,
    #[command(flatten)]
    pub tls: TlsArgs,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

/// How a server works with others on one PostgreSQL database.
#[derive(Debug, Clone, Args)]
pub struct ClusterArgs {
    /// The URL other servers on the same database reach this one at (the leader receives
    /// the reports the others are sent). Default: the --listen address; required when that
    /// is 0.0.0.0 or [::] and the database is shared.
    #[arg(long, env = "SINGULARITY_ADVERTISE")]
    pub advertise: Option<String>,
    /// PEM CA certificate that signed the other servers' TLS certificates (default: the
    /// system's roots).
    #[arg(long, env = "SINGULARITY_PEER_CA")]
    pub peer_ca: Option<PathBuf>,
}

impl ClusterArgs {
    fn config(
        &self,
        listen: SocketAddr,
        tls: bool,
        shared: bool,
    ) -> Result<crate::server::ClusterConfig> {
        let peer_ca_pem = match &self.peer_ca {
            Some(path) => Some(
                std::fs::read(path)
                    .wrap_err_with(|| format!("--peer-ca {}: cannot read it", path.display()))?,
            ),
            None => None,
        };
        let advertise = match &self.advertise {
            Some(url) => {
                let servers = crate::link::servers(url).map_err(|e| eyre!("--advertise: {e}"))?;
                if servers.len() != 1 {
                    return Err(eyre!(
                        "--advertise {url:?}: give this server's one URL, e.g. http://10.0.0.5:50051"
                    ));
                }
                crate::link::endpoint(url, peer_ca_pem.as_deref())
                    .map_err(|e| eyre!("--advertise: {e}"))?;
                if tls != url.starts_with("https://") {
                    return Err(eyre!(
                        "--advertise {url}: this server serves {}, so the URL must begin with {}",
                        if tls { "TLS" } else { "plaintext" },
                        if tls { "https://" } else { "http://" }
                    ));
                }
                Some(url.clone())
            }
            None if shared && listen.ip().is_unspecified() => {
                return Err(eyre!(
                    "--listen {listen} is every address of this machine, so the other servers on the database cannot be told where to reach this one; give --advertise with the URL they should use, e.g. http://10.0.0.5:{}",
                    listen.port()
                ));
            }
            None => None,
        };
        Ok(crate::server::ClusterConfig {
            advertise,
            peer_ca_pem,
        })
    }
}

/// How the server protects its traffic.
#[derive(Debug, Clone, Args)]
pub struct TlsArgs {
    /// PEM certificate chain to serve TLS with (with --tls-key).
    #[arg(long, env = "SINGULARITY_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "SINGULARITY_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Serve plaintext on an address other machines can reach (tokens and passwords then
    /// cross the network readable by anyone on the path).
    #[arg(long, env = "SINGULARITY_INSECURE")]
    pub insecure: bool,
}

impl TlsArgs {
    /// The identity to serve, or why the server must not start.
    pub fn identity(&self, listen: SocketAddr) -> Result<Option<TlsIdentity>> {
        let read = |flag: &str, path: &PathBuf| {
            std::fs::read(path)
                .wrap_err_with(|| format!("--{flag} {}: cannot read it", path.display()))
        };
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => {
                let identity = TlsIdentity {
                    cert_pem: read("tls-cert", cert)?,
                    key_pem: read("tls-key", key)?,
                };
                if !String::from_utf8_lossy(&identity.cert_pem)
                    .contains("-----BEGIN CERTIFICATE-----")
                {
                    return Err(eyre!(
                        "--tls-cert {}: no PEM certificate in it",
                        cert.display()
                    ));
                }
                if !String::from_utf8_lossy(&identity.key_pem).contains("PRIVATE KEY-----") {
                    return Err(eyre!(
                        "--tls-key {}: no PEM private key in it",
                        key.display()
                    ));
                }
                Ok(Some(identity))
            }
            _ if listen.ip().is_loopback() || self.insecure => Ok(None),
            _ => Err(eyre!(
                "refusing to serve plaintext on {listen}: other machines can reach it, and bearer tokens and passwords would cross the network readable; give --tls-cert and --tls-key, listen on 127.0.0.1, or pass --insecure if something else (a TLS proxy, a private link) protects the traffic"
            )),
        }
    }
}

/// Timings of the fault engine and retention; thresholds keep the defaults of domain.md.
#[derive(Debug, Clone, Args)]
pub struct EngineArgs {
    /// Silence after which a node is offline.
    #[arg(long, env = "SINGULARITY_OFFLINE_AFTER_MINUTES", default_value_t = 60, value_parser = clap::value_parser!(u32).range(1..=10_080))]
    pub offline_after_minutes: u32,
    /// How long a condition must stay away before its fault clears.
    #[arg(long, env = "SINGULARITY_HOLD_DOWN_MINUTES", default_value_t = 20, value_parser = clap::value_parser!(u32).range(0..=1_440))]
    pub hold_down_minutes: u32,
    /// Raw readings are kept this long (the latest per lamp always); an older report is refused.
    #[arg(long, env = "SINGULARITY_READINGS_RETENTION_HOURS", default_value_t = 48, value_parser = clap::value_parser!(u32).range(1..=8_760))]
    pub readings_retention_hours: u32,
    /// A console's claim on a fault ("ana is on it") ends this long after it was made, unless
    /// the holder keeps the fault open or claims it again.
    #[arg(long, env = "SINGULARITY_CLAIM_MINUTES", default_value_t = 15, value_parser = clap::value_parser!(u32).range(1..=720))]
    pub claim_minutes: u32,
    /// Fault events are kept this long for watchers to resume from.
    #[arg(long, env = "SINGULARITY_EVENT_LOG_RETENTION_DAYS", default_value_t = 7, value_parser = clap::value_parser!(u32).range(1..=3_650))]
    pub event_log_retention_days: u32,
    /// Supply voltage below which VOLTAGE_LOW is raised (UK: 230 V - 6%).
    #[arg(long, env = "SINGULARITY_VOLTAGE_LOW_V", default_value_t = 216.2)]
    pub voltage_low_v: f32,
    /// Supply voltage above which VOLTAGE_HIGH is raised (UK: 230 V + 10%).
    #[arg(long, env = "SINGULARITY_VOLTAGE_HIGH_V", default_value_t = 253.0)]
    pub voltage_high_v: f32,
    /// How far power may stray from the lamp type's rating (times dim level), in percent.
    #[arg(long, env = "SINGULARITY_POWER_TOLERANCE_PCT", default_value_t = 25, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub power_tolerance_pct: u32,
    /// Power factor below which POWER_FACTOR_LOW is raised.
    #[arg(long, env = "SINGULARITY_POWER_FACTOR_MIN", default_value_t = 0.5)]
    pub power_factor_min: f32,
    /// Node temperature above which OVER_TEMPERATURE is raised, in degrees Celsius.
    #[arg(long, env = "SINGULARITY_OVER_TEMPERATURE_C", default_value_t = 85.0)]
    pub over_temperature_c: f32,
    /// Seconds between two offline sweeps.
    #[arg(long, env = "SINGULARITY_SWEEP_SECONDS", default_value_t = 60, value_parser = clap::value_parser!(u32).range(1..=3_600))]
    pub sweep_seconds: u32,
    /// How lamp energy is billed: calculated (wattage x dim x time lit) or measured (the
    /// node's energy counter).
    #[arg(long, env = "SINGULARITY_METERING", default_value = "calculated")]
    pub metering: MeterMode,
    /// The time zone whose local days and half-hours energy is settled in.
    #[arg(
        long,
        env = "SINGULARITY_SETTLEMENT_TIME_ZONE",
        default_value = "Europe/London"
    )]
    pub settlement_time_zone: String,
    /// Reports further apart than this leave the time between them unaccounted (missing).
    #[arg(long, env = "SINGULARITY_METERING_MAX_GAP_MINUTES", default_value_t = 75, value_parser = clap::value_parser!(u32).range(1..=1_440))]
    pub metering_max_gap_minutes: u32,
    /// Half-hour detail of settled days is kept this long (about 700 bytes per lamp per
    /// day); day and month totals are kept for good.
    #[arg(long, env = "SINGULARITY_ENERGY_SLOTS_RETENTION_DAYS", default_value_t = 100, value_parser = clap::value_parser!(u32).range(2..=3_650))]
    pub energy_slots_retention_days: u32,
    /// Seconds between two settlements (and live billing updates).
    #[arg(long, env = "SINGULARITY_SETTLE_SECONDS", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=3_600))]
    pub settle_seconds: u32,
    /// Largest request or reply message, in KiB (at least 1024: listings are paged to fit
    /// it, and the largest reply that is not, 1,000 rows of billing totals, needs ~120 KiB).
    #[arg(long, env = "SINGULARITY_MAX_MESSAGE_KIB", default_value_t = 4_096, value_parser = clap::value_parser!(u32).range(1_024..=262_144))]
    pub max_message_kib: u32,
    /// Concurrent calls (streams) one connection may hold open.
    #[arg(long, env = "SINGULARITY_MAX_STREAMS_PER_CONNECTION", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub max_streams_per_connection: u32,
    /// Longest a call may take to produce its reply (a client's shorter deadline wins).
    #[arg(long, env = "SINGULARITY_REQUEST_TIMEOUT_SECONDS", default_value_t = 60, value_parser = clap::value_parser!(u32).range(1..=3_600))]
    pub request_timeout_seconds: u32,
    /// How long a session lasts after signing in.
    #[arg(long, env = "SINGULARITY_SESSION_HOURS", default_value_t = 12, value_parser = clap::value_parser!(u32).range(1..=720))]
    pub session_hours: u32,
    /// Live sessions one user may hold; signing in again past it ends their oldest session.
    #[arg(long, env = "SINGULARITY_SESSIONS_PER_USER", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub sessions_per_user: u32,
    /// Seconds a new connection may stay silent before its handshake (TLS hello or HTTP/2
    /// preface) before it is closed.
    #[arg(long, env = "SINGULARITY_HANDSHAKE_TIMEOUT_SECONDS", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=300))]
    pub handshake_timeout_seconds: u32,
    /// Open connections one client address may hold.
    #[arg(long, env = "SINGULARITY_MAX_CONNECTIONS_PER_ADDRESS", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max_connections_per_address: u32,
    /// Open connections in all.
    #[arg(long, env = "SINGULARITY_MAX_CONNECTIONS", default_value_t = 4_096, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_connections: u32,
    /// Failed sign-ins allowed per username within the window.
    #[arg(long, env = "SINGULARITY_LOGIN_FAILURES_PER_USER", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1_000))]
    pub login_failures_per_user: u32,
    /// Failed sign-ins allowed per client address within the window.
    #[arg(long, env = "SINGULARITY_LOGIN_FAILURES_PER_PEER", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub login_failures_per_peer: u32,
    /// The window failed sign-ins are counted over, in seconds.
    #[arg(long, env = "SINGULARITY_LOGIN_WINDOW_SECONDS", default_value_t = 300, value_parser = clap::value_parser!(u32).range(1..=86_400))]
    pub login_window_seconds: u32,
}

impl EngineArgs {
    /// The configuration these flags describe, or what is wrong with them.
    pub fn config(&self) -> color_eyre::Result<ServerConfig> {
        let defaults = ServerConfig::default();
        let sane = |name: &str, value: f32, min: f32, max: f32| {
            if value.is_finite() && (min..=max).contains(&value) {
                Ok(value)
            } else {
                Err(eyre!(
                    "--{name} must be a number between {min} and {max} (got {value})"
                ))
            }
        };
        let voltage_low_v = sane("voltage-low-v", self.voltage_low_v, 50.0, 480.0)?;
        let voltage_high_v = sane("voltage-high-v", self.voltage_high_v, 50.0, 480.0)?;
        if voltage_low_v >= voltage_high_v {
            return Err(eyre!(
                "--voltage-low-v ({voltage_low_v}) must be below --voltage-high-v ({voltage_high_v})"
            ));
        }
        let thresholds = Thresholds {
            voltage_low_v,
            voltage_high_v,
            power_tolerance: self.power_tolerance_pct as f32 / 100.0,
            power_factor_min: sane("power-factor-min", self.power_factor_min, 0.0, 1.0)?,
            over_temperature_c: sane("over-temperature-c", self.over_temperature_c, 0.0, 150.0)?,
            ..defaults.thresholds.clone()
        };
        let offline_after = chrono::Duration::minutes(i64::from(self.offline_after_minutes));
        let zone = local_time::time_zone("settlement-time-zone", &self.settlement_time_zone)
            .map_err(|e| eyre!("--{e}"))?;
        let calendar = Calendar::new("settlement-time-zone", zone).map_err(|e| eyre!("--{e}"))?;
        let billing = BillingConfig {
            meter: Meter {
                mode: self.metering,
                calendar,
                max_gap: chrono::Duration::minutes(i64::from(self.metering_max_gap_minutes)),
            },
            settle_interval: std::time::Duration::from_secs(u64::from(self.settle_seconds)),
            settle_on_stop: BillingConfig::default().settle_on_stop,
        };
        Ok(ServerConfig {
            thresholds,
            policy: Policy {
                offline_after,
                hold_down: chrono::Duration::minutes(i64::from(self.hold_down_minutes)),
                ..defaults.policy
            },
            sweep_interval: std::time::Duration::from_secs(u64::from(self.sweep_seconds)),
            readings_retention: chrono::Duration::hours(i64::from(self.readings_retention_hours)),
            event_log_retention: chrono::Duration::days(i64::from(self.event_log_retention_days)),
            startup_grace: offline_after,
            billing,
            energy_slots_retention: chrono::Duration::days(i64::from(
                self.energy_slots_retention_days,
            )),
            tls: None,
            cluster: crate::server::ClusterConfig::default(),
            metrics: Default::default(),
            services: Default::default(),
            trusted_proxies: Vec::new(),
            auth_urls: Vec::new(),
            inventory_urls: Vec::new(),
            telemetry_urls: Vec::new(),
            faults_urls: Vec::new(),
            service_account: None,
            presence: crate::server::PresenceConfig {
                claim_length: chrono::Duration::minutes(i64::from(self.claim_minutes)),
                ..Default::default()
            },
            limits: Limits {
                max_message_bytes: self.max_message_kib as usize * 1024,
                max_streams_per_connection: self.max_streams_per_connection,
                request_timeout: std::time::Duration::from_secs(u64::from(
                    self.request_timeout_seconds,
                )),
                session_length: chrono::Duration::hours(i64::from(self.session_hours)),
                sessions_per_user: self.sessions_per_user as usize,
                connections: crate::server::ConnectionLimits {
                    handshake: std::time::Duration::from_secs(u64::from(
                        self.handshake_timeout_seconds,
                    )),
                    per_address: self.max_connections_per_address as usize,
                    total: self.max_connections as usize,
                },
                watcher_buffer: Limits::default().watcher_buffer,
                login: LoginLimits {
                    per_user: self.login_failures_per_user,
                    per_peer: self.login_failures_per_peer,
                    window: std::time::Duration::from_secs(u64::from(self.login_window_seconds)),
                },
            },
        })
    }
}

pub async fn run(args: ServerArgs) -> Result<()> {
    init_logging(&args.log_level, args.log_format)?;
    // Only from the environment: a flag's value shows in the process list.
    let service_password = std::env::var("SINGULARITY_SERVICE_PASSWORD")
        .ok()
        .filter(|p| !p.is_empty());
    args.services
        .check_auth_urls(&args.auth_urls)
        .and_then(|()| args.services.check_inventory_urls(&args.inventory_urls))
        .and_then(|()| {
            args.services.check_status_urls(
                crate::server::services::Part::Telemetry,
                "--telemetry-url",
                &args.telemetry_urls,
            )
        })
        .and_then(|()| {
            args.services.check_status_urls(
                crate::server::services::Part::Faults,
                "--faults-url",
                &args.faults_urls,
            )
        })
        .and_then(|()| {
            args.services
                .check_service_account(args.service_user.as_deref(), service_password.is_some())
        })
        .map_err(|e| eyre!(e))?;
    let mut config = args.engine.config()?;
    if let Some(address) = args.metrics_listen {
        let listener = TcpListener::bind(address).await.map_err(|e| {
            eyre!("--metrics-listen {address}: cannot listen there ({e}); choose another address")
        })?;
        tracing::info!(%address, "metrics at http://{address}/metrics");
        // Scrapes end with the process.
        tokio::spawn(crate::server::metrics::serve(
            listener,
            config.metrics.0.clone(),
            tokio_util::sync::CancellationToken::new(),
        ));
    }
    config.tls = args.tls.identity(args.listen)?;
    let store = open_store(&args.database_url)?;
    if !args.services.is_all() && !store.shared() {
        return Err(eyre!(
            "--services {}: an SQLite database keeps every service in one process; give a shared PostgreSQL database (--database-url postgres://...) to run services apart, or leave --services out",
            args.services
        ));
    }
    config.services = args.services;
    config.trusted_proxies = args.trusted_proxies;
    config.auth_urls = args.auth_urls;
    config.inventory_urls = args.inventory_urls;
    config.telemetry_urls = args.telemetry_urls;
    config.faults_urls = args.faults_urls;
    config.service_account =
        args.service_user
            .map(|username| crate::server::ServiceAccountConfig {
                username,
                password: service_password,
            });
    config.cluster = args
        .cluster
        .config(args.listen, config.tls.is_some(), store.shared())?;
    serve(args.listen, store, config).await
}

/// Opens the store a database URL names; the scheme picks the backend.
pub fn open_store(url: &str) -> Result<Arc<dyn Store>> {
    crate::store::open_url(url).wrap_err_with(|| {
        format!(
            "cannot open the database at {}",
            crate::store::redacted(url)
        )
    })
}

/// Binds, serves until Ctrl-C or SIGTERM, then closes the database cleanly.
pub async fn serve(listen: SocketAddr, store: Arc<dyn Store>, config: ServerConfig) -> Result<()> {
    serve_until(listen, store, config, shutdown_signal()).await
}

/// Binds, serves until `shutdown`, then closes the database cleanly.
pub async fn serve_until(
    listen: SocketAddr,
    store: Arc<dyn Store>,
    config: ServerConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let listener = bind(listen).await?;
    serve_on(listener, store, config, shutdown).await
}

/// Takes the address, so that a port in use is a plain error before anything says it is
/// serving.
pub async fn bind(listen: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(listen).await.map_err(|e| {
        eyre!("cannot listen on {listen} ({e}); is another server running there? choose another address with --listen")
    })
}

/// Serves on a bound listener until `shutdown`, then closes the database cleanly.
pub async fn serve_on(
    listener: TcpListener,
    store: Arc<dyn Store>,
    config: ServerConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let address = listener.local_addr()?;
    tracing::info!(%address, database = %store.location(), "lighting server listening");
    let result = crate::server::run(listener, store.clone(), config, shutdown).await;
    store.close();
    tracing::info!("database closed; bye");
    result.wrap_err("the server stopped with an error")
}
