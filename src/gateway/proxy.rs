//! Each call through the gateway: find the part of the API that owns its path, admit its
//! address, authenticate it and check its role (unless the path is public), admit its user,
//! then forward it to a healthy instance. A unary read that an instance answers with
//! UNAVAILABLE (or cannot be reached for) is asked of the next; a write or a stream is sent
//! once, and a stream stays on its instance for its life.

use std::collections::HashSet;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use http_body_util::BodyExt;
use tonic::Status;
use tonic::body::Body;
use tonic::codegen::Bytes;

use super::error::Refusal;
use super::limits::Limiter;
use super::sessions::Sessions;
use super::upstreams::{Upstream, Upstreams};
use crate::domain::auth::{Access, access, bearer_token, is_read, refusal};
use crate::server::services::Part;

const LOGOUT: &str = "/singularity.v1.Auth/Logout";
/// The most of a read's request the gateway holds: a message at the services' default size
/// limit and its 5-byte gRPC frame header.
const MAX_BUFFERED_REQUEST: usize = 4 * 1024 * 1024 + 5;

#[derive(Clone)]
pub struct Proxy {
    upstreams: Arc<Upstreams>,
    sessions: Arc<Sessions>,
    limiter: Arc<Limiter>,
    /// Paths whose requests are streams (never buffered, never asked twice).
    streaming_requests: Arc<HashSet<String>>,
}

impl Proxy {
    pub fn new(upstreams: Arc<Upstreams>, sessions: Arc<Sessions>, limiter: Arc<Limiter>) -> Self {
        Self {
            upstreams,
            sessions,
            limiter,
            streaming_requests: Arc::new(streaming_requests()),
        }
    }

    async fn forward(self, request: http::Request<Body>) -> Result<http::Response<Body>, Status> {
        let path = request.uri().path().to_owned();
        let (service, method) = path
            .trim_start_matches('/')
            .split_once('/')
            .unwrap_or((path.as_str(), ""));
        let part =
            Part::owning(service).ok_or_else(|| Refusal::UnknownService(service.to_owned()))?;
        if !self.upstreams.routes(part) {
            return Err(Refusal::NoInstance(part.name()).into());
        }
        if let Some(client) = request
            .extensions()
            .get::<crate::server::peer::ClientAddress>()
        {
            self.limiter.admit_address(client.ip)?;
        }
        let rule = access(&path);
        let token = bearer(request.headers());
        if rule != Access::Public {
            let token = token.as_deref().ok_or_else(|| {
                Refusal::SignedOut(
                    "this call needs `authorization: Bearer <token>`; Auth.Login gives a token"
                        .into(),
                )
            })?;
            let request_id = request
                .headers()
                .get(crate::server::observe::REQUEST_ID)
                .and_then(|v| v.to_str().ok());
            let who = self.sessions.who(token, request_id).await?;
            if !rule.allows(who.role) {
                return Err(Refusal::Forbidden(refusal(rule, who.role, &path)).into());
            }
            self.limiter.admit_user(&who.username)?;
        }
        // The services (trusting this gateway) count sign-ins and audit by the caller's
        // address, not the gateway's.
        let mut request = request;
        let client = request
            .extensions()
            .get::<crate::server::peer::ClientAddress>()
            .and_then(|c| http::HeaderValue::from_str(&c.ip.to_string()).ok());
        match client {
            Some(value) => request
                .headers_mut()
                .insert(crate::server::peer::FORWARDED_FOR, value),
            None => request
                .headers_mut()
                .remove(crate::server::peer::FORWARDED_FOR),
        };
        let retry = is_read(method) && !self.streaming_requests.contains(&path);
        let response = if retry {
            self.forward_read(part, request).await?
        } else {
            let (_, instance) = self
                .upstreams
                .pick(part, &[])
                .ok_or(Refusal::NoInstance(part.name()))?;
            send(&instance, request).await?
        };
        if path == LOGOUT && status_of(&response).is_none_or(|code| code == 0) {
            if let Some(token) = token {
                self.sessions.forget(&token);
            }
        }
        Ok(response)
    }

    /// Sends a unary read to one instance after another until one answers with anything
    /// but UNAVAILABLE.
    async fn forward_read(
        &self,
        part: Part,
        request: http::Request<Body>,
    ) -> Result<http::Response<Body>, Status> {
        let (parts, body) = request.into_parts();
        // Held whole to be sent again, so bounded: one message at the services' limit.
        let body = http_body_util::Limited::new(body, MAX_BUFFERED_REQUEST)
            .collect()
            .await
            .map_err(|e| {
                Status::resource_exhausted(format!(
                    "the request could not be read whole ({e}); a request holds one message of at most {} KiB",
                    MAX_BUFFERED_REQUEST / 1024
                ))
            })?
            .to_bytes();
        let mut tried = Vec::new();
        let mut last = None;
        while let Some((index, instance)) = self.upstreams.pick(part, &tried) {
            tried.push(index);
            match send(&instance, rebuilt(&parts, body.clone())).await {
                Ok(response) if status_of(&response) != Some(tonic::Code::Unavailable as i32) => {
                    return Ok(response);
                }
                Ok(response) => last = Some(Ok(response)),
                Err(status) => last = Some(Err(status)),
            }
        }
        match last {
            Some(outcome) => outcome,
            None => Err(Refusal::NoInstance(part.name()).into()),
        }
    }
}

/// The bearer token a call carries, if any.
fn bearer(headers: &http::HeaderMap) -> Option<String> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    bearer_token(value).map(str::to_owned)
}

/// A request again from its head and its whole body.
fn rebuilt(parts: &http::request::Parts, body: Bytes) -> http::Request<Body> {
    let mut request = http::Request::new(Body::new(http_body_util::Full::new(body)));
    *request.method_mut() = parts.method.clone();
    *request.uri_mut() = parts.uri.clone();
    *request.version_mut() = parts.version;
    *request.headers_mut() = parts.headers.clone();
    request
}

/// The gRPC code of a reply that ended before its body ("trailers only").
fn status_of(response: &http::Response<Body>) -> Option<i32> {
    response
        .headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

async fn send(
    instance: &Upstream,
    request: http::Request<Body>,
) -> Result<http::Response<Body>, Status> {
    use tower_service::Service;
    let mut channel = instance.channel.clone();
    let unreachable = |e: tonic::transport::Error| {
        Status::unavailable(format!("cannot reach {}: {e}; retry shortly", instance.url))
    };
    futures::future::poll_fn(|cx| channel.poll_ready(cx))
        .await
        .map_err(unreachable)?;
    channel.call(request).await.map_err(unreachable)
}

/// The paths of every method whose request is a stream, from the contract.
fn streaming_requests() -> HashSet<String> {
    let Ok(set) = <prost_types::FileDescriptorSet as prost::Message>::decode(
        crate::proto::FILE_DESCRIPTOR_SET,
    ) else {
        return HashSet::new();
    };
    set.file
        .iter()
        .flat_map(|file| {
            file.service.iter().flat_map(move |service| {
                service
                    .method
                    .iter()
                    .filter(|m| m.client_streaming())
                    .map(move |m| format!("/{}.{}/{}", file.package(), service.name(), m.name()))
            })
        })
        .collect()
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<B> tower_service::Service<http::Request<B>> for Proxy
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut TaskContext<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let proxy = self.clone();
        Box::pin(async move {
            Ok(proxy
                .forward(request.map(Body::new))
                .await
                .unwrap_or_else(|status| status.into_http()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_of_requests_are_known_from_the_contract() {
        let streaming = streaming_requests();
        assert!(streaming.contains("/singularity.v1.Telemetry/Report"));
        assert!(!streaming.contains("/singularity.v1.Lamps/Get"));
        assert!(!streaming.contains("/singularity.v1.Faults/Watch"));
    }
}
