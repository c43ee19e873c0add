//! The settlement calendar: which local day and half-hour slot an instant falls in, in the
//! estate's settlement time zone. DST change days have 46 or 50 slots.

use chrono::{DateTime, Datelike, Duration, NaiveDate, Offset, TimeZone, Utc};
use chrono_tz::Tz;

use crate::domain::ValidationError;
use crate::domain::local_time::LocalDay;

pub const SLOT_SECONDS: i64 = 1_800;
/// The most slots a day can have (a 25-hour day).
pub const MAX_SLOTS: usize = 50;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Calendar {
    zone: Tz,
}

impl Calendar {
    /// A calendar in `zone`, refused if the zone's offset from UTC is not a whole number of
    /// half-hours at some point since 2000 (then slots would not line up with local time).
    pub fn new(field: &str, zone: Tz) -> Result<Self, ValidationError> {
        for year in 2000..=2040 {
            for month in [1, 4, 7, 10] {
                let Some(probe) = Utc.with_ymd_and_hms(year, month, 15, 12, 0, 0).single() else {
                    continue;
                };
                let offset = zone
                    .offset_from_utc_datetime(&probe.naive_utc())
                    .fix()
                    .local_minus_utc();
                if offset % SLOT_SECONDS as i32 != 0 {
                    return Err(ValidationError::new(
                        field,
                        format!(
                            "{zone} is {offset} s from UTC in {year}; settlement needs a zone whose \
                             offset is a whole number of half-hours"
                        ),
                    ));
                }
            }
        }
        Ok(Self { zone })
    }

    /// Europe/London: the default settlement zone (UK half-hourly settlement).
    pub fn london() -> Self {
        Self {
            zone: chrono_tz::Europe::London,
        }
    }

    pub fn zone(&self) -> Tz {
        self.zone
    }

    pub fn date_of(&self, at: DateTime<Utc>) -> NaiveDate {
        at.with_timezone(&self.zone).date_naive()
    }

    pub fn day(&self, date: NaiveDate) -> LocalDay {
        LocalDay::new(date, self.zone)
    }

    pub fn slots_in(&self, date: NaiveDate) -> usize {
        let day = self.day(date);
        ((day.end - day.start).num_seconds() / SLOT_SECONDS) as usize
    }

    pub fn slot_start(&self, date: NaiveDate, index: usize) -> DateTime<Utc> {
        self.day(date).start + Duration::seconds(index as i64 * SLOT_SECONDS)
    }

    /// The day and slot index `at` falls in.
    pub fn slot_of(&self, at: DateTime<Utc>) -> (NaiveDate, usize) {
        let date = self.date_of(at);
        let start = self.day(date).start;
        (date, ((at - start).num_seconds() / SLOT_SECONDS) as usize)
    }

    /// Slots a lamp should have accounted for in `[from, to]` as of `now`: whole days before
    /// today, and today's slots that ended at least `grace` ago (reports arrive in arrears).
    pub fn expected_slots(
        &self,
        from: NaiveDate,
        to: NaiveDate,
        now: DateTime<Utc>,
        grace: Duration,
    ) -> u32 {
        let mut expected = 0u32;
        let mut date = from;
        while date <= to {
            let day = self.day(date);
            let settled_until = (now - grace).min(day.end);
            if settled_until > day.start {
                expected += ((settled_until - day.start).num_seconds() / SLOT_SECONDS) as u32;
            }
            let Some(next) = date.succ_opt() else { break };
            date = next;
        }
        expected
    }
}

/// The settlement calendar at one instant: which slots are due from every lamp by now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AsOf {
    pub calendar: Calendar,
    pub now: DateTime<Utc>,
    /// How long after a slot ends its reports are still expected to arrive.
    pub grace: Duration,
}

impl AsOf {
    pub fn expected(&self, from: NaiveDate, to: NaiveDate) -> u32 {
        self.calendar.expected_slots(from, to, self.now, self.grace)
    }

    /// Whether every slot of `date` is due.
    pub fn is_complete(&self, date: NaiveDate) -> bool {
        self.expected(date, date) as usize >= self.calendar.slots_in(date)
    }
}

/// "YYYY-MM" of a date: the month rollups are keyed by.
pub fn month_key(date: NaiveDate) -> String {
    format!("{:04}-{:02}", date.year(), date.month())
}

/// First and last day of the month `date` is in.
pub fn month_bounds(date: NaiveDate) -> (NaiveDate, NaiveDate) {
    let first = date.with_day(1).unwrap_or(date);
    let next = if first.month() == 12 {
        NaiveDate::from_ymd_opt(first.year() + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(first.year(), first.month() + 1, 1)
    };
    let last = next.and_then(|n| n.pred_opt()).unwrap_or(first);
    (first, last)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn london() -> Calendar {
        Calendar::new("time_zone", "Europe/London".parse().unwrap()).unwrap()
    }

    fn date(text: &str) -> NaiveDate {
        text.parse().unwrap()
    }

    #[test]
    fn dst_days_have_46_and_50_slots() {
        let calendar = london();
        assert_eq!(calendar.slots_in(date("2026-03-29")), 46);
        assert_eq!(calendar.slots_in(date("2026-10-25")), 50);
        assert_eq!(calendar.slots_in(date("2026-11-28")), 48);
    }

    #[test]
    fn slots_count_elapsed_time_through_the_repeated_hour() {
        let calendar = london();
        // 01:30 BST and 01:30 GMT on 2026-10-25 are slots 3 and 5.
        let first = Utc.with_ymd_and_hms(2026, 10, 25, 0, 30, 0).unwrap();
        let second = Utc.with_ymd_and_hms(2026, 10, 25, 1, 30, 0).unwrap();
        assert_eq!(calendar.slot_of(first), (date("2026-10-25"), 3));
        assert_eq!(calendar.slot_of(second), (date("2026-10-25"), 5));
    }

    #[test]
    fn zones_off_the_half_hour_are_refused() {
        let error = Calendar::new("time_zone", "Asia/Kathmandu".parse().unwrap()).unwrap_err();
        assert_eq!(error.field, "time_zone");
        assert!(Calendar::new("z", "Australia/Melbourne".parse().unwrap()).is_ok());
    }

    #[test]
    fn expected_slots_stop_at_now_less_grace() {
        let calendar = london();
        let now = Utc.with_ymd_and_hms(2026, 11, 28, 10, 50, 0).unwrap();
        let grace = Duration::minutes(20);
        // 10:30 settled: 21 slots today, 48 yesterday.
        assert_eq!(
            calendar.expected_slots(date("2026-11-27"), date("2026-11-28"), now, grace),
            69
        );
        assert_eq!(
            calendar.expected_slots(date("2026-11-29"), date("2026-11-30"), now, grace),
            0
        );
    }

    #[test]
    fn month_bounds_cover_december_and_leap_february() {
        assert_eq!(
            month_bounds(date("2026-12-15")),
            (date("2026-12-01"), date("2026-12-31"))
        );
        assert_eq!(
            month_bounds(date("2028-02-10")),
            (date("2028-02-01"), date("2028-02-29"))
        );
        assert_eq!(month_key(date("2026-03-09")), "2026-03");
    }
}
