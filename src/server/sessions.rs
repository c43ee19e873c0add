//! Sessions the gate has looked up lately, so that a call costs a map read rather than a
//! database read. Whatever ends or changes a session on this server (logout, a new password,
//! a user changed or deleted) forgets it here at once; entries also expire after a few
//! seconds, which bounds how long a change made behind the server's back goes unseen.

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::domain::inventory::User;

/// How long a looked-up session is trusted without asking the database again.
const FRESH_FOR: Duration = Duration::from_secs(5);
/// Entries kept at most; past it, stale ones are dropped (and all, if none is stale).
const MAX_ENTRIES: usize = 50_000;

struct Entry {
    user: User,
    expires_at: DateTime<Utc>,
    fetched: Instant,
}

#[derive(Default)]
pub struct SessionCache {
    entries: RwLock<HashMap<Vec<u8>, Entry>>,
}

impl SessionCache {
    pub fn get(&self, token_hash: &[u8]) -> Option<(User, DateTime<Utc>)> {
        let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
        entries
            .get(token_hash)
            .filter(|e| e.fetched.elapsed() < FRESH_FOR)
            .map(|e| (e.user.clone(), e.expires_at))
    }

    pub fn put(&self, token_hash: Vec<u8>, user: User, expires_at: DateTime<Utc>) {
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
                user,
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
    }

    /// Forgets every session of a user (their password, role or account changed).
    pub fn forget_user(&self, user_id: i64) {
        self.entries
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|_, e| e.user.id != user_id);
    }
}
