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
use singularity::wire::timestamp;
use tokio::sync::{mpsc, oneshot, watch};

/// A node reporting earth leakage: a CRITICAL fault at once.
fn leaking(uuid: &str, lamp_id: i64, minutes_ago: i64) -> proto::TelecellReport {
    common::earth_leakage(
        uuid,
        lamp_id,
        Utc::now() - chrono::Duration::minutes(minutes_ago),
    )
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
/// signed in as ana with `token`.
fn start_console(server: &str, token: &str) -> Console {
    start_console_as(server, token, "ana")
}

fn start_console_as(server: &str, token: &str, user: &str) -> Console {
    let user = user.to_owned();
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
            net::start(net::channel(&server, None).unwrap(), sign_in, user.clone());
        let setup = Setup {
            state: State::new(server.clone(), user, chrono_tz::Europe::London, Utc::now()),
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

    /// Waits until the screen no longer shows `needle`.
    async fn lacks(&mut self, needle: &str) -> String {
        let wait = async {
            loop {
                let text = self.screen.borrow_and_update().clone();
                if !text.contains(needle) {
                    return text;
                }
                self.screen.changed().await.unwrap();
            }
        };
        match tokio::time::timeout(Duration::from_secs(20), wait).await {
            Ok(text) => text,
            Err(_) => panic!("still shows {needle:?}:\n{}", *self.screen.borrow()),
        }
    }
}

#[tokio::test]
async fn two_consoles_see_each_others_claims_and_a_claim_ends_after_its_holder_leaves() {
    let mut config = common::config();
    config.presence.claim_length = chrono::Duration::seconds(3);
    let mut server = TestServer::start_with(30, config).await;
    let bo_token = session_for(server.store.as_ref(), "bo", Role::User);
    let mut first = start_console(&server.url(), &ana(&server));
    let mut second = start_console_as(&server.url(), &bo_token, "bo");
    first.shows("faults: live").await;
    second.shows("faults: live").await;
    let (lamp, uuid) = lamps_with_telecells(&server, 1).await.remove(0);
    send(&server, vec![leaking(&uuid, lamp, 1)]).await;
    first.shows("EARTH_LEAKAGE").await;
    second.shows("EARTH_LEAKAGE").await;

    // ana opens the fault: bo's board says she has it open; then she claims it.
    first.press("enter").await;
    second.shows("◎ana").await;
    first.press("c").await;
    first.shows("claimed: the others see you are on it").await;
    let seen = second.shows("✓ana").await;
    assert!(
        !seen.contains("◎ana"),
        "a claim shows instead of the viewer:\n{seen}"
    );
    // bo tries to claim it too: he is asked first, naming ana, and says no.
    second.press("c").await;
    second.shows("is claimed by ana: take it over? y/n").await;
    second.press("n").await;
    second.shows("left with ana").await;
    second.press("enter").await;
    second.shows("claimed by ana until").await;
    // N skips a claimed fault: nothing else is waiting.
    second.press("esc").await;
    second.press("N").await;
    second.shows("nothing waiting").await;

    // ana's console goes away: her claim ends at its time (3 s here), with nobody renewing it.
    drop(first);
    second.lacks("✓ana").await;
    second.press("N").await;
    second.shows("1 of 1 waiting").await;
    drop(second);
    server.stop().await;
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
    console.shows("ACKED").await;
    // The feed may show the change before the action's own answer arrives.
    console.shows(" acknowledged").await;
    let mut faults = FaultsClient::new(server.channel.clone());
    let listed = faults_on(&server, lamp).await;
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

impl Console {
    async fn typed(&self, text: &str) {
        for c in text.chars() {
            let name = if c == ' ' {
                "space".to_owned()
            } else {
                c.to_string()
            };
            self.press(&name).await;
        }
    }
}

/// The faults on a lamp, as another client lists them.
async fn faults_on(server: &TestServer, lamp: i64) -> Vec<proto::Fault> {
    FaultsClient::new(server.channel.clone())
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
        .items
}

/// (id, state, version) of the first fault on each of these lamps.
async fn states(server: &TestServer, lamps: &[(i64, String)]) -> Vec<(i64, i32, i64)> {
    let mut found = Vec::new();
    for (lamp, _) in lamps {
        let fault = &faults_on(server, *lamp).await[0];
        found.push((fault.id, fault.state, fault.version));
    }
    found
}

#[tokio::test]
async fn mark_then_filter_then_bulk_act_touches_only_what_is_shown_and_reports_each_outcome() {
    let mut server = TestServer::start(40).await;
    let lamps = lamps_with_telecells(&server, 3).await;
    let mut console = start_console(&server.url(), &ana(&server));
    console.shows("faults: live").await;
    send(
        &server,
        lamps
            .iter()
            .map(|(id, uuid)| leaking(uuid, *id, 2))
            .collect(),
    )
    .await;
    console.shows("faults 3/3").await;
    // Mark all three, then filter down to one of them.
    for _ in 0..3 {
        console.press("space").await;
    }
    console.shows("3 marked").await;
    let shown_lamp = lamps[1].0;
    console.press("/").await;
    console.typed(&format!("lamp={shown_lamp}")).await;
    console.press("enter").await;
    console.shows("(2 hidden)").await;
    console.press("a").await;
    let asked = console
        .shows("(2 marked faults hidden by the filter are left alone)? y/n")
        .await;
    assert!(asked.contains("acknowledge fault"), "{asked}");
    console.press("y").await;
    console.shows(" acknowledged").await;
    console.shows("ACKED").await;
    let after = states(&server, &lamps).await;
    let acked: Vec<i64> = after
        .iter()
        .filter(|(_, state, _)| *state == proto::FaultState::Acknowledged as i32)
        .map(|(id, _, _)| *id)
        .collect();
    assert_eq!(
        acked,
        vec![after[1].0],
        "only the fault on screen: {after:?}"
    );

    // Freeze the board, let someone else acknowledge a fault, then act on it from the stale
    // board: refused, saying who changed it.
    console.press("esc").await;
    console.press("/").await;
    console.press("ctrl-u").await;
    console.press("enter").await;
    console.shows("faults 3/3").await;
    console.press("u").await;
    console.press("f").await;
    console.shows("FROZEN").await;
    let (other, _, version) = after[2];
    FaultsClient::new(server.channel.clone())
        .acknowledge(proto::FaultActionRequest {
            fault_id: other,
            expected_version: version,
            ..Default::default()
        })
        .await
        .unwrap();
    console.shows("1 changed").await;
    console.press(":").await;
    console.typed(&format!("ack {other}")).await;
    console.press("enter").await;
    let refused = console
        .shows(&format!(
            "not acknowledged: fault {other} changed (acked by test-admin"
        ))
        .await;
    assert!(!refused.contains("internal"), "{refused}");
    console.press("q").await;
    console.done.await.unwrap();
    server.stop().await;
}

/// A lamp's report at `when`, lit at `dim` percent.
fn lit_at(
    uuid: &str,
    lamp_id: i64,
    when: chrono::DateTime<Utc>,
    dim: u32,
) -> proto::TelecellReport {
    proto::TelecellReport {
        lamp_on: true,
        dim_target_pct: dim,
        dim_actual_pct: dim,
        at: Some(timestamp(when)),
        ..leaking(uuid, lamp_id, 0)
    }
}

/// Wh a lamp of `watts` uses in a half-hour at `dim` percent, rounded half up as settlement
/// rounds each slot.
fn slot_wh(watts: i64, dim: i64) -> i64 {
    (watts * dim * 1800 + 180_000) / 360_000
}

#[tokio::test]
async fn the_billing_tab_and_the_cli_agree_with_a_hand_computed_period() {
    let mut config = common::config();
    config.billing.settle_interval = Duration::from_millis(50);
    let mut server = TestServer::start_with(40, config).await;
    let mut billing = proto::billing_client::BillingClient::new(server.channel.clone());
    billing
        .set_tariff(proto::SetTariffRequest {
            tariff: Some(proto::Tariff {
                name: "Flat 20p".into(),
                time_zone: "Europe/London".into(),
                valid_from: "2026-01-01".into(),
                bands: vec![proto::TariffBand {
                    name: "all day".into(),
                    starts_at: "00:00".into(),
                    price_millipence_per_kwh: 20_000,
                }],
                ..Default::default()
            }),
        })
        .await
        .unwrap();
    // Lamp A reports at full power from 00:00 to 02:00 GMT on three March nights; lamp B at
    // 50% from 00:00 to 01:00 on the first only. Both are dark all that time, so the
    // baseline over what they report is their wattage for that time.
    let lamps = lamps_with_telecells(&server, 2).await;
    let ((a, a_uuid), (b, b_uuid)) = (lamps[0].clone(), lamps[1].clone());
    let mut reports = Vec::new();
    for day in 2..=4 {
        let midnight = chrono::DateTime::parse_from_rfc3339(&format!("2026-03-0{day}T00:00:00Z"))
            .unwrap()
            .with_timezone(&Utc);
        for half_hours in 0..=4 {
            reports.push(lit_at(
                &a_uuid,
                a,
                midnight + chrono::Duration::minutes(30 * half_hours),
                100,
            ));
        }
        if day == 2 {
            for half_hours in 0..=2 {
                reports.push(lit_at(
                    &b_uuid,
                    b,
                    midnight + chrono::Duration::minutes(30 * half_hours),
                    50,
                ));
            }
        }
    }
    send(&server, reports).await;
    let watts = |lamp: i64| {
        let channel = server.channel.clone();
        async move {
            let lamp = proto::lamps_client::LampsClient::new(channel)
                .get(proto::IdRequest { id: lamp })
                .await
                .unwrap()
                .into_inner();
            i64::from(lamp.lamp_type.unwrap().wattage_w)
        }
    };
    let (wa, wb) = (watts(a).await, watts(b).await);
    // By hand: A 12 half-hours at full power, B 2 at half; each half-hour's baseline is the
    // lamp at full power; 20 p/kWh is 20 milli-pence a Wh.
    let energy_wh = 12 * slot_wh(wa, 100) + 2 * slot_wh(wb, 50);
    let baseline_wh = 12 * slot_wh(wa, 100) + 2 * slot_wh(wb, 100);
    let saved_wh = baseline_wh - energy_wh;
    let cost_mp = energy_wh * 20;
    // Two lamps, three days of 48 half-hours each due, 14 of them reported.
    let request = proto::GetTotalsRequest {
        from: "2026-03-02".into(),
        to: "2026-03-04".into(),
        group_by: proto::GroupBy::Zone as i32,
        ..Default::default()
    };
    let mut totals = None;
    for _ in 0..200 {
        let t = billing
            .get_totals(request.clone())
            .await
            .unwrap()
            .into_inner();
        if t.total.as_ref().is_some_and(|t| t.energy_wh == energy_wh) {
            totals = Some(t);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let totals = totals.expect("the period never settled to the hand-computed energy");
    let total = totals.total.clone().unwrap();
    assert_eq!(total.lamps, 2, "distinct lamps, not lamp-days");
    assert_eq!(
        totals.rows.iter().map(|r| r.lamps).sum::<u32>(),
        2,
        "zone rows count each lamp once: {:?}",
        totals.rows
    );
    assert_eq!(
        total.baseline_wh, baseline_wh,
        "baseline only over reported time"
    );
    assert_eq!(total.savings_wh, saved_wh);
    assert_eq!(total.cost_millipence, cost_mp);
    assert_eq!(total.missing_slots, 2 * 144 - 14);

    // The CLI says the same.
    let cli = tokio::task::spawn_blocking({
        let (url, token) = (server.url(), server.token.clone());
        move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_singularity"))
                .args([
                    "client",
                    "--json",
                    "billing",
                    "totals",
                    "--from",
                    "2026-03-02",
                    "--to",
                    "2026-03-04",
                ])
                .env("SINGULARITY_SERVER", url)
                .env("SINGULARITY_TOKEN", token)
                .env_remove("SINGULARITY_USER")
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert!(
        cli.status.success(),
        "{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    let rows: serde_json::Value = serde_json::from_slice(&cli.stdout).unwrap();
    let cli_total = rows.as_array().unwrap().last().unwrap();
    assert_eq!(cli_total["key"], "total");
    assert_eq!(cli_total["energy_wh"], energy_wh);
    assert_eq!(cli_total["cost_millipence"], cost_mp);
    assert_eq!(cli_total["savings_wh"], saved_wh);
    assert_eq!(cli_total["lamps"], 2);

    // And so does the Billing tab, asked for the same days.
    let mut console = start_console(&server.url(), &ana(&server));
    console.shows("faults: live").await;
    console.press("3").await;
    console.press(":").await;
    console.typed("bill 2026-03-02..2026-03-04").await;
    console.press("enter").await;
    let screen = console.shows("2026-03-02 to 2026-03-04").await;
    let total_line = screen
        .lines()
        .find(|l| l.contains("│total"))
        .unwrap_or_else(|| panic!("no total row:\n{screen}"))
        .to_owned();
    let cells: Vec<&str> = total_line
        .trim_matches(|c| c == '│' || c == ' ')
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    use singularity::figures::{energy, pounds};
    assert!(cells.contains(&energy(energy_wh).as_str()), "{total_line}");
    assert!(cells.contains(&pounds(cost_mp).as_str()), "{total_line}");
    assert!(cells.contains(&"2"), "two lamps: {total_line}");
    assert!(
        cells.contains(&"5%"),
        "14 of 288 half-hours have data: {total_line}"
    );
    assert!(
        cells.contains(&pounds(saved_wh * 20).as_str()),
        "{total_line}"
    );
    console.press("q").await;
    console.done.await.unwrap();
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
    let mut restarted =
        TestServer::on_address(dir, server.store.clone(), common::config(), &address).await;
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
        journal: None,
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
