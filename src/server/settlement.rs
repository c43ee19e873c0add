//! Energy settlement inside the server: ingest meters each lamp's new reading against its
//! previous one into a ledger held with the fault engine; a settlement task writes the ledger
//! to the store every interval (and at shutdown), closes finished days, and tells billing
//! watchers. The readings are durable before they are acknowledged; the ledger is rebuilt
//! from them after a crash, from each lamp's settlement cursor.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use tokio::sync::watch;

use super::context::Context;
use super::engine::{Engine, EngineState};
use crate::domain::billing::calendar::Calendar;
use crate::domain::billing::{Meter, MeterMode};
use crate::domain::telemetry::LampContext;
use crate::store::{LampDayEnergy, Notice, Store, StoreResult};

/// Settlement gets at most one part in this many of the writer's time under load.
const WRITER_SHARE: u32 = 10;
/// Lamp-days written per writer job. Each job runs in its own savepoint, and SQLite's
/// statements slow down as a savepoint grows (measured: 100 times slower per lamp-day at
/// 5,000 than at 500), so jobs stay small and group commit joins them.
const LAMP_DAYS_PER_JOB: usize = 500;

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

/// Meters again the readings stored after each lamp's settlement cursor (those a crash, or a
/// stop that ran out of time, kept from being settled); a lamp with readings and no cursor was
/// never settled, and is metered from its first stored reading.
pub fn recover(store: &dyn Store, state: &mut EngineState) -> StoreResult<usize> {
    let cursors: HashMap<i64, DateTime<Utc>> = store.energy_cursors()?.into_iter().collect();
    let behind: Vec<(i64, DateTime<Utc>)> = state
        .lamps
        .iter()
        .filter_map(|(lamp, faults)| {
            let latest = faults.last_reading?.at;
            match cursors.get(lamp) {
                Some(settled) if latest > *settled => Some((*lamp, *settled)),
                Some(_) => None,
                None => Some((*lamp, DateTime::<Utc>::MIN_UTC)),
            }
        })
        .collect();
    let mut replayed = 0;
    for (lamp_id, readings) in store.readings_from(&behind)? {
        let Some(context) = state.contexts.get(&lamp_id).copied() else {
            continue;
        };
        for pair in readings.windows(2) {
            state.energy.record(&context, &pair[0], &pair[1]);
            replayed += 1;
        }
    }
    Ok(replayed)
}

/// The lamps a closed day must have a row for: those in the inventory before the day ended.
/// A freshly seeded or imported estate has no past to close, so its first start does not
/// write a silent day for every lamp.
fn closing_lamps<'a>(
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
    settled: Arc<watch::Sender<u64>>,
) {
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
            if let Err(e) = context
                .blocking(move |s| s.record_energy(calendar, job))
                .await
            {
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
        // Settlement shares the one writer with ingest: after a long one, wait so that it
        // takes at most a tenth of the writer's time; the ledger coalesces meanwhile.
        let rest = (started.elapsed() * (WRITER_SHARE - 1)).saturating_sub(config.settle_interval);
        if !stopping && !rest.is_zero() {
            tokio::select! {
                () = context.shutdown.cancelled() => {}
                () = tokio::time::sleep(rest) => {}
            }
        }
        if stopping {
            return;
        }
        let finished = calendar.date_of(Utc::now() - grace).pred_opt();
        while let Some(day) = next_day_to_close(closed_through, finished) {
            let lamps = closing_lamps(engine.lock().await.contexts.values(), calendar, day);
            let mut added = 0;
            let mut failed = false;
            // In parts, so ingest's commits go between them.
            for part in lamps.chunks(LAMP_DAYS_PER_JOB) {
                let part = part.to_vec();
                match context
                    .blocking(move |s| s.close_energy_day(calendar, day, part))
                    .await
                {
                    Ok(n) => added += n,
                    Err(e) => {
                        tracing::error!(error = %e, %day, "cannot close the settlement day");
                        failed = true;
                        break;
                    }
                }
            }
            if failed {
                break;
            }
            tracing::info!(%day, silent_lamps = added, "settlement day closed");
            closed_through = Some(day);
            settled.send_modify(|n| *n += 1);
            context.announce(vec![Notice::Settled]);
        }
    }
}

fn next_day_to_close(
    closed_through: Option<NaiveDate>,
    finished: Option<NaiveDate>,
) -> Option<NaiveDate> {
    let next = closed_through?.succ_opt()?;
    (next <= finished?).then_some(next)
}

#[cfg(test)]
mod tests {
    use super::*;

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
