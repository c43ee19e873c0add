//! The PostgreSQL schema on a real cluster (`scripts/pg-cluster`, which `scripts/test` and
//! `.ci/run` start): migrations apply once even when several servers start at once, and a
//! restart finds them applied.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use singularity::store::postgres::PgStore;
use singularity::store::prelude::*;

/// A database of its own on the test cluster.
fn fresh_database() -> String {
    let base = std::env::var("SINGULARITY_TEST_POSTGRES_URL").expect(
        "SINGULARITY_TEST_POSTGRES_URL is not set: run the tests with scripts/test, which starts a throwaway PostgreSQL cluster",
    );
    let name = format!("schema_{}", std::process::id());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(&base, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        client
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
            .await
            .unwrap();
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
    });
    let (prefix, _) = base.rsplit_once('/').unwrap();
    format!("{prefix}/{name}")
}

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
    let url = fresh_database();
    let stores: Vec<PgStore> = std::thread::scope(|scope| {
        let starting: Vec<_> = (0..4)
            .map(|_| scope.spawn(|| PgStore::open_url(&url)))
            .collect();
        starting
            .into_iter()
            .map(|s| s.join().unwrap().unwrap())
            .collect()
    });
    assert_eq!(applied(&url), vec![1]);
    assert!(!stores[0].location().contains("password"));
    for store in &stores {
        store.close();
    }
    drop(stores);
    let again = PgStore::open_url(&url).unwrap();
    assert_eq!(applied(&url), vec![1]);
    again.close();
}
