//! How the client prints replies: one description of each message's fields serves both the
//! human table and `--json`.

use std::io::Write;

use serde_json::{Value, json};

use crate::proto;

/// `println!` for command output. A reader that goes away (`client lamps list | head -1`)
/// ends the program quietly with the status a shell gives a process stopped by SIGPIPE
/// (141), never a panic.
macro_rules! outln {
    () => {
        $crate::cli::output::write_line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::cli::output::write_line(format_args!($($arg)*))
    };
}
pub(crate) use outln;

/// Writes one line to standard output; see `outln!`.
pub fn write_line(line: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    let written = out
        .write_fmt(line)
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush());
    if let Err(e) = written {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(141);
        }
        eprintln!("error: cannot write the output: {e}");
        std::process::exit(1);
    }
}

/// Writes bytes to standard output as they are (a generated script or page), ending like
/// `outln!` when the reader goes away.
pub fn write_all(bytes: &[u8]) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(bytes).and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(141);
        }
        eprintln!("error: cannot write the output: {e}");
        std::process::exit(1);
    }
}

/// A reply that can be printed: its fields, in display order.
pub trait Fields {
    fn fields(&self) -> Vec<(&'static str, Value)>;
}

pub fn print_one<T: Fields>(record: &T, as_json: bool) {
    let fields = record.fields();
    if as_json {
        outln!("{}", object(fields));
    } else {
        let width = fields.iter().map(|(name, _)| name.len()).max().unwrap_or(0);
        for (name, value) in fields {
            outln!("{name:<width$}  {}", cell(&value));
        }
    }
}

pub fn print_many<T: Fields>(records: &[T], as_json: bool) {
    if as_json {
        let values: Vec<Value> = records.iter().map(|r| object(r.fields())).collect();
        outln!("{}", Value::Array(values));
        return;
    }
    let Some(first) = records.first() else {
        outln!("(none)");
        return;
    };
    let header: Vec<&str> = first.fields().iter().map(|(name, _)| *name).collect();
    let rows: Vec<Vec<String>> = records
        .iter()
        .map(|r| r.fields().iter().map(|(_, v)| cell(v)).collect())
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (width, text) in widths.iter_mut().zip(row) {
            *width = (*width).max(text.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        cells
            .iter()
            .zip(&widths)
            .map(|(text, width)| format!("{text:<width$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    outln!(
        "{}",
        line(header.iter().map(|h| h.to_uppercase()).collect())
    );
    for row in rows {
        outln!("{}", line(row));
    }
    outln!(
        "({} {})",
        records.len(),
        if records.len() == 1 {
            "record"
        } else {
            "records"
        }
    );
}

pub fn object(fields: Vec<(&'static str, Value)>) -> Value {
    Value::Object(fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

pub fn cell(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(text) if text.is_empty() => "-".to_owned(),
        Value::String(text) => text.clone(),
        Value::Array(items) => items.iter().map(cell).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

fn status(value: i32) -> Value {
    let name = proto::EntityStatus::try_from(value)
        .map(|s| {
            s.as_str_name()
                .trim_start_matches("ENTITY_STATUS_")
                .to_lowercase()
        })
        .unwrap_or_else(|_| value.to_string());
    Value::String(name)
}

fn instant(value: Option<&prost_types::Timestamp>) -> Value {
    value
        .and_then(|t| {
            chrono::DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).unwrap_or(0))
        })
        .map(|t| Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)))
        .unwrap_or(Value::Null)
}

fn point(value: Option<&proto::GeoPoint>) -> [(&'static str, Value); 2] {
    match value {
        Some(p) => [("lat", json!(p.lat)), ("lon", json!(p.lon))],
        None => [("lat", Value::Null), ("lon", Value::Null)],
    }
}

fn optional_id(id: i64) -> Value {
    if id == 0 { Value::Null } else { json!(id) }
}

fn meta(meta: Option<&proto::RecordMeta>) -> [(&'static str, Value); 2] {
    [
        (
            "version",
            json!(meta.map(|m| m.version).unwrap_or_default()),
        ),
        (
            "updated_at",
            instant(meta.and_then(|m| m.updated_at.as_ref())),
        ),
    ]
}

impl Fields for proto::Basestation {
    fn fields(&self) -> Vec<(&'static str, Value)> {
        let mut fields = vec![
            ("id", json!(self.id)),
            ("uuid", json!(self.uuid)),
            ("name", json!(self.name)),
            ("firmware", json!(self.firmware_version)),
        ];
        fields.extend(point(self.location.as_ref()));
        fields.extend([
            ("status", status(self.status)),
            ("telecells", json!(self.telecell_count)),
        ]);
        fields.extend(meta(self.meta.as_ref()));
        fields
    }
}

impl Fields for proto::Telecell {
    fn fields(&self) -> Vec<(&'static str, Value)> {
        let mut fields = vec![
            ("id", json!(self.id)),
            ("uuid", json!(self.uuid)),
            ("basestation_id", json!(self.basestation_id)),
            ("relay_via_id", optional_id(self.relay_via_id)),
        ];
        fields.extend(point(self.location.as_ref()));
        fields.extend([
            ("firmware", json!(self.firmware_version)),
            ("status", status(self.status)),
            ("lamp_ids", json!(self.lamp_ids)),
        ]);
        fields.extend(meta(self.meta.as_ref()));
        fields
    }
}

impl Fields for proto::Asset {
    fn fields(&self) -> Vec<(&'static str, Value)> {
        let mut fields = vec![("id", json!(self.id)), ("reference", json!(self.reference))];
        fields.extend(point(self.location.as_ref()));
        fields.extend([
            ("zone_id", json!(self.zone_id)),
            ("zone", json!(self.zone_name)),
            ("circuit_id", optional_id(self.circuit_id)),
            ("circuit", json!(self.circuit_name)),
            ("status", status(self.status)),
            ("lamp_ids", json!(self.lamp_ids)),
        ]);
        fields.extend(meta(self.meta.as_ref()));
        fields
    }
}

impl Fields for proto::Lamp {
    fn fields(&self) -> Vec<(&'static str, Value)> {
        let lamp_type = self.lamp_type.as_ref();
        let mut fields = vec![
            ("id", json!(self.id)),
            ("reference", json!(self.reference)),
            ("asset_id", optional_id(self.asset_id)),
            ("telecell_id", optional_id(self.telecell_id)),
            ("lamp_type_id", json!(lamp_type.map(|t| t.id))),
            ("lamp_type", json!(lamp_type.map(|t| t.name.clone()))),
            ("watts", json!(lamp_type.map(|t| t.wattage_w))),
            ("zone_id", optional_id(self.zone_id)),
        ];
        fields.extend(point(self.location.as_ref()));
        fields.push(("status", status(self.status)));
        fields.extend(meta(self.meta.as_ref()));
        fields
    }
}

impl Fields for proto::User {
    fn fields(&self) -> Vec<(&'static str, Value)> {
        let role = proto::Role::try_from(self.role)
            .map(|r| r.as_str_name().trim_start_matches("ROLE_").to_lowercase())
            .unwrap_or_else(|_| self.role.to_string());
        let mut fields = vec![
            ("id", json!(self.id)),
            ("username", json!(self.username)),
            ("display_name", json!(self.display_name)),
            ("role", json!(role)),
            ("status", status(self.status)),
        ];
        fields.extend(meta(self.meta.as_ref()));
        fields
    }
}

impl Fields for proto::Zone {
    fn fields(&self) -> Vec<(&'static str, Value)> {
        vec![
            ("id", json!(self.id)),
            ("name", json!(self.name)),
            ("assets", json!(self.asset_count)),
        ]
    }
}

impl Fields for proto::Circuit {
    fn fields(&self) -> Vec<(&'static str, Value)> {
        vec![
            ("id", json!(self.id)),
            ("name", json!(self.name)),
            ("zone_id", json!(self.zone_id)),
            ("assets", json!(self.asset_count)),
        ]
    }
}

impl Fields for proto::LampType {
    fn fields(&self) -> Vec<(&'static str, Value)> {
        let technology = proto::LampTechnology::try_from(self.technology)
            .map(|t| {
                t.as_str_name()
                    .trim_start_matches("LAMP_TECHNOLOGY_")
                    .to_owned()
            })
            .unwrap_or_default();
        let control = proto::ControlType::try_from(self.control_type)
            .map(|t| {
                t.as_str_name()
                    .trim_start_matches("CONTROL_TYPE_")
                    .to_owned()
            })
            .unwrap_or_default();
        vec![
            ("id", json!(self.id)),
            ("name", json!(self.name)),
            ("technology", json!(technology)),
            ("watts", json!(self.wattage_w)),
            ("control", json!(control)),
        ]
    }
}

impl Fields for proto::PruneResponse {
    fn fields(&self) -> Vec<(&'static str, Value)> {
        vec![("pruned_id", json!(self.id))]
    }
}

fn enum_name(name: Option<&str>, prefix: &str) -> Value {
    name.map(|n| Value::String(n.trim_start_matches(prefix).to_owned()))
        .unwrap_or(Value::Null)
}

/// A severity's name; none (a healthy lamp's worst severity) is null, shown as "-".
fn severity_name(value: i32) -> Value {
    enum_name(
        proto::Severity::try_from(value)
            .ok()
            .filter(|s| *s != proto::Severity::Unspecified)
            .map(|s| s.as_str_name()),
        "SEVERITY_",
    )
}

/// A reading at the precision it is measured to (236.9 V, not 236.9433135986328).
fn measured(value: f64, decimals: i32) -> Value {
    let scale = 10f64.powi(decimals);
    json!((value * scale).round() / scale)
}

fn fault_type_name(value: i32) -> Value {
    enum_name(
        proto::FaultType::try_from(value)
            .ok()
            .map(|s| s.as_str_name()),
        "FAULT_TYPE_",
    )
}

fn fault_state_name(value: i32) -> Value {
    enum_name(
        proto::FaultState::try_from(value)
            .ok()
            .map(|s| s.as_str_name()),
        "FAULT_STATE_",
    )
}

impl Fields for proto::Fault {
    fn fields(&self) -> Vec<(&'static str, Value)> {
        vec![
            ("id", json!(self.id)),
            ("severity", severity_name(self.severity)),
            ("type", fault_type_name(self.r#type)),
            ("state", fault_state_name(self.state)),
            ("lamp_id", optional_id(self.lamp_id)),
            ("zone_id", optional_id(self.zone_id)),
            ("count", json!(self.count)),
            ("first_seen", instant(self.first_seen.as_ref())),
            ("last_seen", instant(self.last_seen.as_ref())),
            ("acked", json!(self.acknowledged)),
            ("flapping", json!(self.flapping)),
            ("assignee", json!(self.assignee)),
            ("version", json!(self.version)),
        ]
    }
}

impl Fields for proto::HistoryEntry {
    fn fields(&self) -> Vec<(&'static str, Value)> {
        vec![
            ("at", instant(self.at.as_ref())),
            ("actor", json!(self.actor)),
            ("action", json!(self.action)),
            ("from", fault_state_name(self.from_state)),
            ("to", fault_state_name(self.to_state)),
            ("note", json!(self.note)),
        ]
    }
}

impl Fields for proto::FaultEvent {
    fn fields(&self) -> Vec<(&'static str, Value)> {
        let mut fields = vec![
            ("seq", json!(self.seq)),
            ("kind", json!(self.kind)),
            ("actor", json!(self.actor)),
        ];
        if let Some(fault) = &self.fault {
            fields.extend(fault.fields());
        }
        fields
    }
}

impl Fields for proto::DailyFaultCount {
    fn fields(&self) -> Vec<(&'static str, Value)> {
        vec![
            ("type", fault_type_name(self.r#type)),
            ("severity", severity_name(self.severity)),
            ("count", json!(self.count)),
        ]
    }
}

impl Fields for proto::LampStatus {
    fn fields(&self) -> Vec<(&'static str, Value)> {
        vec![
            ("lamp_id", json!(self.lamp_id)),
            (
                "health",
                enum_name(
                    proto::LampHealth::try_from(self.health)
                        .ok()
                        .map(|h| h.as_str_name()),
                    "LAMP_HEALTH_",
                ),
            ),
            ("worst_severity", severity_name(self.worst_severity)),
            ("open_faults", json!(self.open_faults)),
            ("last_heard", instant(self.last_heard.as_ref())),
            ("on", json!(self.lamp_on)),
            ("dim_pct", json!(self.dim_actual_pct)),
            ("volts", measured(self.voltage_v, 1)),
            ("amps", measured(self.current_a, 3)),
            ("watts", measured(self.power_w, 1)),
            ("power_factor", measured(self.power_factor, 2)),
            ("energy_wh", json!(self.energy_wh)),
            ("burn_hours", json!(self.burn_hours)),
            ("temperature_c", measured(self.temperature_c, 1)),
        ]
    }
}

impl Fields for proto::LoginResponse {
    fn fields(&self) -> Vec<(&'static str, Value)> {
        let mut fields = Vec::new();
        if !self.token.is_empty() {
            fields.push(("token", json!(self.token)));
        }
        fields.push(("expires_at", instant(self.expires_at.as_ref())));
        if let Some(user) = &self.user {
            fields.extend(
                user.fields()
                    .into_iter()
                    .filter(|(name, _)| ["username", "display_name", "role"].contains(name)),
            );
        }
        fields
    }
}

impl Fields for proto::AuditEntry {
    fn fields(&self) -> Vec<(&'static str, Value)> {
        vec![
            ("id", json!(self.id)),
            ("at", instant(self.at.as_ref())),
            ("actor", json!(self.actor)),
            ("role", json!(self.role)),
            ("peer", json!(self.peer)),
            ("action", json!(self.action)),
            ("entity", json!(self.entity)),
            ("entity_id", json!(self.entity_id)),
            ("changes", json!(self.changes.replace('\n', "; "))),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readings_print_at_their_precision_and_no_severity_is_none() {
        let status = proto::LampStatus {
            voltage_v: f64::from(236.943_3_f32),
            current_a: 0.156_789,
            power_factor: 0.912_345,
            temperature_c: f64::from(14.25_f32),
            ..Default::default()
        };
        let fields: std::collections::HashMap<_, _> = status.fields().into_iter().collect();
        assert_eq!(fields["volts"], json!(236.9));
        assert_eq!(fields["amps"], json!(0.157));
        assert_eq!(fields["power_factor"], json!(0.91));
        assert_eq!(fields["temperature_c"], json!(14.3));
        assert_eq!(fields["worst_severity"], Value::Null);
        assert_eq!(cell(&fields["worst_severity"]), "-");
    }
}
