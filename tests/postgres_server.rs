//! The lighting server on PostgreSQL, through real gRPC: reports raise faults, a watcher
//! gets the log replayed and then live with no gap, a reconnect and a server restart resume
//! exactly after the last seq, triage refuses a stale version with who changed it, and the
//! lamp status and inventory answer from the database. The storage contract itself is
//! `tests/store_conformance.rs`, on both backends.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

mod common;

use std::time::Duration;

use common::{TestServer, earth_leakage, lamps_with_telecells, next_events, send};
use futures::StreamExt;
use singularity::proto::{self, faults_client::FaultsClient, lamps_client::LampsClient};
use tonic::Code;

fn at(text: &str) -> chrono::DateTime<chrono::Utc> {
    text.parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_flow_and_resume_across_a_restart_on_postgres() {
    let (mut server, url) = TestServer::start_on_postgres(300).await;
    let lamps = lamps_with_telecells(&server, 10).await;
    let noon = at("2026-11-27T12:00:00Z");
    let ack = send(
        &server,
        lamps[..3]
            .iter()
            .map(|(l, u)| earth_leakage(u, *l, noon))
            .collect(),
    )
    .await;
    assert_eq!((ack.stored, ack.rejected), (3, 0));

    let mut faults = FaultsClient::new(server.channel.clone());
    let mut watch = faults
        .watch(proto::WatchFaultsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let replayed = next_events(&mut watch, 3).await;
    let first_seq = replayed[0].seq;
    assert_eq!(
        replayed
            .iter()
            .map(|e| e.seq - first_seq)
            .collect::<Vec<_>>(),
        vec![0, 1, 2]
    );
    send(&server, vec![earth_leakage(&lamps[3].1, lamps[3].0, noon)]).await;
    let live = next_events(&mut watch, 1).await;
    assert_eq!(
        live[0].seq,
        first_seq + 3,
        "live follows the replay with no gap"
    );
    drop(watch);

    // Triage: one acknowledgement per version; the loser hears what changed and who.
    let fault = live[0].fault.clone().unwrap();
    let request = proto::FaultActionRequest {
        fault_id: fault.id,
        expected_version: fault.version,
        ..Default::default()
    };
    faults.acknowledge(request.clone()).await.unwrap();
    let stale = faults.acknowledge(request).await.unwrap_err();
    assert_eq!(stale.code(), Code::Aborted);
    assert!(
        stale.message().contains("acknowledged"),
        "{}",
        stale.message()
    );

    // The lamp's status comes from its latest reading in the database.
    let mut lamp_client = LampsClient::new(server.channel.clone());
    let lamp = lamp_client
        .get(proto::IdRequest { id: lamps[0].0 })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(lamp.id, lamps[0].0);

    // Across a restart on the same database: the log and its seq go on.
    server.stop().await;
    server.store.close();
    let reopened = singularity::store::open_url(&url).unwrap();
    let dir = std::mem::replace(&mut server.dir, tempfile::tempdir().unwrap());
    let mut server = TestServer::on_store(dir, reopened).await;
    let after = first_seq + 4; // the acknowledgement was the fifth event
    send(
        &server,
        lamps[4..6]
            .iter()
            .map(|(l, u)| earth_leakage(u, *l, noon))
            .collect(),
    )
    .await;
    let mut faults = FaultsClient::new(server.channel.clone());
    let mut watch = faults
        .watch(proto::WatchFaultsRequest {
            after_seq: after,
            filter: None,
        })
        .await
        .unwrap()
        .into_inner();
    let resumed = next_events(&mut watch, 2).await;
    assert_eq!(
        resumed.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![after + 1, after + 2]
    );
    assert!(resumed.iter().all(|e| e.kind == "RAISED"));
    let quiet = tokio::time::timeout(Duration::from_millis(300), watch.next()).await;
    assert!(quiet.is_err(), "nothing is delivered twice");
    server.stop().await;
}
