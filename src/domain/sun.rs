//! Sunrise and sunset at a lamp's own position (the NOAA approximation of the sunrise
//! equation, good to a minute or two away from the poles), and whether it is day there.

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};

use super::geo::GeoPoint;

/// The sun's day at one place, on the solar day whose noon is nearest a given instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SunDay {
    /// The sun rises and sets.
    Normal {
        rise: DateTime<Utc>,
        set: DateTime<Utc>,
    },
    /// The sun never sets (high-latitude summer).
    MidnightSun,
    /// The sun never rises (high-latitude winter).
    PolarNight,
}

/// Degrees below the horizon at which the sun's upper limb touches it, with refraction.
const HORIZON_DEGREES: f64 = -0.833;
const J2000: f64 = 2_451_545.0;
const UNIX_EPOCH_JULIAN: f64 = 2_440_587.5;

/// Sunrise and sunset for the solar day centred near local noon of `date` at `point`.
pub fn sun_day(date: NaiveDate, point: GeoPoint) -> SunDay {
    let noon_utc = date
        .and_hms_opt(12, 0, 0)
        .map(|t| Utc.from_utc_datetime(&t));
    let Some(noon_utc) = noon_utc else {
        return SunDay::PolarNight;
    };
    let julian_day = julian(noon_utc);
    // Days since J2000 at mean solar noon for this longitude (east positive).
    let n = (julian_day - J2000 + 0.0008).round();
    let mean_solar_noon = n - point.lon() / 360.0;
    let anomaly = (357.5291 + 0.985_600_28 * mean_solar_noon).rem_euclid(360.0);
    let m = anomaly.to_radians();
    let centre = 1.9148 * m.sin() + 0.0200 * (2.0 * m).sin() + 0.0003 * (3.0 * m).sin();
    let ecliptic = (anomaly + centre + 180.0 + 102.9372)
        .rem_euclid(360.0)
        .to_radians();
    let transit = J2000 + mean_solar_noon + 0.0053 * m.sin() - 0.0069 * (2.0 * ecliptic).sin();
    let declination = (ecliptic.sin() * 23.4397_f64.to_radians().sin()).asin();
    let latitude = point.lat().to_radians();
    let cos_hour_angle = (HORIZON_DEGREES.to_radians().sin() - latitude.sin() * declination.sin())
        / (latitude.cos() * declination.cos());
    if cos_hour_angle > 1.0 {
        return SunDay::PolarNight;
    }
    if cos_hour_angle < -1.0 {
        return SunDay::MidnightSun;
    }
    let half_day = cos_hour_angle.acos().to_degrees() / 360.0;
    SunDay::Normal {
        rise: from_julian(transit - half_day),
        set: from_julian(transit + half_day),
    }
}

/// Day, night, or the twilight margin around sunrise and sunset where neither is judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Day,
    Night,
    Twilight,
}

/// The phase of the sun at `point`, computing the sun's day once (the fault rules call this
/// for every reading).
pub fn phase(at: DateTime<Utc>, point: GeoPoint, margin: Duration) -> Phase {
    let date = local_solar_date(at, point);
    match sun_day(date, point) {
        SunDay::MidnightSun => Phase::Day,
        SunDay::PolarNight => Phase::Night,
        SunDay::Normal { rise, set } => {
            if at >= rise + margin && at <= set - margin {
                Phase::Day
            } else if at >= set + margin {
                Phase::Night
            } else if at > rise - margin {
                Phase::Twilight
            } else if set > rise {
                // Before today's sunrise: dark unless still within the margin after yesterday's
                // sunset, which is always at least a margin earlier than midnight here.
                match previous_set(date, point) {
                    Some(previous) if at < previous + margin => Phase::Twilight,
                    _ => Phase::Night,
                }
            } else {
                Phase::Twilight
            }
        }
    }
}

/// True while the sun is up at `point`, shrunk by `margin` at both ends, so that lamps
/// switching by photocell around dusk and dawn are not taken for day burners or failures.
pub fn is_day(at: DateTime<Utc>, point: GeoPoint, margin: Duration) -> bool {
    match sun_day(local_solar_date(at, point), point) {
        SunDay::Normal { rise, set } => at >= rise + margin && at <= set - margin,
        SunDay::MidnightSun => true,
        SunDay::PolarNight => false,
    }
}

/// True while it is dark at `point`, beyond `margin` from sunset and sunrise.
pub fn is_night(at: DateTime<Utc>, point: GeoPoint, margin: Duration) -> bool {
    let date = local_solar_date(at, point);
    match sun_day(date, point) {
        SunDay::Normal { rise, set } => {
            if at < rise {
                // Before today's sunrise: the night began at yesterday's sunset.
                at <= rise - margin && previous_set(date, point).is_none_or(|s| at >= s + margin)
            } else {
                at >= set + margin
            }
        }
        SunDay::MidnightSun => false,
        SunDay::PolarNight => true,
    }
}

/// Hours from sunset to sunrise during one local day, for the unmetered baseline.
pub fn dark_hours(date: NaiveDate, point: GeoPoint) -> f64 {
    match sun_day(date, point) {
        SunDay::Normal { rise, set } => 24.0 - (set - rise).num_seconds() as f64 / 3600.0,
        SunDay::MidnightSun => 0.0,
        SunDay::PolarNight => 24.0,
    }
}

fn previous_set(date: NaiveDate, point: GeoPoint) -> Option<DateTime<Utc>> {
    match sun_day(date.pred_opt()?, point) {
        SunDay::Normal { set, .. } => Some(set),
        _ => None,
    }
}

/// The calendar date of local mean solar time at `point`.
fn local_solar_date(at: DateTime<Utc>, point: GeoPoint) -> NaiveDate {
    let offset = Duration::seconds((point.lon() / 15.0 * 3600.0) as i64);
    (at + offset).date_naive()
}

fn julian(at: DateTime<Utc>) -> f64 {
    at.timestamp() as f64 / 86_400.0 + UNIX_EPOCH_JULIAN
}

fn from_julian(julian_day: f64) -> DateTime<Utc> {
    let seconds = ((julian_day - UNIX_EPOCH_JULIAN) * 86_400.0).round() as i64;
    Utc.timestamp_opt(seconds, 0).single().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(lat: f64, lon: f64) -> GeoPoint {
        GeoPoint::new(lat, lon).unwrap()
    }

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn assert_near(actual: DateTime<Utc>, expected: &str) {
        let expected = utc(expected);
        let off = (actual - expected).num_seconds().abs();
        assert!(off <= 180, "{actual} is {off} s from {expected}");
    }

    fn times(date: &str, p: GeoPoint) -> (DateTime<Utc>, DateTime<Utc>) {
        match sun_day(date.parse().unwrap(), p) {
            SunDay::Normal { rise, set } => (rise, set),
            other => panic!("expected a normal day, got {other:?}"),
        }
    }

    // Published times (HM Nautical Almanac Office / timeanddate.com), converted to UTC.
    #[test]
    fn london_solstices() {
        let london = point(51.5074, -0.1278);
        let (rise, set) = times("2026-06-21", london);
        assert_near(rise, "2026-06-21T03:43:00Z"); // 04:43 BST
        assert_near(set, "2026-06-21T20:21:00Z"); // 21:21 BST
        let (rise, set) = times("2026-12-21", london);
        assert_near(rise, "2026-12-21T08:04:00Z");
        assert_near(set, "2026-12-21T15:54:00Z");
    }

    #[test]
    fn sydney_solstices_southern_hemisphere() {
        let sydney = point(-33.8688, 151.2093);
        let (rise, set) = times("2026-06-21", sydney);
        assert_near(rise, "2026-06-20T21:00:00Z"); // 07:00 AEST
        assert_near(set, "2026-06-21T06:54:00Z"); // 16:54 AEST
        let (rise, set) = times("2026-12-21", sydney);
        assert_near(rise, "2026-12-20T18:41:00Z"); // 05:41 AEDT
        assert_near(set, "2026-12-21T09:05:00Z"); // 20:05 AEDT
    }

    #[test]
    fn polar_days_and_nights() {
        let tromso = point(69.6492, 18.9553);
        assert_eq!(
            sun_day("2026-06-21".parse().unwrap(), tromso),
            SunDay::MidnightSun
        );
        assert_eq!(
            sun_day("2026-12-21".parse().unwrap(), tromso),
            SunDay::PolarNight
        );
        assert!(is_night(
            utc("2026-12-21T12:00:00Z"),
            tromso,
            Duration::minutes(30)
        ));
        assert!(is_day(
            utc("2026-06-21T00:00:00Z"),
            tromso,
            Duration::minutes(30)
        ));
    }

    #[test]
    fn phase_agrees_with_is_day_and_is_night_round_the_clock() {
        let margin = Duration::minutes(30);
        for p in [
            point(51.5074, -0.1278),
            point(-33.8688, 151.2093),
            point(69.6492, 18.9553),
        ] {
            let start = utc("2026-03-01T00:00:00Z");
            for step in 0..(24 * 4 * 60) {
                let at = start + Duration::minutes(step * 7);
                let expected = if is_day(at, p, margin) {
                    Phase::Day
                } else if is_night(at, p, margin) {
                    Phase::Night
                } else {
                    Phase::Twilight
                };
                assert_eq!(phase(at, p, margin), expected, "{at} at {p:?}");
            }
        }
    }

    #[test]
    fn day_and_night_with_margins() {
        let london = point(51.5074, -0.1278);
        let margin = Duration::minutes(30);
        assert!(is_day(utc("2026-12-21T12:00:00Z"), london, margin));
        assert!(!is_night(utc("2026-12-21T12:00:00Z"), london, margin));
        assert!(is_night(utc("2026-12-21T22:00:00Z"), london, margin));
        assert!(
            is_night(utc("2026-12-22T03:00:00Z"), london, margin),
            "after midnight, before dawn"
        );
        // Twenty minutes after sunset is neither: the photocell may not have switched yet.
        let dusk = utc("2026-12-21T16:14:00Z");
        assert!(!is_day(dusk, london, margin) && !is_night(dusk, london, margin));
    }

    #[test]
    fn dark_hours_over_a_year_near_the_uk_figure() {
        let london = point(51.5074, -0.1278);
        let start: NaiveDate = "2026-01-01".parse().unwrap();
        let total: f64 = (0..365)
            .map(|d| dark_hours(start + Duration::days(d), london))
            .sum();
        // London has about 4,280 hours from sunset to sunrise a year; the ~4,100 lit hours an
        // unmetered UK supply is charged for come from photocells switching on some 15
        // minutes after sunset and off some 15 minutes before sunrise (365 x 0.5 h less).
        assert!((4_230.0..4_330.0).contains(&total), "{total}");
    }
}
