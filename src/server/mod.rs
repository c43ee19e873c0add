//! The lighting server: every gRPC service, health and reflection on one listener, with a
//! graceful shutdown that ends open streams and lets in-flight requests finish.

mod assets;
mod basestations;
mod catalog;
mod context;
pub mod error;
mod lamps;
mod paging;
mod telecells;
mod users;

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::Server;

use crate::proto;
use crate::store::Store;

pub use context::Context;

/// Accepted connections with Nagle's algorithm off: replies are small and latency matters.
fn incoming(
    listener: TcpListener,
) -> impl futures::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    use futures::StreamExt;
    TcpListenerStream::new(listener).map(|accepted| {
        accepted.inspect(|stream| {
            if let Err(e) = stream.set_nodelay(true) {
                tracing::debug!(error = %e, "cannot disable Nagle on a connection");
            }
        })
    })
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot build the reflection service: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("the gRPC transport failed: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// Serves every service on `listener` until `shutdown` completes, then drains: streams end
/// with UNAVAILABLE and a resume token, unary calls in flight finish.
pub async fn run(
    listener: TcpListener,
    store: Arc<dyn Store>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let token = CancellationToken::new();
    let context = Context {
        store,
        shutdown: token.clone(),
    };

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
        drain.cancel();
    };

    Server::builder()
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(proto::basestations_server::BasestationsServer::new(
            basestations::BasestationService(context.clone()),
        ))
        .add_service(proto::telecells_server::TelecellsServer::new(
            telecells::TelecellService(context.clone()),
        ))
        .add_service(proto::assets_server::AssetsServer::new(
            assets::AssetService(context.clone()),
        ))
        .add_service(proto::lamps_server::LampsServer::new(lamps::LampService(
            context.clone(),
        )))
        .add_service(proto::users_server::UsersServer::new(users::UserService(
            context.clone(),
        )))
        .add_service(proto::catalog_server::CatalogServer::new(
            catalog::CatalogService(context),
        ))
        .serve_with_incoming_shutdown(incoming(listener), signal)
        .await?;
    Ok(())
}
