//! The live fault feed: publishes the events of the log, in seq order, once each, to every
//! subscriber (`Faults.Watch`, `Lamps.WatchStatus`).
//!
//! The store only appends to the log and hands back what a commit appended; publishing is the
//! server's. Commits finish in seq order, but the tasks that learn of them may run in any
//! order, so the feed keeps the last seq it published: events at or below it were published
//! already, and a commit whose first event is beyond the next seq means an earlier commit's
//! events are not published yet, so they are read from the log first. Nothing is skipped and
//! nothing sent twice, whichever task publishes. A once-a-second catch-up from the log
//! publishes whatever a writer did not hand over itself. A process that does not serve
//! faults has a feed that never reads the log (`FaultFeed::unread`): nothing there watches
//! faults, and the log is faults' own table.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::domain::faults::record::FaultEvent;
use crate::store::{Store, StoreResult};

/// Events a subscriber may fall behind by before it is told to resync: several ingest
/// commits' worth (see `Limits::watcher_buffer`).
const BUFFER: usize = 16_384;
/// Events read from the log at a time while catching up.
const CATCH_UP_PAGE: usize = 5_000;
/// How often the log is read for events nobody handed over.
const CATCH_UP_EVERY: Duration = Duration::from_secs(1);

pub struct FaultFeed {
    sender: broadcast::Sender<FaultEvent>,
    /// The newest seq published (or in the log when the feed started).
    published: Mutex<u64>,
    /// False in a process that does not serve faults: the feed neither reads nor publishes.
    reads_log: bool,
}

impl FaultFeed {
    /// A feed that publishes what is appended after the log's newest event now.
    pub fn new(store: &dyn Store) -> StoreResult<Arc<Self>> {
        let (_, newest) = store.fault_log_bounds()?;
        Ok(Arc::new(Self::after(newest)))
    }

    /// The feed of a process that does not serve faults: it never reads the log.
    pub fn unread() -> Arc<Self> {
        Arc::new(Self {
            reads_log: false,
            ..Self::after(0)
        })
    }

    fn after(seq: u64) -> Self {
        let (sender, _) = broadcast::channel(BUFFER);
        Self {
            sender,
            published: Mutex::new(seq),
            reads_log: true,
        }
    }

    /// Live events, in seq order, from the moment of subscribing.
    pub fn subscribe(&self) -> broadcast::Receiver<FaultEvent> {
        self.sender.subscribe()
    }

    /// Publishes a commit's events (ascending seq), after any earlier ones not yet published.
    pub fn publish(&self, store: &dyn Store, events: Vec<FaultEvent>) {
        let Some(first) = events.first().map(|e| e.seq).filter(|_| self.reads_log) else {
            return;
        };
        let mut published = self
            .published
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if first > *published + 1 {
            // An earlier commit's events: committed, since seq order is commit order.
            if let Err(e) = self.read_log(store, &mut published, first - 1) {
                tracing::error!(error = %e, "the fault feed could not read the log; watchers will resync");
            }
        }
        for event in events {
            self.send(&mut published, event);
        }
    }

    /// Publishes whatever the log holds beyond the last published event.
    pub fn catch_up(&self, store: &dyn Store) -> StoreResult<()> {
        if !self.reads_log {
            return Ok(());
        }
        let mut published = self
            .published
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.read_log(store, &mut published, u64::MAX)
    }

    fn read_log(&self, store: &dyn Store, published: &mut u64, up_to: u64) -> StoreResult<()> {
        while *published < up_to {
            let events = store.fault_events_after(*published, CATCH_UP_PAGE)?;
            let full = events.len() == CATCH_UP_PAGE;
            for event in events {
                if event.seq > up_to {
                    return Ok(());
                }
                self.send(published, event);
            }
            if !full {
                // The log holds nothing more (a seq a failed write took is never filled).
                break;
            }
        }
        Ok(())
    }

    fn send(&self, published: &mut u64, event: FaultEvent) {
        if event.seq <= *published {
            return;
        }
        *published = event.seq;
        // No subscriber is fine: the event is in the log for whoever comes.
        let _ = self.sender.send(event);
    }

    /// Catches up from the log every second until shutdown.
    pub async fn run(self: Arc<Self>, store: Arc<dyn Store>, shutdown: CancellationToken) {
        let mut ticks = tokio::time::interval(CATCH_UP_EVERY);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = ticks.tick() => {}
            }
            let (feed, store) = (self.clone(), store.clone());
            match tokio::task::spawn_blocking(move || feed.catch_up(store.as_ref())).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "the fault feed could not read the log"),
                Err(e) => tracing::error!(error = %e, "the fault feed's reader failed"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::domain::faults::FaultType;
    use crate::store::prelude::*;
    use crate::store::sqlite::SqliteStore;
    use crate::store::{GroupChange, TelemetryBatch};

    /// A batch that raises one circuit outage: one event.
    fn outage(circuit: i64) -> TelemetryBatch {
        TelemetryBatch {
            groups: vec![GroupChange {
                at: Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap(),
                fault_type: FaultType::CircuitSupplyLoss,
                circuit_id: Some(circuit),
                basestation_id: None,
                zone_id: None,
                raised: true,
                lamp_ids: Vec::new(),
                child_type: None,
            }],
            ..Default::default()
        }
    }

    #[test]
    fn commits_handed_over_out_of_order_reach_subscribers_in_seq_order_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("t.db")).unwrap();
        let old = store.record_telemetry(outage(9)).unwrap().events;
        let feed = FaultFeed::new(&store).unwrap();
        let mut subscriber = feed.subscribe();
        let commits: Vec<Vec<FaultEvent>> = (1..=3)
            .map(|circuit| store.record_telemetry(outage(circuit)).unwrap().events)
            .collect();

        // The third commit's task runs first: the two before it come from the log.
        feed.publish(&store, commits[2].clone());
        feed.publish(&store, commits[0].clone());
        feed.publish(&store, commits[1].clone());
        // A write nobody hands over is found by the catch-up; old events never come again.
        store.record_telemetry(outage(4)).unwrap();
        feed.catch_up(&store).unwrap();
        feed.publish(&store, old);

        let mut seen = Vec::new();
        while let Ok(event) = subscriber.try_recv() {
            seen.push((event.seq, event.fault.circuit_id));
        }
        assert_eq!(
            seen,
            vec![(2, Some(1)), (3, Some(2)), (4, Some(3)), (5, Some(4))]
        );
    }

    /// A process without faults reads nothing of the log, whatever it is handed or asked.
    #[test]
    fn a_feed_of_a_process_without_faults_never_reads_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("t.db")).unwrap();
        let feed = FaultFeed::unread();
        let mut subscriber = feed.subscribe();
        store.record_telemetry(outage(1)).unwrap();
        let later = store.record_telemetry(outage(2)).unwrap().events;
        feed.publish(&store, later);
        feed.catch_up(&store).unwrap();
        assert!(subscriber.try_recv().is_err());
    }
}
