//! Conversions between the fault messages and the fault domain: records and events out,
//! filters and actions in, unknown enum numbers refused by field name.

use crate::domain::ValidationError;
use crate::domain::faults::lifecycle::FaultState;
use crate::domain::faults::record::{Fault, FaultEvent, FaultFilter, HistoryEntry};
use crate::domain::faults::{FaultType, Severity};
use crate::proto;
use crate::wire::{from_timestamp, timestamp};

pub fn fault_type(t: FaultType) -> proto::FaultType {
    proto::FaultType::from_str_name(&format!("FAULT_TYPE_{}", t.as_str()))
        .unwrap_or(proto::FaultType::Unspecified)
}

pub fn severity(s: Severity) -> proto::Severity {
    proto::Severity::from_str_name(&format!("SEVERITY_{}", s.as_str()))
        .unwrap_or(proto::Severity::Unspecified)
}

pub fn state(s: FaultState) -> proto::FaultState {
    proto::FaultState::from_str_name(&format!("FAULT_STATE_{}", s.as_str()))
        .unwrap_or(proto::FaultState::Unspecified)
}

fn fault_type_field(field: &str, value: i32) -> Result<FaultType, ValidationError> {
    proto::FaultType::try_from(value)
        .ok()
        .and_then(|t| FaultType::parse(t.as_str_name().trim_start_matches("FAULT_TYPE_")))
        .ok_or_else(|| ValidationError::new(field, format!("unknown fault type {value}")))
}

fn severity_field(field: &str, value: i32) -> Result<Option<Severity>, ValidationError> {
    match proto::Severity::try_from(value) {
        Ok(proto::Severity::Unspecified) => Ok(None),
        Ok(s) => Ok(Severity::parse(
            s.as_str_name().trim_start_matches("SEVERITY_"),
        )),
        Err(_) => Err(ValidationError::new(
            field,
            format!("unknown severity {value}"),
        )),
    }
}

fn state_field(field: &str, value: i32) -> Result<FaultState, ValidationError> {
    proto::FaultState::try_from(value)
        .ok()
        .and_then(|s| FaultState::parse(s.as_str_name().trim_start_matches("FAULT_STATE_")))
        .ok_or_else(|| ValidationError::new(field, format!("unknown fault state {value}")))
}

fn id_or_none(id: Option<i64>) -> i64 {
    id.unwrap_or_default()
}

impl From<&Fault> for proto::Fault {
    fn from(f: &Fault) -> Self {
        Self {
            id: f.id,
            r#type: fault_type(f.fault_type).into(),
            severity: severity(f.severity).into(),
            state: state(f.state).into(),
            lamp_id: id_or_none(f.lamp_id),
            circuit_id: id_or_none(f.circuit_id),
            basestation_id: id_or_none(f.basestation_id),
            zone_id: id_or_none(f.zone_id),
            parent_id: id_or_none(f.parent_id),
            count: f.count,
            first_seen: Some(timestamp(f.first_seen)),
            last_seen: Some(timestamp(f.last_seen)),
            cleared_at: f.cleared_at.map(timestamp),
            acknowledged: f.acknowledged,
            flapping: f.flapping,
            assignee: f.assignee.clone(),
            version: f.version,
            updated_at: Some(timestamp(f.updated_at)),
        }
    }
}

impl From<&HistoryEntry> for proto::HistoryEntry {
    fn from(h: &HistoryEntry) -> Self {
        Self {
            at: Some(timestamp(h.at)),
            actor: h.actor.clone(),
            action: h.kind.as_str().to_owned(),
            from_state: h.from_state.map(state).unwrap_or_default().into(),
            to_state: state(h.to_state).into(),
            note: h.note.clone(),
            change: h.change.clone(),
        }
    }
}

impl From<&FaultEvent> for proto::FaultEvent {
    fn from(e: &FaultEvent) -> Self {
        Self {
            seq: e.seq,
            at: Some(timestamp(e.at)),
            kind: e.kind.as_str().to_owned(),
            fault: Some((&e.fault).into()),
            actor: e.actor.clone(),
            note: e.note.clone(),
        }
    }
}

pub fn filter(f: Option<&proto::FaultFilter>) -> Result<FaultFilter, ValidationError> {
    let Some(f) = f else {
        return Ok(FaultFilter::default());
    };
    let positive = |field: &str, id: i64| match id {
        0 => Ok(None),
        id if id > 0 => Ok(Some(id)),
        id => Err(ValidationError::new(
            field,
            format!("must be a positive id or 0 for any (got {id})"),
        )),
    };
    let filter = FaultFilter {
        states: f
            .states
            .iter()
            .map(|&s| state_field("filter.states", s))
            .collect::<Result<_, _>>()?,
        min_severity: severity_field("filter.min_severity", f.min_severity)?,
        types: f
            .types
            .iter()
            .map(|&t| fault_type_field("filter.types", t))
            .collect::<Result<_, _>>()?,
        zone_id: positive("filter.zone_id", f.zone_id)?,
        lamp_id: positive("filter.lamp_id", f.lamp_id)?,
        parent_id: positive("filter.parent_id", f.parent_id)?,
        opened_from: f
            .opened_from
            .as_ref()
            .map(|t| from_timestamp("filter.opened_from", t))
            .transpose()?,
        opened_to: f
            .opened_to
            .as_ref()
            .map(|t| from_timestamp("filter.opened_to", t))
            .transpose()?,
    };
    if let (Some(from), Some(to)) = (filter.opened_from, filter.opened_to) {
        if from > to {
            return Err(ValidationError::new(
                "filter.opened_from",
                "must not be after filter.opened_to",
            ));
        }
    }
    Ok(filter)
}

/// Free text an operator types: trimmed, at most 2,000 characters.
pub fn note(value: &str) -> Result<String, ValidationError> {
    crate::domain::validation::optional_text("note", value, 2_000)
}

/// Who acts: a username, `operator` when the client does not say (until sign-in lands).
pub fn actor(value: &str) -> Result<String, ValidationError> {
    if value.trim().is_empty() {
        return Ok("operator".to_owned());
    }
    crate::domain::inventory::validate_username(value)
        .map_err(|e| ValidationError::new("actor", e.reason))
}
