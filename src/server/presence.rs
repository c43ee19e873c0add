//! The `Presence` service: who has which fault open and who has claimed one, in memory only.
//! Each sharing console is one stream; viewers leave with their stream (or after 30 s of
//! silence), claims belong to the user and end at their time unless renewed. A clock runs only
//! while some console shares, so nobody looking costs nothing.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt};
use tokio::sync::watch;
use tonic::{Request, Response, Status, Streaming};

use super::error::ServiceError;
use crate::domain::auth::Caller;
use crate::proto::{self, presence_server::Presence};
use crate::wire::timestamp;

/// How long claims last and when a silent console counts as gone.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PresenceConfig {
    /// A claim ends this long after it was made or last renewed.
    pub claim_length: chrono::Duration,
    /// A console that has sent nothing for this long is no longer viewing anything.
    pub silent_after: Duration,
}

impl Default for PresenceConfig {
    fn default() -> Self {
        Self {
            claim_length: chrono::Duration::minutes(15),
            silent_after: Duration::from_secs(30),
        }
    }
}

/// Everyone's presence, shared by every stream of the server.
#[derive(Clone)]
pub struct PresenceHub {
    inner: Arc<Mutex<Inner>>,
    /// Bumped on every change; each stream sends the board again when it moves.
    changed: watch::Sender<u64>,
    config: PresenceConfig,
}

#[derive(Default)]
struct Inner {
    next_console: u64,
    consoles: HashMap<u64, Console>,
    claims: HashMap<i64, Claim>,
}

struct Console {
    user: String,
    viewing: Option<i64>,
    heard: Instant,
    /// Why this console's last claim was refused, until its next claim.
    refused: String,
}

struct Claim {
    user: String,
    until: DateTime<Utc>,
}

impl PresenceHub {
    pub fn new(config: PresenceConfig) -> Self {
        Self {
            inner: Arc::default(),
            changed: watch::channel(0).0,
            config,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn bump(&self) {
        self.changed.send_modify(|n| *n += 1);
    }

    fn join(&self, user: &str) -> u64 {
        let mut inner = self.lock();
        inner.next_console += 1;
        let id = inner.next_console;
        inner.consoles.insert(
            id,
            Console {
                user: user.to_owned(),
                viewing: None,
                heard: Instant::now(),
                refused: String::new(),
            },
        );
        id
    }

    fn leave(&self, console: u64) {
        let viewed = self
            .lock()
            .consoles
            .remove(&console)
            .is_some_and(|c| c.viewing.is_some());
        if viewed {
            self.bump();
        }
    }

    fn apply(&self, console: u64, update: &proto::PresenceUpdate, now: DateTime<Utc>) {
        let length = self.config.claim_length;
        let mut inner = self.lock();
        let Inner {
            consoles, claims, ..
        } = &mut *inner;
        let Some(me) = consoles.get_mut(&console) else {
            return;
        };
        me.heard = Instant::now();
        me.viewing = (update.viewing_fault_id > 0).then_some(update.viewing_fault_id);
        // Having the claimed fault open keeps the claim.
        if let Some(viewing) = me.viewing
            && let Some(claim) = claims.get_mut(&viewing)
            && claim.user == me.user
        {
            claim.until = now + length;
        }
        if update.release_fault_id > 0
            && claims
                .get(&update.release_fault_id)
                .is_some_and(|c| c.user == me.user)
        {
            claims.remove(&update.release_fault_id);
        }
        if update.claim_fault_id > 0 {
            let fault = update.claim_fault_id;
            match claims.get(&fault) {
                Some(held) if held.user != me.user && held.until > now && !update.take_over => {
                    me.refused = format!(
                        "fault {fault} is claimed by {} until {}",
                        held.user,
                        held.until.format("%H:%M UTC")
                    );
                }
                _ => {
                    me.refused.clear();
                    claims.insert(
                        fault,
                        Claim {
                            user: me.user.clone(),
                            until: now + length,
                        },
                    );
                }
            }
        }
        drop(inner);
        self.bump();
    }

    /// Ends what has run out: silent consoles stop viewing, claims past their time go.
    fn expire(&self, now: DateTime<Utc>) {
        let silent_after = self.config.silent_after;
        let mut inner = self.lock();
        let mut changed = false;
        for console in inner.consoles.values_mut() {
            if console.viewing.is_some() && console.heard.elapsed() > silent_after {
                console.viewing = None;
                changed = true;
            }
        }
        let before = inner.claims.len();
        inner.claims.retain(|_, claim| claim.until > now);
        changed |= inner.claims.len() != before;
        drop(inner);
        if changed {
            self.bump();
        }
    }

    /// Acting on a fault one holds renews the claim, as having it open does.
    pub fn renew(&self, fault_id: i64, user: &str, now: DateTime<Utc>) {
        let length = self.config.claim_length;
        let renewed = match self.lock().claims.get_mut(&fault_id) {
            Some(claim) if claim.user == user && claim.until > now => {
                claim.until = now + length;
                true
            }
            _ => false,
        };
        if renewed {
            self.bump();
        }
    }

    /// Claims held at `now`: (fault, user, until), by fault.
    pub fn claims(&self, now: DateTime<Utc>) -> Vec<(i64, String, DateTime<Utc>)> {
        let inner = self.lock();
        let mut claims: Vec<_> = inner
            .claims
            .iter()
            .filter(|(_, claim)| claim.until > now)
            .map(|(fault, claim)| (*fault, claim.user.clone(), claim.until))
            .collect();
        claims.sort_unstable_by_key(|(fault, _, _)| *fault);
        claims
    }

    /// The board as one console sees it.
    fn board(&self, console: u64) -> proto::PresenceBoard {
        let inner = self.lock();
        let mut viewers: BTreeMap<i64, BTreeSet<&str>> = BTreeMap::new();
        for c in inner.consoles.values() {
            if let Some(fault) = c.viewing {
                viewers.entry(fault).or_default().insert(&c.user);
            }
        }
        let mut faults: BTreeMap<i64, proto::FaultPresence> = viewers
            .into_iter()
            .map(|(fault_id, users)| {
                (
                    fault_id,
                    proto::FaultPresence {
                        fault_id,
                        viewers: users.into_iter().map(str::to_owned).collect(),
                        ..Default::default()
                    },
                )
            })
            .collect();
        for (fault_id, claim) in &inner.claims {
            let entry = faults
                .entry(*fault_id)
                .or_insert_with(|| proto::FaultPresence {
                    fault_id: *fault_id,
                    ..Default::default()
                });
            entry.claimed_by = claim.user.clone();
            entry.claim_expires = Some(timestamp(claim.until));
        }
        proto::PresenceBoard {
            faults: faults.into_values().collect(),
            refused: inner
                .consoles
                .get(&console)
                .map(|c| c.refused.clone())
                .unwrap_or_default(),
        }
    }
}

pub struct PresenceService {
    pub hub: PresenceHub,
    pub shutdown: tokio_util::sync::CancellationToken,
}

type BoardStream = Pin<Box<dyn Stream<Item = Result<proto::PresenceBoard, Status>> + Send>>;

/// How often a sharing stream looks for what has run out.
const EXPIRY_TICK: Duration = Duration::from_secs(1);

#[tonic::async_trait]
impl Presence for PresenceService {
    type ShareStream = BoardStream;

    async fn share(
        &self,
        request: Request<Streaming<proto::PresenceUpdate>>,
    ) -> Result<Response<Self::ShareStream>, Status> {
        let user = request
            .extensions()
            .get::<Caller>()
            .map(|c| c.username.clone())
            .ok_or_else(|| ServiceError::signed_out("presence needs a signed-in user"))?;
        let mut updates = request.into_inner();
        let hub = self.hub.clone();
        let console = hub.join(&user);
        let (sender, receiver) = tokio::sync::mpsc::channel(4);
        let shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            let mut changes = hub.changed.subscribe();
            let mut tick = tokio::time::interval(EXPIRY_TICK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut sent_for = None;
            loop {
                let version = *changes.borrow_and_update();
                if sent_for != Some(version) {
                    sent_for = Some(version);
                    if sender.send(Ok(hub.board(console))).await.is_err() {
                        break;
                    }
                }
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    update = updates.next() => match update {
                        Some(Ok(update)) => hub.apply(console, &update, Utc::now()),
                        // The console went away (or sent something undecodable): it leaves.
                        Some(Err(_)) | None => break,
                    },
                    changed = changes.changed() => {
                        if changed.is_err() {
                            break;
                        }
                    }
                    _ = tick.tick() => hub.expire(Utc::now()),
                }
            }
            hub.leave(console);
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(receiver),
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(viewing: i64, claim: i64, take_over: bool) -> proto::PresenceUpdate {
        proto::PresenceUpdate {
            viewing_fault_id: viewing,
            claim_fault_id: claim,
            take_over,
            release_fault_id: 0,
        }
    }

    #[test]
    fn a_claim_is_refused_naming_its_holder_taken_over_when_asked_and_ends_on_time() {
        let hub = PresenceHub::new(PresenceConfig::default());
        let (ana, bo) = (hub.join("ana"), hub.join("bo"));
        let now = Utc::now();
        hub.apply(ana, &update(12, 12, false), now);
        hub.apply(bo, &update(12, 12, false), now);
        let seen_by_bo = hub.board(bo);
        assert!(
            seen_by_bo.refused.contains("claimed by ana"),
            "{seen_by_bo:?}"
        );
        assert_eq!(seen_by_bo.faults[0].viewers, vec!["ana", "bo"]);
        assert_eq!(seen_by_bo.faults[0].claimed_by, "ana");
        assert!(hub.board(ana).refused.is_empty());

        hub.apply(bo, &update(12, 12, true), now);
        assert_eq!(hub.board(ana).faults[0].claimed_by, "bo");
        // Gone: bo's console leaves; the claim stays until its time, then ends.
        hub.leave(bo);
        assert_eq!(hub.board(ana).faults[0].viewers, vec!["ana"]);
        hub.expire(now + chrono::Duration::minutes(14));
        assert_eq!(hub.board(ana).faults[0].claimed_by, "bo");
        // Acting on the fault renews it; only its holder's action does.
        hub.renew(12, "ana", now + chrono::Duration::minutes(10));
        hub.renew(12, "bo", now + chrono::Duration::minutes(10));
        hub.expire(now + chrono::Duration::minutes(16));
        assert_eq!(hub.board(ana).faults[0].claimed_by, "bo");
        hub.expire(now + chrono::Duration::minutes(26));
        assert_eq!(hub.board(ana).faults[0].claimed_by, "");
    }
}
