//! The one gate every call passes: it finds the session behind the bearer token (in the
//! sessions table when this process serves auth, else by asking the auth service), checks
//! the caller's role against `domain::auth::access`, and hands the `Caller` to the handler in
//! the request's extensions. Handlers never check roles themselves. Calls that stay open
//! (watches, ingest) end when their session does.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use chrono::{DateTime, Utc};
use tonic::Status;
use tonic::body::Body;

use super::error::ServiceError;
use super::revocation::{Direction, Revocable, SessionEnd};
use super::sessions::SessionCache;
use crate::domain::auth::{Access, Caller, access, bearer_token, refusal, token_hash};
use crate::domain::inventory::EntityStatus;
use crate::remote::SessionError;
use crate::remote::sessions::{Sessions, Who};
use crate::store::Store;

/// Where the gate learns who a token belongs to.
#[derive(Clone)]
pub enum SessionSource {
    /// This process serves auth: the sessions table is its own.
    Store(Arc<dyn Store>),
    /// The auth service runs elsewhere: it is asked (`Auth.WhoAmI`, with the caller's token).
    Auth(Arc<Sessions>),
}

#[derive(Clone)]
pub struct GateLayer {
    source: SessionSource,
    sessions: Arc<SessionCache>,
}

impl GateLayer {
    pub fn new(source: SessionSource, sessions: Arc<SessionCache>) -> Self {
        Self { source, sessions }
    }
}

impl<S> tower_layer::Layer<S> for GateLayer {
    type Service = Gate<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Gate {
            inner,
            source: self.source.clone(),
            sessions: self.sessions.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Gate<S> {
    inner: S,
    source: SessionSource,
    sessions: Arc<SessionCache>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S> tower_service::Service<http::Request<Body>> for Gate<S>
where
    S: tower_service::Service<http::Request<Body>, Response = http::Response<Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        // The service that was polled ready is the one to call; a fresh clone stays behind.
        let ready = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, ready);
        let (source, sessions) = (self.source.clone(), self.sessions.clone());
        Box::pin(async move {
            let asking = Asking::of(&request);
            let (caller, expires_at) = match admit(&source, &sessions, asking).await {
                Ok(Some(admitted)) => admitted,
                Ok(None) => return inner.call(request).await.map(undecodable_is_bad_input),
                Err(status) => return Ok(status.into_http()),
            };
            let lasting = lasting(request.uri().path()).map(|direction| {
                let end = SessionEnd::new(
                    sessions.subscribe(),
                    expires_at,
                    caller.token_hash.clone(),
                    caller.user_id,
                );
                (direction, end)
            });
            request.extensions_mut().insert(caller);
            match lasting {
                None => inner.call(request).await.map(undecodable_is_bad_input),
                Some((Direction::Incoming, end)) => {
                    let request = request
                        .map(|body| Body::new(Revocable::new(body, end, Direction::Incoming)));
                    inner.call(request).await.map(undecodable_is_bad_input)
                }
                Some((Direction::Reply, end)) => {
                    let response = undecodable_is_bad_input(inner.call(request).await?);
                    Ok(response.map(|body| Body::new(Revocable::new(body, end, Direction::Reply))))
                }
            }
        })
    }
}

/// tonic answers a request it cannot decode (a bad varint, a string that is not UTF-8) with
/// INTERNAL, "failed to decode Protobuf message: LoginRequest.username: ...". For the client
/// that is bad input, not a fault of the server: the status becomes INVALID_ARGUMENT, and the
/// message, which names the field, stays.
fn undecodable_is_bad_input(mut response: http::Response<Body>) -> http::Response<Body> {
    let headers = response.headers_mut();
    let internal = headers.get("grpc-status").is_some_and(|v| v == "13");
    let undecodable = headers
        .get("grpc-message")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|m| {
            m.starts_with("failed%20to%20decode") || m.starts_with("failed to decode")
        });
    if internal && undecodable {
        headers.insert("grpc-status", http::HeaderValue::from_static("3"));
    }
    response
}

/// Calls that may stay open for hours, and which of their bodies ends with the session:
/// watches (the reply) and telemetry ingest (the incoming reports).
fn lasting(path: &str) -> Option<Direction> {
    let method = path.rsplit('/').next().unwrap_or("");
    if path == "/singularity.v1.Telemetry/Report" {
        Some(Direction::Incoming)
    } else if method.starts_with("Watch") {
        Some(Direction::Reply)
    } else {
        None
    }
}

/// What the gate reads of a call, taken out of it (its body is not shared across threads).
struct Asking {
    path: String,
    token: Result<String, Status>,
    request_id: Option<String>,
    peer: String,
}

impl Asking {
    fn of(request: &http::Request<Body>) -> Self {
        Self {
            path: request.uri().path().to_owned(),
            token: bearer(request.headers()).map(str::to_owned),
            request_id: request
                .headers()
                .get(super::observe::REQUEST_ID)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            peer: request
                .extensions()
                .get::<super::peer::ClientAddress>()
                .map(ToString::to_string)
                .unwrap_or_default(),
        }
    }
}

/// The caller and when their session ends, for calls that need one; `None` for public calls.
async fn admit(
    source: &SessionSource,
    sessions: &SessionCache,
    asking: Asking,
) -> Result<Option<(Caller, DateTime<Utc>)>, Status> {
    let path = asking.path.as_str();
    let rule = access(path);
    if rule == Access::Public {
        return Ok(None);
    }
    let token = asking.token?;
    let hash = token_hash(&token);
    let (who, expires_at) = match sessions.get(&hash) {
        Some(session) => session,
        None => {
            let request_id = asking.request_id.as_deref();
            let (who, expires_at) = look_up(source, &token, &hash, request_id).await?;
            sessions.put(hash.clone(), who.clone(), expires_at);
            (who, expires_at)
        }
    };
    if expires_at <= Utc::now() {
        return Err(ServiceError::signed_out(format!(
            "the session expired at {}; sign in again",
            expires_at.format("%Y-%m-%d %H:%M:%S UTC")
        ))
        .into());
    }
    if !rule.allows(who.role) {
        return Err(ServiceError::forbidden(refusal(rule, who.role, path)).into());
    }
    let caller = Caller {
        user_id: who.user_id,
        username: who.username,
        role: who.role,
        peer: asking.peer,
        token_hash: hash,
    };
    Ok(Some((caller, expires_at)))
}

/// Who holds the session behind a token, and when it ends: an active account's only.
async fn look_up(
    source: &SessionSource,
    token: &str,
    hash: &[u8],
    request_id: Option<&str>,
) -> Result<(Who, DateTime<Utc>), ServiceError> {
    match source {
        // A primary-key read from the page cache: cheaper here than a hop to another thread.
        SessionSource::Store(store) => {
            let (user, expires_at) = store
                .session(hash)
                .map_err(|e| {
                    tracing::error!(error = %e, "session lookup failed");
                    ServiceError::unavailable("cannot check the session just now; retry shortly")
                })?
                .ok_or_else(|| {
                    ServiceError::signed_out("the token is unknown or was revoked; sign in again")
                })?;
            if user.status != EntityStatus::Active {
                return Err(ServiceError::signed_out(format!(
                    "the account {:?} is not active",
                    user.username
                )));
            }
            let who = Who {
                user_id: user.id,
                username: user.username,
                role: user.role,
            };
            Ok((who, expires_at))
        }
        SessionSource::Auth(auth) => {
            auth.ask(token, request_id)
                .await
                .map_err(|refused| match refused {
                    SessionError::SignedOut(why) => ServiceError::signed_out(why),
                    unavailable @ SessionError::Unavailable(_) => {
                        ServiceError::unavailable(unavailable.to_string())
                    }
                })
        }
    }
}

fn bearer(headers: &http::HeaderMap) -> Result<&str, Status> {
    let missing = || {
        Status::from(ServiceError::signed_out(
            "this call needs `authorization: Bearer <token>`; Auth.Login gives a token",
        ))
    };
    let value = headers
        .get(http::header::AUTHORIZATION)
        .ok_or_else(missing)?;
    let text = value.to_str().map_err(|_| missing())?;
    bearer_token(text).ok_or_else(missing)
}
