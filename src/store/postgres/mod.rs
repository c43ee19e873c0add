//! The PostgreSQL backend: tokio-postgres on a runtime of its own, so the store's traits stay
//! synchronous (each call hands its work over and waits; BENCHMARKS.md, "PostgreSQL client
//! libraries"). Reads are pipelined over a few shared connections; changes go to one writer
//! connection whose task commits them in the order they were queued, each in a savepoint of
//! one transaction (group commit, as the SQLite backend does).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{mpsc, oneshot};
use tokio_postgres::error::SqlState;
use tokio_postgres::{NoTls, Statement};

/// Every backend file names a connection `Client`: it is one with its statement cache.
use Conn as Client;

mod auth;
mod billing;
mod cluster;
mod faults;
mod inventory;
mod rows;
mod seed;
mod telemetry;

use super::{Backend, DatabaseLoad, Leader, Lineage, Notice, Queued, StoreError, StoreResult};

const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/postgres/0001_schema.sql"),
    include_str!("../migrations/postgres/0002_leadership.sql"),
    include_str!("../migrations/postgres/0003_settlement_role.sql"),
];

/// Connections shared by reads; each pipelines the queries of several callers.
const READERS: usize = 8;
/// Changes committed together at most; more wait for the next transaction.
const MAX_JOBS_PER_COMMIT: usize = 512;
/// The advisory lock keys, in one place so that no two uses ever share one.
mod lock_keys {
    /// Taken (per transaction) around schema changes, so servers starting at once migrate
    /// once.
    pub const MIGRATION: i64 = 0x5349_4e47_0001;
    /// Taken (per transaction) around appends to the fault log (see `faults.rs`).
    pub const FAULT_LOG: i64 = 0x5349_4e47_0002;
    /// Held (per session) by the leader's connection (see `cluster.rs`).
    pub const LEADER: i64 = 0x5349_4e47_0003;
    /// Held (per session) by the connection of the process that settles energy apart from
    /// the leader (see `cluster.rs`).
    pub const SETTLEMENT: i64 = 0x5349_4e47_0004;
}

pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// A change queued for the writer: run inside a savepoint, then told how the commit went.
trait Change: Send {
    /// Runs the change; false means it was refused and its savepoint must be rolled back.
    fn run(&mut self, client: Arc<Client>) -> BoxFuture<bool>;
    /// Reports the outcome once the transaction is committed (or failed).
    fn finish(self: Box<Self>, commit: Result<(), StoreError>);
}

type Work<T> = Box<dyn FnOnce(Arc<Client>) -> BoxFuture<StoreResult<T>> + Send>;

/// Counts itself in a shared counter while it lives (for `Backend::load`).
struct Counted(Arc<AtomicUsize>);

impl Counted {
    fn new(counter: &Arc<AtomicUsize>) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        Self(counter.clone())
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

struct PendingChange<T> {
    /// Counted among the queued writes until it is answered (or dropped).
    _queued: Counted,
    work: Option<Work<T>>,
    result: Arc<Mutex<Option<StoreResult<T>>>>,
    lineage: Option<Lineage>,
    reply: oneshot::Sender<StoreResult<T>>,
}

impl<T: Send + 'static> Change for PendingChange<T> {
    fn run(&mut self, client: Arc<Client>) -> BoxFuture<bool> {
        let Some(work) = self.work.take() else {
            return Box::pin(async { false });
        };
        let result = self.result.clone();
        if self.lineage.as_ref().is_some_and(|l| !l.holds()) {
            *lock(&result) = Some(Err(StoreError::Superseded));
            return Box::pin(async { false });
        }
        let lineage = self.lineage.clone();
        Box::pin(async move {
            let outcome = work(client).await;
            let ok = outcome.is_ok();
            if let (false, Some(lineage)) = (ok, &lineage) {
                lineage.cut();
            }
            *lock(&result) = Some(outcome);
            ok
        })
    }

    fn finish(self: Box<Self>, commit: Result<(), StoreError>) {
        let result = lock(&self.result).take();
        let outcome = match (commit, result) {
            (Ok(()), Some(result)) => result,
            (Err(error), _) => Err(error),
            (Ok(()), None) => Err(StoreError::Closed),
        };
        if let (Err(_), Some(lineage)) = (&outcome, &self.lineage) {
            lineage.cut();
        }
        let _ = self.reply.send(outcome);
    }
}

type Job = Box<dyn Change>;

pub struct PgStore {
    /// Taken only when the store is dropped (shut down in the background, which is allowed
    /// from inside another runtime).
    runtime: Option<tokio::runtime::Runtime>,
    handle: tokio::runtime::Handle,
    /// Each replaced by a new connection when found closed (the database restarted or
    /// failed over).
    readers: Vec<Mutex<Arc<Client>>>,
    url: String,
    next_reader: AtomicUsize,
    writer: Mutex<Option<mpsc::UnboundedSender<Job>>>,
    writer_task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    location: String,
    cluster: Arc<cluster::Cluster>,
    reads_running: Arc<AtomicUsize>,
    writes_queued: Arc<AtomicUsize>,
}

impl PgStore {
    /// Connects to a `postgres://` URL and migrates the schema.
    pub fn open_url(url: &str) -> StoreResult<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("postgres")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Database(format!("cannot start the database runtime: {e}")))?;
        let location = super::redacted(url);
        let handle = runtime.handle().clone();
        let target = url.to_owned();
        // Waited for on this thread without entering the runtime, so opening works from
        // inside another one (the server's).
        let opened = wait_on(&handle, async move {
            let writer = connect(&target).await?;
            migrate(&writer).await?;
            let mut readers = Vec::with_capacity(READERS);
            for _ in 0..READERS {
                readers.push(Arc::new(connect(&target).await?));
            }
            Ok::<_, StoreError>((readers, Arc::new(writer)))
        });
        let (readers, writer) = match opened {
            Ok(connections) => connections,
            Err(e) => {
                runtime.shutdown_background();
                return Err(e);
            }
        };
        let (sender, receiver) = mpsc::unbounded_channel::<Job>();
        let writer_task = handle.spawn(write_loop(url.to_owned(), writer, receiver));
        Ok(Self {
            runtime: Some(runtime),
            handle,
            readers: readers.into_iter().map(Mutex::new).collect(),
            url: url.to_owned(),
            next_reader: AtomicUsize::new(0),
            writer: Mutex::new(Some(sender)),
            writer_task: Mutex::new(Some(writer_task)),
            location,
            cluster: Arc::new(cluster::Cluster::new(url)),
            reads_running: Arc::default(),
            writes_queued: Arc::default(),
        })
    }

    /// Runs `future` on the backend's runtime and waits for it, from any thread.
    fn wait<T: Send + 'static>(
        &self,
        future: impl Future<Output = StoreResult<T>> + Send + 'static,
    ) -> StoreResult<T> {
        wait_on(&self.handle, future)
    }

    /// Runs a read on one of the shared connections.
    fn read<T, F>(&self, work: impl FnOnce(Arc<Client>) -> F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: Future<Output = StoreResult<T>> + Send + 'static,
    {
        let index = self.next_reader.fetch_add(1, Ordering::Relaxed) % self.readers.len();
        let mut client = lock(&self.readers[index]).clone();
        if client.is_closed() {
            let url = self.url.clone();
            client = self.wait(async move { connect(&url).await.map(Arc::new) })?;
            *lock(&self.readers[index]) = client.clone();
        }
        let _running = Counted::new(&self.reads_running);
        self.wait(work(client))
    }

    /// Queues a change behind every change queued before it and waits until it commits.
    fn write<T, F>(&self, work: impl FnOnce(Arc<Client>) -> F + Send + 'static) -> StoreResult<T>
    where
        T: Send + 'static,
        F: Future<Output = StoreResult<T>> + Send + 'static,
    {
        let queued = self.queue(None, work)?;
        self.wait(queued.committed())
    }

    /// Queues a change only the leader makes (judging, settling, retention): once this
    /// process has taken part in choosing a leader, the change is refused with `NotLeader`
    /// unless its term is still current when it runs.
    fn queue_led<T, F>(
        &self,
        lineage: Option<Lineage>,
        work: impl FnOnce(Arc<Client>) -> F + Send + 'static,
    ) -> StoreResult<Queued<T>>
    where
        T: Send + 'static,
        F: Future<Output = StoreResult<T>> + Send + 'static,
    {
        self.queue_for(cluster::Duty::Leader, lineage, work)
    }

    /// Queues a change of `duty`, fenced by its term (see `queue_led`).
    fn queue_for<T, F>(
        &self,
        duty: cluster::Duty,
        lineage: Option<Lineage>,
        work: impl FnOnce(Arc<Client>) -> F + Send + 'static,
    ) -> StoreResult<Queued<T>>
    where
        T: Send + 'static,
        F: Future<Output = StoreResult<T>> + Send + 'static,
    {
        let fence = self.cluster.fence(duty);
        self.queue(lineage, move |client| async move {
            if let Some(fence) = fence {
                cluster::check_term(&client, fence).await?;
            }
            work(client).await
        })
    }

    fn campaign_for(&self, duty: cluster::Duty, address: &str) -> StoreResult<Option<Leader>> {
        self.wait(self.cluster.clone().campaign(duty, address.to_owned()))
    }

    fn resign_from(&self, duty: cluster::Duty) {
        let cluster = self.cluster.clone();
        let _ = self.wait(async move {
            cluster.resign(duty).await;
            Ok(())
        });
    }

    /// A settlement write (energy, closing days), waiting until it commits: fenced by
    /// settlement's term in a process that settles apart from the leader, else by the
    /// leader's.
    fn write_settling<T, F>(
        &self,
        work: impl FnOnce(Arc<Client>) -> F + Send + 'static,
    ) -> StoreResult<T>
    where
        T: Send + 'static,
        F: Future<Output = StoreResult<T>> + Send + 'static,
    {
        self.write_for(cluster::Duty::Settlement, work)
    }

    /// `queue_led`, waiting until the change commits.
    fn write_led<T, F>(
        &self,
        work: impl FnOnce(Arc<Client>) -> F + Send + 'static,
    ) -> StoreResult<T>
    where
        T: Send + 'static,
        F: Future<Output = StoreResult<T>> + Send + 'static,
    {
        self.write_for(cluster::Duty::Leader, work)
    }

    fn write_for<T, F>(
        &self,
        duty: cluster::Duty,
        work: impl FnOnce(Arc<Client>) -> F + Send + 'static,
    ) -> StoreResult<T>
    where
        T: Send + 'static,
        F: Future<Output = StoreResult<T>> + Send + 'static,
    {
        let queued = self.queue_for(duty, None, work)?;
        self.wait(queued.committed())
    }

    /// Queues a change (of a lineage) and returns at once; the outcome is awaited.
    fn queue<T, F>(
        &self,
        lineage: Option<Lineage>,
        work: impl FnOnce(Arc<Client>) -> F + Send + 'static,
    ) -> StoreResult<Queued<T>>
    where
        T: Send + 'static,
        F: Future<Output = StoreResult<T>> + Send + 'static,
    {
        let (reply, outcome) = oneshot::channel();
        let work: Work<T> = Box::new(move |client| Box::pin(work(client)));
        let job = Box::new(PendingChange {
            _queued: Counted::new(&self.writes_queued),
            work: Some(work),
            result: Arc::default(),
            lineage,
            reply,
        });
        let sender = lock(&self.writer).clone().ok_or(StoreError::Closed)?;
        sender.send(job).map_err(|_| StoreError::Closed)?;
        Ok(Queued(outcome))
    }
}

impl Backend for PgStore {
    fn location(&self) -> String {
        self.location.clone()
    }

    fn lookups_are_local(&self) -> bool {
        false
    }

    fn shared(&self) -> bool {
        true
    }

    fn campaign(&self, address: &str) -> StoreResult<Option<Leader>> {
        self.campaign_for(cluster::Duty::Leader, address)
    }

    fn resign(&self) {
        self.resign_from(cluster::Duty::Leader);
    }

    fn campaign_settlement(&self, address: &str) -> StoreResult<Option<Leader>> {
        self.campaign_for(cluster::Duty::Settlement, address)
    }

    fn resign_settlement(&self) {
        self.resign_from(cluster::Duty::Settlement);
    }

    fn leader(&self) -> StoreResult<Option<Leader>> {
        self.read(|client| async move { cluster::recorded_leader(&client).await })
    }

    fn load(&self) -> DatabaseLoad {
        DatabaseLoad {
            // The readers, the writer, and the role and notice connections.
            connections: self.readers.len() + 3,
            reads_running: self.reads_running.load(Ordering::Relaxed),
            writes_queued: self.writes_queued.load(Ordering::Relaxed),
        }
    }

    fn ping(&self) -> StoreResult<()> {
        self.read(|client| async move { client.batch_execute("SELECT 1").await.map_err(db_error) })
    }

    fn notices(&self) -> Option<tokio::sync::broadcast::Receiver<Notice>> {
        let cluster = self.cluster.clone();
        self.wait(async move { Ok(cluster.subscribe()) }).ok()
    }

    fn announce(&self, notices: &[Notice]) -> StoreResult<()> {
        let payloads = self.cluster.payloads(notices);
        self.read(|client| async move { cluster::notify(&client, payloads).await })
    }

    fn close(&self) {
        drop(lock(&self.writer).take());
        if let Some(task) = lock(&self.writer_task).take() {
            let _ = self.wait(async move {
                let _ = task.await;
                Ok(())
            });
        }
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        self.close();
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Runs `future` on `handle`'s runtime and blocks this thread until it is done: a channel,
/// not `block_on`, so the caller may itself be a thread of another runtime.
fn wait_on<T: Send + 'static>(
    handle: &tokio::runtime::Handle,
    future: impl Future<Output = StoreResult<T>> + Send + 'static,
) -> StoreResult<T> {
    let (reply, answer) = std::sync::mpsc::sync_channel(1);
    handle.spawn(async move {
        let _ = reply.send(future.await);
    });
    answer.recv().map_err(|_| StoreError::Closed)?
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A connection and the statements prepared on it: a statement prepared once runs with one
/// round trip instead of two.
pub(super) struct Conn {
    client: tokio_postgres::Client,
    statements: Mutex<std::collections::HashMap<String, Statement>>,
}

impl std::ops::Deref for Conn {
    type Target = tokio_postgres::Client;

    fn deref(&self) -> &Self::Target {
        &self.client
    }
}

impl Conn {
    /// `sql` prepared on this connection, once.
    pub(super) async fn statement(&self, sql: &str) -> StoreResult<Statement> {
        if let Some(statement) = lock(&self.statements).get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(sql).await.map_err(db_error)?;
        lock(&self.statements).insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }
}

async fn connect(url: &str) -> StoreResult<Client> {
    connect_with(url, None).await
}

/// A connection with `options` (server settings for its session) added to the URL's.
async fn connect_with(url: &str, options: Option<&str>) -> StoreResult<Client> {
    let mut config: tokio_postgres::Config = url.parse().map_err(|e| {
        StoreError::Database(format!(
            "{} is not a PostgreSQL URL ({e}); use postgres://USER@HOST:PORT/DATABASE",
            super::redacted(url)
        ))
    })?;
    if let Some(options) = options {
        let joined = match config.get_options() {
            Some(given) => format!("{given} {options}"),
            None => options.to_owned(),
        };
        config.options(joined);
    }
    let (client, connection) = config.connect(NoTls).await.map_err(|e| {
        let cause = std::error::Error::source(&e)
            .map(|cause| format!(" ({cause})"))
            .unwrap_or_default();
        StoreError::Database(format!(
            "cannot connect to {}: {e}{cause}; is PostgreSQL running there, and does the database exist?",
            super::redacted(url)
        ))
    })?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::error!(error = %e, "database connection lost");
        }
    });
    Ok(Conn {
        client,
        statements: Mutex::default(),
    })
}

/// Applies the migrations this database has not had, under a lock so that servers starting
/// at once apply each once.
async fn migrate(client: &Client) -> StoreResult<()> {
    client
        .batch_execute(&format!(
            "BEGIN; SELECT pg_advisory_xact_lock({}); \
             CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY);",
            lock_keys::MIGRATION
        ))
        .await
        .map_err(db_error)?;
    let applied: i64 = client
        .query_one(
            "SELECT coalesce(max(version), 0) FROM schema_migrations",
            &[],
        )
        .await
        .map_err(db_error)?
        .try_get(0)
        .map_err(db_error)?;
    for (index, sql) in MIGRATIONS.iter().enumerate() {
        let version = index as i64 + 1;
        if version <= applied {
            continue;
        }
        client.batch_execute(sql).await.map_err(db_error)?;
        client
            .execute(
                "INSERT INTO schema_migrations (version) VALUES ($1)",
                &[&version],
            )
            .await
            .map_err(db_error)?;
    }
    client.batch_execute("COMMIT").await.map_err(db_error)
}

async fn write_loop(url: String, mut client: Arc<Client>, mut jobs: mpsc::UnboundedReceiver<Job>) {
    while let Some(first) = jobs.recv().await {
        let mut batch: Vec<Job> = vec![first];
        while batch.len() < MAX_JOBS_PER_COMMIT {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        if client.is_closed() {
            match connect(&url).await {
                Ok(fresh) => client = Arc::new(fresh),
                Err(e) => {
                    for job in batch {
                        job.finish(Err(e.clone()));
                    }
                    continue;
                }
            }
        }
        let commit = run_batch(&client, &mut batch).await;
        for job in batch {
            job.finish(commit.clone());
        }
    }
}

/// Runs each job in its own savepoint inside one transaction, so a refused change does not
/// undo the others, then commits once for all of them.
async fn run_batch(client: &Arc<Client>, batch: &mut [Job]) -> Result<(), StoreError> {
    client.batch_execute("BEGIN").await.map_err(db_error)?;
    for job in batch.iter_mut() {
        if let Err(e) = client.batch_execute("SAVEPOINT job").await {
            let _ = client.batch_execute("ROLLBACK").await;
            return Err(db_error(e));
        }
        let end = if job.run(client.clone()).await {
            "RELEASE job"
        } else {
            "ROLLBACK TO job; RELEASE job"
        };
        if let Err(e) = client.batch_execute(end).await {
            let _ = client.batch_execute("ROLLBACK").await;
            return Err(db_error(e));
        }
    }
    if let Err(e) = client.batch_execute("COMMIT").await {
        let _ = client.batch_execute("ROLLBACK").await;
        return Err(db_error(e));
    }
    Ok(())
}

pub(super) fn db_error(error: tokio_postgres::Error) -> StoreError {
    StoreError::Database(match error.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => error.to_string(),
    })
}

/// Whether a database error is a unique-key violation (a duplicate username, uuid, ...).
pub(super) fn is_unique_violation(error: &tokio_postgres::Error) -> bool {
    error.code() == Some(&SqlState::UNIQUE_VIOLATION)
}
