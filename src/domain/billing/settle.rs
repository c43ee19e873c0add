//! One lamp's day settled: its slots' energy rounded to watt-hours, priced slot by slot, and
//! the unmetered baseline (the lamp's wattage for every dark second at its own location) to
//! set it against. Also the compact byte form a lamp-day's slots are stored in.

use chrono::{DateTime, NaiveDate, Utc};

use super::calendar::{Calendar, SLOT_SECONDS};
use super::meter::SlotShare;
use super::tariff::SlotPrice;
use super::{cost_millipence, units_to_wh};
use crate::domain::geo::GeoPoint;
use crate::domain::sun::{SunDay, sun_day};

/// One slot of one lamp: energy so far and how much of the slot the reports account for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SlotEnergy {
    pub units: u64,
    pub covered_s: u16,
    /// What the unmetered dusk-to-dawn regime would bill for this slot.
    pub baseline_wh: u32,
}

impl SlotEnergy {
    pub fn wh(self) -> i64 {
        units_to_wh(self.units)
    }

    pub fn is_complete(self) -> bool {
        i64::from(self.covered_s) >= SLOT_SECONDS
    }
}

/// A lamp-day's totals: what the rollups add up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DayTotals {
    pub wh: i64,
    pub cost_mp: i64,
    pub baseline_wh: i64,
    pub baseline_cost_mp: i64,
    /// Slots whose whole half-hour the reports account for.
    pub covered_slots: u32,
    pub unpriced_wh: i64,
}

const BYTES_PER_SLOT: usize = 14;

pub fn encode(slots: &[SlotEnergy]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(slots.len() * BYTES_PER_SLOT);
    for slot in slots {
        bytes.extend_from_slice(&slot.units.to_le_bytes());
        bytes.extend_from_slice(&slot.covered_s.to_le_bytes());
        bytes.extend_from_slice(&slot.baseline_wh.to_le_bytes());
    }
    bytes
}

pub fn decode(bytes: &[u8]) -> Vec<SlotEnergy> {
    bytes
        .chunks_exact(BYTES_PER_SLOT)
        .map(|chunk| {
            let mut units = [0u8; 8];
            units.copy_from_slice(&chunk[..8]);
            SlotEnergy {
                units: u64::from_le_bytes(units),
                covered_s: u16::from_le_bytes([chunk[8], chunk[9]]),
                baseline_wh: u32::from_le_bytes([chunk[10], chunk[11], chunk[12], chunk[13]]),
            }
        })
        .collect()
}

/// A new lamp-day: no energy yet, and the baseline the day will be set against.
pub fn new_day(baseline_wh: &[i64]) -> Vec<SlotEnergy> {
    baseline_wh
        .iter()
        .map(|wh| SlotEnergy {
            baseline_wh: u32::try_from(*wh).unwrap_or(u32::MAX),
            ..SlotEnergy::default()
        })
        .collect()
}

/// Adds shares of one day to its slots.
pub fn merge(slots: &mut [SlotEnergy], shares: &[SlotShare]) {
    for share in shares {
        if let Some(slot) = slots.get_mut(usize::from(share.slot)) {
            slot.units += share.units;
            slot.covered_s = slot
                .covered_s
                .saturating_add(share.covered_s)
                .min(SLOT_SECONDS as u16);
        }
    }
}

/// Watt-hours an unmetered dusk-to-dawn lamp would be billed in each slot of `date`.
pub fn baseline(
    calendar: &Calendar,
    date: NaiveDate,
    wattage_w: u32,
    location: Option<GeoPoint>,
) -> Vec<i64> {
    let day = calendar.day(date);
    let slots = calendar.slots_in(date);
    // Without a position, the lamp is taken to be where the settlement zone's day is: dark
    // from dusk to dawn of an equinox (12 h), spread evenly.
    let dark: Vec<(DateTime<Utc>, DateTime<Utc>)> = match location.map(|p| sun_day(date, p)) {
        Some(SunDay::Normal { rise, set }) => vec![(day.start, rise), (set, day.end)],
        Some(SunDay::MidnightSun) => Vec::new(),
        Some(SunDay::PolarNight) => vec![(day.start, day.end)],
        None => {
            let per_slot = u64::from(wattage_w) * 100 * SLOT_SECONDS as u64 / 2;
            return vec![units_to_wh(per_slot); slots];
        }
    };
    (0..slots)
        .map(|index| {
            let start = calendar.slot_start(date, index);
            let end = start + chrono::Duration::seconds(SLOT_SECONDS);
            let dark_s: i64 = dark
                .iter()
                .map(|(from, to)| ((*to).min(end) - (*from).max(start)).num_seconds().max(0))
                .sum();
            units_to_wh(u64::from(wattage_w) * 100 * dark_s as u64)
        })
        .collect()
}

impl SlotEnergy {
    /// The baseline a saving is measured against in this slot. A slot the reports cover
    /// whole counts its whole baseline. A slot they cover only in part counts the baseline in
    /// proportion to the time covered, but never more than the energy used: where in the slot
    /// the dark seconds fall is not known (at dusk and dawn they are not spread evenly), so a
    /// part-reported slot may show extra use and never claims a saving. A slot nobody
    /// reported counts nothing.
    pub fn covered_baseline_wh(self) -> i64 {
        if self.is_complete() {
            return i64::from(self.baseline_wh);
        }
        let covered = i64::from(self.covered_s).min(SLOT_SECONDS);
        let share = (i64::from(self.baseline_wh) * covered * 2 + SLOT_SECONDS) / (2 * SLOT_SECONDS);
        share.min(self.wh())
    }
}

/// Totals of one lamp-day from its slots and the slot prices (one per slot). The baseline
/// counts only the reported part of each slot (`covered_baseline_wh`).
pub fn settle(slots: &[SlotEnergy], prices: &[SlotPrice]) -> DayTotals {
    let mut totals = DayTotals::default();
    for (index, price) in prices.iter().enumerate() {
        let slot = slots.get(index).copied().unwrap_or_default();
        let wh = slot.wh();
        let base = slot.covered_baseline_wh();
        totals.wh += wh;
        totals.baseline_wh += base;
        if slot.is_complete() {
            totals.covered_slots += 1;
        }
        if !price.is_fully_priced() {
            totals.unpriced_wh += wh;
        }
        for (seconds, rate) in &price.parts {
            if let Some(rate) = rate {
                totals.cost_mp += cost_millipence(wh, *rate, *seconds);
                totals.baseline_cost_mp += cost_millipence(base, *rate, *seconds);
            }
        }
    }
    totals
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_without_data_claims_no_baseline() {
        let slot = |covered_s, wh: u64| SlotEnergy {
            units: wh * 360_000,
            covered_s,
            baseline_wh: 50,
        };
        assert_eq!(slot(0, 0).covered_baseline_wh(), 0);
        assert_eq!(
            slot(1800, 20).covered_baseline_wh(),
            50,
            "a whole slot: all of it"
        );
        // Part of a slot: in proportion, but no saving claimed (a lamp off at dawn is not
        // saving anything, whatever the slot's early dark minutes say).
        assert_eq!(slot(900, 0).covered_baseline_wh(), 0);
        assert_eq!(slot(900, 10).covered_baseline_wh(), 10);
        // Extra use in a part-reported slot still shows.
        assert_eq!(slot(900, 40).covered_baseline_wh(), 25);
        assert_eq!(slot(60, 9).covered_baseline_wh(), 2, "1.67 Wh rounds to 2");
        let prices = vec![
            SlotPrice {
                parts: vec![(1800, Some(20_000))],
            };
            3
        ];
        let totals = settle(&[slot(0, 0), slot(0, 0), slot(0, 0)], &prices);
        assert_eq!((totals.baseline_wh, totals.baseline_cost_mp), (0, 0));
    }

    #[test]
    fn slots_survive_the_byte_form() {
        let slots = vec![
            SlotEnergy {
                units: 18_000_000,
                covered_s: 1800,
                baseline_wh: 50,
            },
            SlotEnergy {
                units: 1,
                covered_s: 7,
                baseline_wh: 0,
            },
        ];
        assert_eq!(decode(&encode(&slots)), slots);
    }

    #[test]
    fn settling_rounds_per_slot_and_prices_each_part() {
        let slots = vec![
            SlotEnergy {
                units: 50 * 360_000,
                covered_s: 1800,
                baseline_wh: 50,
            },
            SlotEnergy {
                units: 25 * 360_000 + 180_000,
                covered_s: 900,
                baseline_wh: 50,
            },
        ];
        let prices = vec![
            SlotPrice {
                parts: vec![(900, Some(12_000)), (900, Some(30_000))],
            },
            SlotPrice {
                parts: vec![(1800, None)],
            },
        ];
        let totals = settle(&slots, &prices);
        assert_eq!(totals.wh, 50 + 26);
        // 50 Wh: half at 12 p, half at 30 p = 0.3 p + 0.75 p = 1050 milli-pence.
        assert_eq!(totals.cost_mp, 1_050);
        assert_eq!(totals.baseline_cost_mp, 1_050);
        // The second slot is half reported: half its baseline, no more than its 26 Wh.
        assert_eq!(totals.baseline_wh, 50 + 25);
        assert_eq!(totals.covered_slots, 1);
        assert_eq!(totals.unpriced_wh, 26);
    }
}
