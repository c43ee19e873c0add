//! The gateway: the one address clients use when the services run apart. It terminates TLS,
//! authenticates each call by asking the auth service (a short cache, emptied at once by a
//! logout through it), checks the role table, limits calls per user and per address, and
//! forwards each call to a healthy instance of the service that owns its path: unary calls
//! spread over the instances (a read that meets UNAVAILABLE is asked of another), a stream
//! stays on its instance. It serves health and reflection for the whole API.

mod error;
mod limits;
mod proxy;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::proto;
use crate::server::metrics::Metrics;
use crate::server::services::Part;
use crate::server::{KEEPALIVE_INTERVAL, KEEPALIVE_TIMEOUT, TlsIdentity};

pub use error::GatewayError;
pub use limits::CallLimits;

/// How the gateway is set up.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// The instances of each part of the API, as URLs (`http://10.0.0.5:50051`).
    pub routes: Vec<(Part, Vec<String>)>,
    /// Serve TLS with this certificate and key; plaintext when `None`.
    pub tls: Option<TlsIdentity>,
    /// The CA that signed the services' certificates, when they serve TLS (`None`: the
    /// system's roots).
    pub upstream_ca_pem: Option<Vec<u8>>,
    pub limits: CallLimits,
    /// Connections per address and in all, and how long a new one may stay silent.
    pub connections: crate::server::ConnectionLimits,
    /// How long an answer of the auth service about a token is trusted.
    pub session_cache: Duration,
    /// How often each instance's health is asked.
    pub health_interval: Duration,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            routes: Vec::new(),
            tls: None,
            upstream_ca_pem: None,
            limits: CallLimits::default(),
            connections: crate::server::ConnectionLimits::default(),
            session_cache: Duration::from_secs(5),
            health_interval: Duration::from_secs(1),
        }
    }
}

/// Serves until `shutdown` completes.
pub async fn run(
    listener: TcpListener,
    config: GatewayConfig,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), GatewayError> {
    // Every call is authenticated by the auth service.
    if !config.routes.iter().any(|(part, _)| *part == Part::Auth) {
        return Err(crate::remote::RemoteError::Unrouted(Part::Auth.name()).into());
    }
    let upstreams = Arc::new(crate::remote::upstreams::Upstreams::new(
        &config.routes,
        config.upstream_ca_pem.as_deref(),
    )?);
    let stop = CancellationToken::new();
    let (health, health_service) = tonic_health::server::health_reporter();
    // Not serving until the instances have been asked.
    health
        .set_service_status("", tonic_health::ServingStatus::NotServing)
        .await;
    tokio::spawn(upstreams.clone().watch(
        config.health_interval,
        Some(health),
        metrics.clone(),
        stop.clone(),
    ));
    let sessions = Arc::new(crate::remote::sessions::Sessions::new(
        upstreams.clone(),
        config.session_cache,
    ));
    let proxy = proxy::Proxy::new(
        upstreams,
        sessions,
        Arc::new(limits::Limiter::new(config.limits)),
    );
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let mut routes = tonic::service::Routes::new(health_service)
        .add_service(reflection().build_v1()?)
        .add_service(reflection().build_v1alpha()?);
    let router = std::mem::replace(
        routes.axum_router_mut(),
        tonic::service::Routes::default().into_axum_router(),
    );
    *routes.axum_router_mut() = router.fallback_service(proxy);

    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = &config.tls {
        builder = builder.tls_config(tonic::transport::ServerTlsConfig::new().identity(
            tonic::transport::Identity::from_pem(&tls.cert_pem, &tls.key_pem),
        ))?;
    }
    let signal = async move {
        shutdown.await;
        stop.cancel();
    };
    builder
        .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT))
        .layer(crate::server::observe::ObserveLayer::new(metrics, &[]))
        .add_routes(routes)
        // Admitted as the server admits them (limits per address and in all, a silent new
        // connection closed, Nagle off).
        .serve_with_incoming_shutdown(
            crate::server::connections::incoming(
                listener,
                crate::server::connections::Admission::new(config.connections),
            ),
            signal,
        )
        .await?;
    Ok(())
}
