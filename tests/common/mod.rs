//! A real lighting server for tests: a temporary SQLite file (or a fresh database on the test
//! PostgreSQL cluster), a listener on 127.0.0.1:0, generated clients over a real socket, and a
//! clean stop.

#![allow(dead_code, reason = "each test file uses part of this")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test scaffolding fails loudly"
)]

pub mod terminal;

use std::net::SocketAddr;
use std::sync::Arc;

use futures::StreamExt;
use singularity::domain::estate::{City, EstateSpec, generate};
use singularity::domain::inventory::{EntityStatus, NewUser, Role};
use singularity::link::{AuthedChannel, with_token};
use singularity::store::prelude::*;
use singularity::store::sqlite::SqliteStore;
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

/// A port free on 127.0.0.1 a moment ago, for a process that must be told where to listen.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The user the test scaffolding acts as (admin: every call is allowed).
pub const TEST_ADMIN: &str = "test-admin";

pub struct TestServer {
    pub address: SocketAddr,
    /// Signed in as `TEST_ADMIN`.
    pub channel: AuthedChannel,
    /// The same server with no token at all.
    pub bare: Channel,
    /// `TEST_ADMIN`'s session token.
    pub token: String,
    pub store: Arc<dyn Store>,
    pub dir: TempDir,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), singularity::server::ServerError>>>,
}

/// The server's defaults, but keeping readings for ten years: tests send reports at fixed
/// instants (hand-computed DST days, last week's faults) that the default 48 h would refuse.
pub fn config() -> singularity::server::ServerConfig {
    singularity::server::ServerConfig {
        readings_retention: chrono::Duration::days(3_650),
        ..Default::default()
    }
}

impl TestServer {
    /// A server on an estate of `lamps` lamps (0 gives reference data only, no lamps).
    pub async fn start(lamps: u32) -> Self {
        Self::start_with(lamps, config()).await
    }

    /// On SQLite, or on a fresh PostgreSQL database when `SINGULARITY_TEST_BACKEND` is
    /// `postgres` (`scripts/test` runs the integration tests both ways).
    pub async fn start_with(lamps: u32, config: singularity::server::ServerConfig) -> Self {
        if std::env::var("SINGULARITY_TEST_BACKEND").is_ok_and(|b| b == "postgres") {
            let store = singularity::store::open_url(&fresh_postgres_database()).unwrap();
            return Self::seeded_with(tempfile::tempdir().unwrap(), store, lamps, config).await;
        }
        Self::start_on_sqlite_with(lamps, config).await
    }

    /// On SQLite whatever the backend chosen for the run: for tests that reopen or read the
    /// database file itself.
    pub async fn start_on_sqlite(lamps: u32) -> Self {
        Self::start_on_sqlite_with(lamps, config()).await
    }

    pub async fn start_on_sqlite_with(
        lamps: u32,
        config: singularity::server::ServerConfig,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(&dir.path().join("estate.db")).unwrap());
        Self::seeded_with(dir, store, lamps, config).await
    }

    /// A server on a fresh database of the test PostgreSQL cluster (`scripts/test` starts
    /// one); the URL to open it again is `database_url(&server)`.
    pub async fn start_on_postgres(lamps: u32) -> (Self, String) {
        let url = fresh_postgres_database();
        let store = singularity::store::open_url(&url).unwrap();
        let server = Self::seeded_with(tempfile::tempdir().unwrap(), store, lamps, config()).await;
        (server, url)
    }

    pub async fn seeded_with(
        dir: TempDir,
        store: Arc<dyn Store>,
        lamps: u32,
        config: singularity::server::ServerConfig,
    ) -> Self {
        let mut estate = generate(&EstateSpec {
            lamps: lamps.max(1),
            rng_seed: 42,
            city: City::by_key("london").unwrap(),
        });
        if lamps == 0 {
            estate.lamps.clear();
            estate.assets.clear();
            estate.telecells.clear();
        }
        store.import_estate(&estate).unwrap();
        Self::on_store_with(dir, store, config).await
    }

    /// A server over an existing database directory (used to restart on the same file).
    pub async fn on_store(dir: TempDir, store: Arc<dyn Store>) -> Self {
        Self::on_store_with(dir, store, config()).await
    }

    pub async fn on_store_with(
        dir: TempDir,
        store: Arc<dyn Store>,
        config: singularity::server::ServerConfig,
    ) -> Self {
        Self::on_address(dir, store, config, "127.0.0.1:0").await
    }

    /// A server on a chosen address (to restart where clients expect it).
    pub async fn on_address(
        dir: TempDir,
        store: Arc<dyn Store>,
        config: singularity::server::ServerConfig,
        address: &str,
    ) -> Self {
        let listener = TcpListener::bind(address).await.unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(singularity::server::run(
            listener,
            store.clone(),
            config,
            async move {
                let _ = stopped.await;
            },
        ));
        let bare = Channel::from_shared(format!("http://{address}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let token = session_for(store.as_ref(), TEST_ADMIN, Role::Admin);
        let channel = with_token(bare.clone(), Some(&token)).unwrap();
        Self {
            address,
            channel,
            bare,
            token,
            store,
            dir,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// A channel signed in as a user of `role` named after it (made on first use).
    pub fn as_role(&self, role: Role) -> AuthedChannel {
        let token = session_for(
            self.store.as_ref(),
            &format!("test-{}", role.as_str()),
            role,
        );
        with_token(self.bare.clone(), Some(&token)).unwrap()
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Signals shutdown and waits for the server to finish draining.
    pub async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }

    /// Starts the shutdown without waiting for it.
    pub fn begin_stop(&mut self) -> JoinHandle<Result<(), singularity::server::ServerError>> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.take().unwrap()
    }
}

/// (lamp id, its telecell's uuid) for lamps that are alone on their telecell.
pub async fn lamps_with_telecells(server: &TestServer, count: usize) -> Vec<(i64, String)> {
    let mut lamps = singularity::proto::lamps_client::LampsClient::new(server.channel.clone());
    let mut stream = lamps
        .list(singularity::proto::ListOptions::default())
        .await
        .unwrap()
        .into_inner();
    let mut all = Vec::new();
    while let Some(page) = stream.next().await {
        all.extend(page.unwrap().items);
    }
    let mut telecells =
        singularity::proto::telecells_client::TelecellsClient::new(server.channel.clone());
    let mut found = Vec::new();
    for lamp in all {
        let telecell = telecells
            .get(singularity::proto::IdRequest {
                id: lamp.telecell_id,
            })
            .await
            .unwrap()
            .into_inner();
        if telecell.lamp_ids.len() == 1 {
            found.push((lamp.id, telecell.uuid));
            if found.len() == count {
                break;
            }
        }
    }
    found
}

/// A node reporting earth leakage on a lamp that is switched off (so neither failed nor
/// burning by day): one CRITICAL fault, raised at `at`, and a repeat for each later report.
pub fn earth_leakage(
    uuid: &str,
    lamp_id: i64,
    at: chrono::DateTime<chrono::Utc>,
) -> singularity::proto::TelecellReport {
    singularity::proto::TelecellReport {
        telecell_uuid: uuid.to_owned(),
        lamp_id,
        at: Some(singularity::wire::timestamp(at)),
        voltage_v: 236.0,
        power_factor: 0.95,
        energy_wh: 1_000,
        burn_hours: 100,
        switch_count: 10,
        temperature_c: 20.0,
        link_quality_pct: 90,
        alarms: Some(singularity::proto::NodeAlarms {
            earth_leakage: true,
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub async fn send(
    server: &TestServer,
    reports: Vec<singularity::proto::TelecellReport>,
) -> singularity::proto::ReportAck {
    singularity::proto::telemetry_client::TelemetryClient::new(server.channel.clone())
        .report(futures::stream::iter(reports))
        .await
        .unwrap()
        .into_inner()
}

/// A session for `username`, creating the user with `role` when missing. The stored hash is
/// no valid argon2 hash, so nobody can sign in with a password as a test user.
pub fn session_for(store: &dyn Store, username: &str, role: Role) -> String {
    if store.credentials(username).unwrap().is_none() {
        store
            .create_user(NewUser {
                username: username.to_owned(),
                display_name: username.to_owned(),
                role,
                password_hash: "!test".to_owned(),
                status: EntityStatus::Active,
            })
            .unwrap();
    }
    singularity::server::open_session_for(store, username, chrono::Duration::hours(1)).unwrap()
}

/// The account a process serving telemetry without the inventory signs in as: a user with
/// the `dev` role and a real password, created when missing.
pub fn service_account(store: &dyn Store) -> singularity::server::ServiceAccountConfig {
    const USERNAME: &str = "field-engine";
    const PASSWORD: &str = "engine-password-1";
    if store.credentials(USERNAME).unwrap().is_none() {
        store
            .create_user(NewUser {
                username: USERNAME.to_owned(),
                display_name: "The field process".to_owned(),
                role: Role::Dev,
                password_hash: singularity::passwords::hash(PASSWORD).unwrap(),
                status: EntityStatus::Active,
            })
            .unwrap();
    }
    singularity::server::ServiceAccountConfig {
        username: USERNAME.to_owned(),
        password: Some(PASSWORD.to_owned()),
    }
}

/// A fresh database on the test PostgreSQL cluster: `SINGULARITY_TEST_POSTGRES_URL`, which
/// `scripts/test` (and `.ci/run`) set after starting a throwaway cluster.
pub fn fresh_postgres_database() -> String {
    let base = std::env::var("SINGULARITY_TEST_POSTGRES_URL").expect(
        "SINGULARITY_TEST_POSTGRES_URL is not set: run the tests with scripts/test, which starts a throwaway PostgreSQL cluster",
    );
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let name = format!(
        "server_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let admin = base.clone();
    let create = name.clone();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let (client, connection) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(connection);
            client
                .batch_execute(&format!("DROP DATABASE IF EXISTS {create}"))
                .await
                .unwrap();
            client
                .batch_execute(&format!("CREATE DATABASE {create}"))
                .await
                .unwrap();
        });
    })
    .join()
    .unwrap();
    format!("{}/{name}", base.rsplit_once('/').unwrap().0)
}

/// The next `n` events of a fault watch, waiting at most 10 s for each.
pub async fn next_events(
    stream: &mut tonic::Streaming<singularity::proto::FaultEvent>,
    n: usize,
) -> Vec<singularity::proto::FaultEvent> {
    let mut events = Vec::new();
    while events.len() < n {
        let event = tokio::time::timeout(std::time::Duration::from_secs(10), stream.next())
            .await
            .expect("an event should arrive")
            .expect("the stream should stay open")
            .unwrap();
        events.push(event);
    }
    events
}

/// The first message of a server stream (the first page of a listing).
pub async fn first_message<T>(
    call: Result<tonic::Response<tonic::Streaming<T>>, tonic::Status>,
) -> T {
    call.unwrap()
        .into_inner()
        .message()
        .await
        .unwrap()
        .expect("the stream ended before its first message")
}
