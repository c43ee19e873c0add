//! Times as the console shows them: ages in the fewest characters ("5m", "3h07", "2d") and
//! clock times on the operator's zone.

use chrono::{DateTime, Utc};

pub fn age(since: Option<&prost_types::Timestamp>, now: DateTime<Utc>) -> String {
    let Some(at) = since.and_then(|t| DateTime::from_timestamp(t.seconds, 0)) else {
        return "-".to_owned();
    };
    let minutes = (now - at).num_minutes().max(0);
    match minutes {
        m if m < 60 => format!("{m}m"),
        m if m < 48 * 60 => format!("{}h{:02}", m / 60, m % 60),
        m => format!("{}d", m / (24 * 60)),
    }
}

pub fn local_time(at: Option<&prost_types::Timestamp>, tz: chrono_tz::Tz) -> String {
    at.and_then(|t| DateTime::from_timestamp(t.seconds, 0))
        .map(|t| t.with_timezone(&tz).format("%H:%M").to_string())
        .unwrap_or_else(|| "-".to_owned())
}
