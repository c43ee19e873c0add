//! Energy settlement inside the server: ingest meters each lamp's new reading against its
//! previous one into a ledger held with the fault engine; a settlement task writes the ledger
//! to the store every interval (and at shutdown), closes finished days, and tells billing
//! watchers. The readings are durable before they are acknowledged; the ledger is rebuilt
//! from them after a crash, from each lamp's settlement cursor.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use tokio::sync::watch;

use super::context::Context;
use super::engine::{Engine, EngineState};
use crate::domain::billing::calendar::Calendar;
use crate::domain::billing::ledger::Ledger;
use crate::domain::billing::{Meter, MeterMode};
use crate::domain::telemetry::LampContext;
use crate::store::{LampDayEnergy, Notice, Store, StoreResult};

/// Settlement gets at most one part in this many of the writer's time under load, while
/// its backlog is small.
const WRITER_SHARE: u32 = 10;
/// Unsettled readings past which settlement stops resting and takes turns with ingest on
/// the writer. A server taking over (or restarting) meters every unsettled reading again
/// before it leads, about 130,000 a second on PostgreSQL at 1M lamps, so resting while a
/// burst piles up readings would stretch a takeover towards its 15 s bound.
const UNSETTLED_READINGS_BEFORE_HURRY: usize = 200_000;
/// How often resting settlement looks at its backlog.
const REST_STEP: Duration = Duration::from_millis(500);
/// Lamp-days written per writer job. Each job runs in its own savepoint, and SQLite's
/// statements slow down as a savepoint grows (measured: 100 times slower per lamp-day at
/// 5,000 than at 500), so jobs stay small and group commit joins them.
pub(super) const LAMP_DAYS_PER_JOB: usize = 500;

/// How energy is settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BillingConfig {
    pub meter: Meter,
    /// How often metered energy is written and billing watchers are updated.
    pub settle_interval: Duration,
    /// How long a stopping server goes on settling. What is left is not lost: its lamps'
    /// cursors stay behind, and the next start meters it again from the stored readings.
    pub settle_on_stop: Duration,
}

impl Default for BillingConfig {
    fn default() -> Self {
        Self {
            meter: Meter {
                mode: MeterMode::Calculated,
                calendar: Calendar::london(),
                max_gap: chrono::Duration::minutes(75),
            },
            settle_interval: Duration::from_secs(10),
            settle_on_stop: Duration::from_secs(3),
        }
    }
}

impl BillingConfig {
    pub fn calendar(&self) -> Calendar {
        self.meter.calendar
    }
}

/// A lamp whose stored readings ran past its settlement cursor when the engine was built:
/// energy a crash (or a stop that ran out of time) left unsettled.
#[derive(Debug, Clone, Copy)]
pub struct Unsettled {
    lamp: LampContext,
    /// The settlement cursor (the lamp's first reading if it was never settled).
    from: DateTime<Utc>,
    /// The lamp's latest reading when the engine was built: ingest meters what follows.
    through: DateTime<Utc>,
}

/// The lamps whose readings run past their settlement cursor, read once as the engine is
/// built. Metering them again (`catch_up`) happens after the server leads, so a takeover
/// does not wait for it.
pub fn unsettled_lamps(store: &dyn Store, state: &EngineState) -> StoreResult<Vec<Unsettled>> {
    let latest = state
        .lamps
        .iter()
        .filter_map(|(lamp_id, faults)| Some((*lamp_id, faults.last_reading?.at)));
    Ok(unsettled_of(
        &state.contexts,
        store.energy_cursors()?,
        latest,
    ))
}

/// The lamps of `lamps` whose latest reading runs past their settlement cursor.
pub(super) fn unsettled_of(
    lamps: &BTreeMap<i64, LampContext>,
    cursors: Vec<(i64, DateTime<Utc>)>,
    latest: impl Iterator<Item = (i64, DateTime<Utc>)>,
) -> Vec<Unsettled> {
    let cursors: HashMap<i64, DateTime<Utc>> = cursors.into_iter().collect();
    latest
        .filter_map(|(lamp_id, through)| {
            let lamp = *lamps.get(&lamp_id)?;
            let from = match cursors.get(&lamp_id) {
                Some(settled) if through > *settled => *settled,
                Some(_) => return None,
                None => DateTime::<Utc>::MIN_UTC,
            };
            Some(Unsettled {
                lamp,
                from,
                through,
            })
        })
        .collect()
}

/// Meters the stored readings of `lamps` again, each up to where it stood when the engine
/// was built (ingest has metered everything after that into the engine's ledger).
pub(super) fn replay(store: &dyn Store, meter: Meter, lamps: &[Unsettled]) -> StoreResult<Ledger> {
    let from: Vec<(i64, DateTime<Utc>)> = lamps.iter().map(|u| (u.lamp.lamp_id, u.from)).collect();
    let by_lamp: HashMap<i64, &Unsettled> = lamps.iter().map(|u| (u.lamp.lamp_id, u)).collect();
    let mut ledger = Ledger::new(meter);
    for (lamp_id, readings) in store.readings_from(&from)? {
        let Some(unsettled) = by_lamp.get(&lamp_id) else {
            continue;
        };
        for pair in readings.windows(2) {
            if pair[1].at > unsettled.through {
                break;
            }
            ledger.record(&unsettled.lamp, &pair[0], &pair[1]);
        }
    }
    Ok(ledger)
}

/// Meters the energy left unsettled by the previous leader into the engine's ledger, before
/// this term settles anything: a cursor written for a lamp's new readings first would skip
/// its older ones. Returns false if the term ended first.
async fn catch_up(context: &Context, engine: &Engine, meter: Meter, lamps: Vec<Unsettled>) -> bool {
    if lamps.is_empty() {
        return true;
    }
    let lamps = Arc::new(lamps);
    let began = std::time::Instant::now();
    loop {
        let todo = lamps.clone();
        match context.blocking(move |s| replay(s, meter, &todo)).await {
            Ok(replayed) => {
                let readings = replayed.readings();
                engine.lock().await.energy.absorb_older(replayed);
                tracing::info!(
                    lamps = lamps.len(),
                    readings,
                    took_ms = began.elapsed().as_millis(),
                    "energy of readings not yet settled metered again"
                );
                return true;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot read the readings not yet settled; retrying");
                tokio::select! {
                    () = context.shutdown.cancelled() => return false,
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    }
}

/// The lamps a closed day must have a row for: those in the inventory before the day ended.
/// A freshly seeded or imported estate has no past to close, so its first start does not
/// write a silent day for every lamp.
pub(super) fn closing_lamps<'a>(
    lamps: impl Iterator<Item = &'a LampContext>,
    calendar: Calendar,
    date: NaiveDate,
) -> Vec<LampDayEnergy> {
    lamps
        .filter(|lamp| calendar.date_of(lamp.since) <= date)
        .map(|lamp| LampDayEnergy {
            lamp_id: lamp.lamp_id,
            zone_id: lamp.zone_id,
            wattage_w: lamp.profile.wattage_w,
            location: lamp.profile.location,
            date,
            shares: Vec::new(),
        })
        .collect()
}

/// Writes the ledger every interval until shutdown, then once more; closes each day once its
/// reports are all due. `settled` counts settlements, for billing watchers.
pub async fn run(
    context: Context,
    engine: Engine,
    config: BillingConfig,
    unsettled: Vec<Unsettled>,
    settled: Arc<watch::Sender<u64>>,
) {
    if !catch_up(&context, &engine, config.meter, unsettled).await {
        return;
    }
    let calendar = config.calendar();
    let grace = config.meter.max_gap;
    // Yesterday is closed again after a restart (only lamps still without a row get one).
    let mut closed_through = calendar
        .date_of(Utc::now() - grace)
        .pred_opt()
        .and_then(|d| d.pred_opt());
    let mut ticks = tokio::time::interval(config.settle_interval);
    // When this task first saw the server stopping: settling goes on for `settle_on_stop`.
    let mut stop_began: Option<std::time::Instant> = None;
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let stopping = tokio::select! {
            () = context.shutdown.cancelled() => true,
            _ = ticks.tick() => false,
        };
        let started = std::time::Instant::now();
        let jobs = engine.lock().await.energy.take(LAMP_DAYS_PER_JOB);
        let wrote = !jobs.is_empty();
        let lamp_days: usize = jobs.iter().map(|job| job.days.len()).sum();
        let mut jobs = jobs.into_iter();
        while let Some(job) = jobs.next() {
            if context.shutdown.is_cancelled()
                && stop_began
                    .get_or_insert_with(std::time::Instant::now)
                    .elapsed()
                    >= config.settle_on_stop
            {
                let left = job.days.len() + jobs.map(|j| j.days.len()).sum::<usize>();
                tracing::info!(
                    lamp_days = left,
                    "stopping: energy not settled yet is metered again from its readings at the next start"
                );
                return;
            }
            let kept = job.clone();
            let readings = job.readings;
            let outcome = context
                .blocking(move |s| s.record_energy(calendar, job))
                .await;
            if outcome.is_ok() {
                engine.lock().await.energy.stored(readings);
            }
            if let Err(e) = outcome {
                tracing::error!(error = %e, "energy settlement could not be stored; retrying");
                let mut engine = engine.lock().await;
                engine.energy.restore(kept);
                for rest in jobs.by_ref() {
                    engine.energy.restore(rest);
                }
            }
        }
        if wrote {
            tracing::debug!(
                lamp_days,
                took_ms = started.elapsed().as_millis(),
                "energy settled"
            );
            settled.send_modify(|n| *n += 1);
            context.announce(vec![Notice::Settled]);
        }
        // Settlement shares the one writer with ingest: after a long pass, rest so that it
        // takes at most a tenth of the writer's time, unless the backlog grows too large.
        if !stopping {
            let pause = rest_after(started.elapsed(), config.settle_interval);
            let unsettled = || {
                let engine = engine.clone();
                async move { engine.lock().await.energy.unsettled() }
            };
            rest(&context.shutdown, pause, unsettled).await;
        }
        if stopping {
            return;
        }
        let finished = calendar.date_of(Utc::now() - grace).pred_opt();
        while let Some(day) = next_day_to_close(closed_through, finished) {
            let lamps = closing_lamps(engine.lock().await.contexts.values(), calendar, day);
            if !close_day(&context, calendar, day, lamps, &settled).await {
                break;
            }
            closed_through = Some(day);
        }
    }
}

/// Closes `day` for `lamps` (those without a row get an empty one), in parts so that ingest's
/// commits go between them, and tells billing watchers; false if the store refused.
pub(super) async fn close_day(
    context: &Context,
    calendar: Calendar,
    day: NaiveDate,
    lamps: Vec<LampDayEnergy>,
    settled: &watch::Sender<u64>,
) -> bool {
    let mut added = 0;
    for part in lamps.chunks(LAMP_DAYS_PER_JOB) {
        let part = part.to_vec();
        match context
            .blocking(move |s| s.close_energy_day(calendar, day, part))
            .await
        {
            Ok(n) => added += n,
            Err(e) => {
                tracing::error!(error = %e, %day, "cannot close the settlement day");
                return false;
            }
        }
    }
    tracing::info!(%day, silent_lamps = added, "settlement day closed");
    settled.send_modify(|n| *n += 1);
    context.announce(vec![Notice::Settled]);
    true
}

/// How long to rest after a pass that took `pass`: what keeps settlement to its share of the
/// writer, less the interval the next tick waits anyway.
fn rest_after(pass: Duration, interval: Duration) -> Duration {
    (pass * (WRITER_SHARE - 1)).saturating_sub(interval)
}

/// Rests for up to `rest`, ending early at shutdown or once the ledger holds more unsettled
/// readings than a takeover should have to meter again.
async fn rest<F: Future<Output = usize>>(
    shutdown: &tokio_util::sync::CancellationToken,
    rest: Duration,
    mut unsettled_readings: impl FnMut() -> F,
) {
    let until = tokio::time::Instant::now() + rest;
    loop {
        let left = until.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            return;
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(left.min(REST_STEP)) => {}
        }
        let unsettled = unsettled_readings().await;
        if hurry(unsettled) {
            tracing::debug!(unsettled, "settlement backlog large: settling without rest");
            return;
        }
    }
}

/// Whether a backlog of `unsettled` readings is too large to rest on.
fn hurry(unsettled: usize) -> bool {
    unsettled >= UNSETTLED_READINGS_BEFORE_HURRY
}

pub(super) fn next_day_to_close(
    closed_through: Option<NaiveDate>,
    finished: Option<NaiveDate>,
) -> Option<NaiveDate> {
    let next = closed_through?.succ_opt()?;
    (next <= finished?).then_some(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_util::sync::CancellationToken;

    /// A takeover meters the backlog after it leads, while ingest meters new readings: the
    /// replay stops where each lamp stood when the engine was built, so nothing counts twice
    /// even if the new readings are already stored when it reads.
    #[test]
    fn metering_the_backlog_again_stops_where_ingest_took_over() {
        use crate::domain::estate::{City, EstateSpec, generate};
        use crate::store::prelude::*;
        use crate::store::sqlite::SqliteStore;
        use crate::store::{LampReading, TelemetryBatch};

        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("t.db")).unwrap();
        store
            .import_estate(&generate(&EstateSpec {
                lamps: 1,
                rng_seed: 7,
                city: City::by_key("london").unwrap(),
            }))
            .unwrap();
        let lamp = store.lamp_contexts().unwrap()[0];
        let midnight: DateTime<Utc> = "2026-11-03T00:00:00Z".parse().unwrap();
        let at = |half_hours: i64| midnight + chrono::Duration::minutes(30 * half_hours);
        // Stored: midnight to six in the evening. The engine was built at noon.
        let readings = (0..=36)
            .map(|n| LampReading {
                lamp_id: lamp.lamp_id,
                reading: crate::domain::telemetry::tests::reading(at(n)),
                latest: true,
            })
            .collect();
        store
            .record_telemetry(TelemetryBatch {
                readings,
                ..Default::default()
            })
            .unwrap();
        let backlog = Unsettled {
            lamp,
            from: midnight,
            through: at(24),
        };

        let ledger = replay(&store, BillingConfig::default().meter, &[backlog]).unwrap();

        assert_eq!(
            ledger.readings(),
            24,
            "midnight to noon, each half-hour once"
        );
        let job = &ledger.clone().take(LAMP_DAYS_PER_JOB)[0];
        assert_eq!(job.cursors, vec![(lamp.lamp_id, at(24))]);
    }

    #[test]
    fn a_long_pass_rests_nine_times_as_long_less_the_interval() {
        let interval = Duration::from_secs(10);
        assert_eq!(
            rest_after(Duration::from_secs(5), interval),
            Duration::from_secs(35)
        );
        assert_eq!(rest_after(Duration::from_secs(1), interval), Duration::ZERO);
    }

    /// Paused tokio time: the clock only moves when every task waits, so the rest's length
    /// is exact, not timed.
    #[tokio::test(start_paused = true)]
    async fn a_small_backlog_rests_the_whole_time() {
        let began = tokio::time::Instant::now();
        let mut readings = 0;
        rest(&CancellationToken::new(), Duration::from_secs(30), || {
            readings += 1_000;
            std::future::ready(readings)
        })
        .await;
        assert_eq!(began.elapsed(), Duration::from_secs(30));
    }

    #[tokio::test(start_paused = true)]
    async fn a_growing_backlog_ends_the_rest_once_a_takeover_would_have_too_much_to_meter() {
        let began = tokio::time::Instant::now();
        // A burst: 50,000 readings metered every half second.
        let mut readings = 0;
        rest(&CancellationToken::new(), Duration::from_secs(600), || {
            readings += 50_000;
            std::future::ready(readings)
        })
        .await;
        assert!(hurry(readings));
        assert_eq!(
            began.elapsed(),
            REST_STEP * (UNSETTLED_READINGS_BEFORE_HURRY / 50_000) as u32
        );
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_ends_the_rest() {
        let shutdown = CancellationToken::new();
        let stopper = shutdown.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(2)).await;
            stopper.cancel();
        });
        let began = tokio::time::Instant::now();
        rest(&shutdown, Duration::from_secs(600), || {
            std::future::ready(0)
        })
        .await;
        assert_eq!(began.elapsed(), Duration::from_secs(2));
    }

    #[test]
    fn a_day_is_closed_only_for_lamps_in_the_inventory_before_it_ended() {
        let calendar = Calendar::london();
        let lamp = |lamp_id: i64, since: &str| LampContext {
            lamp_id,
            telecell_id: lamp_id,
            basestation_id: 1,
            circuit_id: None,
            zone_id: Some(1),
            profile: crate::domain::telemetry::LampProfile {
                wattage_w: 36,
                dimmable: true,
                location: None,
            },
            since: since.parse().unwrap(),
        };
        // Added the evening before, during the day, and the day after (a fresh seed).
        let lamps = [
            lamp(1, "2026-11-30T20:00:00Z"),
            lamp(2, "2026-12-01T23:59:00Z"),
            lamp(3, "2026-12-02T00:00:00Z"),
        ];
        let day: NaiveDate = "2026-12-01".parse().unwrap();
        let mut closed: Vec<i64> = closing_lamps(lamps.iter(), calendar, day)
            .iter()
            .map(|d| d.lamp_id)
            .collect();
        closed.sort_unstable();
        assert_eq!(closed, vec![1, 2]);
    }
}
