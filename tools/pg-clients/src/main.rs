//! Which PostgreSQL client for the server: the synchronous `postgres` crate on dedicated
//! threads (the store's blocking design), `tokio-postgres` on the runtime with a pool of
//! connections, or `sqlx` with its pool. Two patterns the server lives on:
//!
//! - **point reads**: a lamp by primary key, from 1 and 32 callers at once, over 16
//!   connections (and `tokio-postgres` once more behind blocking calls, as synchronous store
//!   traits would call it);
//! - **batch writes**: 2,000 readings in one transaction, as multi-row statements (arrays
//!   unnested) and, where the client has it, as binary COPY.
//!
//! Usage: `cargo run --release -- postgres://user@host:port/db [seconds]`

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rand::Rng;

const LAMPS: i64 = 100_000;
const CONNECTIONS: usize = 16;
const BATCH: usize = 2_000;

const SCHEMA: &str = "
DROP TABLE IF EXISTS probe_lamps, probe_readings;
CREATE TABLE probe_lamps (
    id BIGINT PRIMARY KEY, reference TEXT NOT NULL, lat DOUBLE PRECISION NOT NULL,
    lon DOUBLE PRECISION NOT NULL, status TEXT NOT NULL, version BIGINT NOT NULL,
    created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL);
INSERT INTO probe_lamps SELECT i, 'LMP-' || i, 51.5 + i * 1e-6, -0.13 - i * 1e-6, 'active', 1, 0, 0
    FROM generate_series(1, 100000) AS i;
CREATE TABLE probe_readings (
    at BIGINT NOT NULL, lamp_id BIGINT NOT NULL, lamp_on BOOLEAN NOT NULL,
    voltage_v REAL NOT NULL, power_w REAL NOT NULL, energy_wh BIGINT NOT NULL,
    PRIMARY KEY (at, lamp_id));
ANALYZE;
";

const READ: &str = "SELECT id, reference, lat, lon, status, version, created_at, updated_at \
                    FROM probe_lamps WHERE id = $1";
const WRITE_ROWS: &str = "INSERT INTO probe_readings (at, lamp_id, lamp_on, voltage_v, power_w, energy_wh) \
     SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::boolean[], $4::real[], $5::real[], $6::bigint[]) \
     ON CONFLICT DO NOTHING";
const COPY: &str =
    "COPY probe_readings (at, lamp_id, lamp_on, voltage_v, power_w, energy_wh) FROM STDIN BINARY";

/// One batch of readings, column by column.
struct Batch {
    at: Vec<i64>,
    lamp: Vec<i64>,
    on: Vec<bool>,
    volts: Vec<f32>,
    watts: Vec<f32>,
    wh: Vec<i64>,
}

fn batch(round: i64) -> Batch {
    let lamps: Vec<i64> = (1..=BATCH as i64).collect();
    Batch {
        at: vec![round; BATCH],
        on: vec![true; BATCH],
        volts: vec![236.0; BATCH],
        watts: vec![70.0; BATCH],
        wh: lamps.iter().map(|l| l * 10 + round).collect(),
        lamp: lamps,
    }
}

fn report(what: &str, count: u64, elapsed: Duration, unit: &str) {
    println!(
        "{what:<58} {:>10.0} {unit}/s",
        count as f64 / elapsed.as_secs_f64()
    );
}

/// The synchronous client, each connection on a thread of its own, callers handing it work
/// over a channel (as the store's reader pool would).
fn sync_reads(url: &str, callers: usize, seconds: u64) {
    type Job = (i64, std::sync::mpsc::SyncSender<String>);
    let (jobs, queue) = std::sync::mpsc::channel::<Job>();
    let queue = Arc::new(std::sync::Mutex::new(queue));
    for _ in 0..CONNECTIONS {
        let queue = queue.clone();
        let mut client = postgres::Client::connect(url, postgres::NoTls).unwrap();
        std::thread::spawn(move || {
            let statement = client.prepare(READ).unwrap();
            loop {
                let job = queue.lock().unwrap().recv();
                let Ok((id, reply)) = job else { return };
                let row = client.query_one(&statement, &[&id]).unwrap();
                let _ = reply.send(row.get::<_, String>(1));
            }
        });
    }
    let done = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + Duration::from_secs(seconds);
    let start = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..callers {
            let (jobs, done) = (jobs.clone(), done.clone());
            scope.spawn(move || {
                let mut rng = rand::rng();
                while Instant::now() < until {
                    let (reply, answer) = std::sync::mpsc::sync_channel(1);
                    jobs.send((rng.random_range(1..=LAMPS), reply)).unwrap();
                    answer.recv().unwrap();
                    done.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    report(
        &format!("postgres (sync, {CONNECTIONS} threads): Get, {callers} in flight"),
        done.load(Ordering::Relaxed),
        start.elapsed(),
        "reads",
    );
}

async fn tokio_reads(url: &str, callers: usize, seconds: u64) {
    let mut clients = Vec::new();
    for _ in 0..CONNECTIONS {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        let statement = client.prepare(READ).await.unwrap();
        clients.push(Arc::new((client, statement)));
    }
    let done = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + Duration::from_secs(seconds);
    let start = Instant::now();
    let tasks: Vec<_> = (0..callers)
        .map(|i| {
            let (client, done) = (clients[i % CONNECTIONS].clone(), done.clone());
            tokio::spawn(async move {
                while Instant::now() < until {
                    let id = rand::rng().random_range(1..=LAMPS);
                    let row = client.0.query_one(&client.1, &[&id]).await.unwrap();
                    let _: String = row.get(1);
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    futures::future::join_all(tasks).await;
    report(
        &format!("tokio-postgres ({CONNECTIONS} connections): Get, {callers} in flight"),
        done.load(Ordering::Relaxed),
        start.elapsed(),
        "reads",
    );
}

/// `tokio-postgres` behind blocking calls: callers on threads of their own (as the store's
/// callers are) hand each query to the client's runtime and wait for the answer, so the
/// store's traits can stay synchronous and still pipeline.
fn bridged_reads(url: &str, callers: usize, seconds: u64) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let clients: Vec<_> = runtime.block_on(async {
        let mut clients = Vec::new();
        for _ in 0..CONNECTIONS {
            let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(connection);
            let statement = client.prepare(READ).await.unwrap();
            clients.push(Arc::new((client, statement)));
        }
        clients
    });
    let handle = runtime.handle().clone();
    let done = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + Duration::from_secs(seconds);
    let start = Instant::now();
    std::thread::scope(|scope| {
        for i in 0..callers {
            let (client, done, handle) = (clients[i % CONNECTIONS].clone(), done.clone(), handle.clone());
            scope.spawn(move || {
                let mut rng = rand::rng();
                while Instant::now() < until {
                    let id = rng.random_range(1..=LAMPS);
                    let (reply, answer) = std::sync::mpsc::sync_channel(1);
                    let client = client.clone();
                    handle.spawn(async move {
                        let row = client.0.query_one(&client.1, &[&id]).await.unwrap();
                        let _ = reply.send(row.get::<_, String>(1));
                    });
                    answer.recv().unwrap();
                    done.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    report(
        &format!("tokio-postgres behind blocking calls: Get, {callers} in flight"),
        done.load(Ordering::Relaxed),
        start.elapsed(),
        "reads",
    );
}

async fn sqlx_reads(url: &str, callers: usize, seconds: u64) {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(CONNECTIONS as u32)
        .connect(url)
        .await
        .unwrap();
    let done = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + Duration::from_secs(seconds);
    let start = Instant::now();
    let tasks: Vec<_> = (0..callers)
        .map(|_| {
            let (pool, done) = (pool.clone(), done.clone());
            tokio::spawn(async move {
                while Instant::now() < until {
                    let id = rand::rng().random_range(1..=LAMPS);
                    let row: (i64, String, f64, f64, String, i64, i64, i64) =
                        sqlx::query_as(READ).bind(id).fetch_one(&pool).await.unwrap();
                    let _ = row.1;
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    futures::future::join_all(tasks).await;
    report(
        &format!("sqlx (pool of {CONNECTIONS}): Get, {callers} in flight"),
        done.load(Ordering::Relaxed),
        start.elapsed(),
        "reads",
    );
}

fn sync_writes(url: &str, seconds: u64, copy: bool) {
    let mut client = postgres::Client::connect(url, postgres::NoTls).unwrap();
    client.batch_execute("TRUNCATE probe_readings").unwrap();
    let types = [
        postgres::types::Type::INT8,
        postgres::types::Type::INT8,
        postgres::types::Type::BOOL,
        postgres::types::Type::FLOAT4,
        postgres::types::Type::FLOAT4,
        postgres::types::Type::INT8,
    ];
    let (mut rows, mut round) = (0u64, 0i64);
    let until = Instant::now() + Duration::from_secs(seconds);
    let start = Instant::now();
    while Instant::now() < until {
        round += 1;
        let b = batch(round);
        let mut tx = client.transaction().unwrap();
        if copy {
            let sink = tx.copy_in(COPY).unwrap();
            let mut writer = postgres::binary_copy::BinaryCopyInWriter::new(sink, &types);
            for i in 0..BATCH {
                writer
                    .write(&[&b.at[i], &b.lamp[i], &b.on[i], &b.volts[i], &b.watts[i], &b.wh[i]])
                    .unwrap();
            }
            writer.finish().unwrap();
        } else {
            tx.execute(WRITE_ROWS, &[&b.at, &b.lamp, &b.on, &b.volts, &b.watts, &b.wh])
                .unwrap();
        }
        tx.commit().unwrap();
        rows += BATCH as u64;
    }
    let how = if copy { "binary COPY" } else { "one INSERT of unnested arrays" };
    report(
        &format!("postgres (sync): {BATCH} readings per commit, {how}"),
        rows,
        start.elapsed(),
        "rows",
    );
}

async fn sqlx_writes(url: &str, seconds: u64) {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await
        .unwrap();
    sqlx::query("TRUNCATE probe_readings").execute(&pool).await.unwrap();
    let (mut rows, mut round) = (0u64, 0i64);
    let until = Instant::now() + Duration::from_secs(seconds);
    let start = Instant::now();
    while Instant::now() < until {
        round += 1;
        let b = batch(round);
        let mut tx = pool.begin().await.unwrap();
        sqlx::query(WRITE_ROWS)
            .bind(&b.at)
            .bind(&b.lamp)
            .bind(&b.on)
            .bind(&b.volts)
            .bind(&b.watts)
            .bind(&b.wh)
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        rows += BATCH as u64;
    }
    report(
        &format!("sqlx: {BATCH} readings per commit, one INSERT of unnested arrays"),
        rows,
        start.elapsed(),
        "rows",
    );
}

fn main() {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .expect("usage: pg-clients postgres://user@host:port/db [seconds]");
    let seconds: u64 = args.next().map_or(5, |s| s.parse().expect("seconds"));
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    client.batch_execute(SCHEMA).unwrap();
    drop(client);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    for callers in [1, 32] {
        sync_reads(&url, callers, seconds);
        runtime.block_on(tokio_reads(&url, callers, seconds));
        bridged_reads(&url, callers, seconds);
        runtime.block_on(sqlx_reads(&url, callers, seconds));
    }
    sync_writes(&url, seconds, false);
    sync_writes(&url, seconds, true);
    runtime.block_on(sqlx_writes(&url, seconds));
}
