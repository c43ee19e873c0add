//! Each call through the gateway: find the part of the API that owns its path, admit its
//! address, authenticate it and check its role (unless the path is public), admit its user,
//! then check the request's fields with the checks the services make (`wire::requests`), so a
//! malformed request is refused before it reaches one, and forward it to a healthy instance.
//! A read that an instance answers with UNAVAILABLE (or cannot be reached for) is asked of
//! the next; a write is sent once, to the next instance only when the connection was
//! refused; a stream of requests is passed on as it comes, once, and stays on its instance.

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
use crate::domain::auth::{Access, access, bearer_token, is_read, refusal};
use crate::remote::sessions::Sessions;
use crate::remote::upstreams::{Upstream, Upstreams};
use crate::server::services::Part;
use crate::wire::requests::{MethodCheck, check_for};

const LOGOUT: &str = "/singularity.v1.Auth/Logout";
/// The most of a request the gateway holds to check it: a message at the services' default
/// size limit and its 5-byte gRPC frame header.
const MAX_BUFFERED_REQUEST: usize = 4 * 1024 * 1024 + 5;

#[derive(Clone)]
pub struct Proxy {
    upstreams: Arc<Upstreams>,
    sessions: Arc<Sessions>,
    limiter: Arc<Limiter>,
}

impl Proxy {
    pub fn new(upstreams: Arc<Upstreams>, sessions: Arc<Sessions>, limiter: Arc<Limiter>) -> Self {
        Self {
            upstreams,
            sessions,
            limiter,
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
            let who = self
                .sessions
                .who(token, request_id)
                .await
                .map_err(Refusal::from)?;
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
        let response = match check_for(&path) {
            Some(check) => {
                let (parts, body) = request.into_parts();
                let body = checked_message(check, body).await?;
                let again = if is_read(method) {
                    Again::WhenUnavailable
                } else {
                    Again::WhenNeverSent
                };
                self.forward_message(part, &parts, body, again).await?
            }
            // A stream of requests (its service judges each message as it comes), or a
            // method the contract does not have (its service says so).
            None => {
                let (_, instance) = self
                    .upstreams
                    .pick(part, &[])
                    .ok_or(Refusal::NoInstance(part.name()))?;
                send(&instance, request).await.map_err(|e| e.status)?
            }
        };
        if path == LOGOUT && status_of(&response).is_none_or(|code| code == 0) {
            if let Some(token) = token {
                self.sessions.forget(&token);
            }
        }
        Ok(response)
    }

    /// Sends a request of one message to one instance after another, as long as `again`
    /// allows: a read until an instance answers with anything but UNAVAILABLE; a write only
    /// while the instance could not even be connected to (it never saw the request).
    async fn forward_message(
        &self,
        part: Part,
        parts: &http::request::Parts,
        body: Bytes,
        again: Again,
    ) -> Result<http::Response<Body>, Status> {
        let mut tried = Vec::new();
        let mut last = None;
        while let Some((index, instance)) = self.upstreams.pick(part, &tried) {
            tried.push(index);
            match send(&instance, rebuilt(parts, body.clone())).await {
                Ok(response)
                    if again == Again::WhenUnavailable
                        && status_of(&response) == Some(tonic::Code::Unavailable as i32) =>
                {
                    last = Some(Ok(response));
                }
                Ok(response) => return Ok(response),
                Err(failed) if again == Again::WhenUnavailable || failed.never_sent => {
                    last = Some(Err(failed.status));
                }
                Err(failed) => return Err(failed.status),
            }
        }
        match last {
            Some(outcome) => outcome,
            None => Err(Refusal::NoInstance(part.name()).into()),
        }
    }
}

/// Reads a request's one message whole (bounded: one message at the services' limit) and
/// runs its method's check on it.
async fn checked_message(check: &MethodCheck, body: Body) -> Result<Bytes, Refusal> {
    let body = http_body_util::Limited::new(body, MAX_BUFFERED_REQUEST)
        .collect()
        .await
        .map_err(|e| {
            Refusal::TooLarge(format!(
                "the request could not be read whole ({e}); a request holds one message of at most {} KiB",
                MAX_BUFFERED_REQUEST / 1024
            ))
        })?
        .to_bytes();
    // A gRPC message: a compression flag, its length (4 bytes, big-endian), then itself.
    let (flag, length, message) = match body.as_ref() {
        [flag, a, b, c, d, message @ ..] => (*flag, u32::from_be_bytes([*a, *b, *c, *d]), message),
        _ => {
            return Err(Refusal::Malformed(format!(
                "{}: the request holds no message",
                check.path
            )));
        }
    };
    if flag != 0 {
        return Err(Refusal::Compressed);
    }
    if message.len() != length as usize {
        return Err(Refusal::Malformed(format!(
            "{}: the request must hold exactly one {} message",
            check.path, check.message
        )));
    }
    (check.check)(message).map_err(Refusal::from)?;
    Ok(body)
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

/// When a request of one message is sent to the next instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Again {
    /// A read: whenever an instance is unavailable or unreachable.
    WhenUnavailable,
    /// A write: only when an instance refused the connection, so it cannot have acted on it.
    WhenNeverSent,
}

/// A request an instance did not answer.
struct SendFailed {
    status: Status,
    /// The connection was refused: the request never left the gateway.
    never_sent: bool,
}

async fn send(
    instance: &Upstream,
    request: http::Request<Body>,
) -> Result<http::Response<Body>, SendFailed> {
    use tower_service::Service;
    let mut channel = instance.channel.clone();
    let unreachable = |e: tonic::transport::Error| SendFailed {
        never_sent: connection_refused(&e),
        status: Status::unavailable(format!("cannot reach {}: {e}; retry shortly", instance.url)),
    };
    futures::future::poll_fn(|cx| channel.poll_ready(cx))
        .await
        .map_err(unreachable)?;
    channel.call(request).await.map_err(unreachable)
}

/// Whether an error comes from a connection that was refused (nothing listens there).
fn connection_refused(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(error) = cause {
        if let Some(io) = error.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::ConnectionRefused
        {
            return true;
        }
        cause = error.source();
    }
    false
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
    use prost::Message;

    use super::*;
    use crate::proto;

    fn framed(flag: u8, messages: &[Vec<u8>]) -> Body {
        let mut bytes = Vec::new();
        for message in messages {
            bytes.push(flag);
            bytes.extend_from_slice(&(message.len() as u32).to_be_bytes());
            bytes.extend_from_slice(message);
        }
        Body::new(http_body_util::Full::new(Bytes::from(bytes)))
    }

    fn lamps_get() -> &'static MethodCheck {
        check_for("/singularity.v1.Lamps/Get").expect("Lamps.Get is checked")
    }

    #[tokio::test]
    async fn one_sound_message_is_passed_on_whole() {
        let message = proto::IdRequest { id: 9 }.encode_to_vec();
        let body = checked_message(lamps_get(), framed(0, std::slice::from_ref(&message)))
            .await
            .expect("a sound request");
        assert_eq!(&body[5..], message.as_slice());
    }

    #[tokio::test]
    async fn a_request_that_is_not_one_plain_message_is_refused() {
        let message = proto::IdRequest { id: 9 }.encode_to_vec();
        let two = checked_message(lamps_get(), framed(0, &[message.clone(), message.clone()]));
        assert!(matches!(two.await, Err(Refusal::Malformed(_))));
        let none = checked_message(lamps_get(), framed(0, &[]));
        assert!(matches!(none.await, Err(Refusal::Malformed(_))));
        let compressed = checked_message(lamps_get(), framed(1, &[message]));
        assert!(matches!(compressed.await, Err(Refusal::Compressed)));
    }
}
