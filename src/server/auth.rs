//! The `Auth` service: signing in (argon2 check, failures rate-limited), sessions as random
//! bearer tokens of which only a hash is stored, signing out and changing one's password.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use tonic::{Request, Response, Status};

use super::audit::{self, Change};
use super::context::Context;
use super::error::ServiceError;
use super::limiter::LoginLimiter;
use crate::domain::auth::{Caller, new_token, token_hash};
use crate::domain::inventory::EntityStatus;
use crate::passwords;
use crate::proto::{self, auth_server::Auth};
use crate::store::Notice;
use crate::wire;

pub struct AuthService {
    pub context: Context,
    pub limiter: Arc<LoginLimiter>,
    pub session_length: chrono::Duration,
    /// A hash of a random password, checked against when the username is unknown, so a wrong
    /// name costs as long as a wrong password and timing does not tell which names exist.
    pub decoy_hash: String,
    /// Live sessions one user may hold; signing in past it ends their oldest.
    pub sessions_per_user: usize,
}

/// Password threads: one per core at most, and never more than two, so reads keep the cores.
pub fn password_checks() -> usize {
    std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .clamp(1, 2)
}

fn caller<T>(request: &Request<T>) -> Result<Caller, Status> {
    request
        .extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| ServiceError::signed_out("this call needs a signed-in user").into())
}

impl AuthService {
    /// Checks a password on the password threads: argon2 takes tens of milliseconds and most
    /// of a core, so a burst of sign-ins queues there instead of taking every blocking thread
    /// from the reads, and its memory is not left behind on each of them.
    async fn verify(&self, password: String, hash: String) -> Result<bool, ServiceError> {
        self.context
            .passwords
            .run(move || passwords::verify(&password, &hash))
            .await
    }
}

fn held_off(wait: std::time::Duration) -> ServiceError {
    let seconds = wait.as_secs().max(1);
    ServiceError::Exhausted {
        message: format!("too many failed sign-ins; retry in {seconds} s"),
        retry_after: Some(seconds),
    }
}

#[tonic::async_trait]
impl Auth for AuthService {
    async fn login(
        &self,
        request: Request<proto::LoginRequest>,
    ) -> Result<Response<proto::LoginResponse>, Status> {
        let peer: Option<IpAddr> = request
            .extensions()
            .get::<super::peer::ClientAddress>()
            .map(|c| c.ip);
        wire::requests::login(request.get_ref())?;
        let r = request.into_inner();
        // Counted before the password is checked, so attempts at once cannot get past it.
        let attempt = self
            .limiter
            .reserve(&r.username, peer, Instant::now())
            .map_err(held_off)?;
        let username = r.username.clone();
        let found = self
            .context
            .blocking(move |s| s.credentials(&username))
            .await?;
        let (user, hash) = match found {
            Some((user, hash)) => (Some(user), hash),
            None => (None, self.decoy_hash.clone()),
        };
        let matches = self.verify(r.password, hash).await?;
        let Some(user) = user.filter(|_| matches) else {
            self.context.announce(vec![Notice::SignInFailed {
                username: r.username,
                peer,
            }]);
            return Err(ServiceError::signed_out("wrong username or password").into());
        };
        self.limiter.release(attempt);
        if user.status != EntityStatus::Active {
            return Err(ServiceError::signed_out(format!(
                "the account {:?} is not active",
                user.username
            ))
            .into());
        }
        let token = new_token();
        let expires_at = Utc::now() + self.session_length;
        let (user_id, hash, keep) = (user.id, token_hash(&token), self.sessions_per_user);
        let ended = self
            .context
            .blocking(move |s| s.open_session(user_id, hash, expires_at, keep))
            .await?;
        // Sessions ended to keep within the cap end at once, streams included.
        for old in &ended {
            self.context.session_ended(old);
        }
        tracing::info!(user = %user.username, "signed in");
        Ok(Response::new(proto::LoginResponse {
            token,
            expires_at: Some(wire::timestamp(expires_at)),
            user: Some(user.into()),
        }))
    }

    async fn logout(
        &self,
        request: Request<proto::LogoutRequest>,
    ) -> Result<Response<proto::LogoutResponse>, Status> {
        let caller = caller(&request)?;
        let token_hash = caller.token_hash.clone();
        self.context
            .blocking(move |s| s.close_session(token_hash))
            .await?;
        self.context.session_ended(&caller.token_hash);
        Ok(Response::new(proto::LogoutResponse {}))
    }

    async fn who_am_i(
        &self,
        request: Request<proto::WhoAmIRequest>,
    ) -> Result<Response<proto::LoginResponse>, Status> {
        let caller = caller(&request)?;
        let session = self
            .context
            .blocking(move |s| s.session(&caller.token_hash))
            .await?
            .ok_or_else(|| ServiceError::signed_out("the session has ended; sign in again"))?;
        let (user, expires_at) = session;
        Ok(Response::new(proto::LoginResponse {
            token: String::new(),
            expires_at: Some(wire::timestamp(expires_at)),
            user: Some(user.into()),
        }))
    }

    async fn change_password(
        &self,
        request: Request<proto::ChangePasswordRequest>,
    ) -> Result<Response<proto::ChangePasswordResponse>, Status> {
        let caller = caller(&request)?;
        let peer: Option<IpAddr> = request
            .extensions()
            .get::<super::peer::ClientAddress>()
            .map(|c| c.ip);
        wire::requests::change_password(request.get_ref())?;
        let r = request.into_inner();
        let attempt = self
            .limiter
            .reserve(&caller.username, peer, Instant::now())
            .map_err(held_off)?;
        let username = caller.username.clone();
        let (_, hash) = self
            .context
            .blocking(move |s| s.credentials(&username))
            .await?
            .ok_or_else(|| ServiceError::signed_out("the account no longer exists"))?;
        if !self.verify(r.current_password, hash).await? {
            self.context.announce(vec![Notice::SignInFailed {
                username: caller.username.clone(),
                peer,
            }]);
            return Err(ServiceError::forbidden("the current password is wrong").into());
        }
        self.limiter.release(attempt);
        let new_hash = super::users::hash(&self.context, r.new_password).await?;
        let user_id = caller.user_id;
        self.context
            .blocking(move |s| s.set_password(user_id, new_hash))
            .await?;
        self.context.user_changed(user_id);
        audit::record(
            &self.context,
            Some(&caller),
            Change {
                action: "Auth.ChangePassword".to_owned(),
                entity: "user",
                entity_id: user_id,
                before: None::<&proto::User>,
                after: None,
                also: Some("password: changed by its owner, every session ended"),
            },
        )
        .await;
        Ok(Response::new(proto::ChangePasswordResponse {}))
    }
}

/// Opens a session for a user without a password: for programs that hold the database
/// itself (the demo signs its console and simulator in this way). Returns the token.
pub fn open_session_for(
    store: &dyn crate::store::Store,
    username: &str,
    length: chrono::Duration,
) -> Result<String, ServiceError> {
    let (user, _) = store.credentials(username)?.ok_or_else(|| {
        ServiceError::Internal(format!("there is no user {username:?} to sign in as"))
    })?;
    let token = new_token();
    store.open_session(user.id, token_hash(&token), Utc::now() + length, usize::MAX)?;
    Ok(token)
}
