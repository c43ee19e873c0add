//! `singularity bench fill-energy` and `bench totals`: a month of settled energy for every lamp
//! written through the store's own settlement path, then `Billing.GetTotals` timed over it.

use crate::cli::output::outln;
use std::time::Instant;

use crate::link::AuthedChannel;
use chrono::{Duration, NaiveDate};
use color_eyre::eyre::{Result, eyre};

use crate::domain::billing::calendar::{Calendar, month_bounds};
use crate::domain::billing::{Draw, Meter, MeterMode};
use crate::domain::sun;
use crate::proto::{self, billing_client::BillingClient};
use crate::store::{EnergySettlement, LampDayEnergy, Store};

/// Lamp-days written per settlement (one commit each).
const LAMPS_PER_COMMIT: usize = 500;

/// Settles every lamp of the store for every day of `month` as a dusk-to-dawn lamp at full
/// power with every half-hour accounted for.
pub fn fill_energy(store: &dyn Store, month: NaiveDate) -> Result<()> {
    let calendar = Calendar::london();
    let meter = Meter {
        mode: MeterMode::Calculated,
        calendar,
        max_gap: Duration::minutes(75),
    };
    let lamps = store.lamp_contexts()?;
    if lamps.is_empty() {
        return Err(eyre!(
            "the database holds no lamps; run singularity seed first"
        ));
    }
    let (first, last) = month_bounds(month);
    let started = Instant::now();
    let mut written = 0usize;
    let mut date = first;
    while date <= last {
        for chunk in lamps.chunks(LAMPS_PER_COMMIT) {
            let days = chunk
                .iter()
                .map(|lamp| {
                    let mut shares = Vec::with_capacity(50);
                    let slots = calendar.slots_in(date);
                    for index in 0..slots {
                        let start = calendar.slot_start(date, index);
                        let lit = lamp.profile.location.is_none_or(|p| {
                            sun::is_night(start + Duration::minutes(15), p, Duration::zero())
                        });
                        let rate = if lit {
                            u64::from(lamp.profile.wattage_w) * 100
                        } else {
                            0
                        };
                        shares.extend(meter.split(
                            start,
                            start + Duration::minutes(30),
                            Draw::Power(rate),
                            true,
                        ));
                    }
                    LampDayEnergy {
                        lamp_id: lamp.lamp_id,
                        zone_id: lamp.zone_id,
                        wattage_w: lamp.profile.wattage_w,
                        location: lamp.profile.location,
                        date,
                        shares,
                    }
                })
                .collect();
            store.record_energy(
                calendar,
                EnergySettlement {
                    days,
                    cursors: Vec::new(),
                    readings: 0,
                },
            )?;
            written += chunk.len();
        }
        outln!(
            "{date}: {} lamp-days so far, {:.0} lamp-days/s",
            written,
            written as f64 / started.elapsed().as_secs_f64()
        );
        let Some(next) = date.succ_opt() else { break };
        date = next;
    }
    Ok(())
}

/// Times `GetTotals` for a month (to date, if it is this month).
pub async fn totals(
    channel: &AuthedChannel,
    month: NaiveDate,
    group_by: proto::GroupBy,
    limit: u32,
    runs: usize,
) -> Result<()> {
    let (first, last) = month_bounds(month);
    // This month: up to today (what an operator asks for as "this month").
    let last = last.min(Calendar::london().date_of(chrono::Utc::now()));
    let mut client = BillingClient::new(channel.clone());
    let mut timings = Vec::new();
    let mut reply = proto::Totals::default();
    for _ in 0..runs.max(1) {
        let started = Instant::now();
        reply = client
            .get_totals(proto::GetTotalsRequest {
                from: first.to_string(),
                to: last.to_string(),
                group_by: group_by as i32,
                limit,
                ..Default::default()
            })
            .await?
            .into_inner();
        timings.push(started.elapsed());
    }
    timings.sort_unstable();
    let total = reply.total.unwrap_or_default();
    outln!(
        "Billing.GetTotals {first}..{last} by {}: {} rows, {} lamps, {} kWh; {} runs: p50 {:.1} ms, max {:.1} ms",
        group_by.as_str_name(),
        reply.rows.len(),
        total.lamps,
        total.energy_wh / 1000,
        timings.len(),
        super::measure::percentile(&timings, 0.5),
        super::measure::percentile(&timings, 1.0)
    );
    Ok(())
}
