//! What every service shares: the store, the shutdown signal, and the helper that runs
//! blocking storage calls off the async runtime.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::error::ServiceError;
use crate::store::{Notice, Store, StoreResult};

#[derive(Clone)]
pub struct Context {
    pub store: Arc<dyn Store>,
    /// Cancelled when the server begins to shut down: open streams end promptly.
    pub shutdown: CancellationToken,
    /// Ids of lamps whose latest reading changed, published after each ingest commit.
    pub lamp_updates: tokio::sync::broadcast::Sender<i64>,
    /// Fault events as they commit, in seq order, to `Faults.Watch` and `Lamps.WatchStatus`.
    pub fault_feed: Arc<super::feed::FaultFeed>,
    /// Sessions the gate looked up lately; forgotten by whatever ends or changes them.
    pub sessions: Arc<super::sessions::SessionCache>,
    /// The most one page of a listing may encode to, under the configured message limit.
    pub page_bytes: usize,
    /// Where argon2 runs (password checks and hashes).
    pub passwords: super::password_workers::PasswordWorkers,
    pub metrics: Arc<super::metrics::Metrics>,
    /// Where a lamp's status reads its latest reading and open faults.
    pub lamp_status: Arc<crate::remote::observed::StatusSources>,
}

impl Context {
    /// Runs a primary-key lookup. On a backend whose lookups never wait on the network
    /// (SQLite: a few microseconds from the page cache) it runs on the calling runtime
    /// thread, which was measured to cost less than handing it to another thread and back
    /// (BENCHMARKS.md); on a database server it goes to the blocking pool like any other
    /// call, so a round trip never holds a runtime thread. Only for single-record reads;
    /// scans and writes go through `blocking`.
    pub async fn lookup<T, F>(&self, work: F) -> Result<T, ServiceError>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Store) -> StoreResult<T> + Send + 'static,
    {
        if self.store.lookups_are_local() {
            work(self.store.as_ref()).map_err(ServiceError::from)
        } else {
            self.blocking(work).await
        }
    }

    /// Runs a blocking storage call on the blocking pool.
    pub async fn blocking<T, F>(&self, work: F) -> Result<T, ServiceError>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Store) -> StoreResult<T> + Send + 'static,
    {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || work(store.as_ref()))
            .await
            .map_err(|e| ServiceError::Internal(format!("storage task failed: {e}")))?
            .map_err(ServiceError::from)
    }

    /// Publishes what a commit appended to the fault log, and tells the other servers.
    pub fn publish(&self, events: Vec<crate::domain::faults::record::FaultEvent>) {
        if events.is_empty() {
            return;
        }
        self.fault_feed.publish(self.store.as_ref(), events);
        self.announce(vec![Notice::FaultLog]);
    }

    /// Tells the other servers sharing the database, in the background: a notice lost is
    /// a delay, never a loss (see `Notice`).
    pub fn announce(&self, notices: Vec<Notice>) {
        if notices.is_empty() || !self.store.shared() {
            return;
        }
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || {
            if let Err(e) = store.announce(&notices) {
                tracing::warn!(error = %e, "cannot tell the other servers");
            }
        });
    }

    /// A session ended (logout, or past the user's limit): forgotten here at once, its
    /// streams ended, and the other servers told.
    pub fn session_ended(&self, token_hash: &[u8]) {
        self.sessions.forget(token_hash);
        self.announce(vec![Notice::SessionEnded(token_hash.to_vec())]);
    }

    /// Every session of a user ended or changed (password, role, account), here and on the
    /// other servers.
    pub fn user_changed(&self, user_id: i64) {
        self.sessions.forget_user(user_id);
        self.announce(vec![Notice::UserChanged(user_id)]);
    }
}
