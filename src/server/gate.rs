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
            // Everything but a question to the auth service is decided here, without
            // waiting: a session known to this process costs a map read.
            let admission = match admit(&source, &sessions, &request) {
                Ok(admission) => admission,
                Err(status) => return Ok(status.into_http()),
            };
            let (caller, expires_at) = match admission {
                Admission::Public => {
                    return inner.call(request).await.map(undecodable_is_bad_input);
                }
                Admission::Known(caller, expires_at) => (caller, expires_at),
                Admission::Ask(ask) => {
                    let asked = ask_auth(&ask).await;
                    match asked.and_then(|session| {
                        sessions.put(ask.hash.clone(), session.0.clone(), session.1);
                        admitted(&request, ask.rule, ask.hash, session)
                    }) {
                        Ok(admitted) => admitted,
                        Err(status) => return Ok(status.into_http()),
                    }
                }
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

/// What the gate makes of a call before anything is awaited.
enum Admission {
    Public,
    /// The caller, from this process's session cache or its own sessions table.
    Known(Caller, DateTime<Utc>),
    /// A session this process has not seen, to be asked of the auth service.
    Ask(Ask),
}

/// A question for the auth service: who holds `token`.
struct Ask {
    auth: Arc<Sessions>,
    token: String,
    hash: Vec<u8>,
    request_id: Option<String>,
    rule: Access,
}

/// Admits a call from the cache or the sessions table, or says what to ask of auth.
fn admit(
    source: &SessionSource,
    sessions: &SessionCache,
    request: &http::Request<Body>,
) -> Result<Admission, Status> {
    let rule = access(request.uri().path());
    if rule == Access::Public {
        return Ok(Admission::Public);
    }
    let token = bearer(request.headers())?;
    let hash = token_hash(token);
    let session = match (sessions.get(&hash), source) {
        (Some(session), _) => session,
        (None, SessionSource::Store(store)) => {
            let session = from_table(store.as_ref(), &hash)?;
            sessions.put(hash.clone(), session.0.clone(), session.1);
            session
        }
        (None, SessionSource::Auth(auth)) => {
            return Ok(Admission::Ask(Ask {
                auth: auth.clone(),
                token: token.to_owned(),
                hash,
                request_id: request
                    .headers()
                    .get(super::observe::REQUEST_ID)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned),
                rule,
            }));
        }
    };
    let (caller, expires_at) = admitted(request, rule, hash, session)?;
    Ok(Admission::Known(caller, expires_at))
}

/// The caller of a live session whose role `rule` allows.
fn admitted(
    request: &http::Request<Body>,
    rule: Access,
    hash: Vec<u8>,
    (who, expires_at): (Who, DateTime<Utc>),
) -> Result<(Caller, DateTime<Utc>), Status> {
    if expires_at <= Utc::now() {
        return Err(ServiceError::signed_out(format!(
            "the session expired at {}; sign in again",
            expires_at.format("%Y-%m-%d %H:%M:%S UTC")
        ))
        .into());
    }
    if !rule.allows(who.role) {
        return Err(ServiceError::forbidden(refusal(rule, who.role, request.uri().path())).into());
    }
    let peer = request
        .extensions()
        .get::<super::peer::ClientAddress>()
        .map(ToString::to_string)
        .unwrap_or_default();
    let caller = Caller {
        user_id: who.user_id,
        username: who.username,
        role: who.role,
        peer,
        token_hash: hash,
    };
    Ok((caller, expires_at))
}

/// Who holds a session, from this process's own sessions table: an active account's only. A
/// primary-key read from the page cache: cheaper here than a hop to another thread.
fn from_table(store: &dyn Store, hash: &[u8]) -> Result<(Who, DateTime<Utc>), ServiceError> {
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

/// Who holds a session, asked of the auth service with the caller's token and request id.
async fn ask_auth(ask: &Ask) -> Result<(Who, DateTime<Utc>), Status> {
    ask.auth
        .ask(&ask.token, ask.request_id.as_deref())
        .await
        .map_err(|refused| {
            match refused {
                SessionError::SignedOut(why) => ServiceError::signed_out(why),
                unavailable @ SessionError::Unavailable(_) => {
                    ServiceError::unavailable(unavailable.to_string())
                }
            }
            .into()
        })
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
