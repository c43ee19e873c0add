//! Tariffs: any number of time-of-day bands in pence per kWh (kept in milli-pence), in the
//! local time of a time zone, valid for a range of dates. Validity may not overlap. A slot that
//! a band boundary cuts is priced in proportion to the time spent in each band.

use chrono::{DateTime, Duration, LocalResult, NaiveDate, NaiveTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;

use super::calendar::SLOT_SECONDS;
use crate::domain::ValidationError;

/// Dearer than any real tariff (£100 per kWh): a typo in the units, not a price.
pub const MAX_PRICE_MILLIPENCE_PER_KWH: u32 = 10_000_000;
/// Characters a band's name may have: it is stored, listed and audited with every tariff.
const MAX_BAND_NAME: usize = 64;
pub const MAX_BANDS: usize = 48;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Band {
    pub name: String,
    pub starts_at: NaiveTime,
    pub price_millipence_per_kwh: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTariff {
    pub name: String,
    pub time_zone: Tz,
    pub valid_from: NaiveDate,
    /// Last day of validity, inclusive; `None` runs on.
    pub valid_to: Option<NaiveDate>,
    pub bands: Vec<Band>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tariff {
    pub id: i64,
    pub terms: NewTariff,
}

impl NewTariff {
    /// Checks the tariff on its own and puts its bands in time order.
    pub fn validate(mut self) -> Result<Self, ValidationError> {
        let name = self.name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(ValidationError::new(
                "tariff.name",
                "give a name of 1 to 100 characters",
            ));
        }
        self.name = name.to_owned();
        if let Some(to) = self.valid_to
            && to < self.valid_from
        {
            return Err(ValidationError::new(
                "tariff.valid_to",
                format!("{to} is before valid_from {}", self.valid_from),
            ));
        }
        if self.bands.is_empty() || self.bands.len() > MAX_BANDS {
            return Err(ValidationError::new(
                "tariff.bands",
                format!("give 1 to {MAX_BANDS} bands (one band is a flat rate)"),
            ));
        }
        self.bands.sort_by_key(|b| b.starts_at);
        for (index, band) in self.bands.iter().enumerate() {
            let field = format!("tariff.bands[{index}]");
            if band.name.trim().is_empty() || band.name.chars().count() > MAX_BAND_NAME {
                return Err(ValidationError::new(
                    format!("{field}.name"),
                    format!("name the band in 1 to {MAX_BAND_NAME} characters (e.g. day, night)"),
                ));
            }
            if band.starts_at.second() != 0 || band.starts_at.nanosecond() != 0 {
                return Err(ValidationError::new(
                    format!("{field}.starts_at"),
                    "bands start on a whole minute (HH:MM)",
                ));
            }
            if band.price_millipence_per_kwh > MAX_PRICE_MILLIPENCE_PER_KWH {
                return Err(ValidationError::new(
                    format!("{field}.price_millipence_per_kwh"),
                    format!(
                        "{} milli-pence per kWh is over £100/kWh; prices are in milli-pence (24.5 p = 24500)",
                        band.price_millipence_per_kwh
                    ),
                ));
            }
            if index > 0 && self.bands[index - 1].starts_at == band.starts_at {
                return Err(ValidationError::new(
                    format!("{field}.starts_at"),
                    format!("two bands start at {}", band.starts_at.format("%H:%M")),
                ));
            }
        }
        Ok(self)
    }

    fn covers(&self, date: NaiveDate) -> bool {
        date >= self.valid_from && self.valid_to.is_none_or(|to| date <= to)
    }

    fn overlaps(&self, other: &NewTariff) -> bool {
        let starts_before_other_ends = other.valid_to.is_none_or(|to| self.valid_from <= to);
        let ends_after_other_starts = self.valid_to.is_none_or(|to| to >= other.valid_from);
        starts_before_other_ends && ends_after_other_starts
    }

    /// The band price in force at local time `time`: the last band starting at or before it,
    /// or the day's last band carried over midnight.
    fn price_at(&self, time: NaiveTime) -> u32 {
        self.bands
            .iter()
            .rev()
            .find(|b| b.starts_at <= time)
            .or(self.bands.last())
            .map_or(0, |b| b.price_millipence_per_kwh)
    }
}

/// How one slot is priced: seconds at each price (`None`: no tariff in force).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SlotPrice {
    pub parts: Vec<(u32, Option<u32>)>,
}

impl SlotPrice {
    pub fn is_fully_priced(&self) -> bool {
        self.parts.iter().all(|(_, price)| price.is_some())
    }
}

/// Every tariff, for checking a new one against and pricing slots.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TariffBook {
    pub tariffs: Vec<Tariff>,
}

impl TariffBook {
    /// Refuses `candidate` if its validity overlaps another tariff's (`replacing` is the one it
    /// takes the place of, if any).
    pub fn check_overlap(
        &self,
        candidate: &NewTariff,
        replacing: Option<i64>,
    ) -> Result<(), ValidationError> {
        match self
            .tariffs
            .iter()
            .filter(|t| Some(t.id) != replacing)
            .find(|t| t.terms.overlaps(candidate))
        {
            Some(other) => Err(ValidationError::new(
                "tariff.valid_from",
                format!(
                    "{} to {} overlaps tariff {} {:?} ({} to {}); end that one first or pick other dates",
                    candidate.valid_from,
                    candidate
                        .valid_to
                        .map_or("open end".to_owned(), |d| d.to_string()),
                    other.id,
                    other.terms.name,
                    other.terms.valid_from,
                    other
                        .terms
                        .valid_to
                        .map_or("open end".to_owned(), |d| d.to_string()),
                ),
            )),
            None => Ok(()),
        }
    }

    fn in_force(&self, at: DateTime<Utc>) -> Option<(&NewTariff, NaiveTime)> {
        self.tariffs.iter().find_map(|t| {
            let local = at.with_timezone(&t.terms.time_zone);
            t.terms
                .covers(local.date_naive())
                .then_some((&t.terms, local.time()))
        })
    }

    /// The prices over the slot starting at `start`, cut wherever a band or a validity date
    /// changes inside it.
    pub fn slot_price(&self, start: DateTime<Utc>) -> SlotPrice {
        let end = start + Duration::seconds(SLOT_SECONDS);
        let mut cuts = vec![start, end];
        for tariff in &self.tariffs {
            let zone = tariff.terms.time_zone;
            let first = start.with_timezone(&zone).date_naive();
            let last = end.with_timezone(&zone).date_naive();
            let mut date = first;
            while date <= last {
                let times = std::iter::once(NaiveTime::MIN)
                    .chain(tariff.terms.bands.iter().map(|b| b.starts_at));
                for time in times {
                    if let Some(at) = instant(zone, date, time)
                        && at > start
                        && at < end
                    {
                        cuts.push(at);
                    }
                }
                let Some(next) = date.succ_opt() else { break };
                date = next;
            }
        }
        cuts.sort();
        cuts.dedup();
        let mut price = SlotPrice::default();
        for pair in cuts.windows(2) {
            let seconds = (pair[1] - pair[0]).num_seconds() as u32;
            let rate = self.in_force(pair[0]).map(|(t, time)| t.price_at(time));
            match price.parts.last_mut() {
                Some((s, r)) if *r == rate => *s += seconds,
                _ => price.parts.push((seconds, rate)),
            }
        }
        price
    }
}

/// The instant a local date and time names (the earlier one in a repeated hour, none in a
/// skipped one).
fn instant(zone: Tz, date: NaiveDate, time: NaiveTime) -> Option<DateTime<Utc>> {
    match zone.from_local_datetime(&date.and_time(time)) {
        LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => Some(t.with_timezone(&Utc)),
        LocalResult::None => None,
    }
}

/// The settled days a tariff's new terms (replacing `previous`, if any) price differently:
/// those the old and the new validity touch, a day either side because a lamp-day's local
/// day and the tariff's may differ. `None` as the end: to the last day settled.
pub fn repriced_days(
    terms: &NewTariff,
    previous: Option<&NewTariff>,
) -> Vec<(NaiveDate, Option<NaiveDate>)> {
    std::iter::once(terms)
        .chain(previous)
        .map(|t| {
            let from = t.valid_from.pred_opt().unwrap_or(t.valid_from);
            (from, t.valid_to.and_then(|to| to.succ_opt()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn day_night(valid_from: &str, valid_to: Option<&str>) -> NewTariff {
        NewTariff {
            name: "Day/Night".into(),
            time_zone: "Europe/London".parse().unwrap(),
            valid_from: valid_from.parse().unwrap(),
            valid_to: valid_to.map(|d| d.parse().unwrap()),
            bands: vec![
                Band {
                    name: "day".into(),
                    starts_at: NaiveTime::from_hms_opt(7, 15, 0).unwrap(),
                    price_millipence_per_kwh: 30_000,
                },
                Band {
                    name: "night".into(),
                    starts_at: NaiveTime::from_hms_opt(0, 30, 0).unwrap(),
                    price_millipence_per_kwh: 12_000,
                },
            ],
        }
    }

    #[test]
    fn bands_are_sorted_and_checked() {
        let tariff = day_night("2026-11-01", None).validate().unwrap();
        assert_eq!(tariff.bands[0].name, "night");
        let mut bad = day_night("2026-11-01", Some("2026-10-01"));
        assert_eq!(bad.clone().validate().unwrap_err().field, "tariff.valid_to");
        bad.valid_to = None;
        bad.bands[0].price_millipence_per_kwh = 20_000_000;
        assert!(
            bad.validate()
                .unwrap_err()
                .field
                .ends_with("price_millipence_per_kwh")
        );
    }

    #[test]
    fn overlapping_validity_is_refused_with_the_other_tariff_named() {
        let book = TariffBook {
            tariffs: vec![Tariff {
                id: 7,
                terms: day_night("2026-01-01", Some("2026-12-31")),
            }],
        };
        let error = book
            .check_overlap(&day_night("2026-12-01", None), None)
            .unwrap_err();
        assert!(error.reason.contains("tariff 7"), "{error}");
        assert!(
            book.check_overlap(&day_night("2027-01-01", None), None)
                .is_ok()
        );
        assert!(
            book.check_overlap(&day_night("2026-06-01", None), Some(7))
                .is_ok()
        );
    }

    #[test]
    fn a_band_boundary_inside_a_slot_splits_its_price() {
        let book = TariffBook {
            tariffs: vec![Tariff {
                id: 1,
                terms: day_night("2026-01-01", None).validate().unwrap(),
            }],
        };
        let at = |h, m| Utc.with_ymd_and_hms(2026, 11, 28, h, m, 0).unwrap();
        // 07:00-07:30 GMT: 15 min night, 15 min day.
        assert_eq!(
            book.slot_price(at(7, 0)).parts,
            vec![(900, Some(12_000)), (900, Some(30_000))]
        );
        // 00:00-00:30 is still the previous evening's day band, carried over midnight.
        assert_eq!(book.slot_price(at(0, 0)).parts, vec![(1800, Some(30_000))]);
        assert_eq!(book.slot_price(at(12, 0)).parts, vec![(1800, Some(30_000))]);
        let before = Utc.with_ymd_and_hms(2025, 12, 31, 23, 45, 0).unwrap();
        assert_eq!(
            book.slot_price(before).parts,
            vec![(900, None), (900, Some(30_000))]
        );
    }
}
