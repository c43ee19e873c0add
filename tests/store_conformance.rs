//! What every storage backend must do, checked through the `Store` traits alone: versions and
//! races, references and dependents, paging and box search, telemetry batches and their
//! lineage, fault transitions and the event log's order, billing rollups, sessions and the
//! audit trail. `backend_suite!` runs every check against each backend.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

mod common;

use std::sync::Arc;

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Utc};
use singularity::domain::billing::calendar::{AsOf, Calendar};
use singularity::domain::billing::{Band, NewTariff, SlotShare};
use singularity::domain::estate::{City, EstateSpec, generate};
use singularity::domain::faults::lifecycle::{Action, FaultState};
use singularity::domain::faults::record::{EventKind, FaultFilter};
use singularity::domain::faults::tracker::Change;
use singularity::domain::faults::{FaultType, Severity};
use singularity::domain::geo::GeoBox;
use singularity::domain::inventory::{EntityStatus, LampPatch, NewUser, Role};
use singularity::domain::telemetry::Reading;
use singularity::store::prelude::*;
use singularity::store::{
    AuditQuery, EnergySettlement, EngineChange, FaultAction, LampDayEnergy, LampReading, Lineage,
    NewAuditEntry, Scan, StatusFilter, StoreError, TelemetryBatch, TotalsGroup, TotalsQuery,
    UnsettledReadings,
};

const LAMPS: u32 = 60;

/// A fresh, empty store of one backend.
struct Opened {
    store: Arc<dyn Store>,
    /// Makes the database refuse to store a reading of this lamp (a disk that fails a write),
    /// the way the backend's own tables allow.
    refuse_readings_of: Box<dyn Fn(i64)>,
    /// Whatever must live as long as the store (a temporary directory).
    _keep: Box<dyn std::any::Any>,
}

fn sqlite() -> Opened {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    let store = singularity::store::sqlite::SqliteStore::open(&path).unwrap();
    Opened {
        store: Arc::new(store),
        refuse_readings_of: Box::new(move |lamp_id| {
            rusqlite::Connection::open(&path)
                .unwrap()
                .execute_batch(&format!(
                    "CREATE TRIGGER refuse BEFORE INSERT ON readings WHEN NEW.lamp_id = {lamp_id} \
                     BEGIN SELECT RAISE(ABORT, 'disk trouble'); END"
                ))
                .unwrap();
        }),
        _keep: Box::new(dir),
    }
}

/// A fresh database on the test cluster (`scripts/pg-cluster`, started by `scripts/test`).
fn postgres() -> Opened {
    let url = common::fresh_postgres_database();
    let store = singularity::store::postgres::PgStore::open_url(&url).unwrap();
    let trigger_url = url.clone();
    Opened {
        store: Arc::new(store),
        refuse_readings_of: Box::new(move |lamp_id| {
            let url = trigger_url.clone();
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                runtime.block_on(async {
                    let (client, connection) =
                        tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
                    tokio::spawn(connection);
                    client
                        .batch_execute(&format!(
                            "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS \
                             $$ BEGIN IF NEW.lamp_id = {lamp_id} THEN RAISE EXCEPTION 'disk trouble'; END IF; RETURN NEW; END $$; \
                             CREATE TRIGGER refuse BEFORE INSERT ON readings FOR EACH ROW EXECUTE FUNCTION refuse();"
                        ))
                        .await
                        .unwrap();
                });
            })
            .join()
            .unwrap();
        }),
        _keep: Box::new(()),
    }
}

fn with_estate(opened: Opened) -> Opened {
    let estate = generate(&EstateSpec {
        lamps: LAMPS,
        rng_seed: 7,
        city: City::by_key("london").unwrap(),
    });
    opened.store.import_estate(&estate).unwrap();
    opened
}

fn all_lamps(store: &dyn Store) -> Vec<singularity::domain::inventory::Lamp> {
    store
        .lamps(&Scan {
            after_id: 0,
            limit: 10_000,
            status: StatusFilter::Live,
            area: None,
        })
        .unwrap()
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 2, 20, 0, 0).unwrap()
}

fn reading(at: DateTime<Utc>, energy_wh: u64) -> Reading {
    Reading {
        at,
        lamp_on: true,
        dim_target_pct: 100,
        dim_actual_pct: 100,
        voltage_v: 236.0,
        current_a: 0.3,
        power_w: 70.0,
        power_factor: 0.95,
        energy_wh,
        burn_hours: 1,
        switch_count: 1,
        supply_loss_count: 0,
        temperature_c: 10.0,
        link_quality_pct: 90,
        alarms: Default::default(),
    }
}

fn readings(lamp_id: i64, at: &[DateTime<Utc>]) -> TelemetryBatch {
    TelemetryBatch {
        readings: at
            .iter()
            .enumerate()
            .map(|(i, at)| LampReading {
                lamp_id,
                reading: reading(*at, 100 + i as u64),
                latest: true,
            })
            .collect(),
        ..Default::default()
    }
}

/// The engine's judgement that a lamp failed at `at`.
fn failure(store: &dyn Store, lamp_id: i64, at: DateTime<Utc>) -> TelemetryBatch {
    let lamp = store
        .lamp_contexts()
        .unwrap()
        .into_iter()
        .find(|c| c.lamp_id == lamp_id)
        .unwrap();
    TelemetryBatch {
        changes: vec![EngineChange {
            at,
            lamp,
            change: Change::Raised {
                fault_type: FaultType::LampFailure,
                severity: Severity::Major,
            },
        }],
        ..Default::default()
    }
}

fn driven_lamps(store: &dyn Store) -> Vec<i64> {
    store
        .lamp_contexts()
        .unwrap()
        .iter()
        .map(|c| c.lamp_id)
        .collect()
}

fn act(fault_id: i64, expected_version: i64, action: Action, actor: &str) -> FaultAction {
    FaultAction {
        fault_id,
        expected_version,
        action,
        actor: actor.into(),
        note: String::new(),
    }
}

fn an_estate_loads_once_counts_and_resets(opened: Opened) {
    let opened = with_estate(opened);
    let store = &opened.store;
    let counts = store.counts().unwrap();
    assert_eq!(counts.lamps, i64::from(LAMPS));
    assert!(counts.zones > 0 && counts.assets > 0 && counts.telecells > 0);
    let estate = generate(&EstateSpec {
        lamps: 5,
        rng_seed: 1,
        city: City::by_key("london").unwrap(),
    });
    assert!(matches!(
        store.import_estate(&estate),
        Err(StoreError::NotEmpty { .. })
    ));
    store.reset().unwrap();
    assert_eq!(store.counts().unwrap().lamps, 0);
    store.import_estate(&estate).unwrap();
    assert_eq!(store.counts().unwrap().lamps, 5);
}

fn of_racers_holding_one_version_exactly_one_wins(opened: Opened) {
    let opened = with_estate(opened);
    let store = &opened.store;
    let lamp = all_lamps(store.as_ref())[0].clone();
    let outcomes: Vec<_> = std::thread::scope(|scope| {
        let racers: Vec<_> = (0..8)
            .map(|i| {
                let store = store.clone();
                let version = lamp.meta.version;
                scope.spawn(move || {
                    store.update_lamp(
                        lamp.id,
                        Some(version),
                        LampPatch {
                            reference: Some(format!("racer-{i}")),
                            ..Default::default()
                        },
                    )
                })
            })
            .collect();
        racers.into_iter().map(|r| r.join().unwrap()).collect()
    });
    assert_eq!(outcomes.iter().filter(|o| o.is_ok()).count(), 1);
    for refused in outcomes.iter().filter_map(|o| o.as_ref().err()) {
        assert!(
            matches!(refused, StoreError::StaleVersion { expected, current, .. } if *expected == lamp.meta.version && *current == lamp.meta.version + 1),
            "{refused:?}"
        );
    }
    let now = store.lamp(lamp.id).unwrap();
    assert_eq!(now.meta.version, lamp.meta.version + 1);
    // Without a version the change applies to whatever is there.
    let unchecked = store
        .update_lamp(lamp.id, None, LampPatch::default())
        .unwrap();
    assert_eq!(unchecked.meta.version, lamp.meta.version + 2);
}

fn records_refer_only_to_records_that_exist_and_prune_only_what_was_deleted(opened: Opened) {
    let opened = with_estate(opened);
    let store = &opened.store;
    let lamp = all_lamps(store.as_ref())[0].clone();
    assert!(matches!(
        store.mount_lamp(lamp.id, 9_999_999),
        Err(StoreError::MissingReference { .. }) | Err(StoreError::NotFound { .. })
    ));
    let asset_id = lamp.asset_id.unwrap();
    assert!(store.prune_asset(asset_id).is_err(), "a live asset");
    store.delete_asset(asset_id).unwrap();
    assert!(
        store.prune_asset(asset_id).is_err(),
        "an asset a lamp still stands on"
    );
    assert!(store.prune_lamp(lamp.id).is_err(), "a live lamp");
    assert_eq!(
        store.delete_lamp(lamp.id).unwrap().status,
        EntityStatus::Deleted
    );
    store.prune_lamp(lamp.id).unwrap();
    assert!(matches!(
        store.lamp(lamp.id),
        Err(StoreError::NotFound { .. })
    ));
}

fn usernames_are_unique_and_a_new_password_ends_every_session(opened: Opened) {
    let store = &opened.store;
    let new = |name: &str| NewUser {
        username: name.into(),
        display_name: name.into(),
        role: Role::User,
        password_hash: "hash".into(),
        status: EntityStatus::Active,
    };
    let ana = store.create_user(new("ana")).unwrap();
    assert!(matches!(
        store.create_user(new("ana")),
        Err(StoreError::Duplicate { .. })
    ));
    let expires = Utc::now() + Duration::hours(1);
    for token in 1..=3u8 {
        let ended = store.open_session(ana.id, vec![token], expires, 2).unwrap();
        // The third session ends the oldest beyond two, and says which.
        assert_eq!(ended, if token == 3 { vec![vec![1]] } else { vec![] });
    }
    assert_eq!(store.session(&[1]).unwrap(), None);
    assert_eq!(store.session(&[2]).unwrap().unwrap().0.username, "ana");
    store.close_session(vec![2]).unwrap();
    assert_eq!(store.session(&[2]).unwrap(), None);
    store.set_password(ana.id, "other".into()).unwrap();
    assert_eq!(store.session(&[3]).unwrap(), None);
    assert_eq!(store.credentials("ana").unwrap().unwrap().1, "other");
    assert_eq!(store.credentials("nobody").unwrap(), None);
}

fn listings_page_by_id_and_a_box_finds_exactly_the_lamps_inside(opened: Opened) {
    let opened = with_estate(opened);
    let store = &opened.store;
    let every = all_lamps(store.as_ref());
    let mut paged = Vec::new();
    let mut after_id = 0;
    loop {
        let page = store
            .lamps(&Scan {
                after_id,
                limit: 7,
                status: StatusFilter::Live,
                area: None,
            })
            .unwrap();
        let Some(last) = page.last() else { break };
        after_id = last.id;
        paged.extend(page);
    }
    assert_eq!(paged, every);

    let located: Vec<_> = every
        .iter()
        .filter_map(|l| l.location.map(|p| (l.id, p)))
        .collect();
    let (lats, lons): (Vec<f64>, Vec<f64>) =
        located.iter().map(|(_, p)| (p.lat(), p.lon())).unzip();
    let mid = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let area = GeoBox::new(mid(&lats), mid(&lons), mid(&lats) + 1.0, mid(&lons) + 1.0).unwrap();
    let expected: Vec<i64> = located
        .iter()
        .filter(|(_, p)| area.contains(*p))
        .map(|(id, _)| *id)
        .collect();
    assert!(!expected.is_empty() && expected.len() < located.len());
    let found: Vec<i64> = store
        .lamps(&Scan {
            after_id: 0,
            limit: 10_000,
            status: StatusFilter::Live,
            area: Some(area),
        })
        .unwrap()
        .iter()
        .map(|l| l.id)
        .collect();
    assert_eq!(found, expected);
}

fn a_resent_reading_is_a_duplicate_and_an_older_one_never_becomes_the_latest(opened: Opened) {
    let opened = with_estate(opened);
    let store = &opened.store;
    let lamp = driven_lamps(store.as_ref())[0];
    let times = [t0(), t0() + Duration::minutes(15)];
    let first = store.record_telemetry(readings(lamp, &times)).unwrap();
    assert_eq!((first.stored, first.duplicates), (2, 0));
    let again = store.record_telemetry(readings(lamp, &times)).unwrap();
    assert_eq!((again.stored, again.duplicates), (0, 2));
    let late = store
        .record_telemetry(readings(lamp, &[t0() - Duration::minutes(15)]))
        .unwrap();
    assert_eq!(late.stored, 1);
    assert_eq!(store.lamp_status(lamp).unwrap().unwrap().at, times[1]);
    let latest = store.latest_readings().unwrap();
    assert_eq!(latest.len(), 1);
    assert_eq!((latest[0].lamp_id, latest[0].reading.at), (lamp, times[1]));
    let history = store.readings_from(&[(lamp, t0())]).unwrap();
    assert_eq!(history[0].1.iter().map(|r| r.at).collect::<Vec<_>>(), times);
    assert_eq!(store.prune_readings(t0() + Duration::hours(1)).unwrap(), 3);
    assert_eq!(store.lamp_status(lamp).unwrap().unwrap().at, times[1]);
}

fn after_a_failed_batch_the_rest_of_its_lineage_is_refused(opened: Opened) {
    let opened = with_estate(opened);
    let store = &opened.store;
    let lamp = driven_lamps(store.as_ref())[0];
    let lineage = Lineage::new();
    let in_lineage = |mut batch: TelemetryBatch| {
        batch.lineage = Some(lineage.clone());
        batch
    };
    let first = store
        .queue_telemetry(in_lineage(readings(lamp, &[t0()])))
        .unwrap();
    let broken = driven_lamps(store.as_ref())[1];
    (opened.refuse_readings_of)(broken);
    let failing = store
        .queue_telemetry(in_lineage(readings(broken, &[t0()])))
        .unwrap();
    let built_on_it = store
        .queue_telemetry(in_lineage(readings(lamp, &[t0() + Duration::minutes(15)])))
        .unwrap();
    let unrelated = store
        .queue_telemetry(readings(lamp, &[t0() + Duration::minutes(30)]))
        .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        assert_eq!(first.committed().await.unwrap().stored, 1);
        assert!(failing.committed().await.is_err());
        assert!(matches!(
            built_on_it.committed().await,
            Err(StoreError::Superseded)
        ));
        assert_eq!(unrelated.committed().await.unwrap().stored, 1);
    });
    store.flush().unwrap();
    let stored: Vec<_> = store.readings_from(&[(lamp, t0())]).unwrap()[0]
        .1
        .iter()
        .map(|r| r.at)
        .collect();
    assert_eq!(stored, vec![t0(), t0() + Duration::minutes(30)]);
}

fn a_fault_is_raised_acted_on_once_per_version_and_logged_in_order(opened: Opened) {
    let opened = with_estate(opened);
    let store = &opened.store;
    let lamp = driven_lamps(store.as_ref())[0];
    let (_, before) = store.fault_log_bounds().unwrap();
    let raised = store
        .record_telemetry(failure(store.as_ref(), lamp, t0()))
        .unwrap();
    assert_eq!(raised.events.len(), 1);
    let fault = raised.events[0].fault.clone();
    assert_eq!(
        (fault.state, fault.version, fault.lamp_id),
        (FaultState::Open, 1, Some(lamp))
    );
    assert!(raised.events[0].seq > before);

    // Two operators acknowledge the version they both saw: one wins, the other hears who.
    let outcomes: Vec<_> = std::thread::scope(|scope| {
        ["ana", "bo"]
            .map(|who| {
                let store = store.clone();
                scope.spawn(move || store.act_on_fault(act(fault.id, 1, Action::Acknowledge, who)))
            })
            .into_iter()
            .map(|r| r.join().unwrap())
            .collect()
    });
    let winner = outcomes.iter().find_map(|o| o.as_ref().ok()).unwrap();
    assert_eq!(
        (winner.kind, winner.fault.version),
        (EventKind::Acknowledged, 2)
    );
    let refused = outcomes.iter().find_map(|o| o.as_ref().err()).unwrap();
    assert!(
        matches!(refused, StoreError::StaleFault { current: 2, change, .. } if change.contains(&winner.actor)),
        "{refused:?}"
    );
    // A note never conflicts and leaves the version alone.
    let mut note = act(fault.id, 1, Action::AddNote, "bo");
    note.note = "crew on site".into();
    assert_eq!(store.act_on_fault(note).unwrap().fault.version, 2);
    assert!(matches!(
        store.act_on_fault(act(fault.id, 2, Action::Acknowledge, "bo")),
        Err(StoreError::Conflict(_))
    ));

    let (fault_now, history, total) = store.fault(fault.id, 2).unwrap();
    assert_eq!(
        (fault_now.state, total, history.len()),
        (FaultState::Acknowledged, 3, 2)
    );
    assert_eq!(history[1].note, "crew on site");
    let log = store.fault_events_after(before, 100).unwrap();
    let kinds: Vec<_> = log.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        vec![EventKind::Raised, EventKind::Acknowledged, EventKind::Note]
    );
    assert!(log.windows(2).all(|w| w[0].seq < w[1].seq));
    let (_, newest) = store.fault_log_bounds().unwrap();
    assert_eq!(newest, log.last().unwrap().seq);
    let window = store
        .fault_events_between(
            t0() - Duration::hours(1),
            t0() + Duration::seconds(1),
            before,
            100,
        )
        .unwrap();
    assert_eq!(window.len(), 1, "only the raise happened at t0");

    let filter = FaultFilter {
        lamp_id: Some(lamp),
        ..Default::default()
    };
    assert_eq!(store.faults(&filter, 0, 10).unwrap().len(), 1);
    assert_eq!(store.active_faults().unwrap().len(), 1);
}

/// A reader that has seen an event must never later find an earlier one: seq order is commit
/// order, whatever the writers do at once.
fn a_reader_of_the_log_never_finds_an_event_behind_one_it_has_seen(opened: Opened) {
    let opened = with_estate(opened);
    let store = &opened.store;
    let lamps = driven_lamps(store.as_ref());
    let (_, start) = store.fault_log_bounds().unwrap();
    let writers = 4;
    let per_writer = lamps.len() / writers;
    let seen = std::thread::scope(|scope| {
        for chunk in lamps.chunks(per_writer).take(writers) {
            let store = store.clone();
            scope.spawn(move || {
                for (i, lamp) in chunk.iter().enumerate() {
                    let at = t0() + Duration::seconds(i as i64);
                    store
                        .record_telemetry(failure(store.as_ref(), *lamp, at))
                        .unwrap();
                }
            });
        }
        let reader = store.clone();
        let expected = per_writer * writers;
        scope
            .spawn(move || {
                let mut seen: Vec<u64> = Vec::new();
                let mut last = start;
                // Not a timing check: a writer that failed must not leave the reader spinning.
                let give_up = std::time::Instant::now() + std::time::Duration::from_secs(60);
                while seen.len() < expected && std::time::Instant::now() < give_up {
                    for event in reader.fault_events_after(last, 1_000).unwrap() {
                        last = event.seq;
                        seen.push(event.seq);
                    }
                }
                seen
            })
            .join()
            .unwrap()
    });
    let everything: Vec<u64> = store
        .fault_events_after(start, 10_000)
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(
        seen, everything,
        "the reader saw the log as it stands, in order, once"
    );
}

fn energy_settles_into_days_months_and_is_priced_again_by_a_new_tariff(opened: Opened) {
    let opened = with_estate(opened);
    let store = &opened.store;
    let calendar = Calendar::new("settlement_zone", "Europe/London".parse().unwrap()).unwrap();
    let lamps: Vec<_> = store.lamp_contexts().unwrap().into_iter().take(2).collect();
    let date = NaiveDate::from_ymd_opt(2026, 11, 2).unwrap();
    // 70 W for the two half-hours from 20:00: 35 Wh each.
    let units = 70 * 1_800 * 100;
    let day = |lamp: &singularity::domain::telemetry::LampContext| LampDayEnergy {
        lamp_id: lamp.lamp_id,
        zone_id: lamp.zone_id,
        wattage_w: 70,
        location: lamp.profile.location,
        date,
        shares: (40..42)
            .map(|slot| SlotShare {
                date,
                slot,
                units,
                covered_s: 1_800,
            })
            .collect(),
    };
    let settlement = EnergySettlement {
        days: lamps.iter().map(day).collect(),
        cursors: lamps
            .iter()
            .map(|l| (l.lamp_id, t0() + Duration::hours(1)))
            .collect(),
        readings: 0,
    };
    store.record_energy(calendar, settlement.clone()).unwrap();
    let as_of = AsOf {
        calendar,
        now: t0() + Duration::days(60),
        grace: Duration::zero(),
    };
    let totals = |group: TotalsGroup, from: NaiveDate, to: NaiveDate| {
        store
            .energy_totals(
                &TotalsQuery {
                    from,
                    to,
                    group,
                    zone_id: None,
                    limit: 100,
                },
                as_of,
            )
            .unwrap()
    };
    let november = (
        NaiveDate::from_ymd_opt(2026, 11, 1).unwrap(),
        NaiveDate::from_ymd_opt(2026, 11, 30).unwrap(),
    );
    let month = totals(TotalsGroup::All, november.0, november.1);
    assert_eq!((month[0].totals.wh, month[0].lamps), (140, 2));
    assert_eq!(
        month[0].totals.cost_mp, 0,
        "no tariff yet: the energy is unpriced"
    );
    assert_eq!(month[0].totals.unpriced_wh, 140);
    let one_day = totals(TotalsGroup::All, date, date);
    assert_eq!(one_day[0].totals.wh, 140);

    let (zone, slots) = store.lamp_energy(lamps[0].lamp_id, date).unwrap().unwrap();
    assert_eq!(zone, lamps[0].zone_id.unwrap_or(0));
    assert_eq!(slots[40].wh(), 35);

    let tariff = NewTariff {
        name: "flat".into(),
        time_zone: "Europe/London".parse().unwrap(),
        valid_from: november.0,
        valid_to: None,
        bands: vec![Band {
            name: "all day".into(),
            starts_at: NaiveTime::MIN,
            price_millipence_per_kwh: 20_000,
        }],
    };
    let created = store.set_tariff(calendar, None, tariff.clone()).unwrap();
    assert!(matches!(
        store.set_tariff(calendar, None, tariff),
        Err(StoreError::Invalid(_)) | Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.tariffs().unwrap().tariffs, vec![created]);
    let priced = totals(TotalsGroup::All, november.0, november.1);
    // 140 Wh at 20 p/kWh: 2.8 p.
    assert_eq!(
        (priced[0].totals.cost_mp, priced[0].totals.unpriced_wh),
        (2_800, 0)
    );
    let mut cursors = store.energy_cursors().unwrap();
    cursors.sort();
    assert_eq!(cursors, settlement.cursors);

    // What settlement apart from telemetry meters: lamps whose latest reading is past their
    // cursor, or that were never settled.
    let settled = lamps[0].lamp_id;
    let never = lamps[1].lamp_id;
    store
        .record_telemetry(readings(settled, &[t0(), t0() + Duration::hours(1)]))
        .unwrap();
    assert!(
        store.unsettled_readings().unwrap().is_empty(),
        "the latest reading is at the cursor"
    );
    store
        .record_telemetry(readings(settled, &[t0() + Duration::hours(2)]))
        .unwrap();
    let other = store.lamp_contexts().unwrap()[2].lamp_id;
    store.record_telemetry(readings(other, &[t0()])).unwrap();
    let mut behind = store.unsettled_readings().unwrap();
    behind.sort_by_key(|b| b.lamp_id);
    let mut expected = vec![
        UnsettledReadings {
            lamp_id: settled,
            cursor: Some(t0() + Duration::hours(1)),
            through: t0() + Duration::hours(2),
        },
        UnsettledReadings {
            lamp_id: other,
            cursor: None,
            through: t0(),
        },
    ];
    expected.sort_by_key(|b| b.lamp_id);
    assert_eq!(behind, expected);
    assert!(behind.iter().all(|b| b.lamp_id != never));
}

fn the_audit_trail_reads_newest_first_and_filters(opened: Opened) {
    let store = &opened.store;
    for (i, actor) in ["ana", "bo", "ana"].iter().enumerate() {
        store
            .record_audit(NewAuditEntry {
                at: t0() + Duration::minutes(i as i64),
                actor: (*actor).into(),
                role: "admin".into(),
                peer: "127.0.0.1:1".into(),
                action: "Lamps.Update".into(),
                entity: "lamp".into(),
                entity_id: i as i64 + 1,
                changes: String::new(),
            })
            .unwrap();
    }
    let ana = store
        .audit_log(&AuditQuery {
            actor: Some("ana".into()),
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(
        ana.iter().map(|e| e.entry.entity_id).collect::<Vec<_>>(),
        vec![3, 1]
    );
}

/// A lamp moved to another zone between two days of one settlement, one of them named twice
/// (both shares count): one lamp in the month, its energy split between the zones.
fn a_lamp_moved_within_one_settlement_counts_once_in_the_month(opened: Opened) {
    // Enough lamps for the estate to span several zones.
    let estate = generate(&EstateSpec {
        lamps: 10_000,
        rng_seed: 7,
        city: City::by_key("london").unwrap(),
    });
    opened.store.import_estate(&estate).unwrap();
    let store = &opened.store;
    let calendar = Calendar::new("settlement_zone", "Europe/London".parse().unwrap()).unwrap();
    let contexts = store.lamp_contexts().unwrap();
    let lamp = contexts[0];
    let (from_zone, to_zone) = (
        lamp.zone_id.unwrap(),
        store
            .zones()
            .unwrap()
            .iter()
            .map(|z| z.id)
            .find(|z| Some(*z) != lamp.zone_id)
            .expect("the estate has two zones"),
    );
    let units = 70 * 1_800 * 100;
    let day = |date: NaiveDate, zone: i64, slots: std::ops::Range<u8>| LampDayEnergy {
        lamp_id: lamp.lamp_id,
        zone_id: Some(zone),
        wattage_w: 70,
        location: lamp.profile.location,
        date,
        shares: slots
            .map(|slot| SlotShare {
                date,
                slot,
                units,
                covered_s: 1_800,
            })
            .collect(),
    };
    let (second, third) = (
        NaiveDate::from_ymd_opt(2026, 11, 2).unwrap(),
        NaiveDate::from_ymd_opt(2026, 11, 3).unwrap(),
    );
    store
        .record_energy(
            calendar,
            EnergySettlement {
                days: vec![
                    day(second, from_zone, 40..42),
                    day(third, to_zone, 40..42),
                    day(third, to_zone, 42..44),
                ],
                cursors: vec![(lamp.lamp_id, t0())],
                readings: 0,
            },
        )
        .unwrap();
    let as_of = AsOf {
        calendar,
        now: t0() + Duration::days(60),
        grace: Duration::zero(),
    };
    let totals = |group: TotalsGroup| {
        store
            .energy_totals(
                &TotalsQuery {
                    from: NaiveDate::from_ymd_opt(2026, 11, 1).unwrap(),
                    to: NaiveDate::from_ymd_opt(2026, 11, 30).unwrap(),
                    group,
                    zone_id: None,
                    limit: 100,
                },
                as_of,
            )
            .unwrap()
    };
    let month = totals(TotalsGroup::All);
    assert_eq!((month[0].totals.wh, month[0].lamps), (210, 1));
    let mut by_zone: Vec<(i64, i64)> = totals(TotalsGroup::Zone)
        .iter()
        .map(|row| (row.key.parse().unwrap(), row.totals.wh))
        .collect();
    by_zone.sort_unstable();
    let mut expected = vec![(from_zone, 70), (to_zone, 140)];
    expected.sort_unstable();
    assert_eq!(by_zone, expected);

    // The month to date (read from the month rows) says what its days say (read from the
    // day rows the day after), for every grouping.
    // In December a second lamp, in one zone: no lamp moved, so rows need no grouping.
    let other = contexts[1];
    let (dec1, dec2) = (
        NaiveDate::from_ymd_opt(2026, 12, 1).unwrap(),
        NaiveDate::from_ymd_opt(2026, 12, 2).unwrap(),
    );
    let december = [(dec1, 30..34), (dec2, 30..31)]
        .into_iter()
        .map(|(date, slots)| LampDayEnergy {
            lamp_id: other.lamp_id,
            zone_id: other.zone_id,
            ..day(date, 0, slots)
        })
        .chain([day(dec2, from_zone, 10..12)])
        .collect();
    store
        .record_energy(
            calendar,
            EnergySettlement {
                days: december,
                cursors: vec![],
                readings: 0,
            },
        )
        .unwrap();
    let first_days = |today: &str, group: TotalsGroup| {
        let today: NaiveDate = today.parse().unwrap();
        let (from, to) = if today.month() == 12 {
            (dec1, dec2)
        } else {
            (NaiveDate::from_ymd_opt(2026, 11, 1).unwrap(), third)
        };
        let mut rows: Vec<(String, i64, i64, u32)> = store
            .energy_totals(
                &TotalsQuery {
                    from,
                    to,
                    group,
                    zone_id: None,
                    limit: 100,
                },
                AsOf {
                    calendar,
                    now: calendar.slot_start(today, 24),
                    grace: Duration::zero(),
                },
            )
            .unwrap()
            .into_iter()
            .map(|row| (row.key, row.totals.wh, row.totals.cost_mp, row.lamps))
            .collect();
        rows.sort_unstable();
        rows
    };
    for group in [TotalsGroup::All, TotalsGroup::Zone, TotalsGroup::Lamp] {
        assert_eq!(
            first_days("2026-11-03", group),
            first_days("2026-11-04", group),
            "{group:?}"
        );
        assert_eq!(
            first_days("2026-12-02", group),
            first_days("2026-12-03", group),
            "{group:?}"
        );
    }
    assert_eq!(first_days("2026-11-03", TotalsGroup::All)[0].1, 210);
    let december = first_days("2026-12-02", TotalsGroup::All);
    assert_eq!((december[0].1, december[0].3), (7 * 35, 2));
}

macro_rules! backend_suite {
    ($backend:ident, $open:expr, [$($check:ident),* $(,)?]) => {
        mod $backend {
            $(
                #[test]
                fn $check() {
                    super::$check($open);
                }
            )*
        }
    };
}

backend_suite!(
    sqlite,
    super::sqlite(),
    [
        an_estate_loads_once_counts_and_resets,
        of_racers_holding_one_version_exactly_one_wins,
        records_refer_only_to_records_that_exist_and_prune_only_what_was_deleted,
        usernames_are_unique_and_a_new_password_ends_every_session,
        listings_page_by_id_and_a_box_finds_exactly_the_lamps_inside,
        a_resent_reading_is_a_duplicate_and_an_older_one_never_becomes_the_latest,
        after_a_failed_batch_the_rest_of_its_lineage_is_refused,
        a_fault_is_raised_acted_on_once_per_version_and_logged_in_order,
        a_reader_of_the_log_never_finds_an_event_behind_one_it_has_seen,
        energy_settles_into_days_months_and_is_priced_again_by_a_new_tariff,
        a_lamp_moved_within_one_settlement_counts_once_in_the_month,
        the_audit_trail_reads_newest_first_and_filters,
    ]
);

backend_suite!(
    postgres,
    super::postgres(),
    [
        an_estate_loads_once_counts_and_resets,
        of_racers_holding_one_version_exactly_one_wins,
        records_refer_only_to_records_that_exist_and_prune_only_what_was_deleted,
        usernames_are_unique_and_a_new_password_ends_every_session,
        listings_page_by_id_and_a_box_finds_exactly_the_lamps_inside,
        a_resent_reading_is_a_duplicate_and_an_older_one_never_becomes_the_latest,
        after_a_failed_batch_the_rest_of_its_lineage_is_refused,
        a_fault_is_raised_acted_on_once_per_version_and_logged_in_order,
        a_reader_of_the_log_never_finds_an_event_behind_one_it_has_seen,
        energy_settles_into_days_months_and_is_priced_again_by_a_new_tariff,
        a_lamp_moved_within_one_settlement_counts_once_in_the_month,
        the_audit_trail_reads_newest_first_and_filters,
    ]
);
