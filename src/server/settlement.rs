//! Energy settlement inside the server: ingest meters each lamp's new reading against its
//! previous one into a ledger held with the fault engine; a settlement task writes the ledger
//! to the store every interval (and at shutdown), closes finished days, and tells billing
//! watchers. The readings are durable before they are acknowledged; the ledger is rebuilt
//! from them after a crash, from each lamp's settlement cursor.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use tokio::sync::watch;

use super::context::Context;
use super::engine::{Engine, EngineState};
use crate::domain::billing::calendar::Calendar;
use crate::domain::billing::meter::SlotShare;
use crate::domain::billing::{Meter, MeterMode};
use crate::domain::geo::GeoPoint;
use crate::domain::telemetry::{LampContext, Reading};
use crate::store::{EnergySettlement, LampDayEnergy, Store, StoreResult};

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

/// Energy metered since the last settlement, per lamp: each of its days with one share per
/// half-hour slot (shares of a slot add up, so the ledger stays small however often a lamp
/// reports), and how far the lamp got.
#[derive(Debug, Clone)]
pub struct Ledger {
    meter: Meter,
    lamps: HashMap<i64, LampLedger, FastHash>,
}

/// Ingest records every reading here, under the engine lock: a fast hash for integer keys.
type FastHash = foldhash::fast::RandomState;

#[derive(Debug, Clone, Default)]
struct LampLedger {
    wattage_w: u32,
    location: Option<GeoPoint>,
    /// Usually one day, two around midnight.
    days: Vec<PendingDay>,
    cursor: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
struct PendingDay {
    date: NaiveDate,
    /// The lamp's zone when the day's first energy was metered: a lamp moved later in the
    /// day keeps the day where it began.
    zone_id: Option<i64>,
    shares: Vec<SlotShare>,
}

impl PendingDay {
    fn add(&mut self, share: SlotShare) {
        match self.shares.iter_mut().find(|s| s.slot == share.slot) {
            // Settlement caps a slot's covered seconds at the slot's length, so adding here
            // first changes nothing.
            Some(existing) => {
                existing.units += share.units;
                existing.covered_s = existing.covered_s.saturating_add(share.covered_s);
            }
            None => self.shares.push(share),
        }
    }
}

impl LampLedger {
    fn day(&mut self, date: NaiveDate, zone_id: Option<i64>) -> &mut PendingDay {
        let index = match self.days.iter().position(|day| day.date == date) {
            Some(index) => index,
            None => {
                self.days.push(PendingDay {
                    date,
                    zone_id,
                    shares: Vec::new(),
                });
                self.days.len() - 1
            }
        };
        &mut self.days[index]
    }

    fn advance(&mut self, at: DateTime<Utc>) {
        self.cursor = Some(self.cursor.map_or(at, |c| c.max(at)));
    }

    /// Takes in a newer ledger's entry for the same lamp.
    fn absorb(&mut self, newer: LampLedger) {
        self.wattage_w = newer.wattage_w;
        self.location = newer.location;
        for day in newer.days {
            let mine = self.day(day.date, day.zone_id);
            for share in day.shares {
                mine.add(share);
            }
        }
        if let Some(at) = newer.cursor {
            self.advance(at);
        }
    }
}

impl Ledger {
    pub fn new(meter: Meter) -> Self {
        Self {
            meter,
            lamps: HashMap::default(),
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
        let entry = self.lamps.entry(lamp.lamp_id).or_default();
        entry.wattage_w = lamp.profile.wattage_w;
        entry.location = lamp.profile.location;
        for share in shares {
            entry.day(share.date, lamp.zone_id).add(share);
        }
        entry.advance(current.at);
    }

    /// Takes in a newer ledger's entries (a committed ingest batch).
    pub fn absorb(&mut self, newer: Ledger) {
        if self.lamps.is_empty() {
            self.lamps = newer.lamps;
            return;
        }
        for (lamp_id, lamp) in newer.lamps {
            match self.lamps.entry(lamp_id) {
                Entry::Occupied(mut mine) => mine.get_mut().absorb(lamp),
                Entry::Vacant(slot) => {
                    slot.insert(lamp);
                }
            }
        }
    }

    /// Empties the ledger into settlements of about `LAMP_DAYS_PER_JOB` lamp-days each, every
    /// lamp's days and cursor in the same one (so each commits whole), letting ingest's
    /// commits interleave with a large settlement.
    pub fn take(&mut self) -> Vec<EnergySettlement> {
        let mut jobs = vec![EnergySettlement::default()];
        for (lamp_id, lamp) in std::mem::take(&mut self.lamps) {
            if jobs
                .last()
                .is_some_and(|job| job.days.len() >= LAMP_DAYS_PER_JOB)
            {
                jobs.push(EnergySettlement::default());
            }
            let Some(job) = jobs.last_mut() else { continue };
            // Lamps whose readings added no energy still move their cursor.
            job.cursors.extend(lamp.cursor.map(|at| (lamp_id, at)));
            job.days
                .extend(lamp.days.into_iter().map(|day| LampDayEnergy {
                    lamp_id,
                    zone_id: day.zone_id,
                    wattage_w: lamp.wattage_w,
                    location: lamp.location,
                    date: day.date,
                    shares: day.shares,
                }));
        }
        jobs.retain(|job| !job.days.is_empty() || !job.cursors.is_empty());
        jobs
    }

    /// Puts back a settlement the store refused, so nothing metered is lost. What was metered
    /// since is newer and keeps its place.
    pub fn restore(&mut self, settlement: EnergySettlement) {
        let mut older: HashMap<i64, LampLedger, FastHash> = HashMap::default();
        for day in settlement.days {
            let lamp = older.entry(day.lamp_id).or_default();
            lamp.wattage_w = day.wattage_w;
            lamp.location = day.location;
            let pending = lamp.day(day.date, day.zone_id);
            for share in day.shares {
                pending.add(share);
            }
        }
        for (lamp_id, at) in settlement.cursors {
            older.entry(lamp_id).or_default().advance(at);
        }
        for (lamp_id, mut lamp) in older {
            if let Some(newer) = self.lamps.remove(&lamp_id) {
                lamp.absorb(newer);
            }
            self.lamps.insert(lamp_id, lamp);
        }
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
    // When this task first saw the server stopping: settling goes on for `settle_on_stop`.
    let mut stop_began: Option<std::time::Instant> = None;
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let stopping = tokio::select! {
            () = context.shutdown.cancelled() => true,
            _ = ticks.tick() => false,
        };
        let started = std::time::Instant::now();
        let jobs = engine.lock().await.energy.take();
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
    use crate::domain::billing::settle;

    fn share(date: NaiveDate, slot: u8, units: u64, covered_s: u16) -> SlotShare {
        SlotShare {
            date,
            slot,
            units,
            covered_s,
        }
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
            profile: crate::domain::faults::rules::LampProfile {
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

    fn day(lamp_id: i64, date: NaiveDate, shares: Vec<SlotShare>) -> LampDayEnergy {
        LampDayEnergy {
            lamp_id,
            zone_id: Some(3),
            wattage_w: 100,
            location: None,
            date,
            shares,
        }
    }

    #[test]
    fn shares_of_a_slot_add_up_to_what_settlement_would_make_of_them_one_by_one() {
        let d = NaiveDate::from_ymd_opt(2026, 11, 3).unwrap();
        let shares = vec![
            share(d, 4, 1_000, 900),
            share(d, 4, 2_000, 900),
            share(d, 4, 500, 600),
            share(d, 5, 7, 30),
        ];
        let mut ledger = Ledger::new(BillingConfig::default().meter);
        ledger.restore(EnergySettlement {
            days: vec![day(1, d, shares.clone())],
            cursors: vec![],
        });
        let jobs = ledger.take();
        assert_eq!(jobs.len(), 1);
        let coalesced = &jobs[0].days[0].shares;
        assert_eq!(coalesced.len(), 2, "one share per slot");
        let mut one_by_one = vec![settle::SlotEnergy::default(); 48];
        settle::merge(&mut one_by_one, &shares);
        let mut at_once = vec![settle::SlotEnergy::default(); 48];
        settle::merge(&mut at_once, coalesced);
        assert_eq!(one_by_one, at_once);
        assert!(ledger.take().is_empty(), "taking empties the ledger");
    }

    #[test]
    fn a_lamps_days_and_cursor_travel_together_and_a_refused_settlement_comes_back_whole() {
        let d1 = NaiveDate::from_ymd_opt(2026, 11, 3).unwrap();
        let d2 = d1.succ_opt().unwrap();
        let at = DateTime::parse_from_rfc3339("2026-11-04T01:00:00Z")
            .unwrap()
            .to_utc();
        let mut ledger = Ledger::new(BillingConfig::default().meter);
        let lamps = LAMP_DAYS_PER_JOB + 10;
        ledger.restore(EnergySettlement {
            days: (0..lamps as i64)
                .flat_map(|lamp| {
                    [
                        day(lamp, d1, vec![share(d1, 47, 10, 60)]),
                        day(lamp, d2, vec![share(d2, 0, 20, 60)]),
                    ]
                })
                .collect(),
            cursors: (0..lamps as i64).map(|lamp| (lamp, at)).collect(),
        });
        let jobs = ledger.take();
        assert!(jobs.len() >= 2, "split into jobs");
        for job in &jobs {
            for (lamp, _) in &job.cursors {
                assert_eq!(
                    job.days.iter().filter(|d| d.lamp_id == *lamp).count(),
                    2,
                    "lamp {lamp}'s days are in its cursor's job"
                );
            }
        }
        let total: usize = jobs.iter().map(|j| j.days.len()).sum();
        assert_eq!(total, lamps * 2);
        for job in jobs {
            ledger.restore(job);
        }
        let again: usize = ledger.take().iter().map(|j| j.days.len()).sum();
        assert_eq!(again, lamps * 2, "nothing lost on the way back");
    }
}
