//! What every service shares: the store, the shutdown signal, and the helper that runs
//! blocking storage calls off the async runtime.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::error::ServiceError;
use crate::store::{Store, StoreResult};

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

    /// Publishes what a commit appended to the fault log.
    pub fn publish(&self, events: Vec<crate::domain::faults::record::FaultEvent>) {
        self.fault_feed.publish(self.store.as_ref(), events);
    }
}
