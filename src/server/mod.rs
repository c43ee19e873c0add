//! The lighting server: every gRPC service, health and reflection on one listener, with a
//! graceful shutdown that ends open streams and lets in-flight requests finish.

mod assets;
mod audit;
mod audit_words;
mod auth;
mod basestations;
mod billing;
mod catalog;
pub mod connections;
mod context;
mod engine;
pub mod error;
mod faults;
mod feed;
mod forward;
mod gate;
mod handover;
mod housekeeping;
mod inventory;
mod lamps;
mod latest;
mod leadership;
mod limiter;
pub mod metrics;
mod notices;
pub mod observe;
mod paging;
mod password_workers;
pub mod peer;
mod peers;
mod presence;
mod revocation;
pub mod services;
mod sessions;
mod settlement;
mod settler;
mod status;
mod telecells;
mod telemetry;
mod triage_many;
mod users;
mod wiring;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::transport::Server;

use crate::domain::faults::rules::Thresholds;
use crate::domain::faults::tracker::Policy;
use crate::proto;
use crate::store::Store;
use services::Part;
pub use services::Services;

pub use auth::open_session_for;
pub use connections::ConnectionLimits;
pub use context::Context;
pub use limiter::LoginLimits;
pub use presence::PresenceConfig;
pub use settlement::BillingConfig;

/// Accepted connections with Nagle's algorithm off: replies are small and latency matters.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot build the reflection service: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("cannot load the fault engine's state: {0}")]
    Engine(String),
    #[error("cannot take part in choosing the leader: {0}")]
    Leadership(String),
    #[error("the gRPC transport failed: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("cannot start the password threads: {0}")]
    PasswordThreads(std::io::Error),
    #[error("{0}")]
    Peers(String),
}

/// How often an idle connection is pinged, and how long the answer may take.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// Lamp status changes a status watcher may fall behind by before it is sent everything anew.
const LAMP_UPDATE_BUFFER: usize = 16_384;

/// How the fault engine and its housekeeping behave.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    pub thresholds: Thresholds,
    pub policy: Policy,
    /// How often silent nodes are looked for.
    pub sweep_interval: Duration,
    /// Raw readings older than this are deleted (latest status is always kept).
    pub readings_retention: chrono::Duration,
    /// Fault events older than this leave the log; a watcher further behind must resync.
    pub event_log_retention: chrono::Duration,
    /// After start-up, how long nodes get to report before silence counts as offline (a
    /// restarted server must not raise an offline fault for every lamp it did not hear from
    /// while it was down).
    pub startup_grace: chrono::Duration,
    pub billing: BillingConfig,
    /// Half-hour detail of settled days is kept this long; day and month totals always.
    pub energy_slots_retention: chrono::Duration,
    pub limits: Limits,
    /// Serve TLS with this certificate and key; plaintext when `None`.
    pub tls: Option<TlsIdentity>,
    pub presence: PresenceConfig,
    pub cluster: ClusterConfig,
    /// Where calls, ingest, leadership and the database's load are counted (served by
    /// `metrics::serve` when asked for).
    pub metrics: metrics::SharedMetrics,
    /// The parts of the API this process serves.
    pub services: services::Services,
    /// Gateways whose `x-forwarded-for` names the caller (sign-in limits, the audit trail).
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Instances of the auth service that a process without it asks who a token belongs to.
    pub auth_urls: Vec<String>,
    /// Instances of the inventory that billing and telemetry, run without it, ask for lamps,
    /// zones and wiring.
    pub inventory_urls: Vec<String>,
    /// Instances of telemetry that the inventory, run without it, asks for lamps' latest
    /// readings (their status).
    pub telemetry_urls: Vec<String>,
    /// Instances of faults that the inventory, run without it, asks for lamps' open faults.
    pub faults_urls: Vec<String>,
    /// The account telemetry run without the inventory signs in as to read every lamp's
    /// wiring when it takes the leader's role.
    pub service_account: Option<ServiceAccountConfig>,
}

/// A process's own account: its name, and its password when it signs in at another process.
#[derive(Clone, PartialEq, Eq)]
pub struct ServiceAccountConfig {
    pub username: String,
    pub password: Option<String>,
}

impl std::fmt::Debug for ServiceAccountConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccountConfig")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "(set)"))
            .finish()
    }
}

/// How this server works with the others sharing its database.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClusterConfig {
    /// The URL the other servers reach this one at (reports are forwarded to the leader);
    /// `None`: the listening address, with `https` when serving TLS.
    pub advertise: Option<String>,
    /// The CA that signed the other servers' certificates, when they serve TLS (`None`: the
    /// system's roots).
    pub peer_ca_pem: Option<Vec<u8>>,
}

/// The health service name whose status says whether this server leads.
pub const LEADER_HEALTH_SERVICE: &str = "singularity.leader";

/// A certificate chain and its private key, both PEM.
#[derive(Clone, PartialEq, Eq)]
pub struct TlsIdentity {
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

impl std::fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key never reaches a log.
        f.debug_struct("TlsIdentity")
            .field("cert_pem", &format_args!("{} bytes", self.cert_pem.len()))
            .field("key_pem", &format_args!("(hidden)"))
            .finish()
    }
}

/// What one caller may ask of the server.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Largest request or reply message, in bytes.
    pub max_message_bytes: usize,
    /// Concurrent calls (streams) one connection may hold open.
    pub max_streams_per_connection: u32,
    /// Longest a call may take to produce its reply (streams: their first message); a
    /// client's shorter `grpc-timeout` wins.
    pub request_timeout: Duration,
    /// How long a session lasts after signing in.
    pub session_length: chrono::Duration,
    /// Live sessions one user may hold; signing in again past it ends the oldest.
    pub sessions_per_user: usize,
    /// Connections per address and in all, and how long a new one may stay silent.
    pub connections: ConnectionLimits,
    /// Fault events buffered towards one watcher before it is cut off (told to resync);
    /// ingest and other watchers never wait for it. More than one ingest commit can publish
    /// at once (a chunk of 2,000 reports, each of which may raise, repeat or clear several
    /// faults, plus roll-ups), so that only a watcher that really falls behind is cut, not
    /// one that keeps up but sees a commit arrive in one burst.
    pub watcher_buffer: usize,
    pub login: LoginLimits,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_bytes: 4 * 1024 * 1024,
            max_streams_per_connection: 256,
            request_timeout: Duration::from_secs(60),
            session_length: chrono::Duration::hours(12),
            sessions_per_user: 20,
            connections: ConnectionLimits::default(),
            watcher_buffer: 16_384,
            login: LoginLimits::default(),
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            thresholds: Thresholds::default(),
            policy: Policy::default(),
            sweep_interval: Duration::from_secs(60),
            readings_retention: chrono::Duration::hours(48),
            event_log_retention: chrono::Duration::days(7),
            startup_grace: chrono::Duration::minutes(60),
            billing: BillingConfig::default(),
            energy_slots_retention: chrono::Duration::days(100),
            limits: Limits::default(),
            tls: None,
            presence: PresenceConfig::default(),
            cluster: ClusterConfig::default(),
            metrics: metrics::SharedMetrics::default(),
            services: services::Services::all(),
            trusted_proxies: Vec::new(),
            auth_urls: Vec::new(),
            inventory_urls: Vec::new(),
            telemetry_urls: Vec::new(),
            faults_urls: Vec::new(),
            service_account: None,
        }
    }
}

/// Serves every service on `listener` until `shutdown` completes, then drains: streams end
/// with UNAVAILABLE and a resume token, unary calls in flight finish.
pub async fn run(
    listener: TcpListener,
    store: Arc<dyn Store>,
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let token = CancellationToken::new();
    let fault_feed = if config.services.serves(Part::Faults) {
        let feed_store = store.clone();
        let feed = tokio::task::spawn_blocking(move || feed::FaultFeed::new(feed_store.as_ref()))
            .await
            .map_err(|e| ServerError::Engine(e.to_string()))?
            .map_err(|e| ServerError::Engine(e.to_string()))?;
        tokio::spawn(feed.clone().run(store.clone(), token.clone()));
        feed
    } else {
        feed::FaultFeed::unread()
    };
    let mut context = Context {
        store,
        fault_feed,
        shutdown: token.clone(),
        lamp_updates: tokio::sync::broadcast::channel(LAMP_UPDATE_BUFFER).0,
        sessions: Arc::default(),
        page_bytes: paging::page_bytes(config.limits.max_message_bytes),
        passwords: password_workers::PasswordWorkers::start(auth::password_checks())
            .map_err(ServerError::PasswordThreads)?,
        metrics: config.metrics.0.clone(),
        lamp_status: Arc::new(crate::remote::observed::StatusSources::local()),
    };
    let advertise = match &config.cluster.advertise {
        Some(url) => url.clone(),
        None => {
            let scheme = if config.tls.is_some() {
                "https"
            } else {
                "http"
            };
            let address = listener
                .local_addr()
                .map_err(|e| ServerError::Engine(format!("no listening address: {e}")))?;
            format!("{scheme}://{address}")
        }
    };
    let peers::Peers {
        sessions: session_source,
        billing_inventory,
        wiring,
        lamp_status,
    } = peers::set_up(&context, &config)?;
    context.lamp_status = Arc::new(lamp_status);
    wiring.check_account().await.map_err(ServerError::Peers)?;
    let billing_inventory = Arc::new(billing_inventory);
    let leadership = leadership::Leadership::new(advertise, wiring.clone());
    let (settled, settled_watch) = tokio::sync::watch::channel(0u64);
    let settled = Arc::new(settled);
    let served = config.services;
    // The first campaign before serving: a server that leads (the only one, on SQLite)
    // answers its first call with the engine built, as before.
    if !served.leads_work() {
        tracing::info!(services = %served, "serving no telemetry: the leader's work runs elsewhere");
    } else if let Err(e) = leadership.campaign(&context, &config, &settled).await {
        if !context.store.shared() {
            return Err(e);
        }
        tracing::warn!(error = %e, "not leading yet; campaigning every second");
    }
    let billing_config = config.billing;
    let limits = config.limits.clone();
    let presence_hub = presence::PresenceHub::new(config.presence);
    let tls = config.tls.clone();
    let readings_kept = config.readings_retention;
    let trusted_proxies = config.trusted_proxies.clone();
    let forwarder = Arc::new(forward::Forwarder::new(config.cluster.peer_ca_pem.clone()));
    let limiter = Arc::new(limiter::LoginLimiter::new(limits.login));
    tokio::spawn(notices::follow(
        context.clone(),
        limiter.clone(),
        settled.clone(),
    ));
    // Billing apart from telemetry settles energy itself, from the stored readings.
    let settler = (served.serves(Part::Billing) && !served.leads_work()).then(|| {
        tokio::spawn(settler::run(
            context.clone(),
            config.billing,
            config.energy_slots_retention,
            wiring.clone(),
            settled.clone(),
            leadership.address.clone(),
        ))
    });
    if served.leads_work() {
        leadership.start(context.clone(), config, settled.clone());
    }
    let decoy_hash = tokio::task::spawn_blocking(|| {
        crate::passwords::hash(&crate::domain::auth::new_token()).unwrap_or_default()
    })
    .await
    .map_err(|e| ServerError::Engine(e.to_string()))?;

    let (health, health_service) = tonic_health::server::health_reporter();
    let stopping = CancellationToken::new();
    let health_task = tokio::spawn(report_health(
        health.clone(),
        context.clone(),
        leadership.clone(),
        served.leads_work(),
        stopping.clone(),
    ));
    tokio::spawn(sample_gauges(
        context.clone(),
        leadership.clone(),
        stopping.clone(),
    ));
    for part in served.parts() {
        for name in part.grpc_services() {
            health
                .set_service_status(*name, tonic_health::ServingStatus::Serving)
                .await;
        }
    }

    let reflection = || {
        served.parts().flat_map(|part| part.grpc_services()).fold(
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
                .with_service_name("grpc.health.v1.Health"),
            |builder, name| builder.with_service_name(*name),
        )
    };
    let reflection_v1 = reflection().build_v1()?;
    let reflection_v1alpha = reflection().build_v1alpha()?;

    let drain = token.clone();
    let signal = async move {
        shutdown.await;
        tracing::info!("shutting down: ending streams, finishing requests in flight");
        for part in served.parts() {
            for name in part.grpc_services() {
                health
                    .set_service_status(*name, tonic_health::ServingStatus::NotServing)
                    .await;
            }
        }
        // Clients given several servers stop sending new calls here.
        stopping.cancel();
        let _ = health_task.await;
        drain.cancel();
    };

    let bytes = limits.max_message_bytes;
    // Every service gets the same message size limit, both ways.
    macro_rules! sized {
        ($server:expr) => {
            $server
                .max_decoding_message_size(bytes)
                .max_encoding_message_size(bytes)
        };
    }
    let mut builder = Server::builder();
    if let Some(tls) = &tls {
        builder = builder.tls_config(tonic::transport::ServerTlsConfig::new().identity(
            tonic::transport::Identity::from_pem(&tls.cert_pem, &tls.key_pem),
        ))?;
    }
    builder
        .max_concurrent_streams(limits.max_streams_per_connection)
        // Pings find peers that went away without closing (a dropped SSH tunnel, a dead
        // field gateway), so their connections and streams are let go.
        .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT))
        .timeout(limits.request_timeout)
        .layer(observe::ObserveLayer::new(
            context.metrics.clone(),
            &trusted_proxies,
        ))
        .layer(gate::GateLayer::new(
            session_source,
            context.sessions.clone(),
        ))
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_optional_service(served.serves(Part::Inventory).then(|| {
            sized!(proto::basestations_server::BasestationsServer::new(
                basestations::BasestationService(context.clone()),
            ))
        }))
        .add_optional_service(served.serves(Part::Inventory).then(|| {
            sized!(proto::telecells_server::TelecellsServer::new(
                telecells::TelecellService(context.clone()),
            ))
        }))
        .add_optional_service(served.serves(Part::Inventory).then(|| {
            sized!(proto::assets_server::AssetsServer::new(
                assets::AssetService(context.clone()),
            ))
        }))
        .add_optional_service(served.serves(Part::Inventory).then(|| {
            sized!(proto::lamps_server::LampsServer::new(lamps::LampService(
                context.clone(),
            )))
        }))
        .add_optional_service(served.serves(Part::Auth).then(|| {
            sized!(proto::users_server::UsersServer::new(users::UserService(
                context.clone(),
            )))
        }))
        .add_optional_service(served.serves(Part::Telemetry).then(|| {
            sized!(proto::telemetry_server::TelemetryServer::new(
                telemetry::TelemetryService {
                    context: context.clone(),
                    leadership: leadership.clone(),
                    wiring: wiring.clone(),
                    forwarder,
                    readings_kept,
                },
            ))
        }))
        .add_optional_service(served.serves(Part::Faults).then(|| {
            sized!(proto::faults_server::FaultsServer::new(
                faults::FaultService {
                    context: context.clone(),
                    presence: presence_hub.clone(),
                    watcher_buffer: limits.watcher_buffer,
                },
            ))
        }))
        .add_optional_service(served.serves(Part::Billing).then(|| {
            sized!(proto::billing_server::BillingServer::new(
                billing::BillingService {
                    context: context.clone(),
                    inventory: billing_inventory.clone(),
                    config: billing_config,
                    settled: settled_watch,
                },
            ))
        }))
        .add_optional_service(served.serves(Part::Auth).then(|| {
            sized!(proto::auth_server::AuthServer::new(auth::AuthService {
                context: context.clone(),
                limiter,
                session_length: limits.session_length,
                decoy_hash,
                sessions_per_user: limits.sessions_per_user.max(1),
            }))
        }))
        .add_optional_service(served.serves(Part::Auth).then(|| {
            sized!(proto::audit_server::AuditServer::new(audit::AuditService(
                context.clone()
            )))
        }))
        .add_optional_service(served.serves(Part::Inventory).then(|| {
            sized!(proto::catalog_server::CatalogServer::new(
                catalog::CatalogService(context.clone()),
            ))
        }))
        .add_optional_service(served.serves(Part::Faults).then(|| {
            sized!(proto::presence_server::PresenceServer::new(
                presence::PresenceService {
                    hub: presence_hub,
                    shutdown: context.shutdown.clone(),
                },
            ))
        }))
        .serve_with_incoming_shutdown(
            connections::incoming(listener, connections::Admission::new(limits.connections)),
            signal,
        )
        .await?;
    // The last settlement, after ingest has stopped, so a clean stop leaves nothing to replay.
    context.shutdown.cancel();
    leadership.finish(&context).await;
    if let Some(settler) = settler
        && let Err(e) = settler.await
    {
        tracing::error!(error = %e, "the settlement task failed");
    }
    Ok(())
}

/// How often the leadership and database gauges are sampled.
const GAUGES_EVERY: Duration = Duration::from_secs(1);

/// Keeps the metrics' leadership and database gauges current until `stopping`.
async fn sample_gauges(
    context: Context,
    leadership: Arc<leadership::Leadership>,
    stopping: CancellationToken,
) {
    let mut roles = leadership.watch();
    let mut ticks = tokio::time::interval(GAUGES_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        match leadership.role() {
            leadership::Role::Leading { term, .. } => context.metrics.leadership(true, Some(term)),
            _ => context.metrics.leadership(false, None),
        }
        context.metrics.database(context.store.load());
        tokio::select! {
            () = stopping.cancelled() => break,
            _ = ticks.tick() => {}
            _ = roles.changed() => {}
        }
    }
    context.metrics.leadership(false, None);
}

/// How often readiness (the database answering) is checked.
const READINESS_EVERY: Duration = Duration::from_secs(1);

/// Keeps `grpc.health.v1` true: the whole server ("") serves while it reaches its database,
/// and `LEADER_HEALTH_SERVICE` serves only on the leader. Says NOT_SERVING for all once
/// `stopping` is cancelled, before the server drains.
async fn report_health(
    health: tonic_health::server::HealthReporter,
    context: Context,
    leadership: Arc<leadership::Leadership>,
    campaigns: bool,
    stopping: CancellationToken,
) {
    use tonic_health::ServingStatus::{NotServing, Serving};
    let mut roles = leadership.watch();
    let mut ticks = tokio::time::interval(READINESS_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let reachable = context.blocking(|s| s.ping()).await.is_ok();
        let role = leadership.role();
        // A process that serves no telemetry takes no part in leading: it is ready once it
        // reaches the database.
        let ready = reachable && (!campaigns || !matches!(role, leadership::Role::Unknown));
        let leads = matches!(role, leadership::Role::Leading { .. });
        health
            .set_service_status("", if ready { Serving } else { NotServing })
            .await;
        health
            .set_service_status(
                LEADER_HEALTH_SERVICE,
                if leads { Serving } else { NotServing },
            )
            .await;
        tokio::select! {
            () = stopping.cancelled() => break,
            _ = ticks.tick() => {}
            _ = roles.changed() => {}
        }
    }
    health.set_service_status("", NotServing).await;
    health
        .set_service_status(LEADER_HEALTH_SERVICE, NotServing)
        .await;
}
