//! Settlement in a process serving billing apart from telemetry. One process at a time holds
//! settlement's role (a leader serving billing holds it instead, metering as it ingests);
//! the holder meters each lamp's stored readings after its settlement cursor every settle
//! interval, as a leader does after a restart, writes them, and closes finished days. The
//! lamps' wiring (zone, wattage, since) comes from the inventory (its tables when this
//! process serves it, else `Lamps.ListWiring` as the service account), read again every
//! `WIRING_REFRESH`. It also drops the half-hour detail of days past retention, hourly.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{NaiveDate, Utc};
use tokio::sync::watch;

use super::context::Context;
use super::error::ServiceError;
use super::settlement::{self, BillingConfig, LAMP_DAYS_PER_JOB};
use super::wiring::WiringSource;
use crate::domain::telemetry::LampContext;
use crate::store::Notice;

/// How often the process asks for (or renews) settlement's role.
const CAMPAIGN_EVERY: Duration = Duration::from_secs(1);
/// How long the lamps' wiring is used before it is read again: a lamp added or moved is
/// metered with its new zone from then on (its readings wait, unsettled, until it is known).
const WIRING_REFRESH: Duration = Duration::from_secs(60);
/// How often the half-hour detail past retention is dropped.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// Lamps whose readings are read and metered at once, so memory stays bounded however large
/// the estate or the backlog.
const LAMPS_PER_REPLAY: usize = 20_000;

/// What the settler keeps between passes while it holds the role.
struct Holding {
    /// Every lamp's wiring, and when it was read.
    lamps: Option<(Instant, Arc<BTreeMap<i64, LampContext>>)>,
    /// The last day closed (or found closed).
    closed_through: Option<NaiveDate>,
    next_pass: Instant,
    /// When the half-hour detail past retention was last dropped.
    pruned: Option<Instant>,
}

/// Campaigns for settlement's role every second until shutdown, and settles while it holds
/// it; gives the role up at the end.
pub async fn run(
    context: Context,
    config: BillingConfig,
    slots_kept: chrono::Duration,
    wiring: Arc<WiringSource>,
    settled: Arc<watch::Sender<u64>>,
    address: String,
) {
    let mut holding: Option<Holding> = None;
    let mut ticks = tokio::time::interval(CAMPAIGN_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = context.shutdown.cancelled() => break,
            _ = ticks.tick() => {}
        }
        let asked = address.clone();
        match context
            .blocking(move |s| s.campaign_settlement(&asked))
            .await
        {
            Ok(Some(term)) => {
                if holding.is_none() {
                    tracing::info!(
                        term = term.term,
                        "settling energy here: metering stored readings after each lamp's cursor"
                    );
                }
            }
            Ok(None) => {
                if holding.take().is_some() {
                    tracing::warn!("another process settles energy now");
                }
                continue;
            }
            Err(e) => {
                if holding.take().is_some() {
                    tracing::error!(error = %e, "lost settlement's role");
                }
                continue;
            }
        }
        let state = holding.get_or_insert_with(|| Holding {
            lamps: None,
            // Yesterday is closed again on taking the role (only lamps still without a row
            // get one), as a leader does after a restart.
            closed_through: config
                .calendar()
                .date_of(Utc::now() - config.meter.max_gap)
                .pred_opt()
                .and_then(|d| d.pred_opt()),
            next_pass: Instant::now(),
            pruned: None,
        });
        if Instant::now() < state.next_pass {
            continue;
        }
        state.next_pass = Instant::now() + config.settle_interval;
        let Some(lamps) = lamps(&context, &wiring, &mut state.lamps).await else {
            continue;
        };
        match settle(&context, &config, &lamps).await {
            Ok(0) => {}
            Ok(lamp_days) => {
                tracing::debug!(lamp_days, "energy settled from stored readings");
                settled.send_modify(|n| *n += 1);
                context.announce(vec![Notice::Settled]);
            }
            Err(e) => {
                tracing::error!(error = %e, "energy settlement could not be stored; retrying")
            }
        }
        close_days(
            &context,
            &config,
            &lamps,
            &mut state.closed_through,
            &settled,
        )
        .await;
        if state.pruned.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
            state.pruned = Some(Instant::now());
            let before = config.calendar().date_of(Utc::now() - slots_kept);
            match context
                .blocking(move |s| s.prune_energy_slots(before))
                .await
            {
                Ok(slot_days) => tracing::info!(slot_days, "retention: half-hour detail removed"),
                Err(e) => tracing::error!(error = %e, "retention pruning failed"),
            }
        }
    }
    if holding.is_some() {
        let _ = context
            .blocking(|s| {
                s.resign_settlement();
                Ok(())
            })
            .await;
    }
}

/// The lamps' wiring, read again when it is older than `WIRING_REFRESH`; `None` when it was
/// never read and cannot be now.
async fn lamps(
    context: &Context,
    wiring: &WiringSource,
    known: &mut Option<(Instant, Arc<BTreeMap<i64, LampContext>>)>,
) -> Option<Arc<BTreeMap<i64, LampContext>>> {
    if let Some((read, lamps)) = known
        && read.elapsed() < WIRING_REFRESH
    {
        return Some(lamps.clone());
    }
    match wiring.all(context).await {
        Ok(all) => {
            let lamps = Arc::new(all.into_iter().map(|l| (l.lamp_id, l)).collect());
            *known = Some((Instant::now(), Arc::clone(&lamps)));
            Some(lamps)
        }
        Err(e) => {
            tracing::warn!(error = %e, "settling with the lamps' wiring last read");
            known.as_ref().map(|(_, lamps)| lamps.clone())
        }
    }
}

/// Meters every lamp's stored readings after its cursor and writes them; the lamp-days
/// written. A job refused leaves its lamps' cursors where they were: the next pass meters
/// them again.
async fn settle(
    context: &Context,
    config: &BillingConfig,
    lamps: &Arc<BTreeMap<i64, LampContext>>,
) -> Result<usize, ServiceError> {
    let behind = context.blocking(|s| s.unsettled_readings()).await?;
    let cursors = behind
        .iter()
        .filter_map(|b| Some((b.lamp_id, b.cursor?)))
        .collect();
    let unsettled = settlement::unsettled_of(
        lamps,
        cursors,
        behind.iter().map(|b| (b.lamp_id, b.through)),
    );
    let (meter, calendar) = (config.meter, config.calendar());
    let mut lamp_days = 0;
    for part in unsettled.chunks(LAMPS_PER_REPLAY) {
        let part = part.to_vec();
        let mut ledger = context
            .blocking(move |s| settlement::replay(s, meter, &part))
            .await?;
        for job in ledger.take(LAMP_DAYS_PER_JOB) {
            lamp_days += job.days.len();
            context
                .blocking(move |s| s.record_energy(calendar, job))
                .await?;
        }
    }
    Ok(lamp_days)
}

/// Closes each day whose reports are all due, giving every lamp without a row an empty one.
async fn close_days(
    context: &Context,
    config: &BillingConfig,
    lamps: &BTreeMap<i64, LampContext>,
    closed_through: &mut Option<NaiveDate>,
    settled: &watch::Sender<u64>,
) {
    let calendar = config.calendar();
    let finished = calendar
        .date_of(Utc::now() - config.meter.max_gap)
        .pred_opt();
    while let Some(day) = settlement::next_day_to_close(*closed_through, finished) {
        let closing = settlement::closing_lamps(lamps.values(), calendar, day);
        if !settlement::close_day(context, calendar, day, closing, settled).await {
            return;
        }
        *closed_through = Some(day);
    }
}
