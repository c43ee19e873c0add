//! The PostgreSQL schema on a real cluster (`scripts/pg-cluster`, which `scripts/test` and
//! `.ci/run` start): migrations apply once even when several servers start at once, and a
//! restart finds them applied.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

mod common;

use singularity::store::postgres::PgStore;
use singularity::store::prelude::*;

fn applied(url: &str) -> Vec<i64> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        client
            .query(
                "SELECT version FROM schema_migrations ORDER BY version",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|row| row.get(0))
            .collect()
    })
}

#[test]
fn servers_starting_at_once_migrate_once_and_a_restart_finds_it_done() {
    let url = common::fresh_postgres_database();
    let stores: Vec<PgStore> = std::thread::scope(|scope| {
        let starting: Vec<_> = (0..4)
            .map(|_| scope.spawn(|| PgStore::open_url(&url)))
            .collect();
        starting
            .into_iter()
            .map(|s| s.join().unwrap().unwrap())
            .collect()
    });
    assert_eq!(applied(&url), vec![1, 2, 3]);
    assert!(!stores[0].location().contains("password"));
    for store in &stores {
        store.close();
    }
    drop(stores);
    let again = PgStore::open_url(&url).unwrap();
    assert_eq!(applied(&url), vec![1, 2, 3]);
    again.close();
}
