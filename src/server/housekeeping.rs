//! The leader's periodic work besides settlement: the offline sweep (nodes not heard from)
//! and retention (old readings and events, and the half-hour detail of energy when the term
//! settles), until its term ends.

use std::time::Duration;

use super::ServerConfig;
use super::context::Context;
use super::engine::Engine;

/// The offline sweep every `sweep_interval` and retention every hour, until the term ends.
pub async fn run(context: Context, engine: Engine, config: ServerConfig, settles: bool) {
    let mut ticks = tokio::time::interval(config.sweep_interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_prune = std::time::Instant::now();
    loop {
        tokio::select! {
            () = context.shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let mut state = engine.lock().await;
        if let Err(e) = super::engine::resume_from_committed(&context, &mut state).await {
            tracing::error!(error = %e, "the offline sweep could not reload the engine");
            continue;
        }
        let batch = state.sweep(chrono::Utc::now());
        if !batch.changes.is_empty() || !batch.groups.is_empty() {
            match context.blocking(move |s| s.record_telemetry(batch)).await {
                Ok(outcome) => context.publish(outcome.events),
                Err(e) => {
                    tracing::error!(error = %e, "the offline sweep could not store its faults")
                }
            }
        }
        drop(state);
        if last_prune.elapsed() >= Duration::from_secs(3600) {
            last_prune = std::time::Instant::now();
            let now = chrono::Utc::now();
            let (readings, events) = (
                now - config.readings_retention,
                now - config.event_log_retention,
            );
            let slots = config
                .billing
                .calendar()
                .date_of(now - config.energy_slots_retention);
            let pruned = context
                .blocking(move |s| {
                    Ok((
                        s.prune_readings(readings)?,
                        s.prune_fault_log(events)?,
                        // Otherwise billing's own settler keeps its detail.
                        if settles {
                            s.prune_energy_slots(slots)?
                        } else {
                            0
                        },
                    ))
                })
                .await;
            match pruned {
                Ok((readings, events, slot_days)) => tracing::info!(
                    readings,
                    events,
                    slot_days,
                    "retention: old readings, events and half-hour detail removed"
                ),
                Err(e) => tracing::error!(error = %e, "retention pruning failed"),
            }
        }
    }
}
