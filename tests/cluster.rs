//! Several servers on one PostgreSQL database, through real gRPC: one leads (health says
//! which), reports sent to a follower are judged on the leader, every server's watchers get
//! the one log in one order (triage on another server included), a logout on one server ends
//! a stream on another, failed sign-ins count everywhere, and when the leader stops another
//! takes over and carries on from the log. The leader's role itself is checked against a
//! cut connection: the replaced leader's writes are refused.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{TestServer, earth_leakage, lamps_with_telecells, next_events, send};
use futures::StreamExt;
use singularity::domain::inventory::{EntityStatus, NewUser, Role};
use singularity::proto::{self, auth_client::AuthClient, faults_client::FaultsClient};
use singularity::store::{StoreError, TelemetryBatch};
use tonic::Code;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

fn at(text: &str) -> chrono::DateTime<chrono::Utc> {
    text.parse().unwrap()
}

/// Whether `server` says it leads.
async fn leads(server: &TestServer) -> bool {
    HealthClient::new(server.bare.clone())
        .check(HealthCheckRequest {
            service: singularity::server::LEADER_HEALTH_SERVICE.into(),
        })
        .await
        .is_ok_and(|r| r.into_inner().status == 1)
}

/// Waits (at most `limit`) until exactly one of `servers` says it leads; its index.
async fn one_leader(servers: &[&TestServer], limit: Duration) -> usize {
    let began = Instant::now();
    loop {
        let mut leading = Vec::new();
        for (i, server) in servers.iter().enumerate() {
            if leads(server).await {
                leading.push(i);
            }
        }
        assert!(leading.len() <= 1, "two servers lead at once: {leading:?}");
        if let [one] = leading[..] {
            return one;
        }
        assert!(began.elapsed() < limit, "no server leads after {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Another server on the database at `url`.
async fn another(url: &str) -> TestServer {
    TestServer::on_store(
        tempfile::tempdir().unwrap(),
        singularity::store::open_url(url).unwrap(),
    )
    .await
}

async fn watch(server: &TestServer, after_seq: u64) -> tonic::Streaming<proto::FaultEvent> {
    FaultsClient::new(server.channel.clone())
        .watch(proto::WatchFaultsRequest {
            after_seq,
            filter: None,
        })
        .await
        .unwrap()
        .into_inner()
}

/// Sends reports as the field does: resent while no server can take them (for a moment
/// after a takeover, a follower may still forward to the leader that stopped).
async fn send_until_taken(
    server: &TestServer,
    reports: Vec<proto::TelecellReport>,
) -> proto::ReportAck {
    let began = Instant::now();
    loop {
        let sent = proto::telemetry_client::TelemetryClient::new(server.channel.clone())
            .report(futures::stream::iter(reports.clone()))
            .await;
        match sent {
            Ok(ack) => return ack.into_inner(),
            Err(status) if status.code() == Code::Unavailable => {
                assert!(
                    began.elapsed() < Duration::from_secs(15),
                    "still refused: {status:?}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(status) => panic!("refused: {status:?}"),
        }
    }
}

fn seqs(events: &[proto::FaultEvent]) -> Vec<u64> {
    events.iter().map(|e| e.seq).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_share_the_work_and_the_log_and_one_takes_over_from_the_leader() {
    let (mut first, url) = TestServer::start_on_postgres(200).await;
    let second = another(&url).await;
    let third = another(&url).await;
    assert_eq!(
        one_leader(&[&first, &second, &third], Duration::from_secs(5)).await,
        0,
        "the server that started first leads"
    );
    let lamps = lamps_with_telecells(&first, 8).await;
    let mut on_second = watch(&second, 0).await;
    let mut on_third = watch(&third, 0).await;

    // Reports sent to a follower are judged on the leader; both followers' watchers see them.
    let noon = at("2026-11-27T12:00:00Z");
    let ack = send(
        &third,
        lamps[..2]
            .iter()
            .map(|(l, u)| earth_leakage(u, *l, noon))
            .collect(),
    )
    .await;
    assert_eq!((ack.stored, ack.rejected), (2, 0), "{ack:?}");
    let raised = next_events(&mut on_second, 2).await;
    assert_eq!(seqs(&next_events(&mut on_third, 2).await), seqs(&raised));
    assert!(raised.iter().all(|e| e.kind == "RAISED"));

    // Triage on one follower reaches the watchers of the other, in the same order.
    let fault = raised[0].fault.clone().unwrap();
    FaultsClient::new(second.channel.clone())
        .acknowledge(proto::FaultActionRequest {
            fault_id: fault.id,
            expected_version: fault.version,
            note: "crew sent".into(),
            actor: String::new(),
        })
        .await
        .unwrap();
    let acked = next_events(&mut on_third, 1).await;
    assert_eq!(acked[0].kind, "ACKNOWLEDGED");
    assert_eq!(acked[0].seq, raised[1].seq + 1);
    assert_eq!(seqs(&next_events(&mut on_second, 1).await), seqs(&acked));

    // The leader stops; one of the others takes over well within 15 s.
    first.stop().await;
    let stopped = Instant::now();
    let next = one_leader(&[&second, &third], Duration::from_secs(15)).await;
    let took = stopped.elapsed();
    let (leader, follower) = if next == 0 {
        (&second, &third)
    } else {
        (&third, &second)
    };
    assert!(leads(leader).await && !leads(follower).await);

    // The new leader judges from the database: a repeat of a known fault is no new fault,
    // and reports sent to the remaining follower reach it.
    let later = at("2026-11-27T12:15:00Z");
    let ack = send_until_taken(
        follower,
        lamps[..3]
            .iter()
            .map(|(l, u)| earth_leakage(u, *l, later))
            .collect(),
    )
    .await;
    assert_eq!((ack.stored, ack.rejected), (3, 0), "{ack:?}");
    let after = next_events(&mut on_second, 3).await;
    assert_eq!(seqs(&next_events(&mut on_third, 3).await), seqs(&after));
    assert_eq!(after[0].seq, acked[0].seq + 1, "no gap across the takeover");
    let mut kinds: Vec<&str> = after.iter().map(|e| e.kind.as_str()).collect();
    kinds.sort_unstable();
    assert_eq!(kinds, ["RAISED", "REPEATED", "REPEATED"], "{after:?}");
    eprintln!("takeover after a clean stop: {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_on_one_server_ends_streams_on_another_and_failures_count_everywhere() {
    let (one, url) = TestServer::start_on_postgres(20).await;
    let other = another(&url).await;
    one.store
        .create_user(NewUser {
            username: "mo".into(),
            display_name: "Mo".into(),
            role: Role::User,
            password_hash: singularity::passwords::hash("right-password").unwrap(),
            status: EntityStatus::Active,
        })
        .unwrap();
    let token = AuthClient::new(one.bare.clone())
        .login(proto::LoginRequest {
            username: "mo".into(),
            password: "right-password".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .token;
    let on_other = singularity::link::with_token(other.bare.clone(), Some(&token)).unwrap();
    let mut stream = FaultsClient::new(on_other.clone())
        .watch(proto::WatchFaultsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let on_one = singularity::link::with_token(one.bare.clone(), Some(&token)).unwrap();
    AuthClient::new(on_one)
        .logout(proto::LogoutRequest {})
        .await
        .unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match stream.next().await {
                Some(Ok(_)) => continue,
                Some(Err(status)) => return status.code(),
                None => return Code::Ok,
            }
        }
    })
    .await
    .expect("the stream on the other server ends within seconds");
    assert_eq!(ended, Code::Unauthenticated);
    let who = AuthClient::new(on_other)
        .who_am_i(proto::WhoAmIRequest {})
        .await
        .unwrap_err();
    assert_eq!(who.code(), Code::Unauthenticated);

    // Five wrong passwords on one server: the sixth attempt is held off on the other too.
    for _ in 0..5 {
        let wrong = AuthClient::new(one.bare.clone())
            .login(proto::LoginRequest {
                username: "mo".into(),
                password: "guess".into(),
            })
            .await
            .unwrap_err();
        assert_eq!(wrong.code(), Code::Unauthenticated);
    }
    // Notices take milliseconds; a second is room enough on a loaded machine.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let refused = AuthClient::new(other.bare.clone())
        .login(proto::LoginRequest {
            username: "mo".into(),
            password: "right-password".into(),
        })
        .await
        .expect_err("the other server must hold the user off after five failures elsewhere");
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
}

/// Ends the connection that holds the leader's role of the database at `url`, as a cut
/// cable or a restarted pooler would.
async fn cut_leaders_connection(url: &str) {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    // The role's advisory lock key, 0x5349_4e47_0003, as pg_locks shows it.
    let cut = client
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_locks \
             WHERE locktype = 'advisory' AND granted AND classid = 21321 AND objid = 1313275907 \
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(cut.get::<_, i64>(0), 1);
}

#[test]
fn a_replaced_leader_cannot_write_what_only_the_leader_writes() {
    let url = common::fresh_postgres_database();
    let old = singularity::store::open_url(&url).unwrap();
    let new: Arc<dyn singularity::store::Store> = singularity::store::open_url(&url).unwrap();
    let first = old
        .campaign("http://old:1")
        .unwrap()
        .expect("the first leads");
    assert_eq!(new.campaign("http://new:1").unwrap(), None);
    assert_eq!(new.leader().unwrap().unwrap().address, "http://old:1");
    old.record_telemetry(TelemetryBatch::default()).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(cut_leaders_connection(&url));
    let began = Instant::now();
    let second = loop {
        if let Some(won) = new.campaign("http://new:1").unwrap() {
            break won;
        }
        assert!(
            began.elapsed() < Duration::from_secs(10),
            "nobody took over"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(second.term > first.term);
    assert!(second.unheard_for.is_some());

    // The old leader has not noticed yet: its writes of leader's work are refused.
    assert!(matches!(
        old.record_telemetry(TelemetryBatch::default()),
        Err(StoreError::NotLeader)
    ));
    assert_eq!(
        old.prune_fault_log(chrono::Utc::now()),
        Err(StoreError::NotLeader)
    );
    new.record_telemetry(TelemetryBatch::default()).unwrap();
    // Campaigning again, it finds its connection gone, then that it follows.
    let _ = old.campaign("http://old:1");
    assert_eq!(old.campaign("http://old:1").unwrap(), None);
    assert_eq!(new.leader().unwrap().unwrap().address, "http://new:1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_carries_on_after_the_database_drops_its_connections() {
    let (server, url) = TestServer::start_on_postgres(20).await;
    let lamps = lamps_with_telecells(&server, 1).await;
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    // What a database restart or failover does to every connection the server holds.
    client
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
            &[],
        )
        .await
        .unwrap();
    let began = Instant::now();
    let noon = at("2026-11-27T12:00:00Z");
    loop {
        let read = proto::lamps_client::LampsClient::new(server.channel.clone())
            .get(proto::IdRequest { id: lamps[0].0 })
            .await;
        let reported = proto::telemetry_client::TelemetryClient::new(server.channel.clone())
            .report(futures::stream::iter(vec![earth_leakage(
                &lamps[0].1,
                lamps[0].0,
                noon,
            )]))
            .await;
        // Stored now or by an earlier attempt: either way, durable.
        let durable = reported
            .as_ref()
            .is_ok_and(|ack| ack.get_ref().stored + ack.get_ref().duplicates == 1);
        if read.is_ok() && durable {
            break;
        }
        assert!(
            began.elapsed() < Duration::from_secs(15),
            "the server did not reconnect"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(one_leader(&[&server], Duration::from_secs(5)).await, 0);
}

/// A throwaway PostgreSQL cluster of this test's own (`scripts/pg-cluster`), stopped when
/// dropped: the suite's shared cluster cannot be taken away from the other tests.
struct OwnCluster {
    url: String,
    dir: String,
}

impl OwnCluster {
    fn start() -> Self {
        let started =
            std::process::Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/pg-cluster"))
                .arg("start")
                .output()
                .unwrap();
        assert!(started.status.success(), "{started:?}");
        let exports = String::from_utf8(started.stdout).unwrap();
        let value = |key: &str| {
            exports
                .lines()
                .find_map(|line| line.strip_prefix(&format!("export {key}=")))
                .unwrap()
                .trim_matches('"')
                .to_owned()
        };
        Self {
            url: value("SINGULARITY_TEST_POSTGRES_URL"),
            dir: value("SINGULARITY_PG_DIR"),
        }
    }

    fn stop(&self) {
        let _ =
            std::process::Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/pg-cluster"))
                .args(["stop", &self.dir])
                .output();
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn serving(server: &TestServer) -> bool {
    HealthClient::new(server.bare.clone())
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .is_ok_and(|r| r.into_inner().status == 1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_loses_its_database_says_it_is_not_serving() {
    let cluster = OwnCluster::start();
    let server = another(&cluster.url).await;
    let began = Instant::now();
    while !serving(&server).await {
        assert!(began.elapsed() < Duration::from_secs(10), "never serving");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    cluster.stop();
    let began = Instant::now();
    while serving(&server).await {
        assert!(
            began.elapsed() < Duration::from_secs(15),
            "still serving without its database"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!leads(&server).await, "no leader without a database");
}
