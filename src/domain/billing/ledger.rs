//! The energy ledger: what ingest metered since the last settlement, per lamp and day, one
//! share per half-hour slot, with how far each lamp got; taken out in settlements the store
//! writes, and put back whole when the store refuses one.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use chrono::{DateTime, NaiveDate, Utc};

use super::meter::{Meter, SlotShare};
use crate::domain::geo::GeoPoint;
use crate::domain::telemetry::{LampContext, Reading};

/// Energy for one lamp on one settlement day, not yet stored.
#[derive(Debug, Clone, PartialEq)]
pub struct LampDayEnergy {
    pub lamp_id: i64,
    /// The lamp's zone, used when its day is first stored.
    pub zone_id: Option<i64>,
    pub wattage_w: u32,
    pub location: Option<crate::domain::geo::GeoPoint>,
    pub date: NaiveDate,
    pub shares: Vec<SlotShare>,
}

/// Energy settled since the last settlement, and how far each lamp has been settled.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EnergySettlement {
    pub days: Vec<LampDayEnergy>,
    pub cursors: Vec<(i64, DateTime<Utc>)>,
    /// How many metered readings this settlement covers: what stays unsettled until it is
    /// stored. Not stored itself.
    pub readings: usize,
}

/// Ingest records every reading here, under the engine lock: a fast hash for integer keys.
type FastHash = foldhash::fast::RandomState;

/// Energy metered since the last settlement, per lamp: each of its days with one share per
/// half-hour slot (shares of a slot add up, so the ledger stays small however often a lamp
/// reports), and how far the lamp got.
#[derive(Debug, Clone)]
pub struct Ledger {
    meter: Meter,
    lamps: HashMap<i64, LampLedger, FastHash>,
    /// Readings metered in and not yet taken out for settlement.
    readings: usize,
    /// Readings taken out in settlements not yet stored. With `readings`, what a takeover
    /// would have to meter again from the stored readings if this server died now.
    settling: usize,
}

#[derive(Debug, Clone, Default)]
struct LampLedger {
    wattage_w: u32,
    location: Option<GeoPoint>,
    /// Usually one day, two around midnight.
    days: Vec<PendingDay>,
    cursor: Option<DateTime<Utc>>,
    readings: usize,
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
        self.readings += newer.readings;
    }
}

impl Ledger {
    pub fn new(meter: Meter) -> Self {
        Self {
            meter,
            lamps: HashMap::default(),
            readings: 0,
            settling: 0,
        }
    }

    /// Readings metered and not yet stored as settled energy, in the ledger or in
    /// settlements taken out and not yet stored.
    pub fn unsettled(&self) -> usize {
        self.readings + self.settling
    }

    /// Readings in the ledger, not yet taken out for settlement.
    pub fn readings(&self) -> usize {
        self.readings
    }

    /// A settlement taken out was stored: its readings are settled.
    pub fn stored(&mut self, settlement_readings: usize) {
        self.settling = self.settling.saturating_sub(settlement_readings);
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
        entry.readings += 1;
        self.readings += 1;
    }

    /// Takes in a newer ledger's entries (a committed ingest batch).
    pub fn absorb(&mut self, newer: Ledger) {
        self.readings += newer.readings;
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

    /// Takes in an older ledger's entries (energy metered again after a takeover): what this
    /// ledger metered since is newer and keeps its place.
    pub fn absorb_older(&mut self, older: Ledger) {
        let newer = std::mem::replace(&mut self.lamps, older.lamps);
        self.readings += older.readings;
        for (lamp_id, lamp) in newer {
            match self.lamps.entry(lamp_id) {
                Entry::Occupied(mut mine) => mine.get_mut().absorb(lamp),
                Entry::Vacant(slot) => {
                    slot.insert(lamp);
                }
            }
        }
    }

    /// Empties the ledger into settlements of about `lamp_days_per_job` lamp-days each, every
    /// lamp's days and cursor in the same one (so each commits whole), letting ingest's
    /// commits interleave with a large settlement.
    pub fn take(&mut self, lamp_days_per_job: usize) -> Vec<EnergySettlement> {
        let mut jobs = vec![EnergySettlement::default()];
        self.settling += std::mem::take(&mut self.readings);
        for (lamp_id, lamp) in std::mem::take(&mut self.lamps) {
            if jobs
                .last()
                .is_some_and(|job| job.days.len() >= lamp_days_per_job)
            {
                jobs.push(EnergySettlement::default());
            }
            let Some(job) = jobs.last_mut() else { continue };
            // Lamps whose readings added no energy still move their cursor.
            job.cursors.extend(lamp.cursor.map(|at| (lamp_id, at)));
            job.readings += lamp.readings;
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
        self.settling = self.settling.saturating_sub(settlement.readings);
        self.readings += settlement.readings;
        // The readings go back with the first lamp: only the total is ever read.
        let first = settlement.cursors.first().map(|c| c.0);
        if let Some(first) = first.or(settlement.days.first().map(|d| d.lamp_id)) {
            older.entry(first).or_default().readings += settlement.readings;
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::billing::calendar::Calendar;
    use crate::domain::billing::meter::MeterMode;
    use crate::domain::billing::settle;

    const JOB: usize = 500;

    fn meter() -> Meter {
        Meter {
            calendar: Calendar::london(),
            mode: MeterMode::Calculated,
            max_gap: chrono::Duration::minutes(45),
        }
    }

    fn share(date: NaiveDate, slot: u8, units: u64, covered_s: u16) -> SlotShare {
        SlotShare {
            date,
            slot,
            units,
            covered_s,
        }
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
    fn the_ledger_counts_the_readings_a_takeover_would_meter_again() {
        let d = NaiveDate::from_ymd_opt(2026, 11, 3).unwrap();
        let lamp = LampContext {
            lamp_id: 7,
            telecell_id: 7,
            basestation_id: 1,
            circuit_id: None,
            zone_id: Some(1),
            profile: crate::domain::telemetry::LampProfile {
                wattage_w: 36,
                dimmable: true,
                location: None,
            },
            since: "2026-10-01T00:00:00Z".parse().unwrap(),
        };
        let reading = |minute: i64| {
            crate::domain::telemetry::tests::reading(
                "2026-11-03T18:00:00Z".parse::<DateTime<Utc>>().unwrap()
                    + chrono::Duration::minutes(minute),
            )
        };
        let mut ledger = Ledger::new(meter());
        ledger.record(&lamp, &reading(0), &reading(15));
        let mut batch = Ledger::new(meter());
        batch.record(&lamp, &reading(15), &reading(30));
        batch.record(&lamp, &reading(30), &reading(45));
        ledger.absorb(batch);
        assert_eq!(ledger.unsettled(), 3);
        // Taken out, they stay unsettled until the store has them.
        let jobs = ledger.take(JOB);
        assert_eq!(ledger.readings(), 0);
        assert_eq!(ledger.unsettled(), 3);
        assert_eq!(jobs.iter().map(|j| j.readings).sum::<usize>(), 3);
        // The store refused the settlement: its readings are in the ledger again, once.
        for job in jobs {
            ledger.restore(job);
        }
        assert_eq!((ledger.readings(), ledger.unsettled()), (3, 3));
        // Metered meanwhile, then the retry is stored.
        ledger.record(&lamp, &reading(45), &reading(60));
        let jobs = ledger.take(JOB);
        assert_eq!(ledger.unsettled(), 4);
        for job in &jobs {
            ledger.stored(job.readings);
        }
        assert_eq!(ledger.unsettled(), 0);
        assert_eq!(jobs[0].days[0].date, d);
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
        let mut ledger = Ledger::new(meter());
        ledger.restore(EnergySettlement {
            days: vec![day(1, d, shares.clone())],
            cursors: vec![],
            readings: 0,
        });
        let jobs = ledger.take(JOB);
        assert_eq!(jobs.len(), 1);
        let coalesced = &jobs[0].days[0].shares;
        assert_eq!(coalesced.len(), 2, "one share per slot");
        let mut one_by_one = vec![settle::SlotEnergy::default(); 48];
        settle::merge(&mut one_by_one, &shares);
        let mut at_once = vec![settle::SlotEnergy::default(); 48];
        settle::merge(&mut at_once, coalesced);
        assert_eq!(one_by_one, at_once);
        assert!(ledger.take(JOB).is_empty(), "taking empties the ledger");
    }

    #[test]
    fn a_lamps_days_and_cursor_travel_together_and_a_refused_settlement_comes_back_whole() {
        let d1 = NaiveDate::from_ymd_opt(2026, 11, 3).unwrap();
        let d2 = d1.succ_opt().unwrap();
        let at = DateTime::parse_from_rfc3339("2026-11-04T01:00:00Z")
            .unwrap()
            .to_utc();
        let mut ledger = Ledger::new(meter());
        let lamps = JOB + 10;
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
            readings: 0,
        });
        let jobs = ledger.take(JOB);
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
        let again: usize = ledger.take(JOB).iter().map(|j| j.days.len()).sum();
        assert_eq!(again, lamps * 2, "nothing lost on the way back");
    }
}
