//! The field simulator against a real server that restarts mid-run: it reconnects, resends
//! what was not acknowledged, and no report is lost.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

mod common;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use common::TestServer;
use singularity::domain::inventory::Role;
use singularity::sim::model::FaultRates;
use singularity::sim::runner::{self, SimConfig};
use singularity::store::sqlite::SqliteStore;
use tonic::transport::Endpoint;

#[tokio::test]
async fn the_simulator_loses_no_report_across_a_server_restart() {
    let mut server = TestServer::start_on_sqlite(60).await;
    let address = server.address.to_string();
    // Lazy, so the simulator reconnects by itself after the restart; its session is in the
    // database and outlives the server.
    let bare = Endpoint::from_shared(server.url()).unwrap().connect_lazy();
    let token = common::session_for(server.store.as_ref(), "field", Role::Dev);
    let channel = singularity::link::with_token(bare, Some(&token)).unwrap();
    let lamps = runner::load_estate(&channel).await.unwrap();
    let lamp_count = lamps.len();
    let config = SimConfig {
        // An hour of simulated time per real second, starting a day back.
        speed: 3_600.0,
        start: Utc::now() - chrono::Duration::days(1),
        rates: FaultRates::default().scaled(0.0),
        report_interval: chrono::Duration::minutes(15),
        seed: 5,
        time_zone: chrono_tz::Europe::London,
        batch: 500,
        journal: None,
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let sim = tokio::spawn(runner::run(channel, lamps, config, async move {
        let _ = stopped.await;
    }));

    tokio::time::sleep(Duration::from_secs(2)).await;
    server.stop().await;
    let dir = std::mem::replace(&mut server.dir, tempfile::tempdir().unwrap());
    server.store.close();
    // Down for a while: the field keeps producing reports, which queue up.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let store = Arc::new(SqliteStore::open(&dir.path().join("estate.db")).unwrap());
    let mut server = TestServer::on_address(dir, store, common::config(), &address).await;
    // Back up: the queue drains (the runner backs off up to a few seconds between attempts).
    tokio::time::sleep(Duration::from_secs(6)).await;
    let _ = stop.send(());
    sim.await.unwrap();
    server.stop().await;

    // Every lamp's history runs in unbroken 15-minute steps across the outage.
    let connection = rusqlite::Connection::open(server.dir.path().join("estate.db")).unwrap();
    let mut statement = connection
        .prepare("SELECT lamp_id, count(*), min(at), max(at) FROM readings GROUP BY lamp_id")
        .unwrap();
    let rows: Vec<(i64, i64, i64, i64)> = statement
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(rows.len(), lamp_count, "every lamp reported");
    let step = 15 * 60 * 1000;
    for (lamp, count, first, last) in rows {
        assert!(
            count > 20,
            "lamp {lamp}: the run covered many hours ({count} readings)"
        );
        assert_eq!(
            (last - first) / step + 1,
            count,
            "lamp {lamp}: no gap in its history"
        );
    }
}
