//! Billing over real gRPC: a month of reports settled into totals by zone, day, month and lamp
//! (a lamp moving zone mid-month, a lamp going silent), tariffs refused when they overlap,
//! measured energy across a counter reset and a gap, recovery of unsettled readings after a
//! restart, live totals, and every bad request refused by field.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

mod common;

use std::time::Duration;

use chrono::{DateTime, Utc};
use common::{TestServer, lamps_with_telecells, send};
use futures::StreamExt;
use singularity::domain::billing::MeterMode;
use singularity::proto::{self, billing_client::BillingClient, lamps_client::LampsClient};
use singularity::server::ServerConfig;
use singularity::wire::timestamp;
use tonic::Code;

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

fn config(mode: MeterMode) -> ServerConfig {
    let mut config = common::config();
    config.billing.meter.mode = mode;
    config.billing.settle_interval = Duration::from_millis(50);
    config
}

/// A lamp lit at 100% with its energy counter at `energy_wh`.
fn lit(uuid: &str, lamp_id: i64, when: DateTime<Utc>, energy_wh: u64) -> proto::TelecellReport {
    proto::TelecellReport {
        telecell_uuid: uuid.to_owned(),
        lamp_id,
        at: Some(timestamp(when)),
        lamp_on: true,
        dim_target_pct: 100,
        dim_actual_pct: 100,
        voltage_v: 236.0,
        current_a: 0.3,
        power_w: 70.0,
        power_factor: 0.95,
        energy_wh,
        burn_hours: 100,
        switch_count: 10,
        supply_loss_count: 0,
        temperature_c: 20.0,
        link_quality_pct: 90,
        alarms: None,
    }
}

/// Reports every 30 minutes from `from` to `to` inclusive.
fn every_half_hour(
    uuid: &str,
    lamp_id: i64,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Vec<proto::TelecellReport> {
    let mut reports = Vec::new();
    let mut when = from;
    while when <= to {
        reports.push(lit(uuid, lamp_id, when, 0));
        when += chrono::Duration::minutes(30);
    }
    reports
}

async fn wattage(server: &TestServer, lamp_id: i64) -> i64 {
    let lamp = LampsClient::new(server.channel.clone())
        .get(proto::IdRequest { id: lamp_id })
        .await
        .unwrap()
        .into_inner();
    i64::from(lamp.lamp_type.unwrap().wattage_w)
}

fn totals_request(from: &str, to: &str, group_by: proto::GroupBy) -> proto::GetTotalsRequest {
    proto::GetTotalsRequest {
        from: from.into(),
        to: to.into(),
        group_by: group_by as i32,
        ..Default::default()
    }
}

/// Asks until `done` holds for the totals (settlement runs every 50 ms).
async fn totals_when(
    server: &TestServer,
    request: proto::GetTotalsRequest,
    done: impl Fn(&proto::Totals) -> bool,
) -> proto::Totals {
    let mut billing = BillingClient::new(server.channel.clone());
    let mut last = None;
    // Up to a minute: settlement yields the writer to ingest, and is slower on a database
    // server in a debug build with other tests running.
    for _ in 0..1_200 {
        let totals = billing
            .get_totals(request.clone())
            .await
            .unwrap()
            .into_inner();
        if done(&totals) {
            return totals;
        }
        last = totals.total;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("totals never settled for {request:?}; last seen: {last:?}");
}

fn flat_tariff(valid_from: &str, valid_to: &str, pence: u32) -> proto::SetTariffRequest {
    proto::SetTariffRequest {
        tariff: Some(proto::Tariff {
            id: 0,
            name: "Flat".into(),
            time_zone: "Europe/London".into(),
            valid_from: valid_from.into(),
            valid_to: valid_to.into(),
            bands: vec![proto::TariffBand {
                name: "all day".into(),
                starts_at: "00:00".into(),
                price_millipence_per_kwh: pence * 1000,
            }],
        }),
    }
}

#[tokio::test]
async fn a_month_of_reports_settles_into_exact_totals_by_zone_day_month_and_lamp() {
    let mut server = TestServer::start_with(8_000, config(MeterMode::Calculated)).await;
    let mut billing = BillingClient::new(server.channel.clone());
    billing
        .set_tariff(flat_tariff("2026-01-01", "", 20))
        .await
        .unwrap();
    let overlap = billing
        .set_tariff(flat_tariff("2025-06-01", "2026-02-01", 30))
        .await
        .unwrap_err();
    assert_eq!(overlap.code(), Code::InvalidArgument);
    assert!(
        overlap.message().contains("overlaps tariff"),
        "{}",
        overlap.message()
    );

    let lamps = lamps_with_telecells(&server, 2).await;
    let ((mover, mover_uuid), (quiet, quiet_uuid)) = (lamps[0].clone(), lamps[1].clone());
    let watts = wattage(&server, mover).await;
    let lamp = LampsClient::new(server.channel.clone())
        .get(proto::IdRequest { id: mover })
        .await
        .unwrap()
        .into_inner();
    let zones = singularity::proto::catalog_client::CatalogClient::new(server.channel.clone())
        .list_zones(proto::ListZonesRequest {})
        .await
        .unwrap()
        .into_inner()
        .zones;
    let old_zone = lamp.zone_id;
    let new_zone = zones.iter().find(|z| z.id != old_zone).unwrap().id;

    // October 2026 (31 days, one of them 25 hours long): 1,490 half-hours.
    let ack = send(
        &server,
        every_half_hour(
            &mover_uuid,
            mover,
            at("2026-09-30T23:00:00Z"),
            at("2026-10-15T23:00:00Z"),
        ),
    )
    .await;
    assert_eq!(ack.rejected, 0, "{:?}", ack.rejections);
    // The lamp's column moves to another ward from 16 October.
    let mut assets = proto::assets_client::AssetsClient::new(server.channel.clone());
    assets
        .update(proto::UpdateAssetRequest {
            id: lamp.asset_id,
            zone_id: Some(new_zone),
            ..Default::default()
        })
        .await
        .unwrap();
    send(
        &server,
        every_half_hour(
            &mover_uuid,
            mover,
            at("2026-10-15T23:30:00Z"),
            at("2026-11-01T00:00:00Z"),
        ),
    )
    .await;
    // The other lamp reports for the first nine days, then falls silent.
    send(
        &server,
        every_half_hour(
            &quiet_uuid,
            quiet,
            at("2026-09-30T23:00:00Z"),
            at("2026-10-09T23:00:00Z"),
        ),
    )
    .await;
    let quiet_watts = wattage(&server, quiet).await;
    let slot_wh = |w: i64| (w * 100 * 1800 + 180_000) / 360_000;
    let mover_wh = 1_490 * slot_wh(watts);
    let quiet_wh = 9 * 48 * slot_wh(quiet_watts);

    let month = totals_when(
        &server,
        totals_request("2026-10-01", "2026-10-31", proto::GroupBy::Zone),
        |t| t.total.as_ref().unwrap().energy_wh == mover_wh + quiet_wh,
    )
    .await;
    assert_eq!(month.expected_slots, 1_490);
    let total = month.total.clone().unwrap();
    assert_eq!(total.lamps, 2);
    assert_eq!(total.lamps_missing, 1, "the silent lamp is flagged");
    assert_eq!(total.missing_slots, 1_490 - 9 * 48);
    assert_eq!(total.cost_millipence, total.energy_wh * 20);
    assert!(total.baseline_wh > 0 && total.savings_wh == total.baseline_wh - total.energy_wh);
    // The mover's energy is in both wards, split at the move.
    let in_zone = |id: i64| month.rows.iter().find(|r| r.zone_id == id).unwrap().clone();
    let old = in_zone(old_zone);
    let new = in_zone(new_zone);
    assert_eq!(new.energy_wh, (16 * 48 + 2) * slot_wh(watts));
    assert_eq!(new.lamps, 1);
    assert!(old.energy_wh >= 15 * 48 * slot_wh(watts));
    assert!(!month.rows.iter().any(|r| r.key.is_empty()));

    // The month equals the sum of its days, in energy, money and baseline.
    let days = billing
        .get_totals(totals_request(
            "2026-10-01",
            "2026-10-31",
            proto::GroupBy::Day,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(days.rows.len(), 31);
    let sum = |f: fn(&proto::TotalsRow) -> i64| days.rows.iter().map(f).sum::<i64>();
    assert_eq!(sum(|r| r.energy_wh), total.energy_wh);
    assert_eq!(sum(|r| r.cost_millipence), total.cost_millipence);
    assert_eq!(sum(|r| r.baseline_wh), total.baseline_wh);
    let dst_day = days.rows.iter().find(|r| r.key == "2026-10-25").unwrap();
    assert_eq!(dst_day.energy_wh, 50 * slot_wh(watts));
    assert_eq!(dst_day.lamps_missing, 0, "only the mover reported that day");

    // By month, a range that is not whole months, and by lamp (biggest first).
    let by_month = billing
        .get_totals(totals_request(
            "2026-09-15",
            "2026-10-31",
            proto::GroupBy::Month,
        ))
        .await
        .unwrap()
        .into_inner();
    let keys: Vec<&str> = by_month.rows.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(keys, ["2026-09", "2026-10"]);
    assert_eq!(by_month.rows[1].energy_wh, total.energy_wh);
    let partial = billing
        .get_totals(totals_request(
            "2026-10-20",
            "2026-10-25",
            proto::GroupBy::Zone,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        partial.total.unwrap().energy_wh,
        (6 * 48 + 2) * slot_wh(watts)
    );
    let by_lamp = billing
        .get_totals(proto::GetTotalsRequest {
            limit: 1,
            ..totals_request("2026-10-01", "2026-10-31", proto::GroupBy::Lamp)
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(by_lamp.rows.len(), 1);
    assert_eq!(by_lamp.rows[0].lamp_id, mover);
    assert_eq!(by_lamp.rows[0].energy_wh, mover_wh);
    assert_eq!(by_lamp.rows_omitted, 1);

    // One lamp's half-hours on the 25-hour day.
    let energy = billing
        .get_lamp_energy(proto::GetLampEnergyRequest {
            lamp_id: mover,
            date: "2026-10-25".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(energy.slots.len(), 50);
    assert!(
        energy
            .slots
            .iter()
            .all(|s| !s.missing && s.energy_wh == slot_wh(watts))
    );
    assert_eq!(energy.zone_id, new_zone);

    // A new tariff for part of the month prices the settled energy again.
    let tariffs = billing
        .list_tariffs(proto::ListTariffsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .tariffs;
    let mut ended = tariffs[0].clone();
    ended.valid_to = "2026-10-15".into();
    billing
        .set_tariff(proto::SetTariffRequest {
            tariff: Some(ended),
        })
        .await
        .unwrap();
    billing
        .set_tariff(flat_tariff("2026-10-16", "", 30))
        .await
        .unwrap();
    let repriced = billing
        .get_totals(totals_request(
            "2026-10-16",
            "2026-10-31",
            proto::GroupBy::Zone,
        ))
        .await
        .unwrap()
        .into_inner()
        .total
        .unwrap();
    assert_eq!(repriced.cost_millipence, repriced.energy_wh * 30);
    server.stop().await;
}

#[tokio::test]
async fn measured_energy_follows_the_counter_through_a_reset_and_leaves_a_gap_missing() {
    let mut server = TestServer::start_with(10, config(MeterMode::Measured)).await;
    let (lamp, uuid) = lamps_with_telecells(&server, 1).await.remove(0);
    let start = at("2026-11-02T00:00:00Z");
    let half = chrono::Duration::minutes(30);
    let mut reports = Vec::new();
    // 00:00-04:00 every half-hour, +40 Wh each; then the node resets and counts from 0.
    for i in 0..=8 {
        reports.push(lit(&uuid, lamp, start + half * i, 1_000 + 40 * i as u64));
    }
    reports.push(lit(&uuid, lamp, start + half * 9, 35));
    // Nothing from 04:30 to 08:00 (a gap beyond the 75-minute limit), then +40 again.
    reports.push(lit(&uuid, lamp, start + half * 16, 200));
    reports.push(lit(&uuid, lamp, start + half * 17, 240));
    send(&server, reports).await;
    let mut billing = BillingClient::new(server.channel.clone());
    let mut energy = proto::LampEnergy::default();
    for _ in 0..200 {
        energy = billing
            .get_lamp_energy(proto::GetLampEnergyRequest {
                lamp_id: lamp,
                date: "2026-11-02".into(),
            })
            .await
            .unwrap()
            .into_inner();
        if energy.slots[16].covered_seconds == 1800 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let wh: Vec<i64> = energy.slots.iter().map(|s| s.energy_wh).collect();
    assert_eq!(&wh[..8], &[40; 8]);
    assert_eq!(
        wh[8], 35,
        "after a reset the counter's reading is the energy since"
    );
    // The gap's 165 Wh are kept, spread over its slots, which stay missing.
    assert_eq!(wh[9..16].iter().sum::<i64>(), 165);
    assert!(
        energy.slots[9..16]
            .iter()
            .all(|s| s.missing && s.covered_seconds == 0)
    );
    assert_eq!(wh[16], 40);
    assert!(!energy.slots[16].missing);
    assert_eq!(energy.total.unwrap().energy_wh, 8 * 40 + 35 + 165 + 40);
    server.stop().await;
}

/// Starts a server again on a stopped one's database and waits for the lamp's 2026-11-03
/// to hold all 24 half-hours from midnight to noon, lit at 100%.
async fn restart_and_expect_the_morning(server: &mut TestServer, lamp: i64, watts: i64) {
    let dir = std::mem::replace(&mut server.dir, tempfile::tempdir().unwrap());
    let mut restarted =
        TestServer::on_store_with(dir, server.store.clone(), config(MeterMode::Calculated)).await;
    let slot_wh = (watts * 100 * 1800 + 180_000) / 360_000;
    let totals = totals_when(
        &restarted,
        totals_request("2026-11-03", "2026-11-03", proto::GroupBy::Lamp),
        |t| t.total.as_ref().unwrap().energy_wh == 24 * slot_wh,
    )
    .await;
    assert_eq!(totals.rows[0].lamp_id, lamp);
    restarted.stop().await;
}

/// A server that may not settle at all once stopping, and settles only every minute, sent
/// a lamp's reports from midnight to noon on 2026-11-03 after its first settlement: all of
/// the morning's energy is still in its ledger. (lamp, its telecell, its wattage)
async fn a_morning_left_unsettled() -> (TestServer, i64, String, i64) {
    let mut lazy = config(MeterMode::Calculated);
    lazy.billing.settle_interval = Duration::from_secs(60);
    lazy.billing.settle_on_stop = Duration::ZERO;
    let server = TestServer::start_with(10, lazy).await;
    let (lamp, uuid) = lamps_with_telecells(&server, 1).await.remove(0);
    let watts = wattage(&server, lamp).await;
    // The first tick settles at once; the reports come after it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    send(
        &server,
        every_half_hour(
            &uuid,
            lamp,
            at("2026-11-03T00:00:00Z"),
            at("2026-11-03T12:00:00Z"),
        ),
    )
    .await;
    (server, lamp, uuid, watts)
}

#[tokio::test]
async fn a_stop_that_leaves_energy_unsettled_loses_none_of_it() {
    let (mut server, lamp, _, watts) = a_morning_left_unsettled().await;
    let unsettled = BillingClient::new(server.channel.clone())
        .get_totals(totals_request(
            "2026-11-03",
            "2026-11-03",
            proto::GroupBy::Lamp,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(unsettled.total.unwrap().energy_wh, 0, "nothing settled yet");
    server.stop().await;
    restart_and_expect_the_morning(&mut server, lamp, watts).await;
}

/// A server that takes over meters the energy left unsettled after it leads, while new
/// reports arrive: each interval counts once, whichever comes first.
#[tokio::test]
async fn reports_that_arrive_while_a_takeover_meters_the_backlog_count_once() {
    let (mut server, lamp, uuid, watts) = a_morning_left_unsettled().await;
    server.stop().await;
    let dir = std::mem::replace(&mut server.dir, tempfile::tempdir().unwrap());
    let mut restarted =
        TestServer::on_store_with(dir, server.store.clone(), config(MeterMode::Calculated)).await;
    // At once, while the morning may still be being metered again.
    send(
        &restarted,
        every_half_hour(
            &uuid,
            lamp,
            at("2026-11-03T12:30:00Z"),
            at("2026-11-03T18:00:00Z"),
        ),
    )
    .await;
    let slot_wh = (watts * 100 * 1800 + 180_000) / 360_000;
    let totals = totals_when(
        &restarted,
        totals_request("2026-11-03", "2026-11-03", proto::GroupBy::Lamp),
        |t| t.total.as_ref().unwrap().energy_wh >= 36 * slot_wh,
    )
    .await;
    assert_eq!(totals.total.unwrap().energy_wh, 36 * slot_wh);
    // Ten more settlements: an interval metered twice would show by now.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let again = totals_when(
        &restarted,
        totals_request("2026-11-03", "2026-11-03", proto::GroupBy::Lamp),
        |_| true,
    )
    .await;
    assert_eq!(
        again.total.unwrap().energy_wh,
        36 * slot_wh,
        "midnight to six in the evening, every half-hour once"
    );
    restarted.stop().await;
}

#[tokio::test]
async fn readings_stored_but_not_settled_are_settled_after_a_restart() {
    let mut server = TestServer::start_with(10, config(MeterMode::Calculated)).await;
    let (lamp, uuid) = lamps_with_telecells(&server, 1).await.remove(0);
    let watts = wattage(&server, lamp).await;
    send(
        &server,
        every_half_hour(
            &uuid,
            lamp,
            at("2026-11-03T00:00:00Z"),
            at("2026-11-03T06:00:00Z"),
        ),
    )
    .await;
    server.stop().await;
    // Readings that reached the database while the settlement did not (as in a crash between
    // the two): written straight to the store.
    let readings = every_half_hour(
        &uuid,
        lamp,
        at("2026-11-03T06:30:00Z"),
        at("2026-11-03T12:00:00Z"),
    )
    .iter()
    .map(|r| singularity::store::LampReading {
        lamp_id: lamp,
        reading: singularity::wire::telecell_report(r)
            .unwrap()
            .validate(Utc::now(), chrono::DateTime::<Utc>::MIN_UTC)
            .unwrap(),
        latest: true,
    })
    .collect();
    server
        .store
        .record_telemetry(singularity::store::TelemetryBatch {
            readings,
            ..Default::default()
        })
        .unwrap();
    restart_and_expect_the_morning(&mut server, lamp, watts).await;
}

#[tokio::test]
async fn live_totals_follow_todays_reports() {
    let mut server = TestServer::start_with(10, config(MeterMode::Calculated)).await;
    let (lamp, uuid) = lamps_with_telecells(&server, 1).await.remove(0);
    let mut billing = BillingClient::new(server.channel.clone());
    let mut stream = billing
        .watch_totals(proto::WatchTotalsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let first = stream.next().await.unwrap().unwrap();
    let before = first.today.unwrap().total.unwrap().energy_wh;
    let now = Utc::now();
    send(
        &server,
        vec![
            lit(&uuid, lamp, now - chrono::Duration::minutes(20), 0),
            lit(&uuid, lamp, now - chrono::Duration::minutes(5), 0),
        ],
    )
    .await;
    let mut grew = false;
    for _ in 0..20 {
        let update = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert!(update.settlement >= first.settlement);
        let today = update.today.unwrap().total.unwrap().energy_wh;
        let month = update.month_to_date.unwrap().total.unwrap().energy_wh;
        assert!(month >= today);
        // The 15 minutes may straddle midnight; then only the month grows.
        if today > before
            || month
                > first
                    .month_to_date
                    .as_ref()
                    .unwrap()
                    .total
                    .as_ref()
                    .unwrap()
                    .energy_wh
        {
            grew = true;
            break;
        }
    }
    assert!(grew, "a settlement with the new energy should be streamed");
    server.stop().await;
}

#[tokio::test]
async fn bad_billing_requests_are_refused_by_field() {
    let mut server = TestServer::start_with(5, common::config()).await;
    let mut billing = BillingClient::new(server.channel.clone());
    let cases: Vec<(proto::GetTotalsRequest, Code, &str)> = vec![
        (
            totals_request("2026-10-31", "2026-10-01", proto::GroupBy::Zone),
            Code::InvalidArgument,
            "to",
        ),
        // A day that has not begun in the settlement zone.
        (
            totals_request("2098-12-01", "2099-01-01", proto::GroupBy::Zone),
            Code::InvalidArgument,
            "to",
        ),
        // More than 800 days at once.
        (
            totals_request("2020-01-01", "2026-10-01", proto::GroupBy::Zone),
            Code::InvalidArgument,
            "from",
        ),
        (
            totals_request("01/10/2026", "2026-10-31", proto::GroupBy::Zone),
            Code::InvalidArgument,
            "from",
        ),
        (
            totals_request("2020-01-01", "2026-10-31", proto::GroupBy::Zone),
            Code::InvalidArgument,
            "from",
        ),
        (
            proto::GetTotalsRequest {
                group_by: 99,
                ..totals_request("2026-10-01", "2026-10-31", proto::GroupBy::Zone)
            },
            Code::InvalidArgument,
            "group_by",
        ),
        (
            proto::GetTotalsRequest {
                zone_id: -1,
                ..totals_request("2026-10-01", "2026-10-31", proto::GroupBy::Zone)
            },
            Code::InvalidArgument,
            "zone_id",
        ),
        (
            proto::GetTotalsRequest {
                zone_id: 9_999,
                ..totals_request("2026-10-01", "2026-10-31", proto::GroupBy::Zone)
            },
            Code::NotFound,
            "zone_id",
        ),
        (
            proto::GetTotalsRequest {
                time_zone: "Mars/Olympus".into(),
                ..totals_request("2026-10-01", "2026-10-31", proto::GroupBy::Zone)
            },
            Code::InvalidArgument,
            "time_zone",
        ),
        (
            proto::GetTotalsRequest {
                time_zone: "Australia/Melbourne".into(),
                ..totals_request("2026-10-01", "2026-10-31", proto::GroupBy::Zone)
            },
            Code::InvalidArgument,
            "time_zone",
        ),
        (
            proto::GetTotalsRequest {
                limit: 5_000,
                ..totals_request("2026-10-01", "2026-10-31", proto::GroupBy::Lamp)
            },
            Code::InvalidArgument,
            "limit",
        ),
    ];
    for (request, code, field) in cases {
        let status = billing.get_totals(request.clone()).await.unwrap_err();
        assert_eq!(status.code(), code, "{request:?}: {}", status.message());
        assert!(
            status.message().starts_with(field),
            "{request:?}: {}",
            status.message()
        );
    }
    // An empty month is zero, not an error, and a quiet estate is all missing.
    let empty = billing
        .get_totals(totals_request(
            "2026-10-01",
            "2026-10-31",
            proto::GroupBy::Zone,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(empty.total.unwrap().energy_wh, 0);

    let mut tariff = flat_tariff("2026-01-01", "", 20);
    type Spoil = Box<dyn Fn(&mut proto::Tariff)>;
    let bad_tariffs: Vec<(Spoil, &str)> = vec![
        (Box::new(|t| t.name = "  ".into()), "tariff.name"),
        (
            Box::new(|t| t.time_zone = "Europe/Atlantis".into()),
            "tariff.time_zone",
        ),
        (
            Box::new(|t| t.valid_from = "2026-13-01".into()),
            "tariff.valid_from",
        ),
        (
            Box::new(|t| t.valid_to = "2025-01-01".into()),
            "tariff.valid_to",
        ),
        (Box::new(|t| t.bands.clear()), "tariff.bands"),
        (
            Box::new(|t| t.bands[0].starts_at = "25:00".into()),
            "tariff.bands[0].starts_at",
        ),
        (
            Box::new(|t| t.bands[0].price_millipence_per_kwh = 50_000_000),
            "tariff.bands[0].price_millipence_per_kwh",
        ),
        (Box::new(|t| t.id = -4), "tariff.id"),
    ];
    for (spoil, field) in bad_tariffs {
        let mut request = tariff.clone();
        spoil(request.tariff.as_mut().unwrap());
        let status = billing.set_tariff(request).await.unwrap_err();
        assert_eq!(
            status.code(),
            Code::InvalidArgument,
            "{field}: {}",
            status.message()
        );
        assert!(
            status.message().starts_with(field),
            "{field}: {}",
            status.message()
        );
    }
    let missing = billing
        .set_tariff(proto::SetTariffRequest { tariff: None })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::InvalidArgument);
    tariff.tariff.as_mut().unwrap().id = 77;
    assert_eq!(
        billing.set_tariff(tariff).await.unwrap_err().code(),
        Code::NotFound
    );

    for (lamp_id, date, code) in [
        (0, "2026-10-01", Code::InvalidArgument),
        (1, "yesterday", Code::InvalidArgument),
        (999_999, "2026-10-01", Code::NotFound),
    ] {
        let status = billing
            .get_lamp_energy(proto::GetLampEnergyRequest {
                lamp_id,
                date: date.into(),
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), code, "{lamp_id} {date}");
    }
    // A lamp with no reports that day: every slot missing, never a silent zero.
    let quiet = billing
        .get_lamp_energy(proto::GetLampEnergyRequest {
            lamp_id: 1,
            date: "2026-10-01".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(quiet.slots.len(), 48);
    assert!(quiet.slots.iter().all(|s| s.missing));
    server.stop().await;
}

/// Billing run apart from telemetry settles energy itself, from the stored readings after
/// each lamp's cursor: one billing process at a time holds settlement's role, the other takes
/// it over when the first stops, and the figures are those one server settling as it ingests
/// gives for the same reports (none counted twice, none lost).
#[tokio::test]
async fn billing_apart_from_telemetry_settles_the_stored_readings_once() {
    if std::env::var("SINGULARITY_TEST_POSTGRES_URL").is_err() {
        eprintln!("skipped: needs the test PostgreSQL cluster (scripts/test starts one)");
        return;
    }
    use singularity::server::Services;
    let url = common::fresh_postgres_database();
    let field_address = format!("127.0.0.1:{}", common::free_port());
    let field_url = format!("http://{field_address}");
    let mut inventory_config = config(MeterMode::Calculated);
    inventory_config.services = Services::parse("inventory,auth").unwrap();
    inventory_config.telemetry_urls = vec![field_url.clone()];
    inventory_config.faults_urls = vec![field_url.clone()];
    let mut inventory = TestServer::seeded_with(
        tempfile::tempdir().unwrap(),
        singularity::store::open_url(&url).unwrap(),
        5,
        inventory_config,
    )
    .await;
    let apart = |services: &str| {
        let mut config = config(MeterMode::Calculated);
        config.services = Services::parse(services).unwrap();
        config.auth_urls = vec![inventory.url()];
        config.inventory_urls = vec![inventory.url()];
        let store = singularity::store::open_url(&url).unwrap();
        config.service_account = Some(common::service_account(store.as_ref()));
        (store, config)
    };
    let (store, field_config) = apart("telemetry,faults");
    let mut field = TestServer::on_address(
        tempfile::tempdir().unwrap(),
        store,
        field_config,
        &field_address,
    )
    .await;
    let (store, billing_config) = apart("billing");
    let mut first =
        TestServer::on_store_with(tempfile::tempdir().unwrap(), store, billing_config).await;
    let (store, billing_config) = apart("billing");
    let mut second =
        TestServer::on_store_with(tempfile::tempdir().unwrap(), store, billing_config).await;
    // The same estate on one server that settles as it ingests: the figures to match.
    let mut classic = TestServer::start_with(5, config(MeterMode::Calculated)).await;

    let (lamp_id, uuid) = lamps_with_telecells(&inventory, 1).await.remove(0);
    assert_eq!(
        lamps_with_telecells(&classic, 1).await[0],
        (lamp_id, uuid.clone())
    );
    let evening = every_half_hour(
        &uuid,
        lamp_id,
        at("2026-11-03T16:00:00Z"),
        at("2026-11-03T20:00:00Z"),
    );
    let night = every_half_hour(
        &uuid,
        lamp_id,
        at("2026-11-03T20:30:00Z"),
        at("2026-11-03T23:30:00Z"),
    );
    let day = totals_request("2026-11-03", "2026-11-03", proto::GroupBy::Day);
    let reported = |server: &TestServer, reports: Vec<proto::TelecellReport>| {
        let channel = server.channel.clone();
        async move {
            // The field process leads within a second or two of starting.
            for _ in 0..100 {
                let sent = proto::telemetry_client::TelemetryClient::new(channel.clone())
                    .report(futures::stream::iter(reports.clone()))
                    .await;
                match sent {
                    Ok(ack) => return assert_eq!(ack.into_inner().stored, reports.len() as u64),
                    Err(status) if status.code() == Code::Unavailable => {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    Err(status) => panic!("{status:?}"),
                }
            }
            panic!("nobody led");
        }
    };

    reported(&classic, evening.clone()).await;
    let want = totals_when(&classic, day.clone(), |t| {
        t.total.as_ref().is_some_and(|r| r.energy_wh > 0)
    })
    .await;
    reported(&field, evening).await;
    let got = totals_when(&first, day.clone(), |t| t.total == want.total).await;
    // Settlement goes on every 50 ms: nothing is metered again by the other process.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let again = BillingClient::new(second.channel.clone())
        .get_totals(day.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.total, got.total, "settled twice");

    // The first billing process stops; whichever settled, the one left settles the rest.
    first.stop().await;
    reported(&classic, night.clone()).await;
    let want = totals_when(&classic, day.clone(), |t| t.total != want.total).await;
    reported(&field, night).await;
    totals_when(&second, day.clone(), |t| t.total == want.total).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let settled = BillingClient::new(second.channel.clone())
        .get_totals(day)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        settled.total, want.total,
        "settled twice after the takeover"
    );
    for server in [&mut second, &mut field, &mut inventory, &mut classic] {
        server.stop().await;
    }
}
