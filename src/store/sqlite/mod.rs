//! The SQLite backend: one writer thread that group-commits every queued change in one
//! transaction, and a pool of reader connections that WAL keeps from ever blocking it.

mod auth;
mod billing;
mod faults;
mod inventory;
mod lamp_index;
mod rows;
mod seed;
mod telemetry;

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;

use rusqlite::{Connection, OpenFlags};
use tokio::sync::oneshot;

use lamp_index::{LampIndex, Touched};

use super::{Backend, Lineage, Queued, StoreError, StoreResult};

const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/sqlite/0001_inventory.sql"),
    include_str!("../migrations/sqlite/0002_telemetry_faults.sql"),
    include_str!("../migrations/sqlite/0003_daily_faults_index.sql"),
    include_str!("../migrations/sqlite/0004_readings_without_time_index.sql"),
    include_str!("../migrations/sqlite/0005_billing.sql"),
    include_str!("../migrations/sqlite/0006_auth.sql"),
    include_str!("../migrations/sqlite/0007_history_change.sql"),
    include_str!("../migrations/sqlite/0008_fault_children_index.sql"),
    include_str!("../migrations/sqlite/0009_readings_in_time_order.sql"),
    include_str!("../migrations/sqlite/0010_fault_events_by_time.sql"),
];

/// Changes committed together at most; more wait for the next transaction.
const MAX_JOBS_PER_COMMIT: usize = 512;
/// Reader connections at most; more concurrent reads wait for one to come free rather than
/// open (and parse the schema for) a fresh connection each time.
const MAX_READERS: usize = 16;

/// A change queued for the writer: run inside a savepoint, then told how the commit went.
trait Change: Send {
    /// Runs the change; false means it was refused and its savepoint must be rolled back.
    fn run(&mut self, connection: &Connection) -> bool;
    /// The lamps to refresh in the index once the change is committed.
    fn take_touched(&mut self) -> Touched;
    /// Reports the outcome once the transaction is committed (or failed, or never began).
    fn finish(self: Box<Self>, commit: Result<(), StoreError>);
}

struct PendingChange<T, W, R> {
    work: Option<W>,
    result: Option<StoreResult<T>>,
    touched: Touched,
    /// Set for engine batches: refused once an earlier batch of the lineage failed, and
    /// cuts the lineage if this one fails.
    lineage: Option<Lineage>,
    reply: R,
}

/// Where a change's outcome goes: a caller blocked on it, or one awaiting it.
trait Reply<T>: Send {
    fn send(self, outcome: StoreResult<T>);
}

impl<T: Send> Reply<T> for mpsc::SyncSender<StoreResult<T>> {
    fn send(self, outcome: StoreResult<T>) {
        // The caller gave up waiting: nothing to tell.
        let _ = mpsc::SyncSender::send(&self, outcome);
    }
}

impl<T: Send> Reply<T> for oneshot::Sender<StoreResult<T>> {
    fn send(self, outcome: StoreResult<T>) {
        let _ = oneshot::Sender::send(self, outcome);
    }
}

impl<T, W, R> Change for PendingChange<T, W, R>
where
    T: Send,
    W: FnOnce(&Connection) -> StoreResult<(T, Touched)> + Send,
    R: Reply<T>,
{
    fn run(&mut self, connection: &Connection) -> bool {
        let Some(work) = self.work.take() else {
            return false;
        };
        if self.lineage.as_ref().is_some_and(|l| !l.holds()) {
            self.result = Some(Err(StoreError::Superseded));
            return false;
        }
        match work(connection) {
            Ok((value, touched)) => {
                self.touched = touched;
                self.result = Some(Ok(value));
                true
            }
            Err(error) => {
                if let Some(lineage) = &self.lineage {
                    lineage.cut();
                }
                self.result = Some(Err(error));
                false
            }
        }
    }

    fn take_touched(&mut self) -> Touched {
        std::mem::take(&mut self.touched)
    }

    fn finish(self: Box<Self>, commit: Result<(), StoreError>) {
        let outcome = match (commit, self.result) {
            (Ok(()), Some(result)) => result,
            (Err(error), _) => Err(error),
            (Ok(()), None) => Err(StoreError::Closed),
        };
        if let (Err(_), Some(lineage)) = (&outcome, &self.lineage) {
            lineage.cut();
        }
        self.reply.send(outcome);
    }
}

type Job = Box<dyn Change>;

pub struct SqliteStore {
    path: PathBuf,
    writer: Mutex<Option<Sender<Job>>>,
    writer_thread: Mutex<Option<JoinHandle<()>>>,
    readers: Mutex<ReaderPool>,
    reader_returned: Condvar,
    lamps: Arc<LampIndex>,
}

#[derive(Default)]
struct ReaderPool {
    idle: Vec<Connection>,
    opened: usize,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at a `sqlite://path` URL and migrates it.
    pub fn open_url(url: &str) -> StoreResult<Self> {
        Self::open(&path_from_url(url)?)
    }

    pub fn open(path: &Path) -> StoreResult<Self> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| {
                StoreError::Database(format!("cannot create {}: {e}", parent.display()))
            })?;
        }
        let mut writer = open_connection(path, false)?;
        migrate(&mut writer)?;
        let lamps = Arc::new(LampIndex::load(&writer)?);
        let (sender, receiver) = mpsc::channel::<Job>();
        let index = lamps.clone();
        let writer_thread = std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || write_loop(writer, receiver, &index))
            .map_err(|e| StoreError::Database(format!("cannot start the writer thread: {e}")))?;
        Ok(Self {
            path: path.to_owned(),
            writer: Mutex::new(Some(sender)),
            writer_thread: Mutex::new(Some(writer_thread)),
            readers: Mutex::new(ReaderPool::default()),
            reader_returned: Condvar::new(),
            lamps,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Backend for SqliteStore {
    fn location(&self) -> String {
        self.path.display().to_string()
    }

    fn lookups_are_local(&self) -> bool {
        true
    }

    /// Finishes queued changes, stops the writer and closes every connection.
    fn close(&self) {
        drop(lock(&self.writer).take());
        if let Some(thread) = lock(&self.writer_thread).take() {
            let _ = thread.join();
        }
        lock(&self.readers).idle.clear();
    }
}

impl SqliteStore {
    /// Runs a read on a pooled connection.
    fn read<T>(&self, work: impl FnOnce(&Connection) -> StoreResult<T>) -> StoreResult<T> {
        let connection = self.take_reader()?;
        let result = work(&connection);
        lock(&self.readers).idle.push(connection);
        self.reader_returned.notify_one();
        result
    }

    fn take_reader(&self) -> StoreResult<Connection> {
        let mut pool = lock(&self.readers);
        loop {
            if let Some(connection) = pool.idle.pop() {
                return Ok(connection);
            }
            if pool.opened < MAX_READERS {
                pool.opened += 1;
                drop(pool);
                return open_connection(&self.path, true).inspect_err(|_| {
                    lock(&self.readers).opened -= 1;
                });
            }
            pool = self
                .reader_returned
                .wait(pool)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Runs a change that alters no lamp on the writer thread and waits until it is
    /// committed (or refused).
    fn write<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        self.write_touching(move |connection| {
            work(connection).map(|value| (value, Touched::Nothing))
        })
    }

    /// Runs a change that reports which lamps it altered; the lamp index is brought up to date
    /// after the commit and before the caller hears back, so a caller always reads its writes.
    fn write_touching<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> StoreResult<(T, Touched)> + Send + 'static,
    ) -> StoreResult<T> {
        self.write_in(None, work)
    }

    /// `write_touching` for an engine batch of a lineage.
    fn write_in<T: Send + 'static>(
        &self,
        lineage: Option<Lineage>,
        work: impl FnOnce(&Connection) -> StoreResult<(T, Touched)> + Send + 'static,
    ) -> StoreResult<T> {
        let (reply, outcome) = mpsc::sync_channel::<StoreResult<T>>(1);
        self.enqueue(Box::new(PendingChange {
            work: Some(work),
            result: None,
            touched: Touched::Nothing,
            lineage,
            reply,
        }))?;
        outcome.recv().map_err(|_| StoreError::Closed)?
    }

    /// Queues an engine batch's change and returns at once; the outcome is awaited.
    fn queue_in<T: Send + 'static>(
        &self,
        lineage: Option<Lineage>,
        work: impl FnOnce(&Connection) -> StoreResult<(T, Touched)> + Send + 'static,
    ) -> StoreResult<Queued<T>> {
        let (reply, outcome) = oneshot::channel::<StoreResult<T>>();
        self.enqueue(Box::new(PendingChange {
            work: Some(work),
            result: None,
            touched: Touched::Nothing,
            lineage,
            reply,
        }))?;
        Ok(Queued(outcome))
    }

    fn enqueue(&self, job: Job) -> StoreResult<()> {
        let sender = lock(&self.writer).clone().ok_or(StoreError::Closed)?;
        sender.send(job).map_err(|_| StoreError::Closed)
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        self.close();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `sqlite://relative/path.db`, `sqlite:///absolute/path.db` or `sqlite:path.db`.
pub fn path_from_url(url: &str) -> StoreResult<PathBuf> {
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .ok_or_else(|| {
            StoreError::Database(format!(
                "{url:?} is not a SQLite URL; use sqlite://path/to/file.db"
            ))
        })?;
    if path.is_empty() {
        return Err(StoreError::Database(
            "the SQLite URL names no file; use sqlite://path/to/file.db".into(),
        ));
    }
    Ok(PathBuf::from(path))
}

fn open_connection(path: &Path, read_only: bool) -> StoreResult<Connection> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let connection = Connection::open_with_flags(path, flags)
        .map_err(|e| StoreError::Database(format!("cannot open {}: {e}", path.display())))?;
    let pragmas = if read_only {
        "PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000; PRAGMA cache_size = -32768;"
    } else {
        // FULL: a change acknowledged to a client survives a power cut, not only a crash.
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;
         PRAGMA busy_timeout = 5000; PRAGMA cache_size = -65536; PRAGMA temp_store = MEMORY;"
    };
    connection.execute_batch(pragmas).map_err(db_error)?;
    connection.set_prepared_statement_cache_capacity(64);
    Ok(connection)
}

fn migrate(connection: &mut Connection) -> StoreResult<()> {
    let applied: usize = connection
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(db_error)?;
    if applied > MIGRATIONS.len() {
        return Err(StoreError::Database(format!(
            "the database is at schema version {applied}, newer than this build knows ({}); upgrade singularity",
            MIGRATIONS.len()
        )));
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
        let transaction = connection.transaction().map_err(db_error)?;
        transaction.execute_batch(sql).map_err(db_error)?;
        transaction
            .execute_batch(&format!("PRAGMA user_version = {}", index + 1))
            .map_err(db_error)?;
        transaction.commit().map_err(db_error)?;
    }
    Ok(())
}

fn write_loop(connection: Connection, jobs: Receiver<Job>, lamps: &LampIndex) {
    while let Ok(first) = jobs.recv() {
        let mut batch: Vec<Job> = vec![first];
        while batch.len() < MAX_JOBS_PER_COMMIT {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let mut commit = run_batch(&connection, &mut batch);
        if commit.is_ok() {
            for job in &mut batch {
                let touched = job.take_touched();
                if let Err(e) = lamps.apply(&connection, &touched) {
                    tracing::error!(error = %e, "the lamp index could not be refreshed; reloading it");
                    commit = lamps.apply(&connection, &Touched::Everything);
                }
            }
        }
        for job in batch {
            job.finish(commit.clone());
        }
    }
}

/// Runs each job in its own savepoint inside one transaction, so a refused change does not
/// undo the others, then commits once for all of them.
fn run_batch(connection: &Connection, batch: &mut [Job]) -> Result<(), StoreError> {
    connection
        .execute_batch("BEGIN IMMEDIATE")
        .map_err(db_error)?;
    for job in batch.iter_mut() {
        if let Err(e) = connection.execute_batch("SAVEPOINT job") {
            let _ = connection.execute_batch("ROLLBACK");
            return Err(db_error(e));
        }
        let end = if job.run(connection) {
            "RELEASE job"
        } else {
            "ROLLBACK TO job; RELEASE job"
        };
        if let Err(e) = connection.execute_batch(end) {
            let _ = connection.execute_batch("ROLLBACK");
            return Err(db_error(e));
        }
    }
    connection.execute_batch("COMMIT").map_err(|e| {
        let _ = connection.execute_batch("ROLLBACK");
        db_error(e)
    })
}

fn db_error(error: rusqlite::Error) -> StoreError {
    StoreError::Database(error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            path_from_url("sqlite://a/b.db").unwrap(),
            PathBuf::from("a/b.db")
        );
        assert_eq!(
            path_from_url("sqlite:///tmp/b.db").unwrap(),
            PathBuf::from("/tmp/b.db")
        );
        assert_eq!(path_from_url("sqlite:b.db").unwrap(), PathBuf::from("b.db"));
        assert!(path_from_url("postgres://x").is_err());
        assert!(path_from_url("sqlite://").is_err());
    }

    #[test]
    fn migrations_apply_once_and_reopen_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/estate.db");
        drop(SqliteStore::open(&path).unwrap());
        let store = SqliteStore::open(&path).unwrap();
        let version: usize = store
            .read(|c| {
                c.query_row("PRAGMA user_version", [], |r| r.get(0))
                    .map_err(db_error)
            })
            .unwrap();
        assert_eq!(version, MIGRATIONS.len());
    }

    #[test]
    fn a_refused_change_does_not_undo_others_in_the_same_commit() {
        let dir = tempfile::tempdir().unwrap();
        let store = std::sync::Arc::new(SqliteStore::open(&dir.path().join("t.db")).unwrap());
        let handles: Vec<_> = (0..64)
            .map(|i| {
                let store = store.clone();
                std::thread::spawn(move || {
                    store.write(move |c| {
                        if i % 2 == 0 {
                            c.execute(
                                "INSERT INTO zones (id, name) VALUES (?1, ?2)",
                                (i, format!("z{i}")),
                            )
                            .map_err(db_error)?;
                            Ok(())
                        } else {
                            c.execute("INSERT INTO zones (id, name) VALUES (?1, 'dup')", [i])
                                .map_err(db_error)?;
                            Err(StoreError::Conflict("refused on purpose".into()))
                        }
                    })
                })
            })
            .collect();
        let outcomes: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        assert_eq!(outcomes.iter().filter(|o| o.is_ok()).count(), 32);
        let zones: i64 = store
            .read(|c| {
                c.query_row("SELECT count(*) FROM zones", [], |r| r.get(0))
                    .map_err(db_error)
            })
            .unwrap();
        assert_eq!(zones, 32);
    }

    #[test]
    fn the_lamp_index_follows_every_change() {
        use crate::domain::estate::{City, EstateSpec, generate};
        use crate::domain::geo::GeoPoint;
        use crate::domain::inventory::{AssetPatch, EntityStatus, LampPatch};
        use crate::store::prelude::*;
        use crate::store::{Scan, StatusFilter};

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let store = SqliteStore::open(&path).unwrap();
        let estate = generate(&EstateSpec {
            lamps: 200,
            rng_seed: 1,
            city: City::by_key("london").unwrap(),
        });
        store.import_estate(&estate).unwrap();
        assert_eq!(store.lamp(200).unwrap().reference, "LMP-0000200");

        let lamp = store.lamp(5).unwrap();
        let asset_id = lamp.asset_id.unwrap();
        let moved_to = GeoPoint::new(51.6, -0.2).unwrap();
        store
            .update_asset(
                asset_id,
                None,
                AssetPatch {
                    location: Some(moved_to),
                    ..AssetPatch::default()
                },
            )
            .unwrap();
        assert_eq!(
            store.lamp(5).unwrap().location,
            Some(moved_to),
            "lamps follow their asset"
        );

        store
            .update_lamp(
                5,
                Some(lamp.meta.version),
                LampPatch {
                    lamp_type_id: Some(9),
                    ..LampPatch::default()
                },
            )
            .unwrap();
        assert_eq!(store.lamp(5).unwrap().lamp_type.wattage_w, 280);

        store.delete_lamp(5).unwrap();
        let live = store
            .lamps(&Scan {
                after_id: 0,
                limit: 1000,
                status: StatusFilter::Live,
                area: None,
            })
            .unwrap();
        assert!(live.iter().all(|l| l.id != 5));
        assert_eq!(store.lamp(5).unwrap().status, EntityStatus::Deleted);
        store.prune_lamp(5).unwrap();
        assert!(store.lamp(5).is_err());

        // A reopened store rebuilds the same index from disk.
        drop(store);
        let reopened = SqliteStore::open(&path).unwrap();
        assert!(reopened.lamp(5).is_err());
        assert_eq!(reopened.lamp(6).unwrap().reference, "LMP-0000006");
        reopened.reset().unwrap();
        assert!(reopened.lamp(6).is_err());
    }

    /// A lamp switched off, healthy, reporting at `at`.
    fn quiet_reading(at: chrono::DateTime<chrono::Utc>) -> crate::domain::telemetry::Reading {
        crate::domain::telemetry::Reading {
            at,
            lamp_on: false,
            dim_target_pct: 100,
            dim_actual_pct: 100,
            voltage_v: 236.0,
            current_a: 0.0,
            power_w: 0.0,
            power_factor: 0.0,
            energy_wh: 5,
            burn_hours: 1,
            switch_count: 1,
            supply_loss_count: 0,
            temperature_c: 10.0,
            link_quality_pct: 90,
            alarms: crate::domain::telemetry::NodeAlarms::default(),
        }
    }

    #[test]
    fn retention_keeps_every_lamps_newest_reading() {
        use crate::domain::estate::{City, EstateSpec, generate};
        use crate::store::prelude::*;
        use crate::store::{LampReading, TelemetryBatch};
        use chrono::{Duration, TimeZone, Utc};

        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("t.db")).unwrap();
        let estate = generate(&EstateSpec {
            lamps: 3,
            rng_seed: 1,
            city: City::by_key("london").unwrap(),
        });
        store.import_estate(&estate).unwrap();
        let t0 = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
        let reading = |hours: i64| quiet_reading(t0 + Duration::hours(hours));
        let mut batch = TelemetryBatch::default();
        for hours in [0, 1, 2, 50] {
            batch.readings.push(LampReading {
                lamp_id: 1,
                reading: reading(hours),
                latest: true,
            });
        }
        batch.readings.push(LampReading {
            lamp_id: 2,
            reading: reading(3),
            latest: true,
        });
        let outcome = store.record_telemetry(batch.clone()).unwrap();
        assert_eq!((outcome.stored, outcome.duplicates), (5, 0));
        assert_eq!(store.record_telemetry(batch).unwrap().duplicates, 5);

        // History keeps only what is newer than the cut; each lamp's newest reading lives on
        // as its status, lamp 2's too, though it has been silent since hour 3.
        let deleted = store.prune_readings(t0 + Duration::hours(10)).unwrap();
        assert_eq!(deleted, 4);
        assert_eq!(
            store.lamp_status(1).unwrap().unwrap().at,
            t0 + Duration::hours(50)
        );
        assert_eq!(
            store.lamp_status(2).unwrap().unwrap().at,
            t0 + Duration::hours(3)
        );
        assert_eq!(store.lamp_status(3).unwrap(), None);
        let latest: Vec<i64> = store
            .latest_readings()
            .unwrap()
            .iter()
            .map(|l| l.lamp_id)
            .collect();
        assert_eq!(latest, vec![1, 2]);
    }
}
