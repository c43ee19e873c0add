//! A client's line to the server: the gRPC channel plus the bearer token every call carries.
//! The console, the CLI, the simulator and the benchmarks all talk through a `AuthedChannel`.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;

use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic::{Request, Status};

use crate::proto::{self, auth_client::AuthClient};

/// The server clients talk to unless told otherwise.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:50051";

pub type AuthedChannel = InterceptedService<Channel, Bearer>;

/// Adds `authorization: Bearer <token>` to every call, from a slot that can be refilled.
#[derive(Clone)]
pub struct Bearer(TokenSlot);

impl Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(value) = self.0.current() {
            request.metadata_mut().insert("authorization", value);
        }
        Ok(request)
    }
}

/// The token a link carries, shared by every clone of the link: signing in again refills it
/// for all of them at once.
#[derive(Clone, Default)]
pub struct TokenSlot(Arc<RwLock<Option<MetadataValue<Ascii>>>>);

impl TokenSlot {
    pub fn new(token: Option<&str>) -> Result<Self, LinkError> {
        let slot = Self::default();
        slot.set(token)?;
        Ok(slot)
    }

    pub fn set(&self, token: Option<&str>) -> Result<(), LinkError> {
        let value = token
            .map(|t| MetadataValue::try_from(format!("Bearer {}", t.trim())))
            .transpose()
            .map_err(|_| LinkError::BadToken)?;
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = value;
        Ok(())
    }

    fn current(&self) -> Option<MetadataValue<Ascii>> {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("the token holds characters a header cannot carry")]
    BadToken,
    #[error("cannot sign in: {}", sign_in_refusal(.0))]
    SignIn(Status),
}

/// Why a sign-in was refused, in words: a process that runs only some services answers
/// `UNIMPLEMENTED` with no message when it does not serve auth.
fn sign_in_refusal(status: &Status) -> String {
    if status.code() == tonic::Code::Unimplemented {
        "this server does not serve sign-in (it runs only some of the services); point --server at the gateway or at a process serving auth".to_owned()
    } else {
        status.message().to_owned()
    }
}

/// An endpoint for a server URL: TLS when the scheme is https, trusting `ca_pem` when given,
/// else the system's roots.
pub fn endpoint(server: &str, ca_pem: Option<&[u8]>) -> Result<Endpoint, String> {
    let endpoint = Endpoint::from_shared(server.to_owned())
        .map_err(|e| {
            format!("{server:?} is not a server URL ({e}); use e.g. http://127.0.0.1:50051")
        })?
        .connect_timeout(Duration::from_secs(5));
    if !server.starts_with("https://") {
        if ca_pem.is_some() {
            return Err(format!(
                "--ca is for TLS, but {server} is plain http; use an https:// URL"
            ));
        }
        return Ok(endpoint);
    }
    let tls = match ca_pem {
        Some(pem) => ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem)),
        None => ClientTlsConfig::new().with_native_roots(),
    };
    endpoint
        .tls_config(tls)
        .map_err(|e| format!("cannot set up TLS for {server}: {e}"))
}

/// The servers a `--server` value names: one URL, or several separated by commas (the same
/// estate served by several servers on one database).
pub fn servers(value: &str) -> Result<Vec<String>, String> {
    let mut found: Vec<String> = Vec::new();
    for server in value.split(',').map(str::trim) {
        if server.is_empty() {
            return Err(format!(
                "{value:?} has an empty server address; give URLs separated by commas, e.g. http://10.0.0.5:50051,http://10.0.0.6:50051"
            ));
        }
        if !found.iter().any(|s| s == server) {
            found.push(server.to_owned());
        }
    }
    Ok(found)
}

/// A channel to the servers `value` names that connects as calls are made. Over several,
/// calls go to those serving and move away from one that stops (`failover.rs`). `tune`
/// adjusts each server's endpoint (timeouts, keepalive).
pub fn lazy_channel(
    value: &str,
    ca_pem: Option<&[u8]>,
    tune: impl Fn(Endpoint) -> Endpoint,
) -> Result<Channel, String> {
    let endpoints = servers(value)?
        .into_iter()
        .map(|server| Ok((server.clone(), tune(endpoint(&server, ca_pem)?))))
        .collect::<Result<Vec<_>, String>>()?;
    match endpoints.as_slice() {
        [(_, only)] => Ok(only.connect_lazy()),
        _ => Ok(crate::failover::balanced(endpoints)),
    }
}

/// A link that carries `token` (none: only public calls such as signing in will work).
pub fn with_token(channel: Channel, token: Option<&str>) -> Result<AuthedChannel, LinkError> {
    Ok(with_slot(channel, &TokenSlot::new(token)?))
}

/// A link that carries whatever token `slot` holds at each call.
pub fn with_slot(channel: Channel, slot: &TokenSlot) -> AuthedChannel {
    InterceptedService::new(channel, Bearer(slot.clone()))
}

/// Signs in and returns a link carrying the new session's token, with the session.
pub async fn sign_in(
    channel: Channel,
    username: &str,
    password: &str,
) -> Result<(AuthedChannel, proto::LoginResponse), LinkError> {
    let session = AuthClient::new(channel.clone())
        .login(proto::LoginRequest {
            username: username.to_owned(),
            password: password.to_owned(),
        })
        .await
        .map_err(LinkError::SignIn)?
        .into_inner();
    let link = with_token(channel, Some(&session.token))?;
    Ok((link, session))
}
