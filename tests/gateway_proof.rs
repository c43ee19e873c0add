//! The brief's deployment, run as an operator would meet it: PostgreSQL, two processes
//! serving inventory and auth, one serving telemetry, faults and billing, and the gateway
//! (all the built binary); the simulator and a console in a real terminal (tmux) both
//! pointed at the gateway alone. One inventory process is killed with SIGKILL mid-run: the
//! simulator's reports go on being stored, the console stays live and its tabs keep
//! answering (billing, lamp after lamp, a fault's detail), and it never shows an error for longer than a reconnect. Skipped, saying so,
//! without the test PostgreSQL cluster or tmux. And one call followed by its request id
//! through the gateway's log and the service's.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use singularity::proto::{
    self, faults_client::FaultsClient, lamps_client::LampsClient,
    telecells_client::TelecellsClient, telemetry_client::TelemetryClient,
};
use tonic::transport::Channel;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use common::free_port;
use common::terminal::{capture as screen, tmux, tmux_installed, wait_for};

const BIN: &str = env!("CARGO_BIN_EXE_singularity");
const PASSWORD: &str = "gateway-proof-pass";

/// A child process that is killed when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(args: &[&str], log: &Path) -> Running {
    Running(
        Command::new(BIN)
            .args(args)
            .env("SINGULARITY_PASSWORD", PASSWORD)
            .env("SINGULARITY_SERVICE_PASSWORD", PASSWORD)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap(),
    )
}

async fn serving(url: &str) -> bool {
    let Ok(channel) = Channel::from_shared(url.to_owned())
        .unwrap()
        .connect()
        .await
    else {
        return false;
    };
    HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .is_ok_and(|r| r.into_inner().status == 1)
}

async fn wait_serving(url: &str) {
    let began = Instant::now();
    while !serving(url).await {
        assert!(
            began.elapsed() < Duration::from_secs(60),
            "{url} never served"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A link through `url`, signed in as the admin.
async fn signed_in(url: &str) -> singularity::link::AuthedChannel {
    let channel = Channel::from_shared(url.to_owned())
        .unwrap()
        .connect()
        .await
        .unwrap();
    singularity::link::sign_in(channel, "admin", PASSWORD)
        .await
        .unwrap()
        .0
}

/// How long the console showed an error at a stretch, sampled every 250 ms.
#[derive(Default)]
struct Outage {
    longest: Duration,
    since: Option<Instant>,
}

impl Outage {
    fn sample(&mut self, screen: &str) {
        let error = !screen.contains("faults: live")
            || screen.to_lowercase().contains("error")
            || screen.contains("cannot")
            || screen.contains("unavailable");
        match (error, self.since) {
            (true, None) => self.since = Some(Instant::now()),
            (false, Some(since)) => {
                self.longest = self.longest.max(since.elapsed());
                self.since = None;
            }
            _ => {}
        }
    }

    /// Samples until `done` holds (at most 20 s).
    fn watch_until(&mut self, session: &str, done: impl Fn(&str) -> bool) {
        let began = Instant::now();
        loop {
            let now = screen(session);
            self.sample(&now);
            if done(&now) {
                return;
            }
            assert!(
                began.elapsed() < Duration::from_secs(20),
                "the console never got there:\n{now}"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    fn longest(&self) -> Duration {
        self.since
            .map_or(self.longest, |since| self.longest.max(since.elapsed()))
    }
}

fn journal_len(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inventory_process_dies_under_the_simulator_and_a_console() {
    if std::env::var("SINGULARITY_TEST_POSTGRES_URL").is_err() || !tmux_installed() {
        eprintln!("skipped: needs the test PostgreSQL cluster and tmux");
        return;
    }
    let url = common::fresh_postgres_database();
    let dir = tempfile::tempdir().unwrap();
    let seeded = Command::new(BIN)
        .args(["seed", "--database-url", &url, "--lamps", "300"])
        .env("SINGULARITY_ADMIN_PASSWORD", PASSWORD)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(seeded.success());

    let process = |name: &str, services: &str, port: u16, more: &[&str]| {
        let listen = format!("127.0.0.1:{port}");
        let mut args = vec![
            "server",
            "--database-url",
            &url,
            "--listen",
            &listen,
            "--services",
            services,
            "--log-level",
            "warn",
        ];
        args.extend_from_slice(more);
        let child = start(&args, &dir.path().join(format!("{name}.log")));
        (child, format!("http://{listen}"))
    };
    // The inventory processes ask the field process for lamps' status (latest readings and
    // open faults), so its address is chosen first.
    let field_port = free_port();
    let field_url = format!("http://127.0.0.1:{field_port}");
    let observed = ["--telemetry-url", &field_url, "--faults-url", &field_url];
    let (mut first, first_url) = process("inventory-1", "inventory,auth", free_port(), &observed);
    let (_second, second_url) = process("inventory-2", "inventory,auth", free_port(), &observed);
    let both = format!("{first_url},{second_url}");
    // The field process asks the auth processes who each caller is, and the inventory
    // processes for lamps and zones (billing) and wiring (ingest with the simulator's token,
    // the engine as its service account).
    let (_field, field_url) = process(
        "field",
        "telemetry,faults,billing",
        field_port,
        &[
            "--auth-url",
            &both,
            "--inventory-url",
            &both,
            "--service-user",
            "admin",
        ],
    );
    for url in [&first_url, &second_url, &field_url] {
        wait_serving(url).await;
    }
    let gateway_url = format!("http://127.0.0.1:{}", free_port());
    let _gateway = start(
        &[
            "gateway",
            "--listen",
            gateway_url.trim_start_matches("http://"),
            "--route",
            &format!("inventory={both}"),
            "--route",
            &format!("auth={both}"),
            "--route",
            &format!("telemetry={field_url}"),
            "--route",
            &format!("faults={field_url}"),
            "--route",
            &format!("billing={field_url}"),
            "--log-level",
            "warn",
        ],
        &dir.path().join("gateway.log"),
    );
    wait_serving(&gateway_url).await;

    let journal = dir.path().join("acknowledged.txt");
    let _simulator = start(
        &[
            "simulate",
            "--server",
            &gateway_url,
            "--user",
            "admin",
            "--speed",
            "600",
            "--batch",
            "100",
            "--journal",
            journal.to_str().unwrap(),
            "--log-level",
            "warn",
        ],
        &dir.path().join("simulator.log"),
    );

    let session = format!("singularity-gateway-{}", std::process::id());
    let command = format!(
        "env -u SINGULARITY_TOKEN -u SINGULARITY_PASSWORD {BIN} console --server {gateway_url} --user admin --log-file {} --theme 16",
        dir.path().join("console.log").display()
    );
    let opened = tmux(&[
        "new-session",
        "-d",
        "-s",
        &session,
        "-x",
        "110",
        "-y",
        "30",
        &command,
    ]);
    assert!(opened.status.success(), "{opened:?}");
    tmux(&["set-option", "-t", &session, "remain-on-exit", "on"]);
    let s = session.clone();
    tokio::task::spawn_blocking(move || {
        wait_for(&s, "the password prompt", |t| {
            t.contains("Password for admin:")
        });
        tmux(&["send-keys", "-t", &s, PASSWORD, "Enter"]);
        wait_for(&s, "the live feed", |t| t.contains("faults: live"));
    })
    .await
    .unwrap();
    let began = Instant::now();
    while journal_len(&journal) == 0 {
        assert!(began.elapsed() < Duration::from_secs(60), "nothing stored");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // SIGKILL one of the two inventory+auth processes.
    first.0.kill().unwrap();
    first.0.wait().unwrap();
    let stored_at_kill = journal_len(&journal);

    // An earth leakage on lamp 11, reported through the gateway: a fault to open.
    let link = signed_in(&gateway_url).await;
    let lamp = LampsClient::new(link.clone())
        .get(proto::IdRequest { id: 11 })
        .await
        .unwrap()
        .into_inner();
    let telecell = TelecellsClient::new(link.clone())
        .get(proto::IdRequest {
            id: lamp.telecell_id,
        })
        .await
        .unwrap()
        .into_inner();
    TelemetryClient::new(link.clone())
        .report(futures::stream::iter([common::earth_leakage(
            &telecell.uuid,
            11,
            chrono::Utc::now(),
        )]))
        .await
        .unwrap();
    let faults = common::first_message(
        FaultsClient::new(link)
            .list(proto::ListFaultsRequest {
                filter: Some(proto::FaultFilter {
                    lamp_id: 11,
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await,
    )
    .await;
    let fault = faults.items.first().expect("lamp 11 has a fault").id;
    let s = session.clone();
    let longest_outage = tokio::task::spawn_blocking(move || {
        let mut outage = Outage::default();
        // The billing tab (billing), then lamp after lamp (inventory), a second apart: past
        // the gateway's 5 s trust in a token, so sign-ins are asked of auth again too.
        tmux(&["send-keys", "-t", &s, "3"]);
        outage.watch_until(&s, |t| t.contains("energy and cost"));
        for lamp in [11, 42, 77, 123, 200, 250, 31, 64] {
            tmux(&["send-keys", "-t", &s, &format!(":lamp {lamp}"), "Enter"]);
            outage.watch_until(&s, |t| t.contains(&format!("lamp {lamp} ")));
            std::thread::sleep(Duration::from_millis(1_000));
        }
        // The fault's detail (faults) with its lamp (inventory).
        tmux(&["send-keys", "-t", &s, &format!(":fault {fault}"), "Enter"]);
        tmux(&["send-keys", "-t", &s, "Enter"]);
        outage.watch_until(&s, |t| t.contains("history (newest first"));
        outage.longest()
    })
    .await
    .unwrap();
    let began = Instant::now();
    while journal_len(&journal) <= stored_at_kill {
        assert!(
            began.elapsed() < Duration::from_secs(30),
            "the simulator stored nothing after the kill"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let last = screen(&session);
    tmux(&["kill-session", "-t", &session]);
    // A reconnect waits at most a few seconds; an outage longer than that is a failure.
    assert!(
        longest_outage < Duration::from_secs(3),
        "the console showed an error for {longest_outage:?}:\n{last}"
    );
    assert!(last.contains("faults: live"), "{last}");
}

/// The lines of a JSON log that name `request_id`.
fn lines_naming(log: &Path, request_id: &str) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|line| line.contains(&format!("\"request_id\":\"{request_id}\"")))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn one_call_is_followed_through_the_gateway_and_the_service_by_its_request_id() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("estate.db").display());
    let seeded = Command::new(BIN)
        .args(["seed", "--database-url", &database, "--lamps", "20"])
        .env("SINGULARITY_ADMIN_PASSWORD", PASSWORD)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(seeded.success());
    // Each call's end is logged at debug, in its span (which carries the request id).
    let logging = [
        "--log-format",
        "json",
        "--log-level",
        "warn,singularity::server::observe=debug",
    ];
    let server_url = format!("http://127.0.0.1:{}", free_port());
    let server_log = dir.path().join("server.log");
    let mut server_args = vec![
        "server",
        "--database-url",
        &database,
        "--listen",
        server_url.trim_start_matches("http://"),
    ];
    server_args.extend_from_slice(&logging);
    let _server = start(&server_args, &server_log);
    wait_serving(&server_url).await;
    let gateway_url = format!("http://127.0.0.1:{}", free_port());
    let gateway_log = dir.path().join("gateway.log");
    let mut gateway_args = vec![
        "gateway",
        "--listen",
        gateway_url.trim_start_matches("http://"),
    ];
    let routes: Vec<String> = ["inventory", "telemetry", "faults", "billing", "auth"]
        .iter()
        .map(|part| format!("{part}={server_url}"))
        .collect();
    for route in &routes {
        gateway_args.extend_from_slice(&["--route", route]);
    }
    gateway_args.extend_from_slice(&logging);
    let _gateway = start(&gateway_args, &gateway_log);
    wait_serving(&gateway_url).await;

    let link = signed_in(&gateway_url).await;
    let mut get = tonic::Request::new(singularity::proto::IdRequest { id: 1 });
    get.metadata_mut()
        .insert("x-request-id", "follow-me-42".parse().unwrap());
    singularity::proto::lamps_client::LampsClient::new(link)
        .get(get)
        .await
        .unwrap();

    // The gateway's line and the service's, both ended Ok, both naming the caller's id; the
    // gateway's own question to auth carries it too.
    let began = Instant::now();
    loop {
        let at_gateway = lines_naming(&gateway_log, "follow-me-42");
        let at_service = lines_naming(&server_log, "follow-me-42");
        let ended = |lines: &[String], path: &str| {
            lines.iter().any(|l| {
                l.contains("call ended") && l.contains(path) && l.contains("\"code\":\"Ok\"")
            })
        };
        if ended(&at_gateway, "/singularity.v1.Lamps/Get")
            && ended(&at_service, "/singularity.v1.Lamps/Get")
            && ended(&at_service, "/singularity.v1.Auth/WhoAmI")
        {
            break;
        }
        assert!(
            began.elapsed() < Duration::from_secs(10),
            "the call is not followed by its id:\ngateway: {at_gateway:#?}\nservice: {at_service:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
