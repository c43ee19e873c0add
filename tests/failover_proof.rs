//! The proof that several servers survive losing their leader, with real processes: a
//! PostgreSQL database, three `singularity server` processes, the simulator reporting to all
//! three (writing down every report it was told is stored), and two watchers on different
//! servers. The leader is killed with SIGKILL five times at random moments and restarted.
//! Then: every acknowledged report is in the database, each watcher saw the fault log
//! exactly (no event missed, none twice, in order), every fault's final version was seen,
//! never two leaders at one sampled moment, and each failover took under 15 s.
//!
//! `scripts/failover-proof [KILLS]` runs it with its own PostgreSQL cluster and prints the
//! figures; `SINGULARITY_PROOF_KILLS` sets the number of kills (default 5).

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

mod common;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::free_port;
use futures::StreamExt;
use rand::Rng;
use singularity::proto::{self, faults_client::FaultsClient};
use tokio_util::sync::CancellationToken;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

const BIN: &str = env!("CARGO_BIN_EXE_singularity");
const PASSWORD: &str = "proof-password-1";
const SERVERS: usize = 3;
/// The bound on taking over from a dead leader.
const TAKEOVER_LIMIT: Duration = Duration::from_secs(15);

struct Servers {
    url: String,
    ports: Vec<u16>,
    children: Vec<Option<Child>>,
    logs: PathBuf,
}

impl Servers {
    fn address(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.ports[i])
    }

    fn start(&mut self, i: usize) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.logs.join(format!("server-{i}.log")))
            .unwrap();
        let child = Command::new(BIN)
            .args([
                "server",
                "--listen",
                &format!("127.0.0.1:{}", self.ports[i]),
            ])
            .args(["--database-url", &self.url, "--settle-seconds", "2"])
            .env("RUST_LOG", "info")
            .env_remove("SINGULARITY_ADVERTISE")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.children[i] = Some(child);
    }

    fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.children[i].take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }
}

impl Drop for Servers {
    fn drop(&mut self) {
        for i in 0..SERVERS {
            self.kill(i);
        }
    }
}

async fn health(address: &str, service: &str) -> bool {
    let Ok(endpoint) = Endpoint::from_shared(address.to_owned()) else {
        return false;
    };
    let checked = tokio::time::timeout(Duration::from_millis(500), async {
        let channel = endpoint.connect().await.ok()?;
        HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .ok()
    })
    .await;
    matches!(checked, Ok(Some(r)) if r.get_ref().status == 1)
}

async fn leaders(servers: &[String]) -> Vec<usize> {
    let answers = futures::future::join_all(
        servers
            .iter()
            .map(|s| health(s, singularity::server::LEADER_HEALTH_SERVICE)),
    )
    .await;
    (0..servers.len()).filter(|i| answers[*i]).collect()
}

async fn wait_serving(address: &str, limit: Duration) {
    let began = Instant::now();
    while !health(address, "").await {
        assert!(began.elapsed() < limit, "{address} did not start serving");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One event as a watcher saw it: (seq, fault id, fault version).
type Seen = Arc<Mutex<Vec<(u64, i64, i64)>>>;

/// Watches the log from the start on server `first`, moving to the next server whenever the
/// stream ends, and resuming after the last seq seen.
async fn watcher(
    servers: Vec<String>,
    first: usize,
    token: String,
    seen: Seen,
    stop: CancellationToken,
) {
    let mut at = first;
    let mut after_seq = 0;
    while !stop.is_cancelled() {
        let server = servers[at].clone();
        at = (at + 1) % servers.len();
        let Ok(channel) = Endpoint::from_shared(server).unwrap().connect().await else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let link = singularity::link::with_token(channel, Some(&token)).unwrap();
        let Ok(stream) = FaultsClient::new(link)
            .watch(proto::WatchFaultsRequest {
                after_seq,
                filter: None,
            })
            .await
        else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let mut stream = stream.into_inner();
        loop {
            let next = tokio::select! {
                () = stop.cancelled() => return,
                next = stream.next() => next,
            };
            match next {
                Some(Ok(event)) => {
                    let fault = event.fault.unwrap_or_default();
                    seen.lock()
                        .unwrap()
                        .push((event.seq, fault.id, fault.version));
                    after_seq = event.seq;
                }
                _ => break,
            }
        }
    }
}

async fn database(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
}

/// (lamp, instant in ms) of every report in the simulator's journal.
fn journal(path: &Path) -> Vec<(i64, i64)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|line| {
            let mut parts = line.split(' ');
            let _telecell = parts.next().unwrap();
            let lamp: i64 = parts.next().unwrap().parse().unwrap();
            let at: chrono::DateTime<chrono::Utc> = parts.next().unwrap().parse().unwrap();
            (lamp, at.timestamp_millis())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_killed_five_times_loses_nothing() {
    let kills: usize = std::env::var("SINGULARITY_PROOF_KILLS")
        .ok()
        .and_then(|k| k.parse().ok())
        .unwrap_or(5);
    let url = common::fresh_postgres_database();
    let dir = tempfile::tempdir().unwrap();
    let seeded = Command::new(BIN)
        .args(["seed", "--database-url", &url, "--lamps", "400"])
        .env("SINGULARITY_ADMIN_PASSWORD", PASSWORD)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(seeded.success());
    let mut servers = Servers {
        url: url.clone(),
        ports: (0..SERVERS).map(|_| free_port()).collect(),
        children: (0..SERVERS).map(|_| None).collect(),
        logs: dir.path().to_owned(),
    };
    let addresses: Vec<String> = (0..SERVERS).map(|i| servers.address(i)).collect();
    for (i, address) in addresses.iter().enumerate() {
        servers.start(i);
        wait_serving(address, Duration::from_secs(60)).await;
    }

    // Never two leaders at once: sampled every 200 ms throughout.
    let samples: Arc<Mutex<Vec<(Instant, usize)>>> = Arc::default();
    let stop = CancellationToken::new();
    let sampler = tokio::spawn({
        let (samples, stop, addresses) = (samples.clone(), stop.clone(), addresses.clone());
        async move {
            while !stop.is_cancelled() {
                let count = leaders(&addresses).await.len();
                samples.lock().unwrap().push((Instant::now(), count));
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    });

    let journal_path = dir.path().join("acknowledged.txt");
    let simulator = Command::new(BIN)
        .args([
            "simulate",
            "--server",
            &addresses.join(","),
            "--user",
            "admin",
        ])
        .args(["--speed", "600", "--fault-rate", "20000", "--batch", "200"])
        .arg("--journal")
        .arg(&journal_path)
        .env("SINGULARITY_PASSWORD", PASSWORD)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("simulator.log")).unwrap())
        .spawn()
        .unwrap();

    let channel = Channel::from_shared(addresses[1].clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let (_, session) = singularity::link::sign_in(channel, "admin", PASSWORD)
        .await
        .unwrap();
    let seen: Vec<Seen> = vec![Seen::default(), Seen::default()];
    let watchers: Vec<_> = [1, 2]
        .iter()
        .zip(&seen)
        .map(|(first, seen)| {
            tokio::spawn(watcher(
                addresses.clone(),
                *first,
                session.token.clone(),
                seen.clone(),
                stop.clone(),
            ))
        })
        .collect();

    // The kills begin once the field is reporting (signing in takes a while in debug builds).
    let began = Instant::now();
    while journal(&journal_path).is_empty() {
        assert!(
            began.elapsed() < Duration::from_secs(60),
            "the simulator got nothing acknowledged"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut failovers = Vec::new();
    let mut windows = Vec::new();
    for kill in 0..kills {
        let pause = rand::rng().random_range(2_000..6_000);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        let began = Instant::now();
        let leader = loop {
            if let [one] = leaders(&addresses).await[..] {
                break one;
            }
            assert!(
                began.elapsed() < TAKEOVER_LIMIT,
                "no leader before kill {kill}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let killed_at = Instant::now();
        servers.kill(leader);
        let others: Vec<String> = (0..SERVERS)
            .filter(|i| *i != leader)
            .map(|i| addresses[i].clone())
            .collect();
        while leaders(&others).await.len() != 1 {
            assert!(
                killed_at.elapsed() < TAKEOVER_LIMIT,
                "nobody took over within {TAKEOVER_LIMIT:?} of kill {kill}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let took = killed_at.elapsed();
        failovers.push(took);
        windows.push((killed_at, Instant::now()));
        servers.start(leader);
        wait_serving(&addresses[leader], Duration::from_secs(60)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;

    // The simulator stops as an operator would stop it, delivering what it still holds.
    let stopped = Command::new("kill")
        .args(["-TERM", &simulator.id().to_string()])
        .status()
        .unwrap();
    assert!(stopped.success());
    let mut simulator = simulator;
    let ended = simulator.wait().unwrap();
    assert!(ended.success(), "the simulator failed: {ended:?}");

    let db = database(&url).await;
    let newest: i64 = db
        .query_one("SELECT coalesce(max(seq), 0) FROM fault_events", &[])
        .await
        .unwrap()
        .get(0);
    let began = Instant::now();
    while seen
        .iter()
        .any(|s| s.lock().unwrap().last().map_or(0, |e| e.0) < newest as u64)
    {
        assert!(
            began.elapsed() < Duration::from_secs(30),
            "the watchers did not reach the end of the log"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.cancel();
    for watcher in watchers {
        watcher.await.unwrap();
    }
    sampler.await.unwrap();

    // Every report the field was told is stored is in the database.
    let acknowledged = journal(&journal_path);
    let stored: HashSet<(i64, i64)> = db
        .query("SELECT lamp_id, at FROM readings", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    let lost: Vec<&(i64, i64)> = acknowledged
        .iter()
        .filter(|r| !stored.contains(r))
        .collect();
    assert!(
        !acknowledged.is_empty(),
        "the simulator had nothing acknowledged"
    );
    assert_eq!(
        lost.len(),
        0,
        "acknowledged but not stored: {:?}",
        &lost[..lost.len().min(5)]
    );

    // Each watcher saw the log exactly, in order.
    let log: Vec<u64> = db
        .query("SELECT seq FROM fault_events ORDER BY seq", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get::<_, i64>(0) as u64)
        .collect();
    assert!(!log.is_empty(), "no fault events were written");
    let versions: Vec<(i64, i64)> = db
        .query("SELECT id, version FROM faults", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    for (i, seen) in seen.iter().enumerate() {
        let seen = seen.lock().unwrap();
        let seqs: Vec<u64> = seen.iter().map(|e| e.0).collect();
        let missed = log.iter().filter(|s| !seqs.contains(s)).count();
        let twice = seqs.len() - seqs.iter().collect::<HashSet<_>>().len();
        assert_eq!((missed, twice), (0, 0), "watcher {i}: missed, duplicated");
        assert_eq!(seqs, log, "watcher {i} saw the log out of order");
        // Every fault's final version was seen.
        let mut last: HashMap<i64, i64> = HashMap::new();
        for (_, fault, version) in seen.iter() {
            let v = last.entry(*fault).or_default();
            *v = (*v).max(*version);
        }
        for (id, version) in &versions {
            assert_eq!(last.get(id), Some(version), "watcher {i}, fault {id}");
        }
    }

    // Never two leaders; none only while a kill was being recovered from.
    let samples = samples.lock().unwrap();
    let two = samples.iter().filter(|(_, n)| *n > 1).count();
    assert_eq!(two, 0, "two leaders at once in {two} samples");
    let slack = Duration::from_millis(1_500);
    let leaderless_outside = samples
        .iter()
        .filter(|(at, n)| {
            *n == 0
                && !windows
                    .iter()
                    .any(|(from, to)| *at + slack >= *from && *at <= *to + slack)
        })
        .count();
    assert_eq!(leaderless_outside, 0, "no leader outside a failover");

    eprintln!(
        "proof: {} kills, failover {:?}; {} reports acknowledged, 0 lost; {} events, each watcher saw all once in order; {} leader samples, never two",
        kills,
        failovers,
        acknowledged.len(),
        log.len(),
        samples.len()
    );
}
