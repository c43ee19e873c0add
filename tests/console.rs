//! The console's own loop against a real server over real sockets, driven by injected keys
//! and drawn on a `TestBackend`: a fault appears, is acknowledged from the keyboard, and a
//! second client sees the acknowledgment; the server is stopped and restarted mid-feed and
//! the board ends with every fault exactly once; with the simulator driving the field, an
//! operator acknowledges one of its faults by keyboard.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

mod common;

use std::time::Duration;

use chrono::Utc;
use common::{TestServer, lamps_with_telecells, send, session_for};
use futures::StreamExt;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use singularity::console::keymap::{Key, Keymap};
use singularity::console::state::State;
use singularity::console::update::Event;
use singularity::console::view::Theme;
use singularity::console::{Setup, net, run_loop};
use singularity::domain::inventory::Role;
use singularity::link::{TokenSlot, with_token};
use singularity::proto::{self, faults_client::FaultsClient};
use singularity::store::Store;
use singularity::wire::timestamp;
use tokio::sync::{mpsc, oneshot, watch};

/// A node reporting earth leakage: a CRITICAL fault at once.
fn leaking(uuid: &str, lamp_id: i64, minutes_ago: i64) -> proto::TelecellReport {
    proto::TelecellReport {
        telecell_uuid: uuid.to_owned(),
        lamp_id,
        at: Some(timestamp(
            Utc::now() - chrono::Duration::minutes(minutes_ago),
        )),
        lamp_on: false,
        voltage_v: 236.0,
        power_factor: 0.95,
        link_quality_pct: 90,
        temperature_c: 20.0,
        alarms: Some(proto::NodeAlarms {
            earth_leakage: true,
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The operator at the console: ana, with the user role (triage).
fn ana(server: &TestServer) -> String {
    session_for(server.store.as_ref(), "ana", Role::User)
}

struct Console {
    keys: mpsc::Sender<Event>,
    screen: watch::Receiver<String>,
    done: tokio::task::JoinHandle<State>,
    _stop: oneshot::Sender<()>,
}

/// Runs the console's loop against `server` on a 160x48 test terminal, publishing each frame,
/// signed in with `token`.
fn start_console(server: &str, token: &str) -> Console {
    let (keys, key_rx) = mpsc::channel::<Event>(64);
    let (screen_tx, screen) = watch::channel(String::new());
    let (stop, stopped) = oneshot::channel::<()>();
    let server = server.to_owned();
    let token = token.to_owned();
    let done = tokio::spawn(async move {
        let sign_in = net::SignIn {
            slot: TokenSlot::new(Some(&token)).unwrap(),
            renewed: Default::default(),
        };
        let (commands, net_rx) =
            net::start(net::channel(&server, None).unwrap(), sign_in, "ana".into());
        let setup = Setup {
            state: State::new(
                server.clone(),
                "ana".into(),
                chrono_tz::Europe::London,
                Utc::now(),
            ),
            keymap: Keymap::load(None).unwrap(),
            theme: Theme::mono(),
        };
        let mut terminal = Terminal::new(TestBackend::new(160, 48)).unwrap();
        let input = tokio_stream::wrappers::ReceiverStream::new(key_rx);
        let watcher = singularity::console::FrameWatcher::new(move |text: String| {
            let _ = screen_tx.send(text);
        });
        run_loop(
            &mut terminal,
            input,
            net_rx,
            Some(commands),
            setup,
            async move {
                let _ = stopped.await;
            },
            watcher,
        )
        .await
        .unwrap()
    });
    Console {
        keys,
        screen,
        done,
        _stop: stop,
    }
}

impl Console {
    async fn press(&self, key: &str) {
        self.keys
            .send(Event::Key(Key::parse(key).unwrap()))
            .await
            .unwrap();
    }

    /// Waits until the screen shows `needle`.
    async fn shows(&mut self, needle: &str) -> String {
        let wait = async {
            loop {
                let text = self.screen.borrow_and_update().clone();
                if text.contains(needle) {
                    return text;
                }
                self.screen.changed().await.unwrap();
            }
        };
        match tokio::time::timeout(Duration::from_secs(20), wait).await {
            Ok(text) => text,
            Err(_) => panic!("never showed {needle:?}:\n{}", *self.screen.borrow()),
        }
    }
}

#[tokio::test]
async fn a_new_fault_is_acknowledged_from_the_keyboard_and_a_second_client_sees_it() {
    let mut server = TestServer::start(30).await;
    let mut console = start_console(&server.url(), &ana(&server));
    console.shows("faults: live").await;
    let (lamp, uuid) = lamps_with_telecells(&server, 1).await.remove(0);
    send(&server, vec![leaking(&uuid, lamp, 1)]).await;
    console.shows("EARTH_LEAKAGE").await;
    console.press("j").await;
    console.press("a").await;
    let screen = console.shows("ACKED").await;
    assert!(screen.contains("acknowledged"), "{screen}");
    let mut faults = FaultsClient::new(server.channel.clone());
    let listed = faults
        .list(proto::ListFaultsRequest {
            filter: Some(proto::FaultFilter {
                lamp_id: lamp,
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .next()
        .await
        .unwrap()
        .unwrap()
        .items;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].state, proto::FaultState::Acknowledged as i32);
    let detail = faults
        .get(proto::GetFaultRequest { id: listed[0].id })
        .await
        .unwrap()
        .into_inner();
    assert!(
        detail
            .history
            .iter()
            .any(|h| h.action == "ACKNOWLEDGED" && h.actor == "ana")
    );
    console.press("q").await;
    let state = console.done.await.unwrap();
    assert!(state.quit);
    server.stop().await;
}

#[tokio::test]
async fn after_a_server_restart_the_feed_resumes_with_no_fault_missed_or_twice() {
    let mut server = TestServer::start(60).await;
    let address = server.address.to_string();
    let lamps = lamps_with_telecells(&server, 6).await;
    let mut console = start_console(&server.url(), &ana(&server));
    console.shows("faults: live").await;
    send(
        &server,
        lamps[..3]
            .iter()
            .map(|(id, uuid)| leaking(uuid, *id, 3))
            .collect(),
    )
    .await;
    console.shows("faults 3/3").await;
    // The server goes away mid-feed; the console keeps its rows, marked stale.
    server.stop().await;
    console.shows("reconnecting in").await;
    let screen = console.shows("faults 3/3").await;
    assert!(
        screen.contains("actions off while disconnected") || screen.contains("stale since"),
        "{screen}"
    );
    let dir = std::mem::replace(&mut server.dir, tempfile::tempdir().unwrap());
    let mut restarted = TestServer::on_address(
        dir,
        server.store.clone(),
        singularity::server::ServerConfig::default(),
        &address,
    )
    .await;
    send(
        &restarted,
        lamps[3..]
            .iter()
            .map(|(id, uuid)| leaking(uuid, *id, 1))
            .collect(),
    )
    .await;
    console.shows("faults 6/6").await;
    console.shows("faults: live").await;
    console.press("q").await;
    let state = console.done.await.unwrap();
    let mut lamps_on_board: Vec<i64> = state.faults.values().map(|f| f.lamp_id).collect();
    lamps_on_board.sort_unstable();
    let mut expected: Vec<i64> = lamps.iter().map(|(id, _)| *id).collect();
    expected.sort_unstable();
    assert_eq!(lamps_on_board, expected, "every fault once, none missed");
    restarted.stop().await;
}

#[tokio::test]
async fn with_the_simulator_in_the_field_a_fault_is_triaged_from_the_keyboard() {
    use singularity::sim::model::FaultRates;
    use singularity::sim::runner::{self, SimConfig};
    let mut server = TestServer::start(200).await;
    let channel = server.as_role(Role::Dev);
    let lamps = runner::load_estate(&channel).await.unwrap();
    let config = SimConfig {
        // Ten simulated minutes a second, from two hours back, with the demo's fault rates.
        speed: 600.0,
        start: Utc::now() - chrono::Duration::hours(2),
        rates: FaultRates::default().scaled(5_000.0),
        report_interval: chrono::Duration::minutes(15),
        seed: 11,
        time_zone: chrono_tz::Europe::London,
        batch: 500,
    };
    let (stop_sim, sim_stopped) = oneshot::channel::<()>();
    let sim = tokio::spawn(runner::run(channel, lamps, config, async move {
        let _ = sim_stopped.await;
    }));
    let mut console = start_console(&server.url(), &ana(&server));
    console.shows("faults: live").await;
    console.shows(" OPEN ").await;
    let mut faults = FaultsClient::new(server.channel.clone());
    let acknowledged_by_ana = |faults: &mut FaultsClient<singularity::link::AuthedChannel>| {
        let mut faults = faults.clone();
        async move {
            let mut pages = faults
                .list(proto::ListFaultsRequest {
                    filter: Some(proto::FaultFilter {
                        states: vec![proto::FaultState::Acknowledged as i32],
                        ..Default::default()
                    }),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            let mut found = Vec::new();
            while let Some(page) = pages.next().await {
                found.extend(page.unwrap().items);
            }
            for fault in found {
                let detail = faults
                    .get(proto::GetFaultRequest { id: fault.id })
                    .await
                    .unwrap()
                    .into_inner();
                if detail
                    .history
                    .iter()
                    .any(|h| h.action == "ACKNOWLEDGED" && h.actor == "ana")
                {
                    return true;
                }
            }
            false
        }
    };
    // The field keeps changing faults (a repeat raises the version), so an action may meet a
    // newer version and be refused; the operator simply tries again.
    let mut done = false;
    for _ in 0..10 {
        console.press("j").await;
        console.press("a").await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        if acknowledged_by_ana(&mut faults).await {
            done = true;
            break;
        }
    }
    assert!(
        done,
        "no fault was acknowledged:\n{}",
        *console.screen.borrow()
    );
    console.shows("ACKED").await;
    console.press("q").await;
    console.done.await.unwrap();
    let _ = stop_sim.send(());
    sim.await.unwrap();
    server.stop().await;
}

#[tokio::test]
async fn when_the_session_ends_the_console_asks_for_the_password_and_carries_on() {
    const PASSWORD: &str = "ana-at-the-desk";
    let mut server = TestServer::start(20).await;
    server
        .store
        .create_user(singularity::domain::inventory::NewUser {
            username: "ana".into(),
            display_name: "Ana".into(),
            role: Role::User,
            password_hash: singularity::passwords::hash(PASSWORD).unwrap(),
            status: singularity::domain::inventory::EntityStatus::Active,
        })
        .unwrap();
    let token = ana(&server);
    let mut console = start_console(&server.url(), &token);
    console.shows("faults: live").await;
    // The session ends elsewhere (here it is logged out): the console stops retrying and asks.
    singularity::proto::auth_client::AuthClient::new(
        with_token(server.bare.clone(), Some(&token)).unwrap(),
    )
    .logout(proto::LogoutRequest {})
    .await
    .unwrap();
    console.shows("the session ended; password for ana").await;
    console.shows("faults: signed out at").await;
    for c in PASSWORD.chars() {
        console.press(&c.to_string()).await;
    }
    console.press("enter").await;
    let screen = console.shows("signed in again as ana").await;
    assert!(
        !screen.contains(PASSWORD),
        "the password was drawn:\n{screen}"
    );
    console.shows("faults: live").await;
    console.press("q").await;
    console.done.await.unwrap();
    server.stop().await;
}
