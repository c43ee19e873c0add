//! Local calendar days in an IANA time zone: where a day starts and ends in UTC (23 or 25
//! hours on DST change days), and which local hour an instant falls in.

use chrono::{DateTime, Duration, LocalResult, NaiveDate, NaiveTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;

use super::ValidationError;
use super::validation::quoted;

pub fn time_zone(field: &str, name: &str) -> Result<Tz, ValidationError> {
    name.parse::<Tz>().map_err(|_| {
        ValidationError::new(
            field,
            format!(
                "{} is not an IANA time zone (e.g. Europe/London)",
                quoted(name)
            ),
        )
    })
}

/// A calendar date written YYYY-MM-DD, four-digit year, from 0001-01-02 to 9999-12-30 (a
/// day whose start or end in some time zone falls outside years 1-9999 cannot be sent back
/// as a timestamp stock clients read).
pub fn date(field: &str, text: &str) -> Result<NaiveDate, ValidationError> {
    let shaped = text.len() == 10
        && text.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            _ => b.is_ascii_digit(),
        });
    let date = NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .filter(|_| shaped)
        .ok_or_else(|| {
            ValidationError::new(
                field,
                format!("{} is not a date like 2026-10-25", quoted(text)),
            )
        })?;
    let (first, last) = (
        NaiveDate::from_ymd_opt(1, 1, 2),
        NaiveDate::from_ymd_opt(9999, 12, 30),
    );
    if first.is_some_and(|f| date < f) || last.is_some_and(|l| date > l) {
        return Err(ValidationError::new(
            field,
            format!("{date} is outside 0001-01-02 to 9999-12-30"),
        ));
    }
    Ok(date)
}
/// One local calendar day as a UTC interval `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalDay {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl LocalDay {
    pub fn new(date: NaiveDate, zone: Tz) -> Self {
        Self {
            start: local_midnight(date, zone),
            end: local_midnight(date.succ_opt().unwrap_or(date), zone),
        }
    }

    /// Hour slots of the day: 23, 24 or 25, rounded up where a zone shifts by half an hour
    /// (Australia/Lord_Howe's 24.5-hour day has 25, the last one 30 minutes long).
    pub fn hours(&self) -> u32 {
        self.minutes().div_ceil(60)
    }

    /// The day's length in minutes (1380, 1440, 1470, 1500 ...).
    pub fn minutes(&self) -> u32 {
        u32::try_from((self.end - self.start).num_minutes()).unwrap_or(0)
    }

    /// Which hour of the day (from 0) an instant in the day falls in, counted in elapsed
    /// hours, so the repeated hour of a 25-hour day is its own slot.
    pub fn hour_index(&self, at: DateTime<Utc>) -> Option<usize> {
        (at >= self.start && at < self.end).then(|| ((at - self.start).num_minutes() / 60) as usize)
    }
}

/// The first instant of a local date. Where midnight itself does not exist (a DST jump at
/// 00:00, as in some zones), the day starts at the first local time that does.
fn local_midnight(date: NaiveDate, zone: Tz) -> DateTime<Utc> {
    let mut naive = date.and_hms_opt(0, 0, 0).unwrap_or_default();
    for _ in 0..4 {
        match zone.from_local_datetime(&naive) {
            LocalResult::Single(t) => return t.with_timezone(&Utc),
            LocalResult::Ambiguous(earliest, _) => return earliest.with_timezone(&Utc),
            LocalResult::None => naive += Duration::minutes(30),
        }
    }
    Utc.from_utc_datetime(&naive)
}

/// A wall-clock time of day, `HH:MM` (24-hour).
pub fn wall_time(field: &str, text: &str) -> Result<NaiveTime, ValidationError> {
    NaiveTime::parse_from_str(text.trim(), "%H:%M").map_err(|_| {
        ValidationError::new(
            field,
            format!(
                "{} is not a time of day; use HH:MM, e.g. 19:00",
                crate::domain::validation::quoted(text)
            ),
        )
    })
}

/// The latest instant at or before `now` when the wall clock in `zone` read `time`: at 02:00,
/// "since 19:00" is yesterday's 19:00. A wall time the zone skipped (spring forward) is read
/// as if the clock had not changed yet (01:30 on London's spring day is 02:30 BST); one it
/// repeated (fall back) is the earlier.
pub fn last_wall_time(time: NaiveTime, zone: Tz, now: DateTime<Utc>) -> DateTime<Utc> {
    let today = now.with_timezone(&zone).date_naive();
    let mut date = today;
    for _ in 0..3 {
        let at = resolve(date.and_time(time), zone);
        if at <= now {
            return at;
        }
        date = date.pred_opt().unwrap_or(date);
    }
    now
}

/// A local date and time as an instant (see `last_wall_time`).
fn resolve(local: chrono::NaiveDateTime, zone: Tz) -> DateTime<Utc> {
    match zone.from_local_datetime(&local) {
        LocalResult::Single(t) => t.with_timezone(&Utc),
        LocalResult::Ambiguous(earliest, _) => earliest.with_timezone(&Utc),
        LocalResult::None => {
            // The offset in force before the jump, applied to the skipped wall time.
            let before = zone
                .from_local_datetime(&(local - Duration::hours(3)))
                .earliest()
                .map(|t| t.offset().fix().local_minus_utc())
                .unwrap_or(0);
            Utc.from_utc_datetime(&(local - Duration::seconds(i64::from(before))))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn london() -> Tz {
        time_zone("time_zone", "Europe/London").unwrap()
    }

    #[test]
    fn spring_forward_day_has_23_hours() {
        let day = LocalDay::new(date("date", "2026-03-29").unwrap(), london());
        assert_eq!(day.start.to_rfc3339(), "2026-03-29T00:00:00+00:00");
        assert_eq!(day.end.to_rfc3339(), "2026-03-29T23:00:00+00:00");
        assert_eq!(day.hours(), 23);
    }

    #[test]
    fn dates_are_four_digit_years_within_range() {
        assert!(date("d", "2026-10-25").is_ok());
        for bad in [
            "26-1-1",
            "2026-1-1",
            "+2026-10-25",
            "9999-12-31",
            "0000-06-01",
            "2026-02-30",
        ] {
            let error = date("date", bad).unwrap_err();
            assert_eq!(error.field, "date", "{bad}");
        }
    }

    #[test]
    fn a_half_hour_shift_gives_a_short_last_hour() {
        let date = NaiveDate::from_ymd_opt(2026, 4, 5).unwrap();
        let day = LocalDay::new(date, chrono_tz::Australia::Lord_Howe);
        assert_eq!(day.minutes(), 1470);
        assert_eq!(day.hours(), 25);
        let last = day.end - Duration::minutes(1);
        assert_eq!(
            day.hour_index(last),
            Some(24),
            "the last half hour has a slot"
        );
        let spring = LocalDay::new(
            NaiveDate::from_ymd_opt(2026, 10, 4).unwrap(),
            chrono_tz::Australia::Lord_Howe,
        );
        assert_eq!((spring.minutes(), spring.hours()), (1410, 24));
    }

    #[test]
    fn fall_back_day_has_25_hours() {
        let day = LocalDay::new(date("date", "2026-10-25").unwrap(), london());
        assert_eq!(day.start.to_rfc3339(), "2026-10-24T23:00:00+00:00");
        assert_eq!(day.end.to_rfc3339(), "2026-10-26T00:00:00+00:00");
        assert_eq!(day.hours(), 25);
        let repeated_one_am = DateTime::parse_from_rfc3339("2026-10-25T01:30:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            day.hour_index(repeated_one_am),
            Some(2),
            "01:30 BST is slot 1, 01:30 GMT slot 2"
        );
    }

    #[test]
    fn bad_zones_and_dates_name_the_field() {
        assert_eq!(
            time_zone("time_zone", "Mars/Olympus").unwrap_err().field,
            "time_zone"
        );
        assert_eq!(date("date", "25/10/2026").unwrap_err().field, "date");
    }

    #[test]
    fn since_a_wall_time_reaches_back_across_midnight_and_dst() {
        let at = |text: &str| {
            DateTime::parse_from_rfc3339(text)
                .unwrap()
                .with_timezone(&Utc)
        };
        let seven_pm = wall_time("since", "19:00").unwrap();
        // At 02:00 the shift began yesterday evening.
        assert_eq!(
            last_wall_time(seven_pm, london(), at("2026-12-02T02:00:00Z")),
            at("2026-12-01T19:00:00Z")
        );
        // Later the same evening: today's.
        assert_eq!(
            last_wall_time(seven_pm, london(), at("2026-12-02T21:00:00Z")),
            at("2026-12-02T19:00:00Z")
        );
        // A night shift across the autumn change (BST ends 2026-10-25 02:00 BST): 19:00 BST.
        assert_eq!(
            last_wall_time(seven_pm, london(), at("2026-10-25T06:00:00Z")),
            at("2026-10-24T18:00:00Z")
        );
        // 01:30 is repeated that night: the earlier (BST) one.
        let half_past_one = wall_time("since", "01:30").unwrap();
        assert_eq!(
            last_wall_time(half_past_one, london(), at("2026-10-25T06:00:00Z")),
            at("2026-10-25T00:30:00Z")
        );
        // 01:30 never happened on the spring night: read as if the clock had not moved.
        assert_eq!(
            last_wall_time(half_past_one, london(), at("2026-03-29T06:00:00Z")),
            at("2026-03-29T01:30:00Z")
        );
        assert!(
            wall_time("since", "7pm")
                .unwrap_err()
                .to_string()
                .contains("HH:MM")
        );
    }
}
