//! The lighting server: every gRPC service, health and reflection on one listener, with a
//! graceful shutdown that ends open streams and lets in-flight requests finish.

mod assets;
mod audit;
mod audit_words;
mod auth;
mod basestations;
mod billing;
mod catalog;
mod connections;
mod context;
mod engine;
pub mod error;
mod faults;
mod feed;
mod gate;
mod handover;
mod inventory;
mod lamps;
mod limiter;
mod paging;
mod password_workers;
mod presence;
mod revocation;
mod sessions;
mod settlement;
mod status;
mod telecells;
mod telemetry;
mod triage_many;
mod users;

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

pub use auth::open_session_for;
pub use connections::ConnectionLimits;
pub use context::Context;
pub use limiter::LoginLimits;
pub use presence::PresenceConfig;
pub use settlement::BillingConfig;

/// The offline sweep and retention, until shutdown.
async fn housekeeping(context: Context, engine: engine::Engine, config: ServerConfig) {
    let mut ticks = tokio::time::interval(config.sweep_interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_prune = std::time::Instant::now();
    loop {
        tokio::select! {
            () = context.shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let mut state = engine.lock().await;
        if let Err(e) = engine::resume_from_committed(&context, &mut state).await {
            tracing::error!(error = %e, "the offline sweep could not reload the engine");
            continue;
        }
        let batch = state.sweep(chrono::Utc::now());
        if !batch.changes.is_empty() || !batch.groups.is_empty() {
            match context.blocking(move |s| s.record_telemetry(batch)).await {
                Ok(outcome) => context.publish(outcome.events),
                Err(e) => {
                    tracing::error!(error = %e, "the offline sweep could not store its faults")
                }
            }
        }
        drop(state);
        if last_prune.elapsed() >= Duration::from_secs(3600) {
            last_prune = std::time::Instant::now();
            let now = chrono::Utc::now();
            let (readings, events) = (
                now - config.readings_retention,
                now - config.event_log_retention,
            );
            let slots = config
                .billing
                .calendar()
                .date_of(now - config.energy_slots_retention);
            let pruned = context
                .blocking(move |s| {
                    Ok((
                        s.prune_readings(readings)?,
                        s.prune_fault_log(events)?,
                        s.prune_energy_slots(slots)?,
                    ))
                })
                .await;
            match pruned {
                Ok((readings, events, slot_days)) => tracing::info!(
                    readings,
                    events,
                    slot_days,
                    "retention: old readings, events and half-hour detail removed"
                ),
                Err(e) => tracing::error!(error = %e, "retention pruning failed"),
            }
        }
    }
}

/// Accepted connections with Nagle's algorithm off: replies are small and latency matters.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot build the reflection service: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("cannot load the fault engine's state: {0}")]
    Engine(String),
    #[error("the gRPC transport failed: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("cannot start the password threads: {0}")]
    PasswordThreads(std::io::Error),
}

/// How often an idle connection is pinged, and how long the answer may take.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);

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
}

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
    let feed_store = store.clone();
    let fault_feed = tokio::task::spawn_blocking(move || feed::FaultFeed::new(feed_store.as_ref()))
        .await
        .map_err(|e| ServerError::Engine(e.to_string()))?
        .map_err(|e| ServerError::Engine(e.to_string()))?;
    tokio::spawn(fault_feed.clone().run(store.clone(), token.clone()));
    let context = Context {
        store,
        fault_feed,
        shutdown: token.clone(),
        lamp_updates: tokio::sync::broadcast::channel(LAMP_UPDATE_BUFFER).0,
        sessions: Arc::default(),
        page_bytes: paging::page_bytes(config.limits.max_message_bytes),
        passwords: password_workers::PasswordWorkers::start(auth::password_checks())
            .map_err(ServerError::PasswordThreads)?,
    };
    let engine_store = context.store.clone();
    let (thresholds, policy) = (config.thresholds.clone(), config.policy.clone());
    let sweep_from = chrono::Utc::now() + config.startup_grace;
    let billing_config = config.billing;
    let engine_state = tokio::task::spawn_blocking(move || {
        let mut state = engine::load(
            engine_store.as_ref(),
            thresholds,
            policy,
            sweep_from,
            billing_config.meter,
        )?;
        let replayed = settlement::recover(engine_store.as_ref(), &mut state)?;
        if replayed > 0 {
            tracing::info!(replayed, "energy of readings not yet settled metered again");
        }
        Ok::<_, crate::store::StoreError>(state)
    })
    .await
    .map_err(|e| ServerError::Engine(e.to_string()))?
    .map_err(|e| ServerError::Engine(e.to_string()))?;
    let engine: engine::Engine = Arc::new(tokio::sync::Mutex::new(engine_state));
    let (settled, settled_watch) = tokio::sync::watch::channel(0u64);
    let settling = tokio::spawn(settlement::run(
        context.clone(),
        engine.clone(),
        billing_config,
        settled,
    ));
    let limits = config.limits.clone();
    let presence_hub = presence::PresenceHub::new(config.presence);
    let tls = config.tls.clone();
    let readings_kept = config.readings_retention;
    tokio::spawn(housekeeping(context.clone(), engine.clone(), config));
    let decoy_hash = tokio::task::spawn_blocking(|| {
        crate::passwords::hash(&crate::domain::auth::new_token()).unwrap_or_default()
    })
    .await
    .map_err(|e| ServerError::Engine(e.to_string()))?;

    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<proto::basestations_server::BasestationsServer<basestations::BasestationService>>().await;
    health
        .set_serving::<proto::telecells_server::TelecellsServer<telecells::TelecellService>>()
        .await;
    health
        .set_serving::<proto::assets_server::AssetsServer<assets::AssetService>>()
        .await;
    health
        .set_serving::<proto::lamps_server::LampsServer<lamps::LampService>>()
        .await;
    health
        .set_serving::<proto::users_server::UsersServer<users::UserService>>()
        .await;
    health
        .set_serving::<proto::catalog_server::CatalogServer<catalog::CatalogService>>()
        .await;
    health
        .set_serving::<proto::telemetry_server::TelemetryServer<telemetry::TelemetryService>>()
        .await;
    health
        .set_serving::<proto::faults_server::FaultsServer<faults::FaultService>>()
        .await;
    health
        .set_serving::<proto::billing_server::BillingServer<billing::BillingService>>()
        .await;
    health
        .set_serving::<proto::auth_server::AuthServer<auth::AuthService>>()
        .await;
    health
        .set_serving::<proto::audit_server::AuditServer<audit::AuditService>>()
        .await;
    health
        .set_serving::<proto::presence_server::PresenceServer<presence::PresenceService>>()
        .await;

    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection().build_v1()?;
    let reflection_v1alpha = reflection().build_v1alpha()?;

    let drain = token.clone();
    let signal = async move {
        shutdown.await;
        tracing::info!("shutting down: ending streams, finishing requests in flight");
        health
            .set_not_serving::<proto::lamps_server::LampsServer<lamps::LampService>>()
            .await;
        // Clients given several servers stop sending new calls here.
        health
            .set_service_status("", tonic_health::ServingStatus::NotServing)
            .await;
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
        .layer(gate::GateLayer::new(
            context.store.clone(),
            context.sessions.clone(),
        ))
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(sized!(proto::basestations_server::BasestationsServer::new(
            basestations::BasestationService(context.clone()),
        )))
        .add_service(sized!(proto::telecells_server::TelecellsServer::new(
            telecells::TelecellService(context.clone()),
        )))
        .add_service(sized!(proto::assets_server::AssetsServer::new(
            assets::AssetService(context.clone()),
        )))
        .add_service(sized!(proto::lamps_server::LampsServer::new(
            lamps::LampService(context.clone(),)
        )))
        .add_service(sized!(proto::users_server::UsersServer::new(
            users::UserService(context.clone(),)
        )))
        .add_service(sized!(proto::telemetry_server::TelemetryServer::new(
            telemetry::TelemetryService {
                context: context.clone(),
                engine,
                readings_kept,
            },
        )))
        .add_service(sized!(proto::faults_server::FaultsServer::new(
            faults::FaultService {
                context: context.clone(),
                presence: presence_hub.clone(),
                watcher_buffer: limits.watcher_buffer,
            },
        )))
        .add_service(sized!(proto::billing_server::BillingServer::new(
            billing::BillingService {
                context: context.clone(),
                config: billing_config,
                settled: settled_watch,
            },
        )))
        .add_service(sized!(proto::auth_server::AuthServer::new(
            auth::AuthService {
                context: context.clone(),
                limiter: std::sync::Arc::new(limiter::LoginLimiter::new(limits.login)),
                session_length: limits.session_length,
                decoy_hash,
                sessions_per_user: limits.sessions_per_user.max(1),
            }
        )))
        .add_service(sized!(proto::audit_server::AuditServer::new(
            audit::AuditService(context.clone())
        )))
        .add_service(sized!(proto::catalog_server::CatalogServer::new(
            catalog::CatalogService(context.clone()),
        )))
        .add_service(sized!(proto::presence_server::PresenceServer::new(
            presence::PresenceService {
                hub: presence_hub,
                shutdown: context.shutdown.clone(),
            },
        )))
        .serve_with_incoming_shutdown(
            connections::incoming(listener, connections::Admission::new(limits.connections)),
            signal,
        )
        .await?;
    // The last settlement, after ingest has stopped, so a clean stop leaves nothing to replay.
    context.shutdown.cancel();
    if let Err(e) = settling.await {
        tracing::error!(error = %e, "the settlement task failed");
    }
    Ok(())
}
