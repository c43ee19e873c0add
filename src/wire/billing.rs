//! Conversions between the billing messages and the billing domain: tariffs both ways, totals
//! out, with every field of a request checked by name.

use chrono::{NaiveDate, NaiveTime};

use crate::domain::ValidationError;
use crate::domain::billing::totals::{TotalsGroup, TotalsRow};
use crate::domain::billing::{Band, NewTariff, Tariff};
use crate::domain::local_time;
use crate::proto;

pub fn group_field(field: &str, value: i32) -> Result<TotalsGroup, ValidationError> {
    match proto::GroupBy::try_from(value) {
        Ok(proto::GroupBy::Unspecified | proto::GroupBy::Zone) => Ok(TotalsGroup::Zone),
        Ok(proto::GroupBy::Day) => Ok(TotalsGroup::Day),
        Ok(proto::GroupBy::Month) => Ok(TotalsGroup::Month),
        Ok(proto::GroupBy::Lamp) => Ok(TotalsGroup::Lamp),
        Err(_) => Err(ValidationError::new(
            field,
            format!("unknown grouping {value}; use ZONE, DAY, MONTH or LAMP"),
        )),
    }
}

pub fn group(group: TotalsGroup) -> proto::GroupBy {
    match group {
        TotalsGroup::Zone | TotalsGroup::All => proto::GroupBy::Zone,
        TotalsGroup::Day => proto::GroupBy::Day,
        TotalsGroup::Month => proto::GroupBy::Month,
        TotalsGroup::Lamp => proto::GroupBy::Lamp,
    }
}

/// A stored totals row as sent, with savings worked out and `key` given as `label`.
pub fn totals_row(row: &TotalsRow, label: String, zone_id: i64, lamp_id: i64) -> proto::TotalsRow {
    let t = &row.totals;
    proto::TotalsRow {
        key: label,
        zone_id,
        lamp_id,
        energy_wh: t.wh,
        cost_millipence: t.cost_mp,
        lamps: row.lamps,
        lamps_missing: row.lamps_missing,
        missing_slots: row.missing_slots.max(0),
        baseline_wh: t.baseline_wh,
        baseline_cost_millipence: t.baseline_cost_mp,
        savings_wh: t.baseline_wh - t.wh,
        savings_millipence: t.baseline_cost_mp - t.cost_mp,
        unpriced_wh: t.unpriced_wh,
    }
}

pub fn tariff(t: &Tariff) -> proto::Tariff {
    proto::Tariff {
        id: t.id,
        name: t.terms.name.clone(),
        time_zone: t.terms.time_zone.name().to_owned(),
        valid_from: t.terms.valid_from.to_string(),
        valid_to: t.terms.valid_to.map(|d| d.to_string()).unwrap_or_default(),
        bands: t
            .terms
            .bands
            .iter()
            .map(|b| proto::TariffBand {
                name: b.name.clone(),
                starts_at: b.starts_at.format("%H:%M").to_string(),
                price_millipence_per_kwh: b.price_millipence_per_kwh,
            })
            .collect(),
    }
}

/// The tariff a `SetTariff` asks for: its id (None to create) and its checked terms.
pub fn set_tariff(
    request: &proto::SetTariffRequest,
) -> Result<(Option<i64>, NewTariff), ValidationError> {
    let t = request
        .tariff
        .as_ref()
        .ok_or_else(|| ValidationError::new("tariff", "send the tariff to set"))?;
    if t.id < 0 {
        return Err(ValidationError::new(
            "tariff.id",
            "0 creates a tariff; a positive id replaces that one",
        ));
    }
    let bands = t
        .bands
        .iter()
        .enumerate()
        .map(|(index, band)| {
            let starts_at = NaiveTime::parse_from_str(&band.starts_at, "%H:%M").map_err(|_| {
                ValidationError::new(
                    format!("tariff.bands[{index}].starts_at"),
                    format!(
                        "{} is not a local time like 07:30",
                        crate::domain::validation::quoted(&band.starts_at)
                    ),
                )
            })?;
            Ok(Band {
                name: band.name.clone(),
                starts_at,
                price_millipence_per_kwh: band.price_millipence_per_kwh,
            })
        })
        .collect::<Result<Vec<_>, ValidationError>>()?;
    let terms = NewTariff {
        name: t.name.clone(),
        time_zone: local_time::time_zone("tariff.time_zone", &t.time_zone)?,
        valid_from: local_time::date("tariff.valid_from", &t.valid_from)?,
        valid_to: optional_date("tariff.valid_to", &t.valid_to)?,
        bands,
    }
    .validate()?;
    Ok(((t.id > 0).then_some(t.id), terms))
}

fn optional_date(field: &str, text: &str) -> Result<Option<NaiveDate>, ValidationError> {
    if text.is_empty() {
        Ok(None)
    } else {
        local_time::date(field, text).map(Some)
    }
}
