//! How a tariff is kept in either database: its bands as JSON text, its days as text.

use chrono::NaiveTime;

use super::{StoreError, StoreResult};
use crate::domain::billing::{Band, NewTariff, Tariff};

#[derive(serde::Serialize, serde::Deserialize)]
struct StoredBand {
    name: String,
    starts_at: String,
    price_millipence_per_kwh: u32,
}

/// The bands as stored: `[{"name", "starts_at": "HH:MM", "price_millipence_per_kwh"}]`.
pub fn bands_json(bands: &[Band]) -> StoreResult<String> {
    let stored: Vec<StoredBand> = bands
        .iter()
        .map(|b| StoredBand {
            name: b.name.clone(),
            starts_at: b.starts_at.format("%H:%M").to_string(),
            price_millipence_per_kwh: b.price_millipence_per_kwh,
        })
        .collect();
    serde_json::to_string(&stored)
        .map_err(|e| StoreError::Database(format!("cannot encode bands: {e}")))
}

/// A tariff from its stored columns; a value that does not parse is named in the error.
pub fn tariff_from_columns(
    id: i64,
    name: String,
    zone: &str,
    valid_from: &str,
    valid_to: Option<&str>,
    bands: &str,
) -> StoreResult<Tariff> {
    let corrupt = |what: &str| StoreError::Database(format!("tariff {id} has a bad {what}"));
    let bands: Vec<StoredBand> = serde_json::from_str(bands).map_err(|_| corrupt("band list"))?;
    Ok(Tariff {
        id,
        terms: NewTariff {
            name,
            time_zone: zone.parse().map_err(|_| corrupt("time zone"))?,
            valid_from: valid_from.parse().map_err(|_| corrupt("valid_from"))?,
            valid_to: valid_to
                .map(|t| t.parse().map_err(|_| corrupt("valid_to")))
                .transpose()?,
            bands: bands
                .into_iter()
                .map(|b| {
                    Ok(Band {
                        name: b.name,
                        starts_at: NaiveTime::parse_from_str(&b.starts_at, "%H:%M")
                            .map_err(|_| corrupt("band start"))?,
                        price_millipence_per_kwh: b.price_millipence_per_kwh,
                    })
                })
                .collect::<StoreResult<_>>()?,
        },
    })
}
