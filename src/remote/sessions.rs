//! Who a token belongs to, asked of the auth service (`Auth.WhoAmI`, on the caller's own
//! token and request id, never the database) and trusted for a few seconds; a logout
//! through the gateway forgets its token at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tonic::Code;

use super::SessionError;
use super::inventory::OnBehalf;
use super::upstreams::{Unanswered, Upstreams};
use crate::domain::auth::token_hash;
use crate::domain::inventory::Role;
use crate::proto::{self, auth_client::AuthClient};
use crate::server::services::Part;

/// Tokens remembered before the stale ones are swept out.
const SWEEP_AT: usize = 10_000;

/// The user behind a live session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Who {
    pub user_id: i64,
    pub username: String,
    pub role: Role,
}

struct Known {
    who: Who,
    expires_at: DateTime<Utc>,
    checked: Instant,
}

pub struct Sessions {
    upstreams: Arc<Upstreams>,
    trust_for: Duration,
    known: Mutex<HashMap<Vec<u8>, Known>>,
}

impl Sessions {
    pub fn new(upstreams: Arc<Upstreams>, trust_for: Duration) -> Self {
        Self {
            upstreams,
            trust_for,
            known: Mutex::default(),
        }
    }

    /// Who `token` belongs to, from the cache or the auth service.
    pub async fn who(&self, token: &str, request_id: Option<&str>) -> Result<Who, SessionError> {
        let hash = token_hash(token);
        if let Some(known) = self.lock().get(&hash)
            && known.checked.elapsed() < self.trust_for
            && known.expires_at > Utc::now()
        {
            return Ok(known.who.clone());
        }
        let (who, expires_at) = self.ask(token, request_id).await.inspect_err(|_| {
            self.lock().remove(&hash);
        })?;
        let mut known = self.lock();
        if known.len() >= SWEEP_AT {
            let trust_for = self.trust_for;
            known.retain(|_, k| k.checked.elapsed() < trust_for);
        }
        known.insert(
            hash,
            Known {
                who: who.clone(),
                expires_at,
                checked: Instant::now(),
            },
        );
        Ok(who)
    }

    /// Forgets a token (its session was ended through the gateway).
    pub fn forget(&self, token: &str) {
        self.lock().remove(&token_hash(token));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Vec<u8>, Known>> {
        self.known.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Asks an auth instance, the next one if one is unavailable: who `token` belongs to and
    /// when its session ends. Nothing is remembered.
    pub async fn ask(
        &self,
        token: &str,
        request_id: Option<&str>,
    ) -> Result<(Who, DateTime<Utc>), SessionError> {
        let caller = OnBehalf::token(token, request_id);
        let answer = self
            .upstreams
            .try_each(Part::Auth, |channel| {
                let request = caller.request(proto::WhoAmIRequest {});
                async move { AuthClient::new(channel).who_am_i(request).await }
            })
            .await;
        match answer {
            Ok(reply) => who_from(reply),
            Err(Unanswered::Refused(status)) if status.code() == Code::Unauthenticated => {
                Err(SessionError::SignedOut(status.message().to_owned()))
            }
            Err(Unanswered::Refused(status)) => {
                Err(SessionError::Unavailable(status.message().to_owned()))
            }
            Err(Unanswered::Unreachable(last)) => Err(SessionError::Unavailable(last)),
        }
    }
}

fn who_from(reply: proto::LoginResponse) -> Result<(Who, DateTime<Utc>), SessionError> {
    let unreadable = || SessionError::Unavailable("the auth service's answer is incomplete".into());
    let user = reply.user.ok_or_else(unreadable)?;
    let role = crate::wire::role_field("role", user.role)
        .ok()
        .flatten()
        .ok_or_else(unreadable)?;
    let expires_at = reply
        .expires_at
        .and_then(|t| DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).unwrap_or(0)))
        .ok_or_else(unreadable)?;
    Ok((
        Who {
            user_id: user.id,
            username: user.username,
            role,
        },
        expires_at,
    ))
}
