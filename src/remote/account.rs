//! The account a process acts as for work no caller asked for (the fault engine reading
//! every lamp's wiring when the process takes the leader's role): signed in when first
//! needed, its token kept until it is refused or about to expire, then signed in again.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tonic::Status;

use super::inventory::OnBehalf;
use super::upstreams::{Unanswered, Upstreams};
use crate::proto::{self, auth_client::AuthClient};
use crate::server::services::Part;
use crate::store::Store;

/// A token this close to its expiry is replaced before it is used.
const RENEW_BEFORE: chrono::Duration = chrono::Duration::minutes(5);
/// How long a session opened by a process serving auth itself lasts.
const LOCAL_SESSION: chrono::Duration = chrono::Duration::hours(12);

/// How the account signs in.
pub enum SignIn {
    /// Through `Auth.Login` at the auth service's instances, with the account's password.
    Auth {
        upstreams: Arc<Upstreams>,
        password: String,
    },
    /// This process serves auth: it opens the session in its own sessions table.
    Local(Arc<dyn Store>),
}

pub struct ServiceAccount {
    username: String,
    sign_in: SignIn,
    held: tokio::sync::Mutex<Option<(String, DateTime<Utc>)>>,
}

impl ServiceAccount {
    pub fn new(username: String, sign_in: SignIn) -> Self {
        Self {
            username,
            sign_in,
            held: tokio::sync::Mutex::default(),
        }
    }

    /// The account as a caller, signed in if it holds no live token.
    pub async fn on_behalf(&self) -> Result<OnBehalf, Status> {
        let mut held = self.held.lock().await;
        if let Some((token, expires_at)) = held.as_ref()
            && *expires_at - RENEW_BEFORE > Utc::now()
        {
            return Ok(OnBehalf::bearer(token));
        }
        let (token, expires_at) = self.sign_in().await.map_err(|status| {
            Status::new(
                status.code(),
                format!(
                    "the service account {:?} cannot sign in: {}",
                    self.username,
                    status.message()
                ),
            )
        })?;
        let caller = OnBehalf::bearer(&token);
        *held = Some((token, expires_at));
        Ok(caller)
    }

    /// Drops the token (it was refused): the next call signs in again.
    pub async fn forget(&self) {
        *self.held.lock().await = None;
    }

    async fn sign_in(&self) -> Result<(String, DateTime<Utc>), Status> {
        match &self.sign_in {
            SignIn::Local(store) => {
                let (store, username) = (store.clone(), self.username.clone());
                let token = tokio::task::spawn_blocking(move || {
                    crate::server::open_session_for(store.as_ref(), &username, LOCAL_SESSION)
                })
                .await
                .map_err(|e| Status::internal(e.to_string()))?
                .map_err(Status::from)?;
                Ok((token, Utc::now() + LOCAL_SESSION))
            }
            SignIn::Auth {
                upstreams,
                password,
            } => {
                let request = proto::LoginRequest {
                    username: self.username.clone(),
                    password: password.clone(),
                };
                let reply = upstreams
                    .try_each(Part::Auth, |channel| {
                        let request = request.clone();
                        async move { AuthClient::new(channel).login(request).await }
                    })
                    .await
                    .map_err(|e| match e {
                        Unanswered::Refused(status) => status,
                        Unanswered::Unreachable(last) => Status::unavailable(format!(
                            "cannot reach the auth service ({last}); retry shortly"
                        )),
                    })?;
                let expires_at = reply
                    .expires_at
                    .and_then(|t| crate::wire::from_timestamp("expires_at", &t).ok())
                    .ok_or_else(|| Status::internal("the auth service's answer has no expiry"))?;
                Ok((reply.token, expires_at))
            }
        }
    }
}
