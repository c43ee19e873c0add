//! Snapshots of every console screen (each tab, the detail pane, prompts, the filter, the
//! help overlay, the too-small notice) at 80x24 and 160x48, in colour and with NO_COLOR's
//! monochrome theme, where every state must still read from glyphs and letters.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use chrono::{DateTime, TimeZone, Utc};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use singularity::console::keymap::{Key, Keymap};
use singularity::console::state::{Detail, Link, State, StreamName, Tab};
use singularity::console::update::{Event, NetEvent, update};
use singularity::console::view::{self, Theme};
use singularity::proto;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 28, 21, 30, 0).unwrap()
}

fn ts(minutes_ago: i64) -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp {
        seconds: now().timestamp() - minutes_ago * 60,
        nanos: 0,
    })
}

fn fault(id: i64, t: proto::FaultType, s: proto::Severity, st: proto::FaultState) -> proto::Fault {
    proto::Fault {
        id,
        r#type: t as i32,
        severity: s as i32,
        state: st as i32,
        lamp_id: 1000 + id,
        zone_id: 1 + id % 3,
        circuit_id: 7,
        count: id as u32,
        version: 2,
        first_seen: ts(id * 17),
        last_seen: ts(1),
        assignee: if st == proto::FaultState::Assigned {
            "crew-north".into()
        } else {
            String::new()
        },
        ..Default::default()
    }
}

fn totals(from: &str, to: &str) -> proto::Totals {
    let row = |key: &str, zone: i64, wh: i64| proto::TotalsRow {
        key: key.into(),
        zone_id: zone,
        energy_wh: wh,
        cost_millipence: wh * 25,
        lamps: 1200,
        lamps_missing: if zone == 2 { 3 } else { 0 },
        baseline_wh: wh * 5 / 4,
        savings_wh: wh / 4,
        savings_millipence: wh * 25 / 4,
        ..Default::default()
    };
    proto::Totals {
        from: from.into(),
        to: to.into(),
        time_zone: "Europe/London".into(),
        rows: vec![
            row("St James's", 1, 1_841_200),
            row("West End", 2, 1_320_500),
            row("Marylebone", 3, 990_000),
        ],
        total: Some(row("total", 0, 4_151_700)),
        expected_slots: 1_323,
        ..Default::default()
    }
}

/// A console in the middle of a night: faults of every severity and state, a lamp found,
/// billing live.
fn busy_state() -> (State, Keymap) {
    let keymap = Keymap::load(None).unwrap();
    let mut state = State::new(
        "http://127.0.0.1:50051".into(),
        "ana".into(),
        chrono_tz::Europe::London,
        now(),
    );
    let net = |state: &mut State, event: NetEvent| {
        update(state, &keymap, Event::Net(event));
    };
    net(&mut state, NetEvent::Link(StreamName::Faults, Link::Live));
    net(&mut state, NetEvent::Link(StreamName::Billing, Link::Live));
    net(
        &mut state,
        NetEvent::Zones(vec![
            proto::Zone {
                id: 1,
                name: "St James's".into(),
                ..Default::default()
            },
            proto::Zone {
                id: 2,
                name: "West End".into(),
                ..Default::default()
            },
            proto::Zone {
                id: 3,
                name: "Marylebone".into(),
                ..Default::default()
            },
        ]),
    );
    use proto::{FaultState as S, FaultType as T, Severity as V};
    let faults = vec![
        fault(1, T::EarthLeakage, V::Critical, S::Open),
        fault(2, T::LampFailure, V::Major, S::Acknowledged),
        fault(3, T::DayBurner, V::Major, S::Assigned),
        fault(4, T::VoltageLow, V::Warning, S::Cleared),
        fault(5, T::Cycling, V::Minor, S::Open),
        fault(6, T::NodeOffline, V::Major, S::Open),
    ];
    net(&mut state, NetEvent::Snapshot { faults, seq: 40 });
    net(
        &mut state,
        NetEvent::Daily(proto::DailyFaultsResponse {
            date: "2026-11-28".into(),
            time_zone: "Europe/London".into(),
            hours: 24,
            minutes: 1440,
            total: 31,
            counts: vec![
                proto::DailyFaultCount {
                    r#type: T::LampFailure as i32,
                    severity: V::Major as i32,
                    count: 12,
                },
                proto::DailyFaultCount {
                    r#type: T::VoltageLow as i32,
                    severity: V::Warning as i32,
                    count: 15,
                },
                proto::DailyFaultCount {
                    r#type: T::EarthLeakage as i32,
                    severity: V::Critical as i32,
                    count: 4,
                },
            ],
            by_hour: (0..24).map(|h| (h * 7 % 5) as u32).collect(),
            ..Default::default()
        }),
    );
    net(
        &mut state,
        NetEvent::Lamp(proto::Lamp {
            id: 1002,
            reference: "WCC-001002".into(),
            zone_id: 3,
            lamp_type: Some(proto::LampType {
                id: 1,
                name: "LED 36 W".into(),
                wattage_w: 36,
                ..Default::default()
            }),
            ..Default::default()
        }),
    );
    net(
        &mut state,
        NetEvent::LampStatus(proto::LampStatus {
            lamp_id: 1002,
            health: proto::LampHealth::Fault as i32,
            worst_severity: V::Major as i32,
            open_faults: 1,
            last_heard: ts(3),
            lamp_on: true,
            dim_target_pct: 50,
            dim_actual_pct: 50,
            voltage_v: 231.4,
            current_a: 0.002,
            power_w: 0.4,
            power_factor: 0.31,
            energy_wh: 81_234,
            burn_hours: 9_876,
            temperature_c: 14.0,
            link_quality_pct: 88,
        }),
    );
    net(
        &mut state,
        NetEvent::ZoneLamps {
            zone_id: 3,
            points: (0..60)
                .map(|i| {
                    (
                        1000 + i,
                        51.52 + f64::from(i as i32 % 8) * 0.001,
                        -0.15 + f64::from(i as i32 / 8) * 0.001,
                    )
                })
                .collect(),
        },
    );
    net(
        &mut state,
        NetEvent::LiveTotals(proto::LiveTotals {
            today: Some(totals("2026-11-28", "2026-11-28")),
            month_to_date: Some(totals("2026-11-01", "2026-11-28")),
            settlement: 9,
        }),
    );
    update(&mut state, &keymap, Event::Key(Key::parse("j").unwrap()));
    update(&mut state, &keymap, Event::Key(Key::parse("j").unwrap()));
    update(
        &mut state,
        &keymap,
        Event::Key(Key::parse("space").unwrap()),
    );
    state.message = None;
    (state, keymap)
}

fn render(state: &mut State, keymap: &Keymap, theme: &Theme, width: u16, height: u16) -> String {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    state.page_rows = view::board_rows(height);
    state.refresh_view();
    terminal
        .draw(|frame| view::draw(frame, state, keymap, theme))
        .unwrap();
    let buffer = terminal.backend().buffer();
    if theme.name == "mono" {
        for cell in buffer.content() {
            assert!(
                cell.fg == ratatui::style::Color::Reset && cell.bg == ratatui::style::Color::Reset,
                "monochrome must not colour anything: {cell:?}"
            );
        }
    }
    let mut text = String::new();
    for y in 0..height {
        let line: String = (0..width)
            .map(|x| buffer[(x, y)].symbol().to_owned())
            .collect();
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

fn keys(state: &mut State, keymap: &Keymap, keys: &[&str]) {
    for key in keys {
        update(state, keymap, Event::Key(Key::parse(key).unwrap()));
    }
}

/// Each screen at both sizes; colour and monochrome render the same text.
fn screens() -> Vec<(&'static str, State, Keymap)> {
    let mut screens = Vec::new();
    let (state, keymap) = busy_state();
    screens.push(("faults", state, keymap));
    let (mut state, keymap) = busy_state();
    let open = state.selected.unwrap();
    state.detail = Some(Detail {
        fault_id: open,
        fault: state.faults.get(&open).cloned(),
        loaded: true,
        omitted: 0,
        history: vec![
            proto::HistoryEntry {
                at: ts(50),
                actor: "system".into(),
                action: "RAISED".into(),
                note: String::new(),
                ..Default::default()
            },
            proto::HistoryEntry {
                at: ts(20),
                actor: "ana".into(),
                action: "ACKNOWLEDGED".into(),
                note: "crew informed".into(),
                ..Default::default()
            },
        ],
        ..Default::default()
    });
    screens.push(("detail", state, keymap));
    let (mut state, keymap) = busy_state();
    keys(
        &mut state,
        &keymap,
        &["/", "s", "e", "v", ">", "=", "m", "a", "j", "o", "r"],
    );
    screens.push(("filter", state, keymap));
    let (mut state, keymap) = busy_state();
    keys(
        &mut state,
        &keymap,
        &["/", "s", "e", "v", ">", "=", "h", "u", "g", "e"],
    );
    screens.push(("filter_invalid", state, keymap));
    let (mut state, keymap) = busy_state();
    keys(
        &mut state,
        &keymap,
        &[
            "n", "c", "r", "e", "w", "space", "o", "n", "space", "s", "i", "t", "e",
        ],
    );
    screens.push(("note_prompt", state, keymap));
    let (mut state, keymap) = busy_state();
    keys(&mut state, &keymap, &[":", "l", "a"]);
    screens.push(("command", state, keymap));
    let (mut state, keymap) = busy_state();
    keys(&mut state, &keymap, &["f"]);
    update(
        &mut state,
        &keymap,
        Event::Net(NetEvent::Fault(proto::FaultEvent {
            seq: 41,
            fault: Some(fault(
                9,
                proto::FaultType::SupplyLoss,
                proto::Severity::Major,
                proto::FaultState::Open,
            )),
            ..Default::default()
        })),
    );
    screens.push(("frozen", state, keymap));
    let (mut state, keymap) = busy_state();
    keys(&mut state, &keymap, &["?"]);
    screens.push(("help", state, keymap));
    let (mut state, keymap) = busy_state();
    update(
        &mut state,
        &keymap,
        Event::Net(NetEvent::Link(
            StreamName::Faults,
            Link::Down {
                since: now() - chrono::Duration::minutes(4),
                retry_at: now() + chrono::Duration::seconds(8),
                error: "refused".into(),
            },
        )),
    );
    screens.push(("disconnected", state, keymap));
    let (mut state, keymap) = busy_state();
    state.tab = Tab::Lamps;
    screens.push(("lamps", state, keymap));
    let (mut state, keymap) = busy_state();
    state.tab = Tab::Billing;
    screens.push(("billing", state, keymap));
    let (mut state, keymap) = busy_state();
    state.tab = Tab::Billing;
    update(
        &mut state,
        &keymap,
        Event::Net(NetEvent::LampEnergy(proto::LampEnergy {
            lamp_id: 1002,
            date: "2026-11-28".into(),
            zone_id: 3,
            slots: (0..48)
                .map(|i| proto::EnergySlot {
                    index: i,
                    energy_wh: if !(16..=31).contains(&i) { 18 } else { 0 },
                    covered_seconds: if i < 42 { 1800 } else { 0 },
                    missing: (42..43).contains(&i),
                    ..Default::default()
                })
                .collect(),
            total: Some(proto::TotalsRow {
                energy_wh: 576,
                cost_millipence: 14_400,
                baseline_wh: 600,
                savings_wh: 24,
                ..Default::default()
            }),
        })),
    );
    screens.push(("billing_lamp", state, keymap));
    screens
}

#[test]
fn every_screen_at_80x24_and_160x48() {
    for (name, mut state, keymap) in screens() {
        for (width, height) in [(80, 24), (160, 48)] {
            let colour = render(&mut state, &keymap, &Theme::colour(), width, height);
            let mono = render(&mut state, &keymap, &Theme::mono(), width, height);
            insta::assert_snapshot!(format!("{name}_{width}x{height}"), colour);
            if name == "lamps" {
                // The map draws with plain dots where no colour can mark faulty lamps.
                insta::assert_snapshot!(format!("{name}_{width}x{height}_no_color"), mono);
            } else {
                assert_eq!(colour, mono, "{name}: the text must not depend on colour");
            }
        }
    }
}

#[test]
fn a_read_only_role_is_shown_and_its_triage_keys_are_hidden() {
    let (mut state, keymap) = busy_state();
    state.user = "field-dev".into();
    state.role = Some(singularity::domain::inventory::Role::Dev);
    let text = render(&mut state, &keymap, &Theme::mono(), 160, 48);
    assert!(text.contains("field-dev (dev, read-only)"), "{text}");
    assert!(text.contains("(read-only role: no triage)"), "{text}");
    assert!(!text.contains("a ack"), "{text}");
    state.role = Some(singularity::domain::inventory::Role::Manager);
    let text = render(&mut state, &keymap, &Theme::mono(), 160, 48);
    assert!(
        text.contains("field-dev (manager)") && text.contains("a ack"),
        "{text}"
    );
}

#[test]
fn a_session_that_ended_says_signed_out_and_turns_triage_off() {
    let (mut state, keymap) = busy_state();
    update(
        &mut state,
        &keymap,
        Event::Net(NetEvent::Link(
            StreamName::Faults,
            Link::SignedOut {
                since: now() - chrono::Duration::minutes(2),
                reason: "the session expired; sign in again".into(),
            },
        )),
    );
    let text = render(&mut state, &keymap, &Theme::mono(), 160, 48);
    assert!(
        text.contains("faults: signed out at") && text.contains(":login signs in again"),
        "{text}"
    );
    assert!(update(&mut state, &keymap, Event::Key(Key::parse("a").unwrap())).is_empty());
}

#[test]
fn below_80x24_it_says_so() {
    let (mut state, keymap) = busy_state();
    let text = render(&mut state, &keymap, &Theme::ansi(), 60, 20);
    assert!(
        text.contains("needs at least 80x24; this terminal is 60x20"),
        "{text}"
    );
}

#[test]
fn severity_and_state_read_without_colour() {
    let (mut state, keymap) = busy_state();
    let text = render(&mut state, &keymap, &Theme::mono(), 160, 48);
    for needle in [
        "!!C", "!M", ".m", ".w", "OPEN", "ACKED", "ASSIGNED", "CLEARED", "*",
    ] {
        assert!(text.contains(needle), "{needle} missing:\n{text}");
    }
}

#[test]
fn a_roll_up_shows_its_circuit_its_lamps_and_the_faults_under_it() {
    let (mut state, keymap) = busy_state();
    use proto::{FaultState as S, FaultType as T, Severity as V};
    let mut parent = fault(20, T::CircuitSupplyLoss, V::Critical, S::Open);
    parent.lamp_id = 0;
    let children: Vec<proto::Fault> = (21..=23)
        .map(|id| proto::Fault {
            parent_id: 20,
            ..fault(id, T::SupplyLoss, V::Major, S::Open)
        })
        .collect();
    let mut all: Vec<proto::Fault> = state.faults.values().cloned().collect();
    all.push(parent.clone());
    all.extend(children);
    update(
        &mut state,
        &keymap,
        Event::Net(NetEvent::Snapshot {
            faults: all,
            seq: 60,
        }),
    );
    state.detail = Some(Detail {
        fault_id: 20,
        fault: Some(parent),
        loaded: true,
        omitted: 0,
        ..Default::default()
    });
    let text = render(&mut state, &keymap, &Theme::mono(), 80, 24);
    assert!(text.contains("CIRCUIT_SUPPLY_LOSS on circuit 7"), "{text}");
    assert!(!text.contains("lamp 0"), "{text}");
    assert!(
        text.contains("3 lamp fault(s) rolled up under it"),
        "{text}"
    );
    assert!(text.contains("lamps 1021 1022 1023"), "{text}");
    assert!(
        text.contains("3 SUPPLY_LOSS OPEN: faults 21 22 23"),
        "{text}"
    );
}

#[test]
fn an_empty_board_says_the_feed_is_live_and_since_when() {
    let keymap = Keymap::load(None).unwrap();
    let mut state = State::new(
        "http://x".into(),
        "ana".into(),
        chrono_tz::Europe::London,
        now(),
    );
    update(
        &mut state,
        &keymap,
        Event::Net(NetEvent::Link(StreamName::Faults, Link::Live)),
    );
    let text = render(&mut state, &keymap, &Theme::mono(), 80, 24);
    assert!(
        text.contains("no active faults; feed live since 21:30"),
        "{text}"
    );
}

#[test]
fn wide_terminals_show_more_columns_and_z_gives_the_board_the_tab() {
    let (mut state, keymap) = busy_state();
    let wide = render(&mut state, &keymap, &Theme::mono(), 160, 48);
    for column in ["ID", "OPENED", "CIRCUIT", "LAST"] {
        assert!(wide.contains(column), "{column}:\n{wide}");
    }
    let narrow = render(&mut state, &keymap, &Theme::mono(), 80, 24);
    assert!(
        narrow.contains(" ID ") && !narrow.contains("OPENED"),
        "{narrow}"
    );
    update(&mut state, &keymap, Event::Key(Key::parse("z").unwrap()));
    let zoomed = render(&mut state, &keymap, &Theme::mono(), 80, 24);
    assert!(!zoomed.contains("Daily Faults"), "{zoomed}");
}

#[test]
fn text_that_does_not_fit_is_cut_with_an_ellipsis() {
    let (mut state, keymap) = busy_state();
    update(
        &mut state,
        &keymap,
        Event::Net(NetEvent::Zones(vec![proto::Zone {
            id: 2,
            name: "Westminster Abbey and Parliament Square".into(),
            ..Default::default()
        }])),
    );
    let text = render(&mut state, &keymap, &Theme::mono(), 80, 24);
    assert!(text.contains("Westmins…"), "{text}");
    assert!(!text.contains("Westminster Abbey and"), "{text}");
}

#[test]
fn an_outage_is_one_row_that_opens_into_its_lamps_and_the_board_groups_by_circuit() {
    let (mut state, keymap) = busy_state();
    use proto::{FaultState as S, FaultType as T, Severity as V};
    let mut seq = 40;
    let mut event = |state: &mut State, fault: proto::Fault| {
        seq += 1;
        update(
            state,
            &keymap,
            Event::Net(NetEvent::Fault(proto::FaultEvent {
                seq,
                kind: "RAISED".into(),
                fault: Some(fault),
                ..Default::default()
            })),
        );
    };
    for id in 21..24 {
        event(
            &mut state,
            proto::Fault {
                circuit_id: 38,
                parent_id: 20,
                ..fault(id, T::SupplyLoss, V::Major, S::Open)
            },
        );
    }
    event(
        &mut state,
        proto::Fault {
            lamp_id: 0,
            circuit_id: 38,
            ..fault(20, T::CircuitSupplyLoss, V::Critical, S::Open)
        },
    );
    let folded = render(&mut state, &keymap, &Theme::mono(), 80, 24);
    assert!(
        folded.contains("c38") && folded.contains("▸3 lamps CIRCU"),
        "{folded}"
    );
    assert!(!folded.contains("1021"), "{folded}");
    // The roll-up is the most severe and newest: it is the first row, where the cursor is.
    update(&mut state, &keymap, Event::Key(Key::parse("g").unwrap()));
    update(&mut state, &keymap, Event::Key(Key::parse("l").unwrap()));
    let open = render(&mut state, &keymap, &Theme::mono(), 80, 24);
    insta::assert_snapshot!("outage_expanded_80x24", open);
    assert!(open.contains("└1021") && open.contains("└1023"), "{open}");
    update(&mut state, &keymap, Event::Key(Key::parse("b").unwrap()));
    let grouped = render(&mut state, &keymap, &Theme::mono(), 120, 30);
    insta::assert_snapshot!("grouped_by_circuit_120x30", grouped);
    assert!(grouped.contains("grouped by circuit"), "{grouped}");
}

#[test]
fn the_handover_pane_reads_as_its_markdown() {
    let (mut state, keymap) = busy_state();
    use proto::{FaultState as S, FaultType as T, Severity as V};
    update(
        &mut state,
        &keymap,
        Event::Net(NetEvent::Handover(proto::HandoverResponse {
            since: ts(2 * 60 + 30),
            until: ts(0),
            time_zone: "Europe/London".into(),
            opened: 31,
            cleared: 12,
            resolved: 4,
            counts: vec![proto::ShiftCount {
                r#type: T::VoltageLow as i32,
                severity: V::Warning as i32,
                opened: 15,
                cleared: 10,
                resolved: 0,
            }],
            waiting: vec![fault(1, T::EarthLeakage, V::Critical, S::Open)],
            waiting_total: 1,
            operators: vec![proto::OperatorShift {
                actor: "ana".into(),
                acknowledged: 7,
                assigned: 2,
                resolved: 4,
                notes: 3,
            }],
            notes: vec![proto::ShiftNote {
                fault_id: 3,
                at: ts(40),
                actor: "ana".into(),
                action: "NOTE".into(),
                note: "crew-north on site, cable fault at the feeder pillar".into(),
            }],
            notes_total: 1,
            claims: vec![proto::ShiftClaim {
                fault_id: 1,
                claimed_by: "bo".into(),
                until: ts(-10),
            }],
            ..Default::default()
        })),
    );
    let text = render(&mut state, &keymap, &Theme::mono(), 80, 24);
    insta::assert_snapshot!("handover_80x24", text);
    assert!(text.contains("Shift handover: "), "{text}");
}
