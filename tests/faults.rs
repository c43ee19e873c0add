//! Telemetry in, faults out, over real gRPC: validation per report, the fault lifecycle,
//! Watch with replay and resume (across a restart too), racing operators, a watcher that never
//! reads, and Daily Faults on the DST change days.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

mod common;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use common::{TestServer, lamps_with_telecells, next_events, send, session_for};
use futures::StreamExt;
use singularity::domain::inventory::Role;
use singularity::link::with_token;
use singularity::proto::{self, faults_client::FaultsClient, lamps_client::LampsClient};
use singularity::store::sqlite::SqliteStore;
use singularity::wire::timestamp;
use tonic::Code;

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

/// The first fault the server lists.
async fn first_fault(server: &TestServer) -> proto::Fault {
    FaultsClient::new(server.channel.clone())
        .list(proto::ListFaultsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .next()
        .await
        .unwrap()
        .unwrap()
        .items
        .remove(0)
}

/// A healthy 36 W-class report; tests change what they need.
fn report(uuid: &str, lamp_id: i64, when: DateTime<Utc>) -> proto::TelecellReport {
    proto::TelecellReport {
        telecell_uuid: uuid.to_owned(),
        lamp_id,
        at: Some(timestamp(when)),
        lamp_on: true,
        dim_target_pct: 100,
        dim_actual_pct: 100,
        voltage_v: 236.0,
        current_a: 0.0,
        power_w: 0.0,
        power_factor: 0.95,
        energy_wh: 1_000,
        burn_hours: 100,
        switch_count: 10,
        supply_loss_count: 0,
        temperature_c: 20.0,
        link_quality_pct: 90,
        alarms: None,
    }
}

/// A lamp switched off (so neither failed nor burning by day) whose node reports earth leakage.
fn earth_leakage(uuid: &str, lamp_id: i64, when: DateTime<Utc>) -> proto::TelecellReport {
    proto::TelecellReport {
        lamp_on: false,
        alarms: Some(proto::NodeAlarms {
            earth_leakage: true,
            ..Default::default()
        }),
        ..report(uuid, lamp_id, when)
    }
}

/// A report of the lamp lit at its rated power, as a healthy lamp at night reports.
async fn lit_report(
    server: &TestServer,
    lamp_id: i64,
    uuid: &str,
    when: DateTime<Utc>,
) -> proto::TelecellReport {
    let lamp = LampsClient::new(server.channel.clone())
        .get(proto::IdRequest { id: lamp_id })
        .await
        .unwrap()
        .into_inner();
    let watts = f64::from(lamp.lamp_type.unwrap().wattage_w);
    proto::TelecellReport {
        power_w: watts,
        current_a: watts / (236.0 * 0.95),
        ..report(uuid, lamp_id, when)
    }
}

#[tokio::test]
async fn bad_reports_are_rejected_and_counted_while_good_ones_are_stored() {
    let mut server = TestServer::start(200).await;
    let lamps = lamps_with_telecells(&server, 2).await;
    let (lamp, uuid) = &lamps[0];
    let night = at("2026-11-27T22:00:00Z");
    let good = |minutes: i64| proto::TelecellReport {
        power_w: 36.0,
        current_a: 0.16,
        ..report(uuid, *lamp, night + chrono::Duration::minutes(minutes))
    };
    let reports = vec![
        good(0),
        proto::TelecellReport {
            voltage_v: f64::NAN,
            ..good(15)
        },
        proto::TelecellReport {
            telecell_uuid: "00000000-0000-4000-8000-000000000000".into(),
            ..good(15)
        },
        proto::TelecellReport {
            at: Some(timestamp(Utc::now() + chrono::Duration::days(1))),
            ..good(15)
        },
        proto::TelecellReport {
            lamp_id: lamps[1].0,
            ..good(15)
        },
        proto::TelecellReport {
            dim_actual_pct: 140,
            ..good(15)
        },
        good(30),
    ];
    let ack = send(&server, reports).await;
    assert_eq!(ack.received, 7);
    assert_eq!(ack.stored, 2);
    assert_eq!(ack.rejected, 5);
    let reasons: Vec<(u64, String)> = ack
        .rejections
        .iter()
        .map(|r| (r.index, r.reason.clone()))
        .collect();
    assert!(
        reasons[0].0 == 1 && reasons[0].1.starts_with("voltage_v"),
        "{reasons:?}"
    );
    assert!(reasons[1].1.starts_with("telecell_uuid"), "{reasons:?}");
    assert!(reasons[2].1.starts_with("at"), "{reasons:?}");
    assert!(reasons[3].1.starts_with("lamp_id"), "{reasons:?}");
    assert!(reasons[4].1.starts_with("dim_actual_pct"), "{reasons:?}");

    // A resent batch is recognised, and a late report does not overwrite newer state.
    let again = send(&server, vec![good(0), good(30)]).await;
    assert_eq!((again.stored, again.duplicates), (0, 2));
    let late = send(
        &server,
        vec![proto::TelecellReport {
            power_w: 35.0,
            ..good(20)
        }],
    )
    .await;
    assert_eq!((late.stored, late.out_of_order), (1, 1));
    let status = server.store.lamp_status(*lamp).unwrap().unwrap();
    assert_eq!(status.at, night + chrono::Duration::minutes(30));
    assert_eq!(status.power_w, 36.0);
    server.stop().await;
}

#[tokio::test]
async fn a_failed_lamp_raises_dedups_clears_and_keeps_its_history() {
    let mut server = TestServer::start(100).await;
    let (lamp, uuid) = lamps_with_telecells(&server, 1).await.remove(0);
    let night = at("2026-11-27T22:00:00Z");
    let minutes = |m: i64| night + chrono::Duration::minutes(m);
    let healthy = |m: i64| proto::TelecellReport {
        power_w: 36.0,
        current_a: 0.16,
        ..report(&uuid, lamp, minutes(m))
    };
    send(
        &server,
        vec![
            report(&uuid, lamp, minutes(0)),
            report(&uuid, lamp, minutes(15)),
        ],
    )
    .await;

    let mut faults = FaultsClient::new(server.channel.clone());
    let filter = proto::FaultFilter {
        lamp_id: lamp,
        ..Default::default()
    };
    let mut pages = faults
        .list(proto::ListFaultsRequest {
            filter: Some(filter.clone()),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let page = pages.next().await.unwrap().unwrap();
    assert_eq!(
        page.items.len(),
        1,
        "one fault per (lamp, type), however often it is seen"
    );
    let fault = &page.items[0];
    assert_eq!(fault.r#type, proto::FaultType::LampFailure as i32);
    assert_eq!(fault.severity, proto::Severity::Major as i32);
    assert_eq!(fault.count, 2);
    assert!(page.snapshot_seq >= 2);

    // Healthy again: cleared only once the hold-down (20 min) has passed.
    send(&server, vec![healthy(30), healthy(45)]).await;
    let detail = faults
        .get(proto::GetFaultRequest { id: fault.id })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        detail.fault.as_ref().unwrap().state,
        proto::FaultState::Open as i32
    );
    send(&server, vec![healthy(55)]).await;
    let detail = faults
        .get(proto::GetFaultRequest { id: fault.id })
        .await
        .unwrap()
        .into_inner();
    let cleared = detail.fault.unwrap();
    assert_eq!(cleared.state, proto::FaultState::Cleared as i32);
    let actions: Vec<&str> = detail.history.iter().map(|h| h.action.as_str()).collect();
    assert_eq!(actions, vec!["RAISED", "REPEATED", "CLEARED"]);
    assert!(detail.history.iter().all(|h| h.actor == "system"));

    // A cleared fault stays until someone acknowledges it. The action is recorded as the
    // signed-in user, whatever the request's own actor field says.
    let night_shift = session_for(server.store.as_ref(), "night.shift", Role::User);
    let acked = FaultsClient::new(with_token(server.bare.clone(), Some(&night_shift)).unwrap())
        .acknowledge(proto::FaultActionRequest {
            fault_id: cleared.id,
            expected_version: cleared.version,
            note: "saw it come back".into(),
            actor: "somebody.else".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(acked.acknowledged);
    assert_eq!(acked.state, proto::FaultState::Cleared as i32);
    let detail = faults
        .get(proto::GetFaultRequest { id: cleared.id })
        .await
        .unwrap()
        .into_inner();
    let last = detail.history.last().unwrap();
    assert_eq!(
        (last.actor.as_str(), last.note.as_str()),
        ("night.shift", "saw it come back")
    );
    server.stop().await;
}

#[tokio::test]
async fn sightings_and_notes_never_make_an_action_stale_and_a_refusal_says_who_changed_what() {
    let mut server = TestServer::start(100).await;
    let (lamp, uuid) = lamps_with_telecells(&server, 1).await.remove(0);
    let start = at("2026-11-27T12:00:00Z");
    send(&server, vec![earth_leakage(&uuid, lamp, start)]).await;
    let mut faults = FaultsClient::new(server.channel.clone());
    let fault = first_fault(&server).await;
    assert_eq!(fault.version, 1);
    // The node keeps reporting the leak every minute: sightings, not decisions.
    let repeats = (1..=5)
        .map(|m| earth_leakage(&uuid, lamp, start + chrono::Duration::minutes(m)))
        .collect();
    send(&server, repeats).await;
    let seen = faults
        .get(proto::GetFaultRequest { id: fault.id })
        .await
        .unwrap()
        .into_inner()
        .fault
        .unwrap();
    assert_eq!(
        (seen.count, seen.version),
        (6, 1),
        "sightings leave the version"
    );
    // So the version the operator read still works.
    let acked = faults
        .acknowledge(proto::FaultActionRequest {
            fault_id: fault.id,
            expected_version: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(acked.version, 2);
    // A note needs no version and moves none.
    let noted = faults
        .add_note(proto::FaultActionRequest {
            fault_id: fault.id,
            note: "crew on the way".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(noted.version, 2);
    // Someone assigns it; an action based on version 2 is refused, naming who did what.
    let other = session_for(server.store.as_ref(), "bo", Role::User);
    FaultsClient::new(with_token(server.bare.clone(), Some(&other)).unwrap())
        .assign(proto::AssignFaultRequest {
            fault_id: fault.id,
            expected_version: 2,
            assignee: "crew-1".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let stale = faults
        .resolve(proto::FaultActionRequest {
            fault_id: fault.id,
            expected_version: 2,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(stale.code(), Code::Aborted);
    let message = stale.message();
    assert!(
        message.starts_with(&format!(
            "fault {} changed since version 2: assigned to crew-1 by bo at ",
            fault.id
        )) && message.ends_with("it is now version 3, ASSIGNED"),
        "{message}"
    );
    // The history says what each change was.
    let history = faults
        .get(proto::GetFaultRequest { id: fault.id })
        .await
        .unwrap()
        .into_inner()
        .history;
    let assigned = history.iter().find(|h| h.action == "ASSIGNED").unwrap();
    assert_eq!(
        (assigned.actor.as_str(), assigned.change.as_str()),
        ("bo", "to crew-1")
    );
    server.stop().await;
}

#[tokio::test]
async fn two_operators_acknowledging_one_fault_exactly_one_wins() {
    let mut server = TestServer::start(100).await;
    let (lamp, uuid) = lamps_with_telecells(&server, 1).await.remove(0);
    send(
        &server,
        vec![earth_leakage(&uuid, lamp, at("2026-11-27T12:00:00Z"))],
    )
    .await;
    let mut faults = FaultsClient::new(server.channel.clone());
    let fault = first_fault(&server).await;
    let race = |actor: &'static str| {
        let mut client = FaultsClient::new(server.channel.clone());
        let (id, version) = (fault.id, fault.version);
        tokio::spawn(async move {
            client
                .acknowledge(proto::FaultActionRequest {
                    fault_id: id,
                    expected_version: version,
                    note: String::new(),
                    actor: actor.into(),
                })
                .await
        })
    };
    let (a, b) = (race("alice"), race("bob"));
    let outcomes = [a.await.unwrap(), b.await.unwrap()];
    let wins = outcomes.iter().filter(|o| o.is_ok()).count();
    assert_eq!(wins, 1);
    let loser = outcomes.iter().find_map(|o| o.as_ref().err()).unwrap();
    assert_eq!(loser.code(), Code::Aborted);
    assert!(
        loser.message().contains("ACKNOWLEDGED"),
        "the refusal shows what changed: {}",
        loser.message()
    );

    // Bad triage input.
    let (code, message) = match faults
        .assign(proto::AssignFaultRequest {
            fault_id: fault.id,
            expected_version: fault.version + 1,
            assignee: " ".into(),
            ..Default::default()
        })
        .await
    {
        Err(status) => (status.code(), status.message().to_owned()),
        Ok(_) => panic!("an empty assignee must be refused"),
    };
    assert_eq!(code, Code::InvalidArgument);
    assert!(message.starts_with("assignee"), "{message}");
    let missing = faults
        .acknowledge(proto::FaultActionRequest {
            fault_id: 999_999,
            expected_version: 1,
            ..Default::default()
        })
        .await;
    assert_eq!(missing.unwrap_err().code(), Code::NotFound);
    let unversioned = faults
        .acknowledge(proto::FaultActionRequest {
            fault_id: fault.id,
            ..Default::default()
        })
        .await;
    assert!(
        unversioned
            .unwrap_err()
            .message()
            .starts_with("expected_version")
    );
    server.stop().await;
}

#[tokio::test]
async fn watch_replays_exactly_the_missed_events_after_a_reconnect_and_a_restart() {
    let mut server = TestServer::start_on_sqlite(300).await;
    let lamps = lamps_with_telecells(&server, 12).await;
    let noon = at("2026-11-27T12:00:00Z");
    // Three faults before anyone watches.
    send(
        &server,
        lamps[..3]
            .iter()
            .map(|(l, u)| earth_leakage(u, *l, noon))
            .collect(),
    )
    .await;

    let mut faults = FaultsClient::new(server.channel.clone());
    let mut watch = faults
        .watch(proto::WatchFaultsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let replayed = next_events(&mut watch, 3).await;
    assert_eq!(
        replayed.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    // Live events follow the replay with no gap.
    send(&server, vec![earth_leakage(&lamps[3].1, lamps[3].0, noon)]).await;
    let live = next_events(&mut watch, 1).await;
    assert_eq!(live[0].seq, 4);
    drop(watch);

    // Disconnected: three events happen. Reconnecting after seq 4 gets exactly those.
    send(
        &server,
        lamps[4..7]
            .iter()
            .map(|(l, u)| earth_leakage(u, *l, noon))
            .collect(),
    )
    .await;
    let mut watch = faults
        .watch(proto::WatchFaultsRequest {
            after_seq: 4,
            filter: None,
        })
        .await
        .unwrap()
        .into_inner();
    let missed = next_events(&mut watch, 3).await;
    assert_eq!(
        missed.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![5, 6, 7]
    );
    assert!(missed.iter().all(|e| e.kind == "RAISED"));
    drop(watch);

    // Across a restart: the log and the seq survive.
    server.stop().await;
    let dir = std::mem::replace(&mut server.dir, tempfile::tempdir().unwrap());
    let store = server.store.clone();
    store.close();
    drop(store);
    let reopened = Arc::new(SqliteStore::open(&dir.path().join("estate.db")).unwrap());
    let mut server = TestServer::on_store(dir, reopened).await;
    send(
        &server,
        lamps[7..9]
            .iter()
            .map(|(l, u)| earth_leakage(u, *l, noon))
            .collect(),
    )
    .await;
    let mut faults = FaultsClient::new(server.channel.clone());
    let mut watch = faults
        .watch(proto::WatchFaultsRequest {
            after_seq: 7,
            filter: None,
        })
        .await
        .unwrap()
        .into_inner();
    let after_restart = next_events(&mut watch, 2).await;
    assert_eq!(
        after_restart.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![8, 9]
    );
    let quiet = tokio::time::timeout(Duration::from_millis(300), watch.next()).await;
    assert!(quiet.is_err(), "nothing is delivered twice");

    // A filtered watcher sees only what matches, and a seq from the future is refused.
    let filter = proto::FaultFilter {
        lamp_id: lamps[9].0,
        ..Default::default()
    };
    let mut narrow = faults
        .watch(proto::WatchFaultsRequest {
            after_seq: 9,
            filter: Some(filter),
        })
        .await
        .unwrap()
        .into_inner();
    send(
        &server,
        lamps[10..12]
            .iter()
            .chain(&lamps[9..10])
            .map(|(l, u)| earth_leakage(u, *l, noon))
            .collect(),
    )
    .await;
    let matched = next_events(&mut narrow, 1).await;
    assert_eq!(matched[0].fault.as_ref().unwrap().lamp_id, lamps[9].0);
    let ahead = faults
        .watch(proto::WatchFaultsRequest {
            after_seq: 10_000,
            filter: None,
        })
        .await;
    assert_eq!(ahead.unwrap_err().code(), Code::InvalidArgument);
    server.stop().await;
}

#[tokio::test]
async fn a_watcher_that_never_reads_does_not_stop_ingest_and_is_told_to_resync() {
    // A small buffer, so that 1,200 events are more than a stalled watcher may fall behind.
    let mut config = common::config();
    config.limits.watcher_buffer = 256;
    let mut server = TestServer::start_with(1_500, config).await;
    let lamps = lamps_with_telecells(&server, 1_200).await;
    let noon = at("2026-11-27T12:00:00Z");
    let mut faults = FaultsClient::new(server.channel.clone());
    // A client on its own connection with small HTTP/2 windows, so what it does not read
    // backs up into the server instead of into the client's receive buffers.
    let slow = tonic::transport::Endpoint::from_shared(server.url())
        .unwrap()
        .initial_stream_window_size(16 * 1024)
        .initial_connection_window_size(16 * 1024)
        .connect()
        .await
        .unwrap();
    let slow = with_token(slow, Some(&server.token)).unwrap();
    let mut stalled = FaultsClient::new(slow)
        .watch(proto::WatchFaultsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let mut reader = faults
        .watch(proto::WatchFaultsRequest::default())
        .await
        .unwrap()
        .into_inner();

    let reports: Vec<_> = lamps
        .iter()
        .map(|(l, u)| earth_leakage(u, *l, noon))
        .collect();
    let ack = tokio::time::timeout(Duration::from_secs(60), send(&server, reports))
        .await
        .expect("ingest is not held up by a watcher that does not read");
    assert_eq!(ack.stored, lamps.len() as u64);

    let seen = next_events(&mut reader, lamps.len()).await;
    let seqs: Vec<u64> = seen.iter().map(|e| e.seq).collect();
    assert_eq!(
        seqs,
        (1..=lamps.len() as u64).collect::<Vec<_>>(),
        "the reading watcher missed nothing"
    );

    // The stalled watcher gets what was buffered for it, then a status saying where to resume.
    let mut delivered = 0;
    let status = loop {
        match tokio::time::timeout(Duration::from_secs(10), stalled.next())
            .await
            .unwrap()
        {
            Some(Ok(_)) => delivered += 1,
            Some(Err(status)) => break status,
            None => panic!("the stream must end with a status, not silently"),
        }
    };
    assert!(delivered < lamps.len());
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert!(
        status.message().contains(&format!("after_seq {delivered}")),
        "{}",
        status.message()
    );
    server.stop().await;
}

#[tokio::test]
async fn daily_faults_follow_the_local_day_across_dst_changes() {
    let mut server = TestServer::start(300).await;
    let lamps = lamps_with_telecells(&server, 9).await;
    let instants = [
        "2026-03-28T23:30:00Z", // 28 March, 23:30 GMT: the day before
        "2026-03-29T00:30:00Z", // 29 March, 00:30 GMT: hour 0
        "2026-03-29T22:30:00Z", // 29 March, 23:30 BST: the last hour of a 23-hour day
        "2026-03-29T23:30:00Z", // 30 March, 00:30 BST: the day after
        "2026-10-24T23:30:00Z", // 25 October, 00:30 BST: hour 0
        "2026-10-25T01:30:00Z", // 25 October, 01:30 GMT: the repeated hour, slot 2
        "2026-10-25T23:30:00Z", // 25 October, 23:30 GMT: hour 24 of a 25-hour day
        "2026-10-26T00:30:00Z", // 26 October: the day after
        "2026-04-05T13:10:00Z", // 5 April, 23:40 at Lord Howe: the last half hour of 24.5
    ];
    let reports = lamps
        .iter()
        .zip(instants)
        .map(|((l, u), t)| earth_leakage(u, *l, at(t)))
        .collect();
    send(&server, reports).await;
    let mut faults = FaultsClient::new(server.channel.clone());
    let spring = faults
        .daily_faults(proto::DailyFaultsRequest {
            date: "2026-03-29".into(),
            time_zone: "Europe/London".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((spring.hours, spring.total), (23, 2));
    assert_eq!(spring.by_hour.len(), 23);
    assert_eq!((spring.by_hour[0], spring.by_hour[22]), (1, 1));
    assert_eq!(spring.counts.len(), 1);
    assert_eq!(
        spring.counts[0].r#type,
        proto::FaultType::EarthLeakage as i32
    );
    assert_eq!(spring.counts[0].severity, proto::Severity::Critical as i32);

    let autumn = faults
        .daily_faults(proto::DailyFaultsRequest {
            date: "2026-10-25".into(),
            time_zone: "Europe/London".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((autumn.hours, autumn.total), (25, 3));
    assert_eq!(
        (autumn.by_hour[0], autumn.by_hour[2], autumn.by_hour[24]),
        (1, 1, 1)
    );
    assert_eq!(autumn.minutes, 25 * 60);

    // Lord Howe Island shifts by half an hour: its day is 24.5 hours, in 25 slots.
    let half = faults
        .daily_faults(proto::DailyFaultsRequest {
            date: "2026-04-05".into(),
            time_zone: "Australia/Lord_Howe".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((half.minutes, half.hours, half.total), (1470, 25, 1));
    assert_eq!(half.by_hour.len(), 25);
    assert_eq!(half.by_hour[24], 1, "the short last hour is counted");

    let bad_zone = faults
        .daily_faults(proto::DailyFaultsRequest {
            date: "2026-10-25".into(),
            time_zone: "Narnia".into(),
        })
        .await;
    assert!(bad_zone.unwrap_err().message().starts_with("time_zone"));
    let bad_date = faults
        .daily_faults(proto::DailyFaultsRequest {
            date: "25/10/2026".into(),
            time_zone: "UTC".into(),
        })
        .await;
    assert!(bad_date.unwrap_err().message().starts_with("date"));
    server.stop().await;
}

#[tokio::test]
async fn lamp_status_derives_health_and_streams_changes() {
    let mut server = TestServer::start(100).await;
    let lamps = lamps_with_telecells(&server, 3).await;
    let mut client = LampsClient::new(server.channel.clone());
    let unknown = client
        .get_status(proto::IdRequest { id: lamps[2].0 })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(unknown.health, proto::LampHealth::Unknown as i32);
    assert!(unknown.last_heard.is_none());
    assert_eq!(
        client
            .get_status(proto::IdRequest { id: 999_999 })
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );

    let mut watch = client
        .watch_status(proto::WatchStatusRequest {
            lamp_ids: vec![lamps[0].0, lamps[1].0],
            zone_id: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let initial: Vec<proto::LampStatus> = vec![
        watch.next().await.unwrap().unwrap(),
        watch.next().await.unwrap().unwrap(),
    ];
    assert!(
        initial
            .iter()
            .all(|s| s.health == proto::LampHealth::Unknown as i32)
    );

    let night = at("2026-11-27T22:00:00Z");
    let lit = lit_report(&server, lamps[0].0, &lamps[0].1, night).await;
    let watts = lit.power_w;
    send(&server, vec![lit]).await;
    let update = tokio::time::timeout(Duration::from_secs(10), watch.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(update.lamp_id, lamps[0].0);
    assert_eq!(update.health, proto::LampHealth::Ok as i32, "{update:?}");
    assert_eq!(update.power_w, watts);
    assert_eq!(update.last_heard, Some(timestamp(night)));

    send(&server, vec![earth_leakage(&lamps[1].1, lamps[1].0, night)]).await;
    let mut faulty = None;
    while faulty.is_none() {
        let s = tokio::time::timeout(Duration::from_secs(10), watch.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if s.lamp_id == lamps[1].0 && s.health == proto::LampHealth::Fault as i32 {
            faulty = Some(s);
        }
    }
    let faulty = faulty.unwrap();
    assert_eq!(faulty.worst_severity, proto::Severity::Critical as i32);
    assert_eq!(faulty.open_faults, 1);

    let empty = client
        .watch_status(proto::WatchStatusRequest::default())
        .await;
    assert!(empty.unwrap_err().message().starts_with("lamp_ids"));
    server.stop().await;
}

/// Every lamp of the estate with its telecell's uuid.
async fn all_lamps(server: &TestServer) -> Vec<(proto::Lamp, String)> {
    let mut telecells =
        singularity::proto::telecells_client::TelecellsClient::new(server.channel.clone());
    let mut uuids = std::collections::HashMap::new();
    let mut stream = telecells
        .list(proto::ListOptions::default())
        .await
        .unwrap()
        .into_inner();
    while let Some(page) = stream.next().await {
        for t in page.unwrap().items {
            uuids.insert(t.id, t.uuid);
        }
    }
    let mut lamps = LampsClient::new(server.channel.clone());
    let mut stream = lamps
        .list(proto::ListOptions::default())
        .await
        .unwrap()
        .into_inner();
    let mut all = Vec::new();
    while let Some(page) = stream.next().await {
        for lamp in page.unwrap().items {
            let uuid = uuids[&lamp.telecell_id].clone();
            all.push((lamp, uuid));
        }
    }
    all
}

async fn faults_of(server: &TestServer, fault_type: proto::FaultType) -> Vec<proto::Fault> {
    faults_by(
        server,
        proto::FaultFilter {
            types: vec![fault_type as i32],
            ..Default::default()
        },
    )
    .await
}

/// The lamps of the estate's first circuit, with their telecells.
async fn first_circuit(server: &TestServer) -> (i64, Vec<(i64, String)>) {
    let lamps = all_lamps(server).await;
    let circuit_of = |lamp: &proto::Lamp| lamp.asset_id;
    let mut assets = singularity::proto::assets_client::AssetsClient::new(server.channel.clone());
    let first_asset = assets
        .get(proto::IdRequest {
            id: circuit_of(&lamps[0].0),
        })
        .await
        .unwrap()
        .into_inner();
    let mut on_circuit = Vec::new();
    for (lamp, uuid) in &lamps {
        let asset = assets
            .get(proto::IdRequest { id: lamp.asset_id })
            .await
            .unwrap()
            .into_inner();
        if asset.circuit_id == first_asset.circuit_id {
            on_circuit.push((lamp.id, uuid.clone()));
        }
    }
    assert!(on_circuit.len() >= 20, "circuits hold 20-200 lamps");
    (first_asset.circuit_id, on_circuit)
}

/// Every lamp of the circuit reports its supply lost at `night`.
fn supply_lost(on_circuit: &[(i64, String)], night: DateTime<Utc>) -> Vec<proto::TelecellReport> {
    on_circuit
        .iter()
        .map(|(lamp, uuid)| proto::TelecellReport {
            voltage_v: 0.0,
            alarms: Some(proto::NodeAlarms {
                supply_lost: true,
                ..Default::default()
            }),
            ..report(uuid, *lamp, night)
        })
        .collect()
}

#[tokio::test]
async fn a_circuit_losing_supply_rolls_up_under_one_critical_fault() {
    let mut server = TestServer::start(400).await;
    let (circuit, on_circuit) = first_circuit(&server).await;
    let night = at("2026-11-27T22:00:00Z");
    let outage: Vec<_> = on_circuit
        .iter()
        .map(|(lamp, uuid)| proto::TelecellReport {
            voltage_v: 0.0,
            alarms: Some(proto::NodeAlarms {
                supply_lost: true,
                ..Default::default()
            }),
            ..report(uuid, *lamp, night)
        })
        .collect();
    send(&server, outage).await;
    let parents = faults_of(&server, proto::FaultType::CircuitSupplyLoss).await;
    assert_eq!(
        parents.len(),
        1,
        "one line for the circuit, not one per lamp"
    );
    let parent = &parents[0];
    assert_eq!(parent.severity, proto::Severity::Critical as i32);
    assert_eq!(parent.circuit_id, circuit);
    assert_eq!(parent.lamp_id, 0);
    let children = faults_of(&server, proto::FaultType::SupplyLoss).await;
    assert_eq!(children.len(), on_circuit.len());
    assert!(children.iter().all(|c| c.parent_id == parent.id));

    // Supply back on every lamp: the lamp faults clear after the hold-down, then the circuit's.
    for minutes in [15, 45] {
        let when = night + chrono::Duration::minutes(minutes);
        send(
            &server,
            on_circuit
                .iter()
                .map(|(lamp, uuid)| proto::TelecellReport {
                    lamp_on: false,
                    ..report(uuid, *lamp, when)
                })
                .collect(),
        )
        .await;
    }
    let parents = faults_of(&server, proto::FaultType::CircuitSupplyLoss).await;
    assert_eq!(parents[0].state, proto::FaultState::Cleared as i32);
    server.stop().await;
}

#[tokio::test]
async fn silence_raises_node_offline_and_a_silent_basestation_is_one_fault() {
    let config = singularity::server::ServerConfig {
        sweep_interval: Duration::from_millis(100),
        startup_grace: chrono::Duration::zero(),
        ..common::config()
    };
    let mut server = TestServer::start_with(150, config.clone()).await;
    let lamps = all_lamps(&server).await;
    let now = Utc::now();
    // Every lamp reports now but one, last heard two hours ago.
    let (quiet_lamp, quiet_uuid) = (&lamps[0].0, &lamps[0].1);
    let mut reports = vec![proto::TelecellReport {
        lamp_on: false,
        ..report(quiet_uuid, quiet_lamp.id, now - chrono::Duration::hours(2))
    }];
    reports.extend(lamps[1..].iter().map(|(lamp, uuid)| proto::TelecellReport {
        lamp_on: false,
        ..report(uuid, lamp.id, now)
    }));
    send(&server, reports).await;
    let mut offline = Vec::new();
    for _ in 0..50 {
        offline = faults_of(&server, proto::FaultType::NodeOffline).await;
        if !offline.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(offline.len(), 1);
    assert_eq!(offline[0].lamp_id, quiet_lamp.id);
    assert!(
        faults_of(&server, proto::FaultType::BasestationOffline)
            .await
            .is_empty()
    );
    server.stop().await;

    // A whole basestation falling silent is one fault, and its nodes' offline faults are held back.
    let mut server = TestServer::start_with(150, config).await;
    let lamps = all_lamps(&server).await;
    let long_ago = Utc::now() - chrono::Duration::hours(3);
    send(
        &server,
        lamps
            .iter()
            .map(|(lamp, uuid)| proto::TelecellReport {
                lamp_on: false,
                ..report(uuid, lamp.id, long_ago)
            })
            .collect(),
    )
    .await;
    let mut outages = Vec::new();
    for _ in 0..50 {
        outages = faults_of(&server, proto::FaultType::BasestationOffline).await;
        if !outages.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(outages.len(), 1);
    assert_eq!(outages[0].severity, proto::Severity::Critical as i32);
    assert!(
        faults_of(&server, proto::FaultType::NodeOffline)
            .await
            .is_empty()
    );
    server.stop().await;
}

#[tokio::test]
async fn a_seq_older_than_the_log_gets_a_resync_error() {
    let mut server = TestServer::start(100).await;
    let lamps = lamps_with_telecells(&server, 3).await;
    let old = at("2026-11-20T12:00:00Z");
    send(
        &server,
        lamps
            .iter()
            .map(|(l, u)| earth_leakage(u, *l, old))
            .collect(),
    )
    .await;
    // Events are stamped with the instant of the reading; drop everything before today.
    let dropped = server.store.prune_fault_log(Utc::now()).unwrap();
    assert_eq!(dropped, 2, "the newest event is always kept");
    let mut faults = FaultsClient::new(server.channel.clone());
    let status = faults
        .watch(proto::WatchFaultsRequest {
            after_seq: 1,
            filter: None,
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::OutOfRange);
    assert!(status.message().contains("resync"), "{}", status.message());
    // From the snapshot a listing gives, watching works again.
    let snapshot = faults
        .list(proto::ListFaultsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .next()
        .await
        .unwrap()
        .unwrap()
        .snapshot_seq;
    assert_eq!(snapshot, 3);
    let mut everything = faults
        .watch(proto::WatchFaultsRequest {
            after_seq: 0,
            filter: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        next_events(&mut everything, 1).await[0].seq,
        3,
        "0 replays what the log still holds"
    );
    assert!(
        faults
            .watch(proto::WatchFaultsRequest {
                after_seq: snapshot,
                filter: None
            })
            .await
            .is_ok()
    );
    server.stop().await;
}

#[tokio::test]
async fn a_batch_the_database_refuses_is_judged_afresh_when_resent() {
    let server = TestServer::start_on_sqlite(10).await;
    let lamps = lamps_with_telecells(&server, 2).await;
    let when = Utc::now() - chrono::Duration::minutes(5);
    let reports: Vec<proto::TelecellReport> = lamps
        .iter()
        .map(|(lamp, uuid)| earth_leakage(uuid, *lamp, when))
        .collect();
    // The disk refuses the second lamp's reading: the whole batch must be refused, and the
    // engine must forget the faults it judged for it.
    let database = rusqlite::Connection::open(server.dir.path().join("estate.db")).unwrap();
    database
        .execute_batch(&format!(
            "CREATE TRIGGER refuse BEFORE INSERT ON readings WHEN NEW.lamp_id = {} \
             BEGIN SELECT RAISE(ABORT, 'disk trouble'); END",
            lamps[1].0
        ))
        .unwrap();
    let refused =
        singularity::proto::telemetry_client::TelemetryClient::new(server.channel.clone())
            .report(futures::stream::iter(reports.clone()))
            .await
            .unwrap_err();
    assert_eq!(refused.code(), Code::Internal, "{refused:?}");
    assert!(
        faults_of(&server, proto::FaultType::EarthLeakage)
            .await
            .is_empty()
    );

    database.execute_batch("DROP TRIGGER refuse").unwrap();
    let ack = send(&server, reports).await;
    assert_eq!((ack.stored, ack.rejected), (2, 0));
    let raised = faults_of(&server, proto::FaultType::EarthLeakage).await;
    assert_eq!(
        raised.len(),
        2,
        "the resent reports raise their faults again, as if the first try never happened"
    );
    assert!(raised.iter().all(|f| f.count == 1), "{raised:?}");
}

#[tokio::test]
async fn one_call_acts_on_a_roll_up_and_its_lamp_faults_and_names_each_refusal() {
    let mut server = TestServer::start(400).await;
    let (_, on_circuit) = first_circuit(&server).await;
    send(
        &server,
        supply_lost(&on_circuit, at("2026-11-27T22:00:00Z")),
    )
    .await;
    let parent = faults_of(&server, proto::FaultType::CircuitSupplyLoss)
        .await
        .remove(0);
    let mut faults = FaultsClient::new(server.channel.clone());
    // The lamp faults under the roll-up, listed by their parent.
    let under = faults_by(
        &server,
        proto::FaultFilter {
            parent_id: parent.id,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(under.len(), on_circuit.len());
    // Someone acknowledged one lamp fault already.
    let taken = &under[0];
    faults
        .acknowledge(proto::FaultActionRequest {
            fault_id: taken.id,
            expected_version: taken.version,
            ..Default::default()
        })
        .await
        .unwrap();

    let many = |action: proto::TriageAction, faults: Vec<(i64, i64)>| proto::ActOnManyRequest {
        action: action as i32,
        faults: faults
            .into_iter()
            .map(|(fault_id, expected_version)| proto::FaultAtVersion {
                fault_id,
                expected_version,
            })
            .collect(),
        include_children: true,
        ..Default::default()
    };
    // Bad requests are refused whole, naming the field.
    for (request, field) in [
        (
            many(proto::TriageAction::Unspecified, vec![(parent.id, 1)]),
            "action",
        ),
        (many(proto::TriageAction::Acknowledge, vec![]), "faults"),
        (
            many(
                proto::TriageAction::Acknowledge,
                (1..=1_001).map(|id| (id, 1)).collect(),
            ),
            "faults",
        ),
        (
            many(proto::TriageAction::Assign, vec![(parent.id, 1)]),
            "assignee",
        ),
        (
            many(proto::TriageAction::Acknowledge, vec![(-3, 1)]),
            "fault_id",
        ),
    ] {
        let refused = faults.act_on_many(request).await.unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
        assert!(refused.message().contains(field), "{field}: {refused:?}");
    }
    // A note without its text is refused whole too.
    let stale = faults
        .act_on_many(many(
            proto::TriageAction::AddNote,
            vec![(parent.id, parent.version)],
        ))
        .await
        .unwrap_err();
    assert!(
        stale.message().contains("note"),
        "a note needs its text: {stale:?}"
    );

    let reply = faults
        .act_on_many(many(
            proto::TriageAction::Acknowledge,
            vec![(parent.id, parent.version)],
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        reply.done.len(),
        on_circuit.len(),
        "the roll-up and every lamp but one"
    );
    assert_eq!(reply.done[0].id, parent.id);
    assert!(
        reply
            .done
            .iter()
            .all(|f| f.state == proto::FaultState::Acknowledged as i32)
    );
    assert_eq!(reply.refused.len(), 1, "{:?}", reply.refused);
    assert_eq!(reply.refused[0].fault_id, taken.id);
    assert_eq!(
        reply.refused[0].code, "FAILED_PRECONDITION",
        "{:?}",
        reply.refused
    );

    // Again with the version the caller saw before: the roll-up is stale now.
    let again = faults
        .act_on_many(many(
            proto::TriageAction::Resolve,
            vec![(parent.id, parent.version)],
        ))
        .await
        .unwrap()
        .into_inner();
    let roll_up = again
        .refused
        .iter()
        .find(|r| r.fault_id == parent.id)
        .unwrap();
    assert_eq!(roll_up.code, "ABORTED");
    assert!(
        roll_up.reason.contains("changed since version"),
        "{roll_up:?}"
    );
    // A dev may not triage at all: the whole call is refused, nothing done.
    let dev = session_for(server.store.as_ref(), "dev.only", Role::Dev);
    let refused = FaultsClient::new(with_token(server.bare.clone(), Some(&dev)).unwrap())
        .act_on_many(many(
            proto::TriageAction::Resolve,
            vec![(parent.id, parent.version + 1)],
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    server.stop().await;
}

async fn faults_by(server: &TestServer, filter: proto::FaultFilter) -> Vec<proto::Fault> {
    let mut stream = FaultsClient::new(server.channel.clone())
        .list(proto::ListFaultsRequest {
            filter: Some(filter),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut found = Vec::new();
    while let Some(page) = stream.next().await {
        found.extend(page.unwrap().items);
    }
    found
}
