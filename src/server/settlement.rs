//! Energy settlement inside the server: ingest meters each lamp's new reading against its
//! previous one into a ledger held with the fault engine; a settlement task writes the ledger
//! to the store every interval (and at shutdown), closes finished days, and tells billing
//! watchers. The readings are durable before they are acknowledged; the ledger is rebuilt
//! from them after a crash, from each lamp's settlement cursor.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use tokio::sync::watch;

use super::context::Context;
use super::engine::{Engine, EngineState};
use crate::domain::billing::calendar::Calendar;
use crate::domain::billing::{Meter, MeterMode};
use crate::domain::telemetry::{LampContext, Reading};
use crate::store::{EnergySettlement, LampDayEnergy, Store, StoreResult};

/// Settlement gets at most one part in this many of the writer's time under load.
const WRITER_SHARE: u32 = 6;
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
        }
    }
}

impl BillingConfig {
    pub fn calendar(&self) -> Calendar {
        self.meter.calendar
    }
}

/// Energy metered since the last settlement, per lamp-day, and how far each lamp got.
#[derive(Debug, Clone)]
pub struct Ledger {
    meter: Meter,
    days: HashMap<(i64, NaiveDate), LampDayEnergy>,
    cursors: HashMap<i64, DateTime<Utc>>,
}

impl Ledger {
    pub fn new(meter: Meter) -> Self {
        Self {
            meter,
            days: HashMap::new(),
            cursors: HashMap::new(),
        }
    }

    pub fn meter(&self) -> &Meter {
        &self.meter
    }

    /// Meters the interval from a lamp's previous reading to its new one.
    pub fn record(&mut self, lamp: &LampContext, previous: &Reading, current: &Reading) {
        let shares = self
            .meter
            .interval(previous, current, lamp.profile.wattage_w);
        for share in shares {
            self.days
                .entry((lamp.lamp_id, share.date))
                .or_insert_with(|| LampDayEnergy {
                    lamp_id: lamp.lamp_id,
                    zone_id: lamp.zone_id,
                    wattage_w: lamp.profile.wattage_w,
                    location: lamp.profile.location,
                    date: share.date,
                    shares: Vec::new(),
                })
                .shares
                .push(share);
        }
        let cursor = self.cursors.entry(lamp.lamp_id).or_insert(current.at);
        *cursor = (*cursor).max(current.at);
    }

    /// Takes in another ledger's entries (a committed ingest batch, or a settlement that
    /// could not be written).
    pub fn absorb(&mut self, other: Ledger) {
        for (key, day) in other.days {
            match self.days.get_mut(&key) {
                Some(existing) => existing.shares.extend(day.shares),
                None => {
                    self.days.insert(key, day);
                }
            }
        }
        for (lamp, at) in other.cursors {
            let cursor = self.cursors.entry(lamp).or_insert(at);
            *cursor = (*cursor).max(at);
        }
    }

    /// Empties the ledger into settlements of about `LAMP_DAYS_PER_JOB` lamp-days each, every
    /// lamp's days and cursor in the same one (so each commits whole), letting ingest's
    /// commits interleave with a large settlement.
    pub fn take(&mut self) -> Vec<EnergySettlement> {
        let mut by_lamp: HashMap<i64, Vec<LampDayEnergy>> = HashMap::new();
        for ((lamp, _), day) in std::mem::take(&mut self.days) {
            by_lamp.entry(lamp).or_default().push(day);
        }
        let mut cursors = std::mem::take(&mut self.cursors);
        let mut jobs = vec![EnergySettlement::default()];
        for (lamp, days) in by_lamp {
            if jobs
                .last()
                .is_some_and(|job| job.days.len() >= LAMP_DAYS_PER_JOB)
            {
                jobs.push(EnergySettlement::default());
            }
            if let Some(job) = jobs.last_mut() {
                job.days.extend(days);
                job.cursors
                    .extend(cursors.remove(&lamp).map(|at| (lamp, at)));
            }
        }
        // Lamps whose readings added no energy still move their cursor.
        if let Some(job) = jobs.last_mut() {
            job.cursors.extend(cursors);
        }
        jobs.retain(|job| !job.days.is_empty() || !job.cursors.is_empty());
        jobs
    }

    /// Puts back a settlement the store refused, so nothing metered is lost.
    pub fn restore(&mut self, settlement: EnergySettlement) {
        let mut back = Ledger::new(self.meter);
        for day in settlement.days {
            back.days.insert((day.lamp_id, day.date), day);
        }
        back.cursors.extend(settlement.cursors);
        self.absorb(back);
    }
}

/// Meters again the readings stored after each lamp's settlement cursor (those a crash kept
/// from being settled). Lamps without a cursor start billing from their next reading.
pub fn recover(store: &dyn Store, state: &mut EngineState) -> StoreResult<usize> {
    let behind: Vec<(i64, DateTime<Utc>)> = store
        .energy_cursors()?
        .into_iter()
        .filter(|(lamp, at)| {
            state
                .lamps
                .get(lamp)
                .and_then(|f| f.last_reading)
                .is_some_and(|r| r.at > *at)
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

/// The lamps a closed day must have a row for.
fn closing_lamps(state: &EngineState, date: NaiveDate) -> Vec<LampDayEnergy> {
    state
        .contexts
        .values()
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
    settled: watch::Sender<u64>,
) {
    let calendar = config.calendar();
    let grace = config.meter.max_gap;
    // Yesterday is closed again after a restart (only lamps still without a row get one).
    let mut closed_through = calendar
        .date_of(Utc::now() - grace)
        .pred_opt()
        .and_then(|d| d.pred_opt());
    let mut ticks = tokio::time::interval(config.settle_interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let stopping = tokio::select! {
            () = context.shutdown.cancelled() => true,
            _ = ticks.tick() => false,
        };
        let started = std::time::Instant::now();
        let jobs = engine.lock().await.energy.take();
        let wrote = !jobs.is_empty();
        let mut jobs = jobs.into_iter();
        while let Some(job) = jobs.next() {
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
            settled.send_modify(|n| *n += 1);
        }
        // Settlement shares the one writer with ingest: after a long one, wait so that it
        // takes at most a sixth of the writer's time; the ledger coalesces meanwhile.
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
            let lamps = closing_lamps(&*engine.lock().await, day);
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
