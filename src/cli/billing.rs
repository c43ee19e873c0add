//! `singularity client billing ...`: totals for a day, a month or any range as a table, JSON
//! or CSV; one lamp's half-hours; live totals; tariffs.

use super::output::outln;
use crate::figures::{covered, energy, pounds, saved_share};
use crate::link::AuthedChannel;
use chrono::{Datelike, NaiveDate};
use clap::{Subcommand, ValueEnum};
use futures::StreamExt;
use serde_json::{Value, json};

use super::calls::Failure;
use super::output::{Fields, object, print_many, print_one};
use crate::domain::billing::calendar::month_bounds;
use crate::proto::{self, billing_client::BillingClient};

#[derive(Debug, Subcommand)]
pub enum BillingCommand {
    /// Energy, cost and savings: --month 2026-11 --by zone (default: month to date).
    Totals {
        #[command(flatten)]
        period: Period,
        /// Group rows by zone, day, month or lamp (the biggest consumers first).
        #[arg(long = "by", value_enum, default_value_t = By::Zone)]
        by: By,
        /// Only this zone (id, from `client zones`).
        #[arg(long)]
        zone: Option<i64>,
        /// Lamp rows to list with --by lamp.
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// Print CSV (integer Wh and milli-pence) instead of a table.
        #[arg(long, conflicts_with = "json")]
        csv: bool,
    },
    /// One lamp's half-hour slots on a day.
    Lamp {
        /// The lamp's id.
        id: i64,
        /// YYYY-MM-DD; today when omitted.
        #[arg(long)]
        date: Option<String>,
        /// The settlement time zone, for what "today" is.
        #[arg(long, env = "SINGULARITY_TZ", default_value = "Europe/London")]
        tz: String,
    },
    /// Today's and month-to-date totals, printed after each settlement.
    Watch {
        /// Only this zone (id, from `client zones`).
        #[arg(long)]
        zone: Option<i64>,
    },
    /// Every tariff.
    Tariffs,
    /// Create a tariff, or replace one with --id: --band night=00:30@12.5 --band day=07:30@28.
    SetTariff {
        /// Replace this tariff (from `billing tariffs`) instead of creating one.
        #[arg(long)]
        id: Option<i64>,
        /// The tariff's name, e.g. "2027 contract".
        #[arg(long)]
        name: String,
        /// The zone whose local time the bands and dates are in.
        #[arg(long, default_value = "Europe/London")]
        time_zone: String,
        /// First day it applies, YYYY-MM-DD.
        #[arg(long)]
        valid_from: String,
        /// Last day (inclusive); open-ended when omitted.
        #[arg(long)]
        valid_to: Option<String>,
        /// NAME=HH:MM@PENCE_PER_KWH; a band lasts until the next starts.
        #[arg(long = "band", value_parser = parse_band, required = true)]
        bands: Vec<proto::TariffBand>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum By {
    Zone,
    Day,
    Month,
    Lamp,
}

/// One way of naming the period: --today, --month, --last-month, or --from with --to (month
/// to date when none is given).
#[derive(Debug, clap::Args)]
pub struct Period {
    /// Today only.
    #[arg(long, conflicts_with_all = ["month", "last_month", "from", "to"])]
    today: bool,
    /// A calendar month, YYYY-MM (up to today if it is this month).
    #[arg(long, conflicts_with_all = ["last_month", "from", "to"])]
    month: Option<String>,
    /// The previous calendar month.
    #[arg(long, conflicts_with_all = ["from", "to"])]
    last_month: bool,
    /// First day, YYYY-MM-DD (with --to).
    #[arg(long, requires = "to")]
    from: Option<String>,
    /// Last day, YYYY-MM-DD, inclusive (with --from).
    #[arg(long, requires = "from")]
    to: Option<String>,
    /// The settlement time zone, for what "today" is.
    #[arg(long, env = "SINGULARITY_TZ", default_value = "Europe/London")]
    tz: String,
}

impl Period {
    fn range(&self) -> Result<(String, String), Failure> {
        let zone: chrono_tz::Tz = self
            .tz
            .parse()
            .map_err(|_| Failure::Usage(format!("--tz {:?} is not an IANA time zone", self.tz)))?;
        let today = chrono::Utc::now().with_timezone(&zone).date_naive();
        let clip =
            |(from, to): (NaiveDate, NaiveDate)| (from.to_string(), to.min(today).to_string());
        if let (Some(from), Some(to)) = (&self.from, &self.to) {
            return Ok((from.clone(), to.clone()));
        }
        if self.today {
            return Ok(clip((today, today)));
        }
        if self.last_month {
            let (first, _) = month_bounds(today);
            let previous = first.pred_opt().unwrap_or(first);
            return Ok(clip(month_bounds(previous)));
        }
        if let Some(month) = &self.month {
            let first =
                NaiveDate::parse_from_str(&format!("{month}-01"), "%Y-%m-%d").map_err(|_| {
                    Failure::Usage(format!("--month {month:?} is not a month like 2026-11"))
                })?;
            return Ok(clip(month_bounds(first)));
        }
        Ok(clip((today.with_day(1).unwrap_or(today), today)))
    }
}

pub fn group_by(by: By) -> proto::GroupBy {
    match by {
        By::Zone => proto::GroupBy::Zone,
        By::Day => proto::GroupBy::Day,
        By::Month => proto::GroupBy::Month,
        By::Lamp => proto::GroupBy::Lamp,
    }
}

fn parse_band(text: &str) -> Result<proto::TariffBand, String> {
    let usage = || format!("{text:?} is not NAME=HH:MM@PENCE, e.g. night=00:30@12.5");
    let (name, rest) = text.split_once('=').ok_or_else(usage)?;
    let (starts_at, price) = rest.split_once('@').ok_or_else(usage)?;
    let pence: f64 = price.parse().map_err(|_| usage())?;
    if !(0.0..=10_000.0).contains(&pence) {
        return Err(format!("{pence} p/kWh is out of range (0 to 10000)"));
    }
    Ok(proto::TariffBand {
        name: name.to_owned(),
        starts_at: starts_at.to_owned(),
        price_millipence_per_kwh: (pence * 1000.0).round() as u32,
    })
}

/// A totals row for people: energy with units, pounds, the half-hours with data, and the
/// saving over those half-hours as a share of the baseline.
struct Readable<'a>(&'a proto::TotalsRow, u32);

impl Fields for Readable<'_> {
    fn fields(&self) -> Vec<(&'static str, Value)> {
        let r = self.0;
        vec![
            ("group", json!(r.key)),
            ("energy", json!(energy(r.energy_wh))),
            ("cost", json!(pounds(r.cost_millipence))),
            ("lamps", json!(r.lamps)),
            ("missing", json!(r.lamps_missing)),
            ("data", json!(covered(r, self.1))),
            ("baseline", json!(energy(r.baseline_wh))),
            ("saved", json!(energy(r.savings_wh))),
            ("saved_cost", json!(pounds(r.savings_millipence))),
            ("saved_pct", json!(saved_share(r))),
        ]
    }
}

impl Fields for proto::TotalsRow {
    fn fields(&self) -> Vec<(&'static str, Value)> {
        vec![
            ("key", json!(self.key)),
            ("zone_id", json!(self.zone_id)),
            ("lamp_id", json!(self.lamp_id)),
            ("energy_wh", json!(self.energy_wh)),
            ("cost_millipence", json!(self.cost_millipence)),
            ("lamps", json!(self.lamps)),
            ("lamps_missing", json!(self.lamps_missing)),
            ("missing_slots", json!(self.missing_slots)),
            ("baseline_wh", json!(self.baseline_wh)),
            (
                "baseline_cost_millipence",
                json!(self.baseline_cost_millipence),
            ),
            ("savings_wh", json!(self.savings_wh)),
            ("savings_millipence", json!(self.savings_millipence)),
            ("unpriced_wh", json!(self.unpriced_wh)),
        ]
    }
}

impl Fields for proto::EnergySlot {
    fn fields(&self) -> Vec<(&'static str, Value)> {
        let start = self
            .start
            .as_ref()
            .and_then(|t| chrono::DateTime::from_timestamp(t.seconds, 0))
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
        vec![
            ("slot", json!(self.index)),
            ("start", json!(start)),
            ("energy_wh", json!(self.energy_wh)),
            ("covered_s", json!(self.covered_seconds)),
            ("missing", json!(self.missing)),
            ("cost_millipence", json!(self.cost_millipence)),
            ("baseline_wh", json!(self.baseline_wh)),
        ]
    }
}

impl Fields for proto::Tariff {
    fn fields(&self) -> Vec<(&'static str, Value)> {
        let bands: Vec<String> = self
            .bands
            .iter()
            .map(|b| {
                format!(
                    "{}={}@{}",
                    b.name,
                    b.starts_at,
                    b.price_millipence_per_kwh as f64 / 1000.0
                )
            })
            .collect();
        vec![
            ("id", json!(self.id)),
            ("name", json!(self.name)),
            ("time_zone", json!(self.time_zone)),
            ("valid_from", json!(self.valid_from)),
            ("valid_to", json!(self.valid_to)),
            ("bands", json!(bands)),
        ]
    }
}

fn print_csv(rows: &[proto::TotalsRow]) {
    let header: Vec<&str> = proto::TotalsRow::default()
        .fields()
        .iter()
        .map(|(name, _)| *name)
        .collect();
    outln!("{}", header.join(","));
    for row in rows {
        let cells: Vec<String> = row
            .fields()
            .into_iter()
            .map(|(_, value)| match value {
                Value::String(text) if text.contains([',', '"', '\n']) => {
                    format!("\"{}\"", text.replace('"', "\"\""))
                }
                Value::String(text) => text,
                other => other.to_string(),
            })
            .collect();
        outln!("{}", cells.join(","));
    }
}

fn print_totals(totals: &proto::Totals, json_out: bool, csv: bool) {
    let mut rows = totals.rows.clone();
    rows.extend(totals.total.clone());
    if csv {
        print_csv(&rows);
    } else if json_out {
        print_many(&rows, true);
    } else {
        outln!(
            "{} to {} ({}), {} half-hours due per lamp; savings over the half-hours with data",
            totals.from,
            totals.to,
            totals.time_zone,
            totals.expected_slots
        );
        let readable: Vec<Readable<'_>> = rows
            .iter()
            .map(|r| Readable(r, totals.expected_slots))
            .collect();
        print_many(&readable, false);
        if totals.rows_omitted > 0 {
            outln!(
                "({} more lamps not listed; they are in the total)",
                totals.rows_omitted
            );
        }
    }
}

pub async fn run(
    channel: AuthedChannel,
    command: BillingCommand,
    json_out: bool,
) -> Result<(), Failure> {
    let mut client = BillingClient::new(channel);
    match command {
        BillingCommand::Totals {
            period,
            by,
            zone,
            limit,
            csv,
        } => {
            let (from, to) = period.range()?;
            let group_by = group_by(by);
            let totals = client
                .get_totals(proto::GetTotalsRequest {
                    from,
                    to,
                    group_by: group_by as i32,
                    zone_id: zone.unwrap_or_default(),
                    limit,
                    ..Default::default()
                })
                .await?
                .into_inner();
            print_totals(&totals, json_out, csv);
        }
        BillingCommand::Lamp { id, date, tz } => {
            let date = match date {
                Some(date) => date,
                None => {
                    let zone: chrono_tz::Tz = tz.parse().map_err(|_| {
                        Failure::Usage(format!("--tz {tz:?} is not an IANA time zone"))
                    })?;
                    chrono::Utc::now()
                        .with_timezone(&zone)
                        .date_naive()
                        .to_string()
                }
            };
            let energy = client
                .get_lamp_energy(proto::GetLampEnergyRequest { lamp_id: id, date })
                .await?
                .into_inner();
            if json_out {
                let slots: Vec<Value> = energy.slots.iter().map(|s| object(s.fields())).collect();
                let total = energy.total.as_ref().map(|t| object(t.fields()));
                outln!(
                    "{}",
                    json!({
                        "lamp_id": energy.lamp_id,
                        "date": energy.date,
                        "slots": slots,
                        "total": total,
                    })
                );
            } else {
                print_many(&energy.slots, false);
                if let Some(total) = &energy.total {
                    outln!();
                    let due = energy.slots.len() as u32;
                    print_one(&Readable(total, due), false);
                }
            }
        }
        BillingCommand::Watch { zone } => {
            let mut stream = client
                .watch_totals(proto::WatchTotalsRequest {
                    zone_id: zone.unwrap_or_default(),
                    ..Default::default()
                })
                .await?
                .into_inner();
            while let Some(update) = stream.next().await {
                let update = update?;
                for (label, totals) in [
                    ("today", &update.today),
                    ("month to date", &update.month_to_date),
                ] {
                    if let Some(total) = totals.as_ref().and_then(|t| t.total.as_ref()) {
                        if json_out {
                            print_one(total, true);
                        } else {
                            let due = totals.as_ref().map_or(0, |t| t.expected_slots);
                            outln!(
                                "{label:<14} {:>14} {:>12}  saved {:>10} over {} of the half-hours  lamps {} ({} missing data)",
                                energy(total.energy_wh),
                                pounds(total.cost_millipence),
                                pounds(total.savings_millipence),
                                covered(total, due),
                                total.lamps,
                                total.lamps_missing
                            );
                        }
                    }
                }
            }
        }
        BillingCommand::Tariffs => {
            let tariffs = super::calls::all_pages(|page_token| {
                let mut client = client.clone();
                async move {
                    let reply = client
                        .list_tariffs(proto::ListTariffsRequest { page_token })
                        .await?
                        .into_inner();
                    Ok((reply.tariffs, reply.next_page_token))
                }
            })
            .await?;
            print_many(&tariffs, json_out);
        }
        BillingCommand::SetTariff {
            id,
            name,
            time_zone,
            valid_from,
            valid_to,
            bands,
        } => {
            let tariff = client
                .set_tariff(proto::SetTariffRequest {
                    tariff: Some(proto::Tariff {
                        id: id.unwrap_or_default(),
                        name,
                        time_zone,
                        valid_from,
                        valid_to: valid_to.unwrap_or_default(),
                        bands,
                    }),
                })
                .await?
                .into_inner();
            print_one(&tariff, json_out);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bands_parse_from_pence() {
        let band = parse_band("night=00:30@12.345").unwrap();
        assert_eq!(band.price_millipence_per_kwh, 12_345);
        assert!(parse_band("night@00:30").is_err());
    }
}
