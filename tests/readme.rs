//! README.md's command-line examples, run as written against a freshly seeded estate (the
//! demo's: 5,000 lamps around Westminster, rng seed 1), so the README cannot drift from the
//! program. Every `singularity client ...` and `singularity simulate ...` line of its `sh`
//! blocks runs in order; commands that follow a stream (`watch`, `simulate`) must still be
//! running after a few seconds; the rest must exit 0.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

mod common;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use common::{TestServer, lamps_with_telecells, send};
use singularity::proto;
use singularity::store::sqlite::SqliteStore;

const PASSWORD: &str = "readme-example-password";

/// The commands of README.md's `sh` blocks that the test runs: continuation lines joined,
/// comments cut.
fn readme_commands() -> Vec<String> {
    let readme = include_str!("../README.md");
    let mut commands = Vec::new();
    let mut in_sh = false;
    let mut pending = String::new();
    for line in readme.lines() {
        if line.starts_with("```") {
            in_sh = line == "```sh";
            continue;
        }
        if !in_sh {
            continue;
        }
        let line = match line.find("  #") {
            Some(at) => &line[..at],
            None => line,
        };
        let line = line.trim_end();
        if let Some(start) = line.strip_suffix('\\') {
            pending.push_str(start.trim());
            pending.push(' ');
            continue;
        }
        pending.push_str(line.trim());
        let command = std::mem::take(&mut pending);
        let runs = command.starts_with("singularity client ")
            || command.starts_with("singularity simulate ");
        // TLS examples name a host of the reader's own.
        if runs && !command.contains("example.org") {
            commands.push(command);
        }
    }
    commands
}

/// Words as a shell splits them: quotes group, `>` redirects.
fn words(command: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quote: Option<char> = None;
    let mut started = false;
    for c in command.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                started = true;
            }
            (None, c) if c.is_whitespace() => {
                if started || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                started = false;
            }
            (None, c) => word.push(c),
        }
    }
    if started || !word.is_empty() {
        words.push(word);
    }
    words
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_cli_example_in_the_readme_runs_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("demo.db").display());
    let mut seed = Command::new(env!("CARGO_BIN_EXE_singularity"));
    seed.args([
        "seed",
        "--database-url",
        &url,
        "--lamps",
        "5000",
        "--rng-seed",
        "1",
    ]);
    for variable in [
        "SINGULARITY_ADMIN_PASSWORD",
        "SINGULARITY_MANAGER_PASSWORD",
        "SINGULARITY_OPERATOR_PASSWORD",
        "SINGULARITY_DEV_PASSWORD",
    ] {
        seed.env(variable, PASSWORD);
    }
    let seeded = seed.output().unwrap();
    assert!(
        seeded.status.success(),
        "{}",
        String::from_utf8_lossy(&seeded.stderr)
    );
    let store = Arc::new(SqliteStore::open_url(&url).unwrap());
    let mut server = TestServer::on_store(dir, store).await;

    // Twenty faults to triage, as the simulator would raise them: earth leakage on the first
    // twenty single-lamp telecells (fault ids 1 to 20, each at version 1).
    let now = Utc::now() - chrono::Duration::minutes(5);
    let reports = lamps_with_telecells(&server, 20)
        .await
        .into_iter()
        .map(|(lamp_id, uuid)| common::earth_leakage(&uuid, lamp_id, now))
        .collect();
    assert_eq!(send(&server, reports).await.stored, 20);

    // Signed in as the README says: a token from `client login` in SINGULARITY_TOKEN, the
    // password in SINGULARITY_PASSWORD where a command gives --user.
    let token = singularity::proto::auth_client::AuthClient::new(server.bare.clone())
        .login(proto::LoginRequest {
            username: "admin".into(),
            password: PASSWORD.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .token;
    let work = tempfile::tempdir().unwrap();
    let commands = readme_commands();
    assert!(
        commands.len() > 40,
        "found only {} commands",
        commands.len()
    );
    let server_url = server.url();
    let token_for_commands = token.clone();
    let workdir = work.path().to_owned();
    let failures = tokio::task::spawn_blocking(move || {
        let mut failures = Vec::new();
        for command in &commands {
            let mut args = words(command);
            args.remove(0);
            let output_file = args.iter().position(|w| w == ">").map(|at| {
                let file = args[at + 1].clone();
                args.truncate(at);
                file
            });
            let mut process = Command::new(env!("CARGO_BIN_EXE_singularity"));
            process
                .args(&args)
                .current_dir(&workdir)
                .env("SINGULARITY_SERVER", &server_url)
                .env("SINGULARITY_TOKEN", &token_for_commands)
                .env("SINGULARITY_PASSWORD", PASSWORD)
                .env("NIGHTSHIFT_PASSWORD", "night-shift-password")
                .env_remove("SINGULARITY_USER")
                .env_remove("SINGULARITY_CA")
                .env_remove("RUST_LOG")
                .stdin(Stdio::null());
            match &output_file {
                Some(file) => {
                    process.stdout(std::fs::File::create(workdir.join(file)).unwrap());
                }
                None => {
                    process.stdout(Stdio::piped());
                }
            }
            process.stderr(Stdio::piped());
            let follows = args.contains(&"watch".to_owned()) || args[0] == "simulate";
            let mut child = process.spawn().unwrap();
            if follows {
                std::thread::sleep(Duration::from_secs(3));
                match child.try_wait().unwrap() {
                    Some(status) => {
                        let output = child.wait_with_output().unwrap();
                        failures.push(format!(
                            "{command}: ended ({status}) instead of following: {}",
                            String::from_utf8_lossy(&output.stderr)
                        ));
                    }
                    None => {
                        child.kill().unwrap();
                        let output = child.wait_with_output().unwrap();
                        let text = String::from_utf8_lossy(&output.stdout).into_owned();
                        let said = text + &String::from_utf8_lossy(&output.stderr);
                        if args.contains(&"watch".to_owned()) && said.trim().is_empty() {
                            failures.push(format!("{command}: printed nothing"));
                        }
                    }
                }
                continue;
            }
            let output = child.wait_with_output().unwrap();
            if !output.status.success() {
                failures.push(format!(
                    "{command}: {} {}{}",
                    output.status,
                    String::from_utf8_lossy(&output.stderr),
                    String::from_utf8_lossy(&output.stdout)
                ));
            }
        }
        failures
    })
    .await
    .unwrap();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The CSV example wrote its file.
    let csv = std::fs::read_to_string(work.path().join("october.csv")).unwrap();
    assert!(csv.starts_with("key,"), "{csv}");
    server.stop().await;
}

#[test]
fn the_readme_parser_joins_lines_and_keeps_quotes() {
    assert_eq!(
        words(r#"client billing set-tariff --name "2027 contract" --band day=07:30@27.3"#),
        vec![
            "client",
            "billing",
            "set-tariff",
            "--name",
            "2027 contract",
            "--band",
            "day=07:30@27.3"
        ]
    );
    assert_eq!(words("a '' b"), vec!["a", "", "b"]);
    let commands = readme_commands();
    assert!(
        commands
            .iter()
            .any(|c| c.starts_with("singularity client billing set-tariff")
                && c.contains("--band night")),
        "continuation lines are joined"
    );
    assert!(commands.iter().all(|c| !c.contains("  #")));
}
