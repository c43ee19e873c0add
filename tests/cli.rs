//! The `singularity` binary as a user meets it: seeding, flag validation, the client's
//! output and exit codes, and the server's clean shutdown on SIGTERM.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

mod common;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::TestServer;
use futures::StreamExt;
use singularity::proto::{self, faults_client::FaultsClient};

fn singularity(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_singularity"))
        .args(args)
        .env_remove("SINGULARITY_DATABASE_URL")
        .env_remove("SINGULARITY_SERVER")
        .env_remove("SINGULARITY_LISTEN")
        .env_remove("RUST_LOG")
        .env_remove("SINGULARITY_TOKEN")
        .env_remove("SINGULARITY_USER")
        .env_remove("SINGULARITY_PASSWORD")
        .env_remove("SINGULARITY_SERVICE_USER")
        .env_remove("SINGULARITY_SERVICE_PASSWORD")
        .output()
        .unwrap()
}

async fn singularity_async(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        singularity(&args)
    })
    .await
    .unwrap()
}

/// `client` with a server's address and a token, then `rest`.
fn client_args(url: &str, token: &str, rest: &[&str]) -> Vec<String> {
    let mut all = vec![
        "client".to_owned(),
        "--server".to_owned(),
        url.to_owned(),
        "--token".to_owned(),
        token.to_owned(),
    ];
    all.extend(rest.iter().map(|s| (*s).to_owned()));
    all
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn seed_refuses_a_populated_database_unless_reset() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("estate.db").display());
    let first = singularity(&[
        "seed",
        "--database-url",
        &url,
        "--lamps",
        "500",
        "--rng-seed",
        "3",
    ]);
    assert!(first.status.success(), "{}", text(&first.stderr));
    let report = text(&first.stdout);
    assert!(report.contains("500 lamps"), "{report}");
    assert!(
        report.contains("admin") && report.contains("operator"),
        "{report}"
    );

    let again = singularity(&["seed", "--database-url", &url, "--lamps", "500"]);
    assert!(!again.status.success());
    assert!(
        text(&again.stderr).contains("--reset"),
        "{}",
        text(&again.stderr)
    );

    let reset = singularity(&["seed", "--database-url", &url, "--lamps", "800", "--reset"]);
    assert!(reset.status.success(), "{}", text(&reset.stderr));
    assert!(text(&reset.stdout).contains("800 lamps"));
}

#[test]
fn seed_takes_passwords_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("estate.db").display());
    let output = Command::new(env!("CARGO_BIN_EXE_singularity"))
        .args(["seed", "--database-url", &url, "--lamps", "50"])
        .env("SINGULARITY_ADMIN_PASSWORD", "chosen-admin-password")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    let report = text(&output.stdout);
    assert!(
        report.contains("(from SINGULARITY_ADMIN_PASSWORD)"),
        "{report}"
    );
    assert!(
        !report.contains("chosen-admin-password"),
        "a chosen password is never echoed"
    );
    let hash: String = rusqlite::Connection::open(dir.path().join("estate.db"))
        .unwrap()
        .query_row(
            "SELECT password_hash FROM users WHERE username = 'admin'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(singularity::passwords::verify(
        "chosen-admin-password",
        &hash
    ));
}

#[test]
fn bad_flags_and_config_get_clear_errors() {
    let zero = singularity(&[
        "seed",
        "--lamps",
        "0",
        "--database-url",
        "sqlite:///nonexistent/x.db",
    ]);
    assert_eq!(zero.status.code(), Some(2));
    assert!(
        text(&zero.stderr).contains("--lamps"),
        "{}",
        text(&zero.stderr)
    );

    // A process serving every part asks nobody for auth or the inventory, and needs no
    // account of its own.
    for (flag, value) in [
        ("--auth-url", "http://127.0.0.1:1"),
        ("--inventory-url", "http://127.0.0.1:1"),
        ("--telemetry-url", "http://127.0.0.1:1"),
        ("--faults-url", "http://127.0.0.1:1"),
        ("--service-user", "engine"),
    ] {
        let own = singularity(&["server", flag, value]);
        assert!(!own.status.success());
        assert!(
            text(&own.stderr).contains(&format!("leave {flag} out"))
                || text(&own.stderr).contains("leave it out"),
            "{}",
            text(&own.stderr)
        );
    }
    // Telemetry without the inventory signs in as an account of its own, with a password
    // from the environment (checked before any database is opened).
    let field = [
        "server",
        "--services",
        "telemetry,faults",
        "--auth-url",
        "http://127.0.0.1:1",
        "--inventory-url",
        "http://127.0.0.1:1",
    ];
    let no_account = singularity(&field);
    assert!(!no_account.status.success());
    assert!(
        text(&no_account.stderr).contains("--service-user NAME"),
        "{}",
        text(&no_account.stderr)
    );
    let no_password = singularity(&[&field[..], &["--service-user", "engine"]].concat());
    assert!(!no_password.status.success());
    assert!(
        text(&no_password.stderr).contains("SINGULARITY_SERVICE_PASSWORD"),
        "{}",
        text(&no_password.stderr)
    );

    let listen = singularity(&["server", "--listen", "not-an-address"]);
    assert_eq!(listen.status.code(), Some(2));
    assert!(text(&listen.stderr).contains("--listen"));

    // Nothing listens on port 1: the error names the database (without a password).
    let postgres = singularity(&[
        "server",
        "--database-url",
        "postgres://ana:secret@127.0.0.1:1/lights",
    ]);
    assert!(!postgres.status.success());
    let said = text(&postgres.stderr);
    assert!(
        said.contains("cannot connect to postgres://ana@127.0.0.1:1/lights")
            && !said.contains("secret"),
        "{said}"
    );

    let scheme = singularity(&["server", "--database-url", "mysql://db"]);
    assert!(!scheme.status.success());
    assert!(
        text(&scheme.stderr).contains("sqlite://") && text(&scheme.stderr).contains("postgres://"),
        "{}",
        text(&scheme.stderr)
    );

    let log = singularity(&[
        "server",
        "--log-level",
        "loud=[",
        "--database-url",
        "sqlite:///tmp/unused.db",
    ]);
    assert!(!log.status.success());
    assert!(
        text(&log.stderr).contains("log level"),
        "{}",
        text(&log.stderr)
    );

    let volts = singularity(&[
        "server",
        "--voltage-low-v",
        "260",
        "--database-url",
        "sqlite:///tmp/unused.db",
    ]);
    assert!(!volts.status.success());
    assert!(
        text(&volts.stderr).contains("--voltage-high-v"),
        "{}",
        text(&volts.stderr)
    );

    let grace = singularity(&["server", "--offline-after-minutes", "0"]);
    assert_eq!(grace.status.code(), Some(2));

    let city = singularity(&[
        "seed",
        "--city",
        "atlantis",
        "--database-url",
        "sqlite:///tmp/unused.db",
    ]);
    assert!(!city.status.success());
    assert!(
        text(&city.stderr).contains("london"),
        "{}",
        text(&city.stderr)
    );

    let search = singularity(&["client", "lamps", "search", "--box", "1,2,3"]);
    assert_eq!(search.status.code(), Some(2));
}

#[tokio::test]
async fn client_prints_tables_and_json_and_exits_with_meaningful_codes() {
    let mut server = TestServer::start(300).await;
    let (url, token) = (server.url(), server.token.clone());
    let args = |rest: &[&str]| client_args(&url, &token, rest);

    let json = singularity_async(args(&["--json", "lamps", "get", "12"])).await;
    assert!(json.status.success(), "{}", text(&json.stderr));
    let lamp: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(lamp["id"], 12);
    assert_eq!(lamp["reference"], "LMP-0000012");

    let table = singularity_async(args(&["lamps", "list", "--limit", "3"])).await;
    let listing = text(&table.stdout);
    assert!(listing.starts_with("ID"), "{listing}");
    assert!(listing.contains("(3 records)"), "{listing}");

    let list_json = singularity_async(args(&["--json", "zones"])).await;
    let zones: serde_json::Value = serde_json::from_slice(&list_json.stdout).unwrap();
    assert!(zones.as_array().is_some_and(|z| !z.is_empty()));

    // The seed's example flow: create, update, soft delete, prune, link.
    let created = singularity_async(args(&[
        "--json",
        "basestations",
        "create",
        "--name",
        "BS-CLI",
        "--lat",
        "51.5",
        "--lon",
        "-0.12",
    ]))
    .await;
    assert!(created.status.success(), "{}", text(&created.stderr));
    let basestation: serde_json::Value = serde_json::from_slice(&created.stdout).unwrap();
    let id = basestation["id"].to_string();
    let updated = singularity_async(args(&[
        "--json",
        "basestations",
        "update",
        &id,
        "--name",
        "BS-CLI-2",
        "--expected-version",
        "1",
    ]))
    .await;
    let updated: serde_json::Value = serde_json::from_slice(&updated.stdout).unwrap();
    assert_eq!(updated["name"], "BS-CLI-2");
    let stale = singularity_async(args(&[
        "basestations",
        "update",
        &id,
        "--name",
        "x",
        "--expected-version",
        "1",
    ]))
    .await;
    assert_eq!(
        stale.status.code(),
        Some(5),
        "a stale version is a conflict"
    );
    assert!(
        singularity_async(args(&["basestations", "delete", &id]))
            .await
            .status
            .success()
    );
    assert!(
        singularity_async(args(&["basestations", "prune", &id]))
            .await
            .status
            .success()
    );
    let linked =
        singularity_async(args(&["--json", "telecells", "link", "5", "--lamps", "7"])).await;
    assert_eq!(linked.status.code(), Some(5), "{}", text(&linked.stderr));
    let mounted = singularity_async(args(&["--json", "lamps", "mount", "7", "--asset", "2"])).await;
    assert!(mounted.status.success(), "{}", text(&mounted.stderr));

    let missing = singularity_async(args(&["lamps", "get", "999999"])).await;
    assert_eq!(missing.status.code(), Some(3));
    assert!(text(&missing.stderr).contains("lamp 999999 not found"));

    let invalid = singularity_async(args(&["lamps", "list", "--page-size", "0"])).await;
    assert_eq!(invalid.status.code(), Some(4));
    assert!(text(&invalid.stderr).contains("page_size"));

    // The audit trail of what was just done, newest first.
    let trail = singularity_async(args(&["--json", "audit", "--limit", "3"])).await;
    assert!(trail.status.success(), "{}", text(&trail.stderr));
    let entries: serde_json::Value = serde_json::from_slice(&trail.stdout).unwrap();
    let entries = entries.as_array().unwrap();
    assert_eq!(entries.len(), 3);
    assert_eq!(entries[0]["action"], "Lamps.AddToAsset");
    assert!(entries.iter().all(|e| e["actor"] == common::TEST_ADMIN));
    let table = singularity_async(args(&["audit", "--entity", "basestation"])).await;
    let table = text(&table.stdout);
    assert!(
        table.contains("Basestations.Prune") && table.contains("Basestations.Create"),
        "{table}"
    );
    // Without a session nothing but signing in works, and the error says how to.
    let bare = singularity_async(vec![
        "client".to_owned(),
        "--server".to_owned(),
        url.clone(),
        "zones".to_owned(),
    ])
    .await;
    assert_eq!(bare.status.code(), Some(2));
    assert!(
        text(&bare.stderr).contains("--user"),
        "{}",
        text(&bare.stderr)
    );

    server.stop().await;
    let unreachable = singularity_async(args(&["lamps", "get", "1"])).await;
    assert_eq!(unreachable.status.code(), Some(6));
    assert!(
        text(&unreachable.stderr).contains("is it running"),
        "{}",
        text(&unreachable.stderr)
    );
}

#[cfg(unix)]
#[test]
fn server_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("estate.db").display());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // A host name is a place to listen too.
    let listen = format!("127.0.0.1:{port}");
    let by_name = format!("localhost:{port}");
    let child = Command::new(env!("CARGO_BIN_EXE_singularity"))
        .args(["server", "--database-url", &url, "--listen", &by_name])
        .env_remove("RUST_LOG")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while std::net::TcpStream::connect(&listen).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the server never listened"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "exit {:?}", output.status);
    let log = text(&output.stderr);
    assert!(
        log.contains("shutting down") && log.contains("database closed"),
        "{log}"
    );
    assert!(
        !log.contains('\u{1b}'),
        "no colour codes into a pipe: {log:?}"
    );
}

/// Earth leakage reported `minutes_ago`, with a voltage measured finer than it is shown.
fn leak(uuid: &str, lamp_id: i64, minutes_ago: i64) -> singularity::proto::TelecellReport {
    let when = chrono::Utc::now() - chrono::Duration::minutes(minutes_ago);
    singularity::proto::TelecellReport {
        voltage_v: 236.4321,
        ..common::earth_leakage(uuid, lamp_id, when)
    }
}

#[tokio::test]
async fn json_is_one_value_pipes_close_quietly_and_flags_mean_what_they_say() {
    // Enough lamps that a listing overflows a pipe's buffer.
    let mut server = TestServer::start(1_000).await;
    let lamps = common::lamps_with_telecells(&server, 2).await;
    common::send(&server, vec![leak(&lamps[0].1, lamps[0].0, 3)]).await;
    let (url, token) = (server.url(), server.token.clone());
    let args = |rest: &[&str]| client_args(&url, &token, rest);
    // One JSON value per command, which json.load / jq read whole.
    for command in [
        vec!["--json", "faults", "get", "1"],
        vec!["--json", "billing", "lamp", "12", "--date", "2026-10-25"],
        vec!["--json", "faults", "daily", "--date", "2026-10-25"],
        vec![
            "--json",
            "billing",
            "totals",
            "--from",
            "2026-10-01",
            "--to",
            "2026-10-31",
        ],
    ] {
        let output = singularity_async(args(&command)).await;
        assert!(
            output.status.success(),
            "{command:?}: {}",
            text(&output.stderr)
        );
        let value: Result<serde_json::Value, _> = serde_json::from_slice(&output.stdout);
        assert!(
            value.is_ok(),
            "{command:?} printed more than one value:\n{}",
            text(&output.stdout)
        );
    }
    let detail: serde_json::Value = serde_json::from_slice(
        &singularity_async(args(&["--json", "faults", "get", "1"]))
            .await
            .stdout,
    )
    .unwrap();
    assert_eq!(detail["fault"]["id"], 1);
    assert_eq!(detail["history"][0]["action"], "RAISED");

    // Readings at their precision; a lamp with no fault has no severity, not UNSPECIFIED.
    let healthy = singularity_async(args(&["lamps", "status", &lamps[1].0.to_string()])).await;
    let status = text(&healthy.stdout);
    assert!(!status.contains("UNSPECIFIED"), "{status}");
    let leaking = singularity_async(args(&[
        "--json",
        "lamps",
        "status",
        &lamps[0].0.to_string(),
    ]))
    .await;
    let leaking: serde_json::Value = serde_json::from_slice(&leaking.stdout).unwrap();
    assert_eq!(leaking["volts"], 236.4);

    // Every documented way of naming a billing period; mixed ones refused as usage.
    for period in [
        vec!["--from", "2026-10-01", "--to", "2026-10-31"],
        vec!["--month", "2026-10"],
        vec!["--last-month"],
        vec!["--today"],
        vec![],
        vec!["--month", "2026-10", "--tz", "Europe/London"],
    ] {
        let mut command = vec!["billing", "totals"];
        command.extend(period.iter());
        let output = singularity_async(args(&command)).await;
        assert!(
            output.status.success(),
            "{period:?}: {}",
            text(&output.stderr)
        );
    }
    for mixed in [
        vec!["--today", "--month", "2026-10"],
        vec![
            "--month",
            "2026-10",
            "--from",
            "2026-10-01",
            "--to",
            "2026-10-02",
        ],
        vec!["--from", "2026-10-01"],
    ] {
        let mut command = vec!["billing", "totals"];
        command.extend(mixed.iter());
        let output = singularity_async(args(&command)).await;
        assert_eq!(output.status.code(), Some(2), "{mixed:?}");
    }
    // The actor is whoever signed in: there is no --as.
    let as_flag =
        singularity_async(args(&["faults", "ack", "1", "--version", "1", "--as", "x"])).await;
    assert_eq!(as_flag.status.code(), Some(2));

    // A reader that goes away: quiet, with the shell's SIGPIPE status or success. (Off the
    // runtime: the server answers on this test's own thread.)
    let listing = args(&["lamps", "list"]);
    let output = tokio::task::spawn_blocking(move || {
        use std::io::BufRead;
        let mut child = Command::new(env!("CARGO_BIN_EXE_singularity"))
            .args(listing)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = String::new();
        let stdout = child.stdout.take().unwrap();
        std::io::BufReader::new(stdout)
            .read_line(&mut first)
            .unwrap();
        assert!(first.starts_with("ID"), "{first}");
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    assert_eq!(output.status.code(), Some(141), "{}", text(&output.stderr));
    assert!(text(&output.stderr).is_empty(), "{}", text(&output.stderr));

    // `faults watch` starts with a header and follows from now: the old fault is not replayed.
    let mut watch = Command::new(env!("CARGO_BIN_EXE_singularity"))
        .args(args(&["faults", "watch"]))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    common::send(&server, vec![leak(&lamps[1].1, lamps[1].0, 1)]).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    watch.kill().unwrap();
    let seen = text(&watch.wait_with_output().unwrap().stdout);
    let lines: Vec<&str> = seen.lines().collect();
    assert!(lines[0].starts_with("SEQ"), "{seen}");
    assert_eq!(lines.len(), 2, "the header and the new fault only:\n{seen}");
    assert!(lines[1].contains("RAISED"), "{seen}");
    server.stop().await;
}

#[test]
fn start_up_failures_are_one_sentence_with_what_to_do() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("estate.db").display());
    let output = Command::new(env!("CARGO_BIN_EXE_singularity"))
        .args([
            "demo",
            "--headless",
            "--no-simulator",
            "--listen",
            &address,
            "--database-url",
            &url,
            "--lamps",
            "20",
        ])
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let said = text(&output.stderr);
    assert!(
        said.contains("cannot listen on") && said.contains("--listen"),
        "{said}"
    );
    assert_eq!(said.trim().lines().count(), 1, "one line: {said}");
    assert!(
        !said.contains("Location") && !said.contains("backtrace"),
        "{said}"
    );
    assert!(
        !text(&output.stdout).contains("Serving on"),
        "{}",
        text(&output.stdout)
    );

    let simulate = singularity(&["simulate", "--server", "http://127.0.0.1:9"]);
    assert!(!simulate.status.success());
    let said = text(&simulate.stderr);
    assert!(said.contains("--user dev"), "{said}");
    assert_eq!(said.trim().lines().count(), 1, "{said}");

    let console = singularity(&[
        "console",
        "--server",
        "http://127.0.0.1:9",
        "--token",
        "sgt_x",
    ]);
    let said = text(&console.stderr);
    assert!(!console.status.success());
    assert!(!said.contains("Location"), "{said}");
}

#[tokio::test]
async fn the_handover_tells_the_shift_what_happened_and_what_it_inherits() {
    let mut server = TestServer::start(50).await;
    let lamps = common::lamps_with_telecells(&server, 2).await;
    common::send(
        &server,
        vec![
            leak(&lamps[0].1, lamps[0].0, 20),
            leak(&lamps[1].1, lamps[1].0, 10),
        ],
    )
    .await;
    let mut faults = FaultsClient::new(server.channel.clone());
    let first = faults
        .list(proto::ListFaultsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .next()
        .await
        .unwrap()
        .unwrap()
        .items
        .remove(0);
    faults
        .acknowledge(proto::FaultActionRequest {
            fault_id: first.id,
            expected_version: first.version,
            note: "crew | on site".into(),
            actor: String::new(),
        })
        .await
        .unwrap();

    // The RPC: counts, who did what, the note, what is still waiting.
    let since = chrono::Utc::now() - chrono::Duration::hours(1);
    let handover = faults
        .handover(proto::HandoverRequest {
            since: Some(singularity::wire::timestamp(since)),
            until: None,
            time_zone: "Europe/London".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(handover.opened, 2);
    assert_eq!(handover.waiting_total, 1, "one of the two was acknowledged");
    assert_ne!(handover.waiting[0].id, first.id);
    assert_eq!(handover.operators.len(), 1);
    assert_eq!(handover.operators[0].acknowledged, 1);
    assert_eq!(handover.notes[0].note, "crew | on site");
    assert_eq!(handover.notes[0].action, "ACKNOWLEDGED");
    // An earlier window saw none of it.
    let before = faults
        .handover(proto::HandoverRequest {
            since: Some(singularity::wire::timestamp(
                since - chrono::Duration::hours(5),
            )),
            until: Some(singularity::wire::timestamp(since)),
            time_zone: "Europe/London".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((before.opened, before.notes_total), (0, 0));
    // Bad windows are refused naming the field.
    for (request, field) in [
        (proto::HandoverRequest::default(), "since"),
        (
            proto::HandoverRequest {
                since: Some(singularity::wire::timestamp(since)),
                until: Some(singularity::wire::timestamp(
                    since - chrono::Duration::hours(1),
                )),
                time_zone: "Europe/London".into(),
            },
            "until",
        ),
        (
            proto::HandoverRequest {
                since: Some(singularity::wire::timestamp(
                    since - chrono::Duration::days(8),
                )),
                until: None,
                time_zone: "Europe/London".into(),
            },
            "until",
        ),
        (
            proto::HandoverRequest {
                since: Some(singularity::wire::timestamp(since)),
                until: None,
                time_zone: "Mars/Olympus".into(),
            },
            "time_zone",
        ),
    ] {
        let refused = faults.handover(request).await.unwrap_err();
        assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused:?}");
        assert!(refused.message().starts_with(field), "{field}: {refused:?}");
    }

    // The CLI, as an operator types it: since a wall time, as Markdown.
    let (url, token) = (server.url(), server.token.clone());
    let an_hour_ago = since
        .with_timezone(&chrono_tz::Europe::London)
        .format("%H:%M")
        .to_string();
    let out = singularity_async(client_args(
        &url,
        &token,
        &[
            "faults",
            "handover",
            "--since",
            &an_hour_ago,
            "--tz",
            "Europe/London",
            "--markdown",
        ],
    ))
    .await;
    let markdown = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(markdown.starts_with("# Shift handover: "), "{markdown}");
    assert!(
        markdown.contains("2 opened (raised or re-opened)"),
        "{markdown}"
    );
    assert!(
        markdown.contains("| EARTH_LEAKAGE | CRITICAL | 2 |"),
        "{markdown}"
    );
    assert!(
        markdown.contains("## Waiting for someone (1 open and not acknowledged)"),
        "{markdown}"
    );
    assert!(
        markdown.contains("crew / on site"),
        "a pipe never breaks the table:\n{markdown}"
    );
    let bad = singularity_async(client_args(
        &url,
        &token,
        &["faults", "handover", "--since", "7pm"],
    ))
    .await;
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad.stderr));
    assert!(text(&bad.stderr).contains("HH:MM"), "{}", text(&bad.stderr));
    server.stop().await;
}
