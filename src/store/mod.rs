//! Storage: the traits services and tools program against (one per area, `Store` for all),
//! its errors, opening a database by URL, and the backends (SQLite now). The domain never
//! sees SQL; a backend reads and writes rows and asks the domain what follows.

pub mod postgres;
pub mod sqlite;
pub mod tariff_rows;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, NaiveDate, Utc};

use crate::domain::billing::calendar::{AsOf, Calendar};
use crate::domain::billing::{NewTariff, SlotEnergy, Tariff, TariffBook};
use crate::domain::estate::Estate;
use crate::domain::faults::record::{Fault, FaultEvent, FaultFilter, HistoryEntry};
use crate::domain::inventory::{
    Asset, AssetPatch, Basestation, BasestationPatch, Circuit, EntityKind, Lamp, LampPatch,
    LampType, NewAsset, NewBasestation, NewLamp, NewTelecell, NewUser, Telecell, TelecellPatch,
    User, UserPatch, Zone,
};
use crate::domain::telemetry::{LampContext, Reading};

pub type StoreResult<T> = Result<T, StoreError>;

/// Every area's trait, for code that calls the store (method calls need the trait in scope).
pub mod prelude {
    pub use super::{
        AuthStore, Backend, BillingStore, FaultStore, InventoryStore, Store, TelemetryStore,
    };
}

// Query shapes live in the domain (`wire` builds them from requests); the store takes them.
pub use crate::domain::billing::totals::{TotalsGroup, TotalsQuery, TotalsRow};
pub use crate::domain::paging::{Scan, StatusFilter};
// What the engine and operators decided, for the store to write.
pub use crate::domain::billing::ledger::{EnergySettlement, LampDayEnergy};
pub use crate::domain::faults::apply::{EngineChange, FaultAction, GroupChange};

/// One lamp's reading, ready to store.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LampReading {
    pub lamp_id: i64,
    pub reading: Reading,
    /// False for a reading older than the lamp's latest: kept in history, not applied to its
    /// status.
    pub latest: bool,
}

/// What one ingest step stores, atomically.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TelemetryBatch {
    pub readings: Vec<LampReading>,
    pub changes: Vec<EngineChange>,
    pub groups: Vec<GroupChange>,
    /// The chain of engine decisions this batch continues, if it was decided in memory
    /// ahead of the batches queued before it.
    pub lineage: Option<Lineage>,
}

/// The fault engine decides each batch in memory on top of batches still waiting to commit.
/// A lineage ties those batches together: once one of them fails to commit, the store
/// refuses every later batch of the same lineage, so it never holds a decision made on top
/// of one it lost. The engine then reloads what was committed and starts the next lineage.
#[derive(Debug, Clone)]
pub struct Lineage {
    /// The generation currently accepted; bumped by the first failure.
    current: Arc<AtomicU64>,
    generation: u64,
}

impl Lineage {
    pub fn new() -> Self {
        Self {
            current: Arc::new(AtomicU64::new(0)),
            generation: 0,
        }
    }

    /// Whether every batch of this lineage committed so far (or is still queued).
    pub fn holds(&self) -> bool {
        self.current.load(Ordering::SeqCst) == self.generation
    }

    /// Refuses every later batch of this lineage; the store calls it when one fails.
    pub fn cut(&self) {
        let _ = self.current.compare_exchange(
            self.generation,
            self.generation + 1,
            Ordering::SeqCst,
            Ordering::SeqCst,
        );
    }

    /// The lineage that follows a cut one.
    pub fn successor(&self) -> Self {
        Self {
            current: self.current.clone(),
            generation: self.current.load(Ordering::SeqCst),
        }
    }
}

impl Default for Lineage {
    fn default() -> Self {
        Self::new()
    }
}

impl PartialEq for Lineage {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.current, &other.current) && self.generation == other.generation
    }
}

/// A change queued behind every change queued before it.
pub struct Queued<T>(pub(crate) tokio::sync::oneshot::Receiver<StoreResult<T>>);

impl<T> Queued<T> {
    /// Resolves once the change is durable, or refused.
    pub async fn committed(self) -> StoreResult<T> {
        self.0.await.map_err(|_| StoreError::Closed)?
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct RecordOutcome {
    /// Readings newly stored.
    pub stored: u64,
    /// Readings already stored before (a resent report).
    pub duplicates: u64,
    /// What the batch appended to the fault log, by seq: the server publishes them.
    pub events: Vec<FaultEvent>,
}

/// A lamp's latest reading with when it was taken.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatestReading {
    pub lamp_id: i64,
    pub reading: Reading,
}

/// A lamp with stored readings past its settlement cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnsettledReadings {
    pub lamp_id: i64,
    /// `None`: never settled.
    pub cursor: Option<DateTime<Utc>>,
    /// The lamp's latest stored reading.
    pub through: DateTime<Utc>,
}

/// How many faults of one type and severity opened in one hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenedCount {
    pub fault_type: crate::domain::faults::FaultType,
    pub severity: crate::domain::faults::Severity,
    pub hour: usize,
    pub count: u32,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StoreError {
    #[error("{kind} {id} not found")]
    NotFound { kind: EntityKind, id: i64 },
    #[error("{field}: {kind} {id} does not exist")]
    MissingReference {
        field: &'static str,
        kind: EntityKind,
        id: i64,
    },
    #[error("{field}: {value:?} is already used by another {kind}")]
    Duplicate {
        kind: EntityKind,
        field: &'static str,
        value: String,
    },
    #[error(
        "{kind} {id} changed since you read it: you sent version {expected}, it is now at version {current}; current state: {current_state}"
    )]
    StaleVersion {
        kind: EntityKind,
        id: i64,
        expected: i64,
        current: i64,
        current_state: String,
    },
    /// A triage action on a fault that someone (or the engine) changed since the caller read
    /// it; `change` says what, who and when.
    #[error(
        "fault {id} changed since version {expected}: {change}; it is now version {current}, {state}"
    )]
    StaleFault {
        id: i64,
        expected: i64,
        current: i64,
        state: &'static str,
        change: String,
    },
    /// The change is well-formed but the estate is not in a state that allows it.
    #[error("{0}")]
    Conflict(String),
    #[error("the database already holds an estate ({lamps} lamps); pass --reset to replace it")]
    NotEmpty { lamps: i64 },
    #[error("database error: {0}")]
    Database(String),
    #[error("the database is closed")]
    Closed,
    /// An engine batch refused because an earlier batch of its lineage failed to commit.
    #[error("an earlier batch of reports failed to commit; resend")]
    Superseded,
    /// Leader-only work (judging, settling, retention) from a server another has replaced.
    #[error("this server no longer leads; another has taken over")]
    NotLeader,
    #[error(transparent)]
    Invalid(#[from] crate::domain::ValidationError),
}

/// One mutation, for the audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAuditEntry {
    pub at: DateTime<Utc>,
    pub actor: String,
    pub role: String,
    pub peer: String,
    pub action: String,
    pub entity: String,
    pub entity_id: i64,
    pub changes: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub id: i64,
    pub entry: NewAuditEntry,
}

pub use crate::domain::auth::AuditQuery;

/// How many records of each kind an estate holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EstateCounts {
    pub zones: i64,
    pub circuits: i64,
    pub basestations: i64,
    pub telecells: i64,
    pub assets: i64,
    pub lamps: i64,
    pub users: i64,
}

/// Everything the services need from storage, by area; a backend implements each area's
/// trait in a file of its own and passes `tests/store_conformance.rs`. Calls block: async
/// callers run them with `tokio::task::spawn_blocking`, so the runtime's workers never wait
/// on disk.
///
/// `update_*` take the version the caller saw (if any) and refuse with `StaleVersion`
/// when the record has moved on. `delete_*` is a soft delete; `prune_*` removes a record
/// that was soft-deleted first, and refuses while other records still depend on it.
pub trait Store:
    Backend
    + InventoryStore
    + TelemetryStore
    + FaultStore
    + BillingStore
    + AuthStore
    + Send
    + Sync
    + 'static
{
}

impl<T> Store for T where
    T: Backend
        + InventoryStore
        + TelemetryStore
        + FaultStore
        + BillingStore
        + AuthStore
        + Send
        + Sync
        + 'static
{
}

/// The database itself, and what the servers sharing it need of it: a leader chosen through
/// the database and notices passed between them. The defaults are those of a database only
/// one process opens (SQLite): that process always leads and nobody else needs telling.
pub trait Backend {
    /// Where the data lives, for logs: a file, or a host and database (never a password).
    fn location(&self) -> String;
    /// Finishes the changes queued and closes every connection; later calls fail `Closed`.
    fn close(&self);
    /// Whether a point lookup completes without waiting on the network (an embedded
    /// database), so that the server may run it on a runtime thread.
    fn lookups_are_local(&self) -> bool;

    /// Whether other servers may share this database.
    fn shared(&self) -> bool {
        false
    }

    /// Becomes the leader if none holds the role, or confirms that this process still holds
    /// it; `address` is where the others forward reports. `None`: another server leads, or
    /// this one lost the role (its leader-only writes are refused with `NotLeader` from then
    /// on).
    fn campaign(&self, address: &str) -> StoreResult<Option<Leader>> {
        Ok(Some(Leader {
            term: 1,
            address: address.to_owned(),
            unheard_for: None,
        }))
    }

    /// Gives the leader's role up (a clean stop): another server can take it at once.
    fn resign(&self) {}

    /// Takes or keeps settlement's role, as `campaign` does the leader's: held by the one
    /// process that settles energy. From the first campaign on, this store's settlement
    /// writes are fenced by settlement's term instead of the leader's.
    fn campaign_settlement(&self, address: &str) -> StoreResult<Option<Leader>> {
        self.campaign(address)
    }

    /// Gives settlement's role up.
    fn resign_settlement(&self) {}

    /// The leader as the database records it (its last term and address).
    fn leader(&self) -> StoreResult<Option<Leader>> {
        Ok(None)
    }

    /// One round trip to the database: whether this process can still reach it.
    fn ping(&self) -> StoreResult<()> {
        Ok(())
    }

    /// How busy the connections to the database are, for the metrics (an embedded database
    /// has none to report).
    fn load(&self) -> DatabaseLoad {
        DatabaseLoad::default()
    }

    /// What the other servers on this database announce, from now on (never this process's
    /// own notices). `None` when nobody else can share the database.
    fn notices(&self) -> Option<tokio::sync::broadcast::Receiver<Notice>> {
        None
    }

    /// Tells the other servers on this database; nothing to do when there are none.
    fn announce(&self, notices: &[Notice]) -> StoreResult<()> {
        let _ = notices;
        Ok(())
    }
}

/// How busy a backend's database connections are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DatabaseLoad {
    pub connections: usize,
    pub reads_running: usize,
    /// Writes waiting for the writer connection or running on it.
    pub writes_queued: usize,
}

/// The server that does the work that must happen once (judging reports, the offline sweep,
/// settlement, retention).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leader {
    /// Raised at every change of leader; writes of an older term are refused.
    pub term: i64,
    /// Where the other servers reach it.
    pub address: String,
    /// On taking over from another leader: how long it had been silent (how long the field
    /// had nobody to judge its reports). `None` when nobody led before.
    pub unheard_for: Option<chrono::Duration>,
}

/// What one server tells the others sharing its database. Notices are hints that save
/// waiting: whoever misses one still converges (the fault feed reads the log every second,
/// sessions are looked up again after a few seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// The fault log grew.
    FaultLog,
    /// These lamps' latest readings changed.
    Readings(Vec<i64>),
    /// Metered energy was settled.
    Settled,
    /// A session ended (by its token hash).
    SessionEnded(Vec<u8>),
    /// Every session of a user ended or changed (password, role, account).
    UserChanged(i64),
    /// A sign-in failed for this username from this address.
    SignInFailed {
        username: String,
        peer: Option<std::net::IpAddr>,
    },
}

/// Opens (creating and migrating if needed) the database a URL names; the scheme picks the
/// backend: `sqlite://PATH` or `postgres://USER@HOST:PORT/DATABASE`.
pub fn open_url(url: &str) -> StoreResult<Arc<dyn Store>> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Arc::new(postgres::PgStore::open_url(url)?));
    }
    if url.starts_with("sqlite:") {
        return Ok(Arc::new(sqlite::SqliteStore::open_url(url)?));
    }
    Err(StoreError::Database(format!(
        "{url:?} names no database this program knows; use sqlite://path/to/file.db or postgres://user@host:port/database"
    )))
}

/// Refuses a change made against a version of the record other than the current one.
pub fn check_version<T: crate::domain::inventory::Record + std::fmt::Debug>(
    record: &T,
    expected: Option<i64>,
) -> StoreResult<()> {
    let current = record.meta().version;
    match expected {
        Some(expected) if expected != current => Err(StoreError::StaleVersion {
            kind: T::KIND,
            id: record.id(),
            expected,
            current,
            current_state: format!("{record:?}"),
        }),
        _ => Ok(()),
    }
}

/// The table a kind of record lives in, in either backend.
pub fn table_of(kind: EntityKind) -> &'static str {
    match kind {
        EntityKind::Basestation => "basestations",
        EntityKind::Telecell => "telecells",
        EntityKind::Asset => "assets",
        EntityKind::Lamp => "lamps",
        EntityKind::User => "users",
        EntityKind::Zone => "zones",
        EntityKind::Circuit => "circuits",
        EntityKind::LampType => "lamp_types",
        EntityKind::Fault => "faults",
        EntityKind::Tariff => "tariffs",
    }
}

/// A database URL without its password, for logs and messages.
pub fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let user = url[scheme + 3..at].split(':').next().unwrap_or_default();
            format!("{}{user}@{}", &url[..scheme + 3], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

/// The estate: basestations, telecells, assets, lamps and the reference data around them;
/// loading a generated estate and emptying the database.
pub trait InventoryStore {
    fn basestation(&self, id: i64) -> StoreResult<Basestation>;

    fn basestations(&self, scan: &Scan) -> StoreResult<Vec<Basestation>>;

    fn create_basestation(&self, new: NewBasestation) -> StoreResult<Basestation>;

    fn update_basestation(
        &self,
        id: i64,
        expected_version: Option<i64>,
        patch: BasestationPatch,
    ) -> StoreResult<Basestation>;

    fn delete_basestation(&self, id: i64) -> StoreResult<Basestation>;

    fn prune_basestation(&self, id: i64) -> StoreResult<()>;

    fn telecell(&self, id: i64) -> StoreResult<Telecell>;

    fn telecells(&self, scan: &Scan) -> StoreResult<Vec<Telecell>>;

    fn create_telecell(&self, new: NewTelecell) -> StoreResult<Telecell>;

    fn update_telecell(
        &self,
        id: i64,
        expected_version: Option<i64>,
        patch: TelecellPatch,
    ) -> StoreResult<Telecell>;

    fn delete_telecell(&self, id: i64) -> StoreResult<Telecell>;

    fn prune_telecell(&self, id: i64) -> StoreResult<()>;

    /// Makes the telecell drive these lamps; refuses if one is driven by another telecell.
    fn link_telecell_to_lamps(&self, telecell_id: i64, lamp_ids: &[i64]) -> StoreResult<Telecell>;

    /// Stops the telecell driving these lamps; refuses if one is not driven by it.
    fn unlink_telecell_from_lamps(
        &self,
        telecell_id: i64,
        lamp_ids: &[i64],
    ) -> StoreResult<Telecell>;

    fn asset(&self, id: i64) -> StoreResult<Asset>;

    fn assets(&self, scan: &Scan) -> StoreResult<Vec<Asset>>;

    fn create_asset(&self, new: NewAsset) -> StoreResult<Asset>;

    fn update_asset(
        &self,
        id: i64,
        expected_version: Option<i64>,
        patch: AssetPatch,
    ) -> StoreResult<Asset>;

    fn delete_asset(&self, id: i64) -> StoreResult<Asset>;

    fn prune_asset(&self, id: i64) -> StoreResult<()>;

    fn lamp(&self, id: i64) -> StoreResult<Lamp>;

    fn lamps(&self, scan: &Scan) -> StoreResult<Vec<Lamp>>;

    fn create_lamp(&self, new: NewLamp) -> StoreResult<Lamp>;

    fn update_lamp(
        &self,
        id: i64,
        expected_version: Option<i64>,
        patch: LampPatch,
    ) -> StoreResult<Lamp>;

    fn delete_lamp(&self, id: i64) -> StoreResult<Lamp>;

    fn prune_lamp(&self, id: i64) -> StoreResult<()>;

    /// Mounts the lamp on the asset, moving it from any other.
    fn mount_lamp(&self, lamp_id: i64, asset_id: i64) -> StoreResult<Lamp>;

    fn zones(&self) -> StoreResult<Vec<Zone>>;

    /// Zone ids and names only (`zones` also counts each zone's assets).
    fn zone_names(&self) -> StoreResult<Vec<(i64, String)>>;

    fn circuits(&self, zone_id: Option<i64>) -> StoreResult<Vec<Circuit>>;

    fn lamp_types(&self) -> StoreResult<Vec<LampType>>;

    fn counts(&self) -> StoreResult<EstateCounts>;

    /// Loads a generated estate into an empty database (`NotEmpty` otherwise).
    fn import_estate(&self, estate: &Estate) -> StoreResult<EstateCounts>;

    /// Removes every record, leaving an empty schema.
    fn reset(&self) -> StoreResult<()>;
}

/// Readings as they arrive (with the fault changes judged from them), each lamp's latest, and
/// the history billing meters again from.
pub trait TelemetryStore {
    /// For each telecell uuid known to the estate: the lamps it drives, in context.
    fn resolve_telecells(
        &self,
        uuids: &[String],
    ) -> StoreResult<std::collections::HashMap<String, Vec<LampContext>>>;

    /// The context of every lamp driven by a telecell (for the engine at start-up).
    fn lamp_contexts(&self) -> StoreResult<Vec<LampContext>>;

    /// Stores readings and the engine's fault changes in one commit; the resulting fault
    /// events are appended to the log (seq order is commit order) and returned.
    fn record_telemetry(&self, batch: TelemetryBatch) -> StoreResult<RecordOutcome>;

    /// `record_telemetry` without waiting: the batch is queued behind every change queued
    /// before it (so commits follow the engine's order) and the caller awaits the outcome.
    fn queue_telemetry(&self, batch: TelemetryBatch) -> StoreResult<Queued<RecordOutcome>>;

    /// Waits until every change queued before this call has committed or failed.
    fn flush(&self) -> StoreResult<()>;

    /// Every lamp's latest reading (to rebuild the engine's memory at start-up).
    fn latest_readings(&self) -> StoreResult<Vec<LatestReading>>;

    fn lamp_status(&self, lamp_id: i64) -> StoreResult<Option<Reading>>;

    /// Deletes raw readings older than `before`; returns how many.
    fn prune_readings(&self, before: DateTime<Utc>) -> StoreResult<u64>;

    /// Each lamp's readings from an instant on (that instant included), oldest first.
    fn readings_from(
        &self,
        lamps: &[(i64, DateTime<Utc>)],
    ) -> StoreResult<Vec<(i64, Vec<Reading>)>>;
}

/// Fault records, their history, operators' actions and the event log behind `Faults.Watch`.
pub trait FaultStore {
    /// A fault with the newest `history` entries of its history, oldest first, and how many
    /// entries it has in all.
    fn fault(&self, id: i64, history: usize) -> StoreResult<(Fault, Vec<HistoryEntry>, u64)>;

    /// Faults matching the filter with id greater than `after_id`, ascending, at most `limit`.
    fn faults(&self, filter: &FaultFilter, after_id: i64, limit: usize) -> StoreResult<Vec<Fault>>;

    /// Faults not closed (open, acknowledged, assigned) and cleared ones nobody acknowledged.
    fn active_faults(&self) -> StoreResult<Vec<Fault>>;

    /// Faults opened in `[from, to)`, counted by type, severity and elapsed hour from `from`.
    fn fault_counts_opened(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> StoreResult<Vec<OpenedCount>>;

    /// Applies an operator action if the fault is still at the expected version; returns the
    /// event it appended to the log (with the fault as it now is).
    fn act_on_fault(&self, action: FaultAction) -> StoreResult<FaultEvent>;

    /// Logged events with seq greater than `after_seq`, ascending, at most `limit`.
    fn fault_events_after(&self, after_seq: u64, limit: usize) -> StoreResult<Vec<FaultEvent>>;

    /// Events logged at instants in `[from, to)` with seq after `after_seq`, by seq, at most
    /// `limit` (a shift's handover pages through them).
    fn fault_events_between(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        after_seq: u64,
        limit: usize,
    ) -> StoreResult<Vec<FaultEvent>>;

    /// The oldest and newest seq the log holds (0, 0 when empty).
    fn fault_log_bounds(&self) -> StoreResult<(u64, u64)>;

    /// Drops log entries older than `before`, keeping at least the newest one.
    fn prune_fault_log(&self, before: DateTime<Utc>) -> StoreResult<u64>;
}

/// Settled energy per lamp-day with its rollups, settlement cursors, tariffs and totals.
pub trait BillingStore {
    /// Adds settled energy to the lamp-days and their rollups, in one commit.
    fn record_energy(&self, calendar: Calendar, settlement: EnergySettlement) -> StoreResult<()>;

    /// Gives every lamp without a row on `date` an empty one (all slots missing), so a lamp
    /// that said nothing all day is counted as missing, not left out.
    fn close_energy_day(
        &self,
        calendar: Calendar,
        date: NaiveDate,
        lamps: Vec<LampDayEnergy>,
    ) -> StoreResult<u64>;

    fn energy_cursors(&self) -> StoreResult<Vec<(i64, DateTime<Utc>)>>;

    /// Each lamp whose latest stored reading is later than its settlement cursor (or that has
    /// none): the lamp, its cursor and that reading's instant, in one query. What settlement
    /// apart from telemetry meters each pass.
    fn unsettled_readings(&self) -> StoreResult<Vec<UnsettledReadings>>;

    /// Drops the half-hour detail of days before `before`; their totals stay.
    fn prune_energy_slots(&self, before: NaiveDate) -> StoreResult<u64>;

    /// Totals, with lamps judged missing data against the slots due by `as_of`.
    fn energy_totals(&self, query: &TotalsQuery, as_of: AsOf) -> StoreResult<Vec<TotalsRow>>;

    /// A lamp's slots and zone on one day, if it has been settled.
    fn lamp_energy(
        &self,
        lamp_id: i64,
        date: NaiveDate,
    ) -> StoreResult<Option<(i64, Vec<SlotEnergy>)>>;

    fn tariffs(&self) -> StoreResult<TariffBook>;

    /// Creates (`id` None) or replaces a tariff, refusing overlapping validity, and prices
    /// again the energy already settled in the days it covers.
    fn set_tariff(
        &self,
        calendar: Calendar,
        id: Option<i64>,
        terms: NewTariff,
    ) -> StoreResult<Tariff>;
}

/// Users, their credentials and sessions, and the audit trail.
pub trait AuthStore {
    fn user(&self, id: i64) -> StoreResult<User>;

    fn users(&self, scan: &Scan) -> StoreResult<Vec<User>>;

    fn create_user(&self, new: NewUser) -> StoreResult<User>;

    fn update_user(
        &self,
        id: i64,
        expected_version: Option<i64>,
        patch: UserPatch,
    ) -> StoreResult<User>;

    fn delete_user(&self, id: i64) -> StoreResult<User>;

    fn prune_user(&self, id: i64) -> StoreResult<()>;

    /// A user and their password hash, by username (for signing in).
    fn credentials(&self, username: &str) -> StoreResult<Option<(User, String)>>;

    /// Opens a session: `token_hash` stands for the user until `expires_at`. Expired
    /// sessions are removed on the way.
    /// Opens a session; the user's oldest sessions beyond `keep` are ended in the same
    /// commit, and their token hashes returned (so caches and open streams can let go).
    fn open_session(
        &self,
        user_id: i64,
        token_hash: Vec<u8>,
        expires_at: DateTime<Utc>,
        keep: usize,
    ) -> StoreResult<Vec<Vec<u8>>>;

    /// The user a session stands for, with its expiry, if the session exists.
    fn session(&self, token_hash: &[u8]) -> StoreResult<Option<(User, DateTime<Utc>)>>;

    fn close_session(&self, token_hash: Vec<u8>) -> StoreResult<()>;

    /// Sets a user's password hash and ends all of their sessions, in one commit.
    fn set_password(&self, user_id: i64, password_hash: String) -> StoreResult<()>;

    fn record_audit(&self, entry: NewAuditEntry) -> StoreResult<()>;

    /// Newest first.
    fn audit_log(&self, query: &AuditQuery) -> StoreResult<Vec<AuditEntry>>;
}
