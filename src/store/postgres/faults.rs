//! Faults in PostgreSQL (`FaultStore`): fault records and their history, the transitions
//! `domain/faults/apply.rs` decides written with their events, and the log behind Watch.
//! Appends to the log take a transaction-level advisory lock first, so across servers
//! sharing the database seq order is commit order: a reader that has seen seq N never later
//! finds a smaller one.

use chrono::{DateTime, Utc};
use tokio_postgres::Row;

use super::Conn as Client;

use super::rows::{from_millis, get, millis, parsed};
use super::{PgStore, db_error};
use crate::domain::faults::apply::{self, GroupStep, Refusal, Transition};
use crate::domain::faults::lifecycle::FaultState;
use crate::domain::faults::record::{
    EventKind, Fault, FaultEvent, FaultFilter, HistoryEntry, change_words,
};
use crate::domain::faults::{FaultType, Severity};
use crate::domain::inventory::EntityKind;
use crate::store::{
    EngineChange, FaultAction, FaultStore, GroupChange, OpenedCount, StoreError, StoreResult,
};

const FAULT_COLUMNS: &str = "id, type, severity, state, lamp_id, circuit_id, basestation_id, zone_id, parent_id, \
     count, first_seen, last_seen, cleared_at, acknowledged, flapping, assignee, version, updated_at";

fn fault_from_row(row: &Row) -> StoreResult<Fault> {
    let count: i64 = get(row, 9)?;
    Ok(Fault {
        id: get(row, 0)?,
        fault_type: parsed(row, 1, FaultType::parse)?,
        severity: parsed(row, 2, Severity::parse)?,
        state: parsed(row, 3, FaultState::parse)?,
        lamp_id: get(row, 4)?,
        circuit_id: get(row, 5)?,
        basestation_id: get(row, 6)?,
        zone_id: get(row, 7)?,
        parent_id: get(row, 8)?,
        count: u32::try_from(count).unwrap_or(u32::MAX),
        first_seen: from_millis(get(row, 10)?),
        last_seen: from_millis(get(row, 11)?),
        cleared_at: get::<Option<i64>>(row, 12)?.map(from_millis),
        acknowledged: get(row, 13)?,
        flapping: get(row, 14)?,
        assignee: get(row, 15)?,
        version: get(row, 16)?,
        updated_at: from_millis(get(row, 17)?),
    })
}

async fn fetch_fault(c: &Client, id: i64, lock: bool) -> StoreResult<Fault> {
    let lock = if lock { " FOR UPDATE" } else { "" };
    let row = c
        .query_opt(
            &format!("SELECT {FAULT_COLUMNS} FROM faults WHERE id = $1{lock}"),
            &[&id],
        )
        .await
        .map_err(db_error)?
        .ok_or(StoreError::NotFound {
            kind: EntityKind::Fault,
            id,
        })?;
    fault_from_row(&row)
}

/// The newest fault of this type on this lamp, whatever its state.
async fn latest_fault(
    c: &Client,
    lamp_id: i64,
    fault_type: FaultType,
) -> StoreResult<Option<Fault>> {
    c.query_opt(
        &format!(
            "SELECT {FAULT_COLUMNS} FROM faults WHERE lamp_id = $1 AND type = $2 ORDER BY id DESC LIMIT 1 FOR UPDATE"
        ),
        &[&lamp_id, &fault_type.as_str()],
    )
    .await
    .map_err(db_error)?
    .map(|row| fault_from_row(&row))
    .transpose()
}

async fn save_fault(c: &Client, f: &Fault) -> StoreResult<()> {
    c.execute(
        "UPDATE faults SET severity = $2, state = $3, parent_id = $4, count = $5, last_seen = $6, cleared_at = $7, \
         acknowledged = $8, flapping = $9, assignee = $10, version = $11, updated_at = $12 WHERE id = $1",
        &[
            &f.id,
            &f.severity.as_str(),
            &f.state.as_str(),
            &f.parent_id,
            &i64::from(f.count),
            &millis(f.last_seen),
            &f.cleared_at.map(millis),
            &f.acknowledged,
            &f.flapping,
            &f.assignee,
            &f.version,
            &millis(f.updated_at),
        ],
    )
    .await
    .map_err(db_error)?;
    Ok(())
}

async fn insert_fault(c: &Client, f: &mut Fault) -> StoreResult<()> {
    let row = c
        .query_one(
            "INSERT INTO faults (type, severity, state, lamp_id, circuit_id, basestation_id, zone_id, parent_id, count, \
             first_seen, last_seen, cleared_at, acknowledged, flapping, assignee, version, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17) RETURNING id",
            &[
                &f.fault_type.as_str(),
                &f.severity.as_str(),
                &f.state.as_str(),
                &f.lamp_id,
                &f.circuit_id,
                &f.basestation_id,
                &f.zone_id,
                &f.parent_id,
                &i64::from(f.count),
                &millis(f.first_seen),
                &millis(f.last_seen),
                &f.cleared_at.map(millis),
                &f.acknowledged,
                &f.flapping,
                &f.assignee,
                &f.version,
                &millis(f.updated_at),
            ],
        )
        .await
        .map_err(db_error)?;
    f.id = get(&row, 0)?;
    Ok(())
}

/// The latest change that moved the fault's version, in words for a refusal:
/// "acknowledged by ana at 2026-12-02 04:24 UTC".
async fn last_change(c: &Client, fault_id: i64) -> StoreResult<String> {
    let rows = c
        .query(
            "SELECT at, actor, kind, change FROM fault_history WHERE fault_id = $1 ORDER BY id DESC LIMIT 64",
            &[&fault_id],
        )
        .await
        .map_err(db_error)?;
    for row in &rows {
        let kind: &str = get(row, 2)?;
        let Some(kind) = EventKind::parse(kind).filter(|k| k.changes_version()) else {
            continue;
        };
        let at = from_millis(get(row, 0)?);
        let actor: &str = get(row, 1)?;
        let change: &str = get(row, 3)?;
        let change = if change.is_empty() {
            String::new()
        } else {
            format!(" {change}")
        };
        return Ok(format!(
            "{}{change} by {actor} at {}",
            kind.past(),
            at.format("%Y-%m-%d %H:%M UTC")
        ));
    }
    Ok("changed by another action".to_owned())
}

/// Appends to the fault's history and to the event log; returns the event.
async fn log_event(
    c: &Client,
    fault: &Fault,
    kind: EventKind,
    from_state: Option<FaultState>,
    actor: &str,
    note: &str,
    at: DateTime<Utc>,
) -> StoreResult<FaultEvent> {
    c.execute(
        "INSERT INTO fault_history (fault_id, at, actor, kind, from_state, to_state, note, change) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        &[
            &fault.id,
            &millis(at),
            &actor,
            &kind.as_str(),
            &from_state.map(FaultState::as_str),
            &fault.state.as_str(),
            &note,
            &change_words(kind, fault),
        ],
    )
    .await
    .map_err(db_error)?;
    let snapshot = serde_json::to_string(fault).map_err(|e| StoreError::Database(e.to_string()))?;
    // Held to the commit: no other server's append can take a later seq and commit first.
    c.execute(
        &format!(
            "SELECT pg_advisory_xact_lock({})",
            super::lock_keys::FAULT_LOG
        ),
        &[],
    )
    .await
    .map_err(db_error)?;
    let row = c
        .query_one(
            "INSERT INTO fault_events (at, kind, fault_id, actor, note, fault) VALUES ($1, $2, $3, $4, $5, $6) RETURNING seq",
            &[&millis(at), &kind.as_str(), &fault.id, &actor, &note, &snapshot],
        )
        .await
        .map_err(db_error)?;
    let seq: i64 = get(&row, 0)?;
    Ok(FaultEvent {
        seq: seq as u64,
        at,
        kind,
        fault: fault.clone(),
        actor: actor.to_owned(),
        note: note.to_owned(),
    })
}

fn event_from_row(row: &Row) -> StoreResult<FaultEvent> {
    let seq: i64 = get(row, 0)?;
    let kind: &str = get(row, 2)?;
    let fault: &str = get(row, 5)?;
    Ok(FaultEvent {
        seq: seq as u64,
        at: from_millis(get(row, 1)?),
        kind: EventKind::parse(kind).unwrap_or(EventKind::Note),
        fault: serde_json::from_str(fault)
            .map_err(|e| StoreError::Database(format!("event {seq}: {e}")))?,
        actor: get(row, 3)?,
        note: get(row, 4)?,
    })
}

/// Writes one decision: the fault record (inserted when new), its history entry and its
/// event in the log.
async fn write_transition(c: &Client, transition: Transition) -> StoreResult<FaultEvent> {
    let Transition {
        mut fault,
        kind,
        from_state,
        actor,
        note,
        at,
    } = transition;
    if fault.id == 0 {
        insert_fault(c, &mut fault).await?;
    } else {
        save_fault(c, &fault).await?;
    }
    log_event(c, &fault, kind, from_state, &actor, &note, at).await
}

/// Applies one engine change to the lamp's latest fault of its type.
pub(super) async fn apply_change(
    c: &Client,
    change: &EngineChange,
) -> StoreResult<Option<FaultEvent>> {
    let latest = latest_fault(c, change.lamp.lamp_id, change.change.fault_type()).await?;
    match apply::engine_change(latest, change) {
        Some(transition) => Ok(Some(write_transition(c, transition).await?)),
        None => Ok(None),
    }
}

/// Raises or clears a circuit or basestation fault and puts the lamps' faults under it.
pub(super) async fn apply_group(c: &Client, group: &GroupChange) -> StoreResult<Vec<FaultEvent>> {
    let active = c
        .query_opt(
            &format!(
                "SELECT {FAULT_COLUMNS} FROM faults WHERE lamp_id IS NULL AND type = $1 \
                 AND circuit_id IS NOT DISTINCT FROM $2 AND basestation_id IS NOT DISTINCT FROM $3 \
                 AND state IN ('OPEN', 'ACKNOWLEDGED', 'ASSIGNED') ORDER BY id DESC LIMIT 1 FOR UPDATE"
            ),
            &[&group.fault_type.as_str(), &group.circuit_id, &group.basestation_id],
        )
        .await
        .map_err(db_error)?
        .map(|row| fault_from_row(&row))
        .transpose()?;
    let active_id = active.as_ref().map(|f| f.id);
    let mut events = Vec::new();
    let parent_id = match apply::group_change(active, group) {
        GroupStep::Done(transition) => {
            if let Some(transition) = transition {
                events.push(write_transition(c, transition).await?);
            }
            return Ok(events);
        }
        GroupStep::Stands(Some(raised)) => {
            let event = write_transition(c, raised).await?;
            let id = event.fault.id;
            events.push(event);
            id
        }
        GroupStep::Stands(None) => active_id.unwrap_or_default(),
    };
    let Some(child_type) = group.child_type else {
        return Ok(events);
    };
    for &lamp_id in &group.lamp_ids {
        let Some(child) = latest_fault(c, lamp_id, child_type).await? else {
            continue;
        };
        if let Some(transition) = apply::group_child(child, parent_id, group.at) {
            events.push(write_transition(c, transition).await?);
        }
    }
    Ok(events)
}

impl FaultStore for PgStore {
    fn fault(&self, id: i64, history: usize) -> StoreResult<(Fault, Vec<HistoryEntry>, u64)> {
        self.read(move |c| async move {
            let fault = fetch_fault(&c, id, false).await?;
            let total: i64 = get(
                &c.query_one(
                    "SELECT count(*) FROM fault_history WHERE fault_id = $1",
                    &[&id],
                )
                .await
                .map_err(db_error)?,
                0,
            )?;
            let newest = i64::try_from(history).unwrap_or(i64::MAX);
            let rows = c
                .query(
                    "SELECT at, actor, kind, from_state, to_state, note, change FROM fault_history \
                     WHERE fault_id = $1 ORDER BY id DESC LIMIT $2",
                    &[&id, &newest],
                )
                .await
                .map_err(db_error)?;
            let mut entries = rows
                .iter()
                .map(|row| {
                    let kind: &str = get(row, 2)?;
                    let from: Option<&str> = get(row, 3)?;
                    let to: &str = get(row, 4)?;
                    Ok(HistoryEntry {
                        at: from_millis(get(row, 0)?),
                        actor: get(row, 1)?,
                        kind: EventKind::parse(kind).unwrap_or(EventKind::Note),
                        from_state: from.and_then(FaultState::parse),
                        to_state: FaultState::parse(to).unwrap_or(FaultState::Open),
                        note: get(row, 5)?,
                        change: get(row, 6)?,
                    })
                })
                .collect::<StoreResult<Vec<_>>>()?;
            entries.reverse();
            Ok((fault, entries, total.max(0) as u64))
        })
    }

    fn faults(&self, filter: &FaultFilter, after_id: i64, limit: usize) -> StoreResult<Vec<Fault>> {
        let filter = filter.clone();
        self.read(move |c| async move {
            let chunk = (limit.max(100) * 4) as i64;
            let mut found = Vec::new();
            let mut cursor = after_id;
            loop {
                let rows = c
                    .query(
                        &format!(
                            "SELECT {FAULT_COLUMNS} FROM faults WHERE ($7::bigint IS NULL OR parent_id = $7) AND id > $1 \
                             AND ($2::bigint IS NULL OR lamp_id = $2) AND ($3::bigint IS NULL OR zone_id = $3) \
                             AND ($4::bigint IS NULL OR first_seen >= $4) AND ($5::bigint IS NULL OR first_seen < $5) \
                             ORDER BY id LIMIT $6"
                        ),
                        &[
                            &cursor,
                            &filter.lamp_id,
                            &filter.zone_id,
                            &filter.opened_from.map(millis),
                            &filter.opened_to.map(millis),
                            &chunk,
                            &filter.parent_id,
                        ],
                    )
                    .await
                    .map_err(db_error)?;
                let faults = rows.iter().map(fault_from_row).collect::<StoreResult<Vec<_>>>()?;
                let Some(last) = faults.last() else { break };
                cursor = last.id;
                found.extend(faults.into_iter().filter(|f| filter.matches(f)));
                if found.len() >= limit {
                    found.truncate(limit);
                    break;
                }
            }
            Ok(found)
        })
    }

    fn active_faults(&self) -> StoreResult<Vec<Fault>> {
        self.read(|c| async move {
            let rows = c
                .query(
                    &format!(
                        "SELECT {FAULT_COLUMNS} FROM faults WHERE state IN ('OPEN', 'ACKNOWLEDGED', 'ASSIGNED') \
                         OR (state = 'CLEARED' AND NOT acknowledged) ORDER BY id"
                    ),
                    &[],
                )
                .await
                .map_err(db_error)?;
            rows.iter().map(fault_from_row).collect()
        })
    }

    fn fault_counts_opened(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> StoreResult<Vec<OpenedCount>> {
        self.read(move |c| async move {
            let rows = c
                .query(
                    "SELECT type, severity, (first_seen - $1) / 3600000 AS hour, count(*) FROM faults \
                     WHERE first_seen >= $1 AND first_seen < $2 GROUP BY type, severity, hour",
                    &[&millis(from), &millis(to)],
                )
                .await
                .map_err(db_error)?;
            let mut counts = Vec::new();
            for row in &rows {
                let (fault_type, severity): (&str, &str) = (get(row, 0)?, get(row, 1)?);
                let (hour, count): (i64, i64) = (get(row, 2)?, get(row, 3)?);
                if let (Some(fault_type), Some(severity)) =
                    (FaultType::parse(fault_type), Severity::parse(severity))
                {
                    counts.push(OpenedCount {
                        fault_type,
                        severity,
                        hour: hour.max(0) as usize,
                        count: u32::try_from(count).unwrap_or(u32::MAX),
                    });
                }
            }
            Ok(counts)
        })
    }

    fn act_on_fault(&self, request: FaultAction) -> StoreResult<FaultEvent> {
        self.write(move |c| async move {
            let fault = fetch_fault(&c, request.fault_id, true).await?;
            let (id, current, state) = (fault.id, fault.version, fault.state.as_str());
            match apply::operator_action(fault, &request, Utc::now()) {
                Ok(transition) => write_transition(&c, transition).await,
                Err(Refusal::Stale) => Err(StoreError::StaleFault {
                    id,
                    expected: request.expected_version,
                    current,
                    state,
                    change: last_change(&c, id).await?,
                }),
                Err(Refusal::NotAllowed(e)) => Err(StoreError::Conflict(e.to_string())),
            }
        })
    }

    fn fault_events_after(&self, after_seq: u64, limit: usize) -> StoreResult<Vec<FaultEvent>> {
        self.read(move |c| async move {
            let rows = c
                .query(
                    "SELECT seq, at, kind, actor, note, fault FROM fault_events WHERE seq > $1 ORDER BY seq LIMIT $2",
                    &[&(after_seq as i64), &(limit as i64)],
                )
                .await
                .map_err(db_error)?;
            rows.iter().map(event_from_row).collect()
        })
    }

    fn fault_events_between(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        after_seq: u64,
        limit: usize,
    ) -> StoreResult<Vec<FaultEvent>> {
        self.read(move |c| async move {
            let rows = c
                .query(
                    "SELECT seq, at, kind, actor, note, fault FROM fault_events \
                     WHERE at >= $1 AND at < $2 AND seq > $3 ORDER BY seq LIMIT $4",
                    &[
                        &millis(from),
                        &millis(to),
                        &(after_seq as i64),
                        &(limit as i64),
                    ],
                )
                .await
                .map_err(db_error)?;
            rows.iter().map(event_from_row).collect()
        })
    }

    fn fault_log_bounds(&self) -> StoreResult<(u64, u64)> {
        self.read(|c| async move {
            let row = c
                .query_one(
                    "SELECT min(seq), (SELECT CASE WHEN is_called THEN last_value ELSE 0 END \
                     FROM fault_events_seq_seq) FROM fault_events",
                    &[],
                )
                .await
                .map_err(db_error)?;
            let oldest: Option<i64> = get(&row, 0)?;
            // The newest ever issued, even if pruned, so a resumed watcher is never told
            // "behind".
            let newest = get::<i64>(&row, 1)?.max(0) as u64;
            Ok((oldest.map_or(newest + 1, |s| s as u64), newest))
        })
    }

    fn prune_fault_log(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        self.write_led(move |c| async move {
            c.execute(
                "DELETE FROM fault_events WHERE at < $1 AND seq < (SELECT max(seq) FROM fault_events)",
                &[&millis(before)],
            )
            .await
            .map_err(db_error)
        })
    }
}
