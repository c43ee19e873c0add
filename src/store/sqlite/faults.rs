//! Faults in SQLite (`FaultStore`): fault records and their history, the transitions
//! `domain/faults/apply.rs` decides written with their events, and the log behind Watch.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::rows::{from_millis, millis};
use super::{SqliteStore, db_error};
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

fn fault_from_row(row: &Row<'_>) -> rusqlite::Result<Fault> {
    let text = |index: usize| row.get::<_, String>(index);
    let bad = |index: usize, value: String| {
        rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Text, value.into())
    };
    let fault_type = text(1)?;
    let severity = text(2)?;
    let state = text(3)?;
    Ok(Fault {
        id: row.get(0)?,
        fault_type: FaultType::parse(&fault_type).ok_or_else(|| bad(1, fault_type))?,
        severity: Severity::parse(&severity).ok_or_else(|| bad(2, severity))?,
        state: FaultState::parse(&state).ok_or_else(|| bad(3, state))?,
        lamp_id: row.get(4)?,
        circuit_id: row.get(5)?,
        basestation_id: row.get(6)?,
        zone_id: row.get(7)?,
        parent_id: row.get(8)?,
        count: row.get(9)?,
        first_seen: from_millis(row.get(10)?),
        last_seen: from_millis(row.get(11)?),
        cleared_at: row.get::<_, Option<i64>>(12)?.map(from_millis),
        acknowledged: row.get(13)?,
        flapping: row.get(14)?,
        assignee: row.get(15)?,
        version: row.get(16)?,
        updated_at: from_millis(row.get(17)?),
    })
}

fn fetch_fault(c: &Connection, id: i64) -> StoreResult<Fault> {
    c.prepare_cached(&format!("SELECT {FAULT_COLUMNS} FROM faults WHERE id = ?1"))
        .and_then(|mut s| s.query_row([id], fault_from_row).optional())
        .map_err(db_error)?
        .ok_or(StoreError::NotFound {
            kind: EntityKind::Fault,
            id,
        })
}

/// The newest fault of this type on this lamp, whatever its state.
fn latest_fault(c: &Connection, lamp_id: i64, fault_type: FaultType) -> StoreResult<Option<Fault>> {
    c.prepare_cached(&format!(
        "SELECT {FAULT_COLUMNS} FROM faults WHERE lamp_id = ?1 AND type = ?2 ORDER BY id DESC LIMIT 1"
    ))
    .and_then(|mut s| s.query_row(params![lamp_id, fault_type.as_str()], fault_from_row).optional())
    .map_err(db_error)
}

fn save_fault(c: &Connection, f: &Fault) -> StoreResult<()> {
    c.prepare_cached(
        "UPDATE faults SET severity = ?2, state = ?3, parent_id = ?4, count = ?5, last_seen = ?6, cleared_at = ?7, \
         acknowledged = ?8, flapping = ?9, assignee = ?10, version = ?11, updated_at = ?12 WHERE id = ?1",
    )
    .and_then(|mut s| {
        s.execute(params![
            f.id,
            f.severity.as_str(),
            f.state.as_str(),
            f.parent_id,
            f.count,
            millis(f.last_seen),
            f.cleared_at.map(millis),
            f.acknowledged,
            f.flapping,
            f.assignee,
            f.version,
            millis(f.updated_at)
        ])
    })
    .map_err(db_error)?;
    Ok(())
}

fn insert_fault(c: &Connection, f: &mut Fault) -> StoreResult<()> {
    c.prepare_cached(
        "INSERT INTO faults (type, severity, state, lamp_id, circuit_id, basestation_id, zone_id, parent_id, count, \
         first_seen, last_seen, cleared_at, acknowledged, flapping, assignee, version, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
    )
    .and_then(|mut s| {
        s.execute(params![
            f.fault_type.as_str(),
            f.severity.as_str(),
            f.state.as_str(),
            f.lamp_id,
            f.circuit_id,
            f.basestation_id,
            f.zone_id,
            f.parent_id,
            f.count,
            millis(f.first_seen),
            millis(f.last_seen),
            f.cleared_at.map(millis),
            f.acknowledged,
            f.flapping,
            f.assignee,
            f.version,
            millis(f.updated_at)
        ])
    })
    .map_err(db_error)?;
    f.id = c.last_insert_rowid();
    Ok(())
}

/// The latest change that moved the fault's version, in words for a refusal:
/// "ACKNOWLEDGED by ana at 2026-12-02 04:24 UTC".
fn last_change(c: &Connection, fault_id: i64) -> StoreResult<String> {
    let mut statement = c
        .prepare_cached(
            "SELECT at, actor, kind, change FROM fault_history WHERE fault_id = ?1 ORDER BY rowid DESC LIMIT 64",
        )
        .map_err(db_error)?;
    let mut rows = statement.query([fault_id]).map_err(db_error)?;
    while let Some(row) = rows.next().map_err(db_error)? {
        let kind: String = row.get(2).map_err(db_error)?;
        let Some(kind) = EventKind::parse(&kind).filter(|k| k.changes_version()) else {
            continue;
        };
        let at = from_millis(row.get(0).map_err(db_error)?);
        let actor: String = row.get(1).map_err(db_error)?;
        let change: String = row.get(3).map_err(db_error)?;
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

/// Appends to the fault's history and to the event log; returns the event to publish.
fn log_event(
    c: &Connection,
    fault: &Fault,
    kind: EventKind,
    from_state: Option<FaultState>,
    actor: &str,
    note: &str,
    at: DateTime<Utc>,
) -> StoreResult<FaultEvent> {
    c.prepare_cached(
        "INSERT INTO fault_history (fault_id, at, actor, kind, from_state, to_state, note, change) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )
    .and_then(|mut s| {
        s.execute(params![
            fault.id,
            millis(at),
            actor,
            kind.as_str(),
            from_state.map(FaultState::as_str),
            fault.state.as_str(),
            note,
            change_words(kind, fault)
        ])
    })
    .map_err(db_error)?;
    let snapshot = serde_json::to_string(fault).map_err(|e| StoreError::Database(e.to_string()))?;
    c.prepare_cached("INSERT INTO fault_events (at, kind, fault_id, actor, note, fault) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")
        .and_then(|mut s| s.execute(params![millis(at), kind.as_str(), fault.id, actor, note, snapshot]))
        .map_err(db_error)?;
    Ok(FaultEvent {
        seq: c.last_insert_rowid() as u64,
        at,
        kind,
        fault: fault.clone(),
        actor: actor.to_owned(),
        note: note.to_owned(),
    })
}

type EventColumns = (i64, i64, String, String, String, String);

fn event_columns(row: &Row<'_>) -> rusqlite::Result<EventColumns> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
    ))
}

fn event_from_columns(
    (seq, at, kind, actor, note, fault): EventColumns,
) -> StoreResult<FaultEvent> {
    Ok(FaultEvent {
        seq: seq as u64,
        at: from_millis(at),
        kind: EventKind::parse(&kind).unwrap_or(EventKind::Note),
        fault: serde_json::from_str(&fault)
            .map_err(|e| StoreError::Database(format!("event {seq}: {e}")))?,
        actor,
        note,
    })
}

/// Writes one decision: the fault record (inserted when new), its history entry and its
/// event in the log.
fn write_transition(c: &Connection, transition: Transition) -> StoreResult<FaultEvent> {
    let Transition {
        mut fault,
        kind,
        from_state,
        actor,
        note,
        at,
    } = transition;
    if fault.id == 0 {
        insert_fault(c, &mut fault)?;
    } else {
        save_fault(c, &fault)?;
    }
    log_event(c, &fault, kind, from_state, &actor, &note, at)
}

/// Applies one engine change to the lamp's latest fault of its type.
pub(super) fn apply_change(
    c: &Connection,
    change: &EngineChange,
) -> StoreResult<Option<FaultEvent>> {
    let fault_type = change.change.fault_type();
    let latest = latest_fault(c, change.lamp.lamp_id, fault_type)?;
    apply::engine_change(latest, change)
        .map(|transition| write_transition(c, transition))
        .transpose()
}

/// Raises or clears a circuit or basestation fault and puts the lamps' faults under it.
pub(super) fn apply_group(c: &Connection, group: &GroupChange) -> StoreResult<Vec<FaultEvent>> {
    let active = c
        .prepare_cached(&format!(
            "SELECT {FAULT_COLUMNS} FROM faults WHERE lamp_id IS NULL AND type = ?1 \
             AND circuit_id IS ?2 AND basestation_id IS ?3 AND state IN ('OPEN', 'ACKNOWLEDGED', 'ASSIGNED') \
             ORDER BY id DESC LIMIT 1"
        ))
        .and_then(|mut s| {
            s.query_row(params![group.fault_type.as_str(), group.circuit_id, group.basestation_id], fault_from_row)
                .optional()
        })
        .map_err(db_error)?;
    let active_id = active.as_ref().map(|f| f.id);
    let mut events = Vec::new();
    let parent_id = match apply::group_change(active, group) {
        GroupStep::Done(transition) => {
            if let Some(transition) = transition {
                events.push(write_transition(c, transition)?);
            }
            return Ok(events);
        }
        GroupStep::Stands(Some(raised)) => {
            let event = write_transition(c, raised)?;
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
        let Some(child) = latest_fault(c, lamp_id, child_type)? else {
            continue;
        };
        if let Some(transition) = apply::group_child(child, parent_id, group.at) {
            events.push(write_transition(c, transition)?);
        }
    }
    Ok(events)
}

impl FaultStore for SqliteStore {
    fn fault(&self, id: i64, history: usize) -> StoreResult<(Fault, Vec<HistoryEntry>, u64)> {
        self.read(|c| {
            let fault = fetch_fault(c, id)?;
            let total: i64 = c
                .prepare_cached("SELECT count(*) FROM fault_history WHERE fault_id = ?1")
                .and_then(|mut s| s.query_row([id], |row| row.get(0)))
                .map_err(db_error)?;
            let mut statement = c
                .prepare_cached(
                    "SELECT at, actor, kind, from_state, to_state, note, change FROM fault_history \
                     WHERE fault_id = ?1 ORDER BY rowid DESC LIMIT ?2",
                )
                .map_err(db_error)?;
            let newest = i64::try_from(history).unwrap_or(i64::MAX);
            let rows = statement
                .query_map(params![id, newest], |row| {
                    let kind: String = row.get(2)?;
                    let from: Option<String> = row.get(3)?;
                    let to: String = row.get(4)?;
                    Ok(HistoryEntry {
                        at: from_millis(row.get(0)?),
                        actor: row.get(1)?,
                        kind: EventKind::parse(&kind).unwrap_or(EventKind::Note),
                        from_state: from.as_deref().and_then(FaultState::parse),
                        to_state: FaultState::parse(&to).unwrap_or(FaultState::Open),
                        note: row.get(5)?,
                        change: row.get(6)?,
                    })
                })
                .map_err(db_error)?;
            let mut entries: Vec<HistoryEntry> =
                rows.collect::<Result<_, _>>().map_err(db_error)?;
            entries.reverse();
            Ok((fault, entries, total.max(0) as u64))
        })
    }

    fn faults(&self, filter: &FaultFilter, after_id: i64, limit: usize) -> StoreResult<Vec<Fault>> {
        self.read(|c| {
            // A roll-up's children come from their own index; everything else walks ids.
            let under_parent = if filter.parent_id.is_some() {
                "parent_id = ?7"
            } else {
                "?7 IS NULL"
            };
            let mut statement = c
                .prepare_cached(&format!(
                    "SELECT {FAULT_COLUMNS} FROM faults WHERE {under_parent} AND id > ?1 \
                     AND (?2 IS NULL OR lamp_id = ?2) AND (?3 IS NULL OR zone_id = ?3) \
                     AND (?4 IS NULL OR first_seen >= ?4) AND (?5 IS NULL OR first_seen < ?5) \
                     ORDER BY id LIMIT ?6"
                ))
                .map_err(db_error)?;
            let mut found = Vec::new();
            let mut cursor = after_id;
            loop {
                let chunk: Vec<Fault> = statement
                    .query_map(
                        params![
                            cursor,
                            filter.lamp_id,
                            filter.zone_id,
                            filter.opened_from.map(millis),
                            filter.opened_to.map(millis),
                            (limit.max(100) * 4) as i64,
                            filter.parent_id
                        ],
                        fault_from_row,
                    )
                    .map_err(db_error)?
                    .collect::<Result<_, _>>()
                    .map_err(db_error)?;
                let Some(last) = chunk.last() else { break };
                cursor = last.id;
                found.extend(chunk.into_iter().filter(|f| filter.matches(f)));
                if found.len() >= limit {
                    found.truncate(limit);
                    break;
                }
            }
            Ok(found)
        })
    }

    fn active_faults(&self) -> StoreResult<Vec<Fault>> {
        self.read(|c| {
            let mut statement = c
                .prepare_cached(&format!(
                    "SELECT {FAULT_COLUMNS} FROM faults WHERE state IN ('OPEN', 'ACKNOWLEDGED', 'ASSIGNED') \
                     OR (state = 'CLEARED' AND acknowledged = 0) ORDER BY id"
                ))
                .map_err(db_error)?;
            let rows = statement.query_map([], fault_from_row).map_err(db_error)?;
            rows.collect::<Result<_, _>>().map_err(db_error)
        })
    }

    fn act_on_fault(&self, request: FaultAction) -> StoreResult<FaultEvent> {
        self.write(move |c| {
            let fault = fetch_fault(c, request.fault_id)?;
            let (id, current, state) = (fault.id, fault.version, fault.state.as_str());
            match apply::operator_action(fault, &request, Utc::now()) {
                Ok(transition) => write_transition(c, transition),
                Err(Refusal::Stale) => Err(StoreError::StaleFault {
                    id,
                    expected: request.expected_version,
                    current,
                    state,
                    change: last_change(c, id)?,
                }),
                Err(Refusal::NotAllowed(e)) => Err(StoreError::Conflict(e.to_string())),
            }
        })
    }

    fn fault_counts_opened(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> StoreResult<Vec<OpenedCount>> {
        self.read(|c| {
            let mut statement = c
                .prepare_cached(
                    "SELECT type, severity, (first_seen - ?1) / 3600000 AS hour, count(*) FROM faults \
                     WHERE first_seen >= ?1 AND first_seen < ?2 GROUP BY type, severity, hour",
                )
                .map_err(db_error)?;
            let rows = statement
                .query_map(params![millis(from), millis(to)], |row| {
                    Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?, row.get::<_, i64>(2)?, row.get::<_, u32>(3)?))
                })
                .map_err(db_error)?;
            let mut counts = Vec::new();
            for row in rows {
                let (fault_type, severity, hour, count) = row.map_err(db_error)?;
                if let (Some(fault_type), Some(severity)) = (FaultType::parse(&fault_type), Severity::parse(&severity)) {
                    counts.push(OpenedCount { fault_type, severity, hour: hour.max(0) as usize, count });
                }
            }
            Ok(counts)
        })
    }

    fn fault_events_after(&self, after_seq: u64, limit: usize) -> StoreResult<Vec<FaultEvent>> {
        self.read(|c| {
            let mut statement = c
                .prepare_cached(
                    "SELECT seq, at, kind, actor, note, fault FROM fault_events WHERE seq > ?1 ORDER BY seq LIMIT ?2",
                )
                .map_err(db_error)?;
            let rows = statement
                .query_map(params![after_seq as i64, limit as i64], event_columns)
                .map_err(db_error)?;
            rows.map(|row| event_from_columns(row.map_err(db_error)?))
                .collect()
        })
    }

    fn fault_events_between(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        after_seq: u64,
        limit: usize,
    ) -> StoreResult<Vec<FaultEvent>> {
        self.read(|c| {
            let mut statement = c
                .prepare_cached(
                    "SELECT seq, at, kind, actor, note, fault FROM fault_events \
                     WHERE at >= ?1 AND at < ?2 AND seq > ?3 ORDER BY seq LIMIT ?4",
                )
                .map_err(db_error)?;
            let rows = statement
                .query_map(
                    params![millis(from), millis(to), after_seq as i64, limit as i64],
                    event_columns,
                )
                .map_err(db_error)?;
            rows.map(|row| event_from_columns(row.map_err(db_error)?))
                .collect()
        })
    }

    fn fault_log_bounds(&self) -> StoreResult<(u64, u64)> {
        self.read(|c| {
            let oldest: Option<i64> = c
                .query_row("SELECT min(seq) FROM fault_events", [], |r| r.get(0))
                .map_err(db_error)?;
            // The newest ever issued, even if pruned, so a resumed watcher is never told "behind".
            let newest: Option<i64> = c
                .query_row(
                    "SELECT seq FROM sqlite_sequence WHERE name = 'fault_events'",
                    [],
                    |r| r.get(0),
                )
                .optional()
                .map_err(db_error)?;
            let newest = newest.unwrap_or(0) as u64;
            Ok((oldest.map_or(newest + 1, |s| s as u64), newest))
        })
    }

    fn prune_fault_log(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        self.write(move |c| {
            c.execute(
                "DELETE FROM fault_events WHERE at < ?1 AND seq < (SELECT max(seq) FROM fault_events)",
                [millis(before)],
            )
            .map(|n| n as u64)
            .map_err(db_error)
        })
    }
}
