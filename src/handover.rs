//! A shift handover (`Faults.Handover`) as Markdown, in the operator's time zone: what the CLI
//! prints and saves, and what the console shows and saves.

use std::fmt::Write;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::proto;

fn when(at: Option<&prost_types::Timestamp>, zone: Tz, format: &str) -> String {
    at.and_then(|t| DateTime::<Utc>::from_timestamp(t.seconds, 0))
        .map(|t| t.with_timezone(&zone).format(format).to_string())
        .unwrap_or_else(|| "-".to_owned())
}

pub fn type_name(value: i32) -> &'static str {
    proto::FaultType::try_from(value)
        .map(|t| t.as_str_name().trim_start_matches("FAULT_TYPE_"))
        .unwrap_or("?")
}

pub fn severity_name(value: i32) -> &'static str {
    proto::Severity::try_from(value)
        .map(|s| s.as_str_name().trim_start_matches("SEVERITY_"))
        .unwrap_or("?")
}

fn on_what(fault: &proto::Fault) -> String {
    if fault.lamp_id > 0 {
        format!("lamp {}", fault.lamp_id)
    } else if fault.circuit_id > 0 {
        format!("circuit {}", fault.circuit_id)
    } else {
        format!("basestation {}", fault.basestation_id)
    }
}

/// Table cells never break the table: no pipes, no line breaks.
fn cell(text: &str) -> String {
    text.replace('|', "/").replace(['\n', '\r'], " ")
}

/// The whole handover as Markdown; times in `zone` (the zone the handover was asked for,
/// unless the caller shows another).
pub fn markdown(h: &proto::HandoverResponse, zone: Tz) -> String {
    let mut out = String::new();
    let day_time = "%a %-d %b %H:%M";
    let _ = writeln!(
        out,
        "# Shift handover: {} to {} ({zone})\n",
        when(h.since.as_ref(), zone, day_time),
        when(h.until.as_ref(), zone, day_time),
    );
    let _ = writeln!(out, "## What happened\n");
    let _ = writeln!(
        out,
        "{} opened (raised or re-opened), {} cleared, {} resolved.\n",
        h.opened, h.cleared, h.resolved
    );
    if !h.counts.is_empty() {
        let _ = writeln!(out, "| type | severity | opened | cleared | resolved |");
        let _ = writeln!(out, "|---|---|---:|---:|---:|");
        for c in &h.counts {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                type_name(c.r#type),
                severity_name(c.severity),
                c.opened,
                c.cleared,
                c.resolved
            );
        }
        out.push('\n');
    }

    let _ = writeln!(
        out,
        "## Waiting for someone ({} open and not acknowledged)\n",
        h.waiting_total
    );
    if h.waiting.is_empty() {
        let _ = writeln!(out, "Nothing.\n");
    } else {
        let _ = writeln!(out, "| fault | severity | type | on | opened | seen |");
        let _ = writeln!(out, "|---:|---|---|---|---|---:|");
        for f in &h.waiting {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} |",
                f.id,
                severity_name(f.severity),
                type_name(f.r#type),
                on_what(f),
                when(f.first_seen.as_ref(), zone, day_time),
                f.count
            );
        }
        if h.waiting_total as usize > h.waiting.len() {
            let _ = writeln!(
                out,
                "\n… and {} more.",
                h.waiting_total as usize - h.waiting.len()
            );
        }
        out.push('\n');
    }

    let _ = writeln!(out, "## Outages still running\n");
    if h.outages.is_empty() {
        let _ = writeln!(out, "None.\n");
    } else {
        for o in &h.outages {
            if let Some(f) = &o.fault {
                let _ = writeln!(
                    out,
                    "- fault {}: {} on {}, {} lamps, since {} ({})",
                    f.id,
                    type_name(f.r#type),
                    on_what(f),
                    o.lamps,
                    when(f.first_seen.as_ref(), zone, day_time),
                    if f.acknowledged {
                        "acknowledged"
                    } else {
                        "not acknowledged"
                    }
                );
            }
        }
        out.push('\n');
    }

    let _ = writeln!(out, "## Claims held\n");
    if h.claims.is_empty() {
        let _ = writeln!(out, "None.\n");
    } else {
        for c in &h.claims {
            let _ = writeln!(
                out,
                "- fault {}: {} until {}",
                c.fault_id,
                c.claimed_by,
                when(c.until.as_ref(), zone, "%H:%M")
            );
        }
        out.push('\n');
    }

    let _ = writeln!(out, "## Who did what\n");
    if h.operators.is_empty() {
        let _ = writeln!(out, "Nobody acted on a fault.\n");
    } else {
        let _ = writeln!(
            out,
            "| operator | acknowledged | assigned | resolved | notes |"
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---:|");
        for o in &h.operators {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                cell(&o.actor),
                o.acknowledged,
                o.assigned,
                o.resolved,
                o.notes
            );
        }
        out.push('\n');
    }

    let _ = writeln!(out, "## Notes ({})\n", h.notes_total);
    if h.notes.is_empty() {
        let _ = writeln!(out, "None.");
    } else {
        for n in &h.notes {
            let _ = writeln!(
                out,
                "- {} {} on fault {} ({}): {}",
                when(n.at.as_ref(), zone, day_time),
                n.actor,
                n.fault_id,
                n.action,
                cell(&n.note)
            );
        }
        if h.notes_total as usize > h.notes.len() {
            let _ = writeln!(
                out,
                "- … and {} more.",
                h.notes_total as usize - h.notes.len()
            );
        }
    }
    out
}
