//! Sessions the gate has looked up lately, so that a call costs a map read rather than a
//! database read. Whatever ends or changes a session on this server (logout, a new password,
//! a user changed or deleted) forgets it here at once; entries also expire after a few
//! seconds, which bounds how long a change made behind the server's back goes unseen. Each
//! end is also announced, for the streams opened on that session.

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::sync::broadcast;

use super::revocation::Ended;

use crate::remote::sessions::Who;

/// How long a looked-up session is trusted without asking the database again.
const FRESH_FOR: Duration = Duration::from_secs(5);
/// Entries kept at most; past it, stale ones are dropped (and all, if none is stale).
const MAX_ENTRIES: usize = 50_000;

struct Entry {
    who: Who,
    expires_at: DateTime<Utc>,
    fetched: Instant,
}

pub struct SessionCache {
    entries: RwLock<HashMap<Vec<u8>, Entry>>,
    /// Told of every session that ends here, so open streams can end with it.
    ended: broadcast::Sender<Ended>,
}

/// Notices an open stream may miss before it stops listening for its session's end.
const ENDED_BUFFER: usize = 1_024;

impl Default for SessionCache {
    fn default() -> Self {
        Self {
            entries: RwLock::default(),
            ended: broadcast::channel(ENDED_BUFFER).0,
        }
    }
}

impl SessionCache {
    pub fn subscribe(&self) -> broadcast::Receiver<Ended> {
        self.ended.subscribe()
    }

    pub fn get(&self, token_hash: &[u8]) -> Option<(Who, DateTime<Utc>)> {
        let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
        entries
            .get(token_hash)
            .filter(|e| e.fetched.elapsed() < FRESH_FOR)
            .map(|e| (e.who.clone(), e.expires_at))
    }

    pub fn put(&self, token_hash: Vec<u8>, who: Who, expires_at: DateTime<Utc>) {
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, e| e.fetched.elapsed() < FRESH_FOR);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(
            token_hash,
            Entry {
                who,
                expires_at,
                fetched: Instant::now(),
            },
        );
    }

    pub fn forget(&self, token_hash: &[u8]) {
        self.entries
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(token_hash);
        // Nobody listening is fine: no stream is open on that session.
        let _ = self.ended.send(Ended::Session(token_hash.to_vec()));
    }

    /// Forgets every session of a user (their password, role or account changed).
    pub fn forget_user(&self, user_id: i64) {
        self.entries
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|_, e| e.who.user_id != user_id);
        let _ = self.ended.send(Ended::User(user_id));
    }
}
