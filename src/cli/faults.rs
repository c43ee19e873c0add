//! `singularity client faults ...` and `client lamps status`: listings, detail, Daily Faults,
//! triage, and a watch that prints events as they come and resumes after a reconnect.

use super::output::outln;
use std::time::Duration;

use crate::link::AuthedChannel;
use clap::Subcommand;
use futures::StreamExt;
use tonic::Code;

use super::calls::Failure;
use super::output::{Fields, object, print_many, print_one};
use crate::domain::faults::lifecycle::FaultState;
use crate::domain::faults::{FaultType, Severity};
use crate::proto::{self, faults_client::FaultsClient};
use crate::wire::faults as wire_faults;
use serde_json::{Value, json};

#[derive(Debug, Subcommand)]
pub enum FaultCommand {
    /// Faults in id order, filtered: --state open --min-severity major --zone 3.
    List {
        /// Only faults in these states (repeat the flag): open, acknowledged, assigned,
        /// resolved, cleared.
        #[arg(long, value_parser = parse_state)]
        state: Vec<FaultState>,
        /// Only faults at least this severe: warning, minor, major or critical.
        #[arg(long, value_parser = parse_severity)]
        min_severity: Option<Severity>,
        /// Only faults of these types (repeat the flag), e.g. lamp_failure.
        #[arg(long = "type", value_parser = parse_type)]
        fault_type: Vec<FaultType>,
        /// Only faults in this zone (id, from `client zones`).
        #[arg(long)]
        zone: Option<i64>,
        /// Only faults on this lamp.
        #[arg(long)]
        lamp: Option<i64>,
        /// At most this many.
        #[arg(long, default_value_t = 200)]
        limit: usize,
    },
    /// One fault with its history.
    Get {
        /// The fault's id.
        id: i64,
    },
    /// Faults opened during a local day, by type and severity.
    Daily {
        /// YYYY-MM-DD; today when omitted.
        #[arg(long)]
        date: Option<String>,
        /// The time zone whose calendar day is counted.
        #[arg(long, env = "SINGULARITY_TZ", default_value = "Europe/London")]
        tz: String,
    },
    /// A shift's handover: what was opened, cleared and resolved, what is still waiting, the
    /// outages running, the claims held, who did what and the notes written.
    Handover {
        /// When the shift began: HH:MM on the wall clock of --tz (the latest such time, so
        /// 19:00 at 02:00 is yesterday evening), or an RFC 3339 instant.
        #[arg(long)]
        since: String,
        /// When it ended, in the same forms; now when omitted.
        #[arg(long)]
        until: Option<String>,
        /// The operator's time zone.
        #[arg(long, env = "SINGULARITY_TZ", default_value = "Europe/London")]
        tz: String,
        /// Print Markdown (to keep or to mail) instead of plain text.
        #[arg(long)]
        markdown: bool,
    },
    /// Print fault events as they happen, from now on; resumes after the last seen event on
    /// reconnect.
    Watch {
        /// Replay the whole retained log first (7 days by default), then follow.
        #[arg(long, conflicts_with = "after_seq")]
        from_start: bool,
        /// Start after this event's seq (from an earlier watch), then follow.
        #[arg(long)]
        after_seq: Option<u64>,
    },
    /// Acknowledge a fault (a cleared one too, so it leaves the board).
    Ack(ActionArgs),
    /// Close a fault as repaired.
    Resolve(ActionArgs),
    /// Add a note to a fault's history; a note never conflicts, so it needs no version.
    Note {
        /// The fault's id.
        id: i64,
        /// The note.
        #[arg(long)]
        note: String,
    },
    /// Hand a fault to a crew or work order.
    Assign {
        #[command(flatten)]
        action: ActionArgs,
        /// Crew or work-order reference.
        #[arg(long)]
        to: String,
    },
}

#[derive(Debug, clap::Args)]
pub struct ActionArgs {
    /// The fault's id.
    id: i64,
    /// The version you saw (from `faults get` or `faults list`); if the fault's state,
    /// assignee or severity changed since, the action is refused naming what changed.
    #[arg(long)]
    version: i64,
    /// A note kept in the fault's history with the action.
    #[arg(long, default_value = "")]
    note: String,
}

pub async fn run(channel: AuthedChannel, command: FaultCommand, json: bool) -> Result<(), Failure> {
    let mut client = FaultsClient::new(channel);
    match command {
        FaultCommand::List {
            state,
            min_severity,
            fault_type,
            zone,
            lamp,
            limit,
        } => {
            let filter = proto::FaultFilter {
                states: state
                    .into_iter()
                    .map(|s| wire_faults::state(s) as i32)
                    .collect(),
                min_severity: min_severity
                    .map(|s| wire_faults::severity(s) as i32)
                    .unwrap_or_default(),
                types: fault_type
                    .into_iter()
                    .map(|t| wire_faults::fault_type(t) as i32)
                    .collect(),
                zone_id: zone.unwrap_or_default(),
                lamp_id: lamp.unwrap_or_default(),
                ..Default::default()
            };
            let request = proto::ListFaultsRequest {
                filter: Some(filter),
                ..Default::default()
            };
            let mut stream = client.list(request).await?.into_inner();
            let mut all = Vec::new();
            while let Some(page) = stream.next().await {
                all.extend(page?.items);
                if all.len() >= limit {
                    all.truncate(limit);
                    break;
                }
            }
            print_many(&all, json);
        }
        FaultCommand::Get { id } => {
            let detail = client
                .get(proto::GetFaultRequest { id })
                .await?
                .into_inner();
            if json {
                let fault = detail.fault.as_ref().map(|f| object(f.fields()));
                let history: Vec<Value> =
                    detail.history.iter().map(|h| object(h.fields())).collect();
                outln!(
                    "{}",
                    json!({
                        "fault": fault,
                        "history": history,
                        "history_omitted": detail.history_omitted,
                    })
                );
            } else {
                if let Some(fault) = &detail.fault {
                    print_one(fault, false);
                }
                outln!();
                if detail.history_omitted > 0 {
                    outln!(
                        "({} older entries not shown: the reply keeps the newest)",
                        detail.history_omitted
                    );
                }
                print_many(&detail.history, false);
            }
        }
        FaultCommand::Daily { date, tz } => {
            let zone: chrono_tz::Tz = tz.parse().map_err(|_| {
                Failure::Usage(format!(
                    "--tz {tz:?} is not an IANA time zone (e.g. Europe/London)"
                ))
            })?;
            let date = date.unwrap_or_else(|| {
                chrono::Utc::now()
                    .with_timezone(&zone)
                    .date_naive()
                    .to_string()
            });
            let reply = client
                .daily_faults(proto::DailyFaultsRequest {
                    date,
                    time_zone: tz,
                })
                .await?
                .into_inner();
            if json {
                let counts: Vec<Value> = reply.counts.iter().map(|c| object(c.fields())).collect();
                outln!(
                    "{}",
                    json!({
                        "date": reply.date,
                        "time_zone": reply.time_zone,
                        "hours": reply.hours,
                        "minutes": reply.minutes,
                        "total": reply.total,
                        "by_hour": reply.by_hour,
                        "counts": counts,
                    })
                );
            } else {
                let length = if reply.minutes % 60 == 0 {
                    format!("{} hours", reply.minutes / 60)
                } else {
                    format!("{}.5 hours", reply.minutes / 60)
                };
                outln!(
                    "{} ({}, {length}): {} faults opened",
                    reply.date,
                    reply.time_zone,
                    reply.total
                );
                let hours: Vec<String> = reply.by_hour.iter().map(u32::to_string).collect();
                outln!("by hour from local midnight: {}\n", hours.join(" "));
                print_many(&reply.counts, false);
            }
        }
        FaultCommand::Handover {
            since,
            until,
            tz,
            markdown,
        } => {
            let zone = crate::domain::local_time::time_zone("--tz", &tz)
                .map_err(|e| Failure::Usage(e.to_string()))?;
            let now = chrono::Utc::now();
            let since = shift_instant("--since", &since, zone, now)?;
            let until = until
                .map(|u| shift_instant("--until", &u, zone, now))
                .transpose()?;
            let reply = client
                .handover(proto::HandoverRequest {
                    since: Some(crate::wire::timestamp(since)),
                    until: until.map(crate::wire::timestamp),
                    time_zone: tz,
                })
                .await?
                .into_inner();
            if json {
                outln!("{}", handover_json(&reply));
            } else if markdown {
                outln!("{}", crate::handover::markdown(&reply, zone).trim_end());
            } else {
                // The Markdown reads as plain text too; the table rules are the only noise.
                let text = crate::handover::markdown(&reply, zone);
                for line in text.lines().filter(|l| !l.starts_with("|---")) {
                    outln!(
                        "{}",
                        line.trim_start_matches("# ").trim_start_matches("## ")
                    );
                }
            }
        }
        FaultCommand::Watch {
            from_start,
            after_seq,
        } => {
            let after_seq = match (from_start, after_seq) {
                (true, _) => 0,
                (false, Some(seq)) => seq,
                (false, None) => newest_seq(&mut client).await?,
            };
            watch(client, after_seq, json).await?
        }
        FaultCommand::Ack(a) => act(&mut client, Verb::Ack, a, String::new(), json).await?,
        FaultCommand::Resolve(a) => act(&mut client, Verb::Resolve, a, String::new(), json).await?,
        FaultCommand::Note { id, note } => {
            let note = ActionArgs {
                id,
                // Notes never conflict: the server does not check it.
                version: 0,
                note,
            };
            act(&mut client, Verb::Note, note, String::new(), json).await?
        }
        FaultCommand::Assign { action, to } => {
            act(&mut client, Verb::Assign, action, to, json).await?
        }
    }
    Ok(())
}

enum Verb {
    Ack,
    Resolve,
    Note,
    Assign,
}

async fn act(
    client: &mut FaultsClient<AuthedChannel>,
    verb: Verb,
    a: ActionArgs,
    to: String,
    json: bool,
) -> Result<(), Failure> {
    let request = proto::FaultActionRequest {
        fault_id: a.id,
        expected_version: a.version,
        note: a.note.clone(),
        actor: String::new(),
    };
    let fault = match verb {
        Verb::Ack => client.acknowledge(request).await?,
        Verb::Resolve => client.resolve(request).await?,
        Verb::Note => client.add_note(request).await?,
        Verb::Assign => {
            let assign = proto::AssignFaultRequest {
                fault_id: a.id,
                expected_version: a.version,
                assignee: to,
                note: a.note,
                actor: String::new(),
            };
            client.assign(assign).await?
        }
    };
    print_one(&fault.into_inner(), json);
    Ok(())
}

/// The newest event's seq, to follow from now: a listing says which log position it is
/// consistent with, and one page of it is enough.
async fn newest_seq(client: &mut FaultsClient<AuthedChannel>) -> Result<u64, Failure> {
    let mut pages = client
        .list(proto::ListFaultsRequest {
            page_size: Some(1),
            ..Default::default()
        })
        .await?
        .into_inner();
    let first = pages.next().await.transpose()?;
    Ok(first.map_or(0, |page| page.snapshot_seq))
}

/// Follows the feed for ever, reconnecting with backoff and resuming after the last event.
/// A table starts with its header; JSON is one object per line.
async fn watch(
    mut client: FaultsClient<AuthedChannel>,
    mut after_seq: u64,
    json: bool,
) -> Result<(), Failure> {
    if !json {
        eprintln!("following fault events after seq {after_seq} (Ctrl-C stops)");
        let header: Vec<(&str, String)> = proto::FaultEvent::default()
            .fields()
            .into_iter()
            .chain(proto::Fault::default().fields())
            .map(|(name, _)| (name, name.to_uppercase()))
            .collect();
        outln!("{}", event_line(&header));
    }
    let mut backoff = Duration::from_millis(500);
    loop {
        match client
            .watch(proto::WatchFaultsRequest {
                after_seq,
                filter: None,
            })
            .await
        {
            Ok(response) => {
                let mut stream = response.into_inner();
                backoff = Duration::from_millis(500);
                while let Some(item) = stream.next().await {
                    match item {
                        Ok(event) => {
                            after_seq = event.seq;
                            print_event(&event, json);
                        }
                        Err(status) => {
                            eprintln!(
                                "feed interrupted ({:?}): {}",
                                status.code(),
                                status.message()
                            );
                            break;
                        }
                    }
                }
            }
            Err(status) if matches!(status.code(), Code::InvalidArgument | Code::OutOfRange) => {
                return Err(status.into());
            }
            Err(status) => eprintln!(
                "cannot watch ({:?}): {}; retrying in {backoff:?}",
                status.code(),
                status.message()
            ),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

fn print_event(event: &proto::FaultEvent, json: bool) {
    if json {
        outln!("{}", object(event.fields()));
        return;
    }
    let cells: Vec<(&str, String)> = event
        .fields()
        .into_iter()
        .map(|(name, v)| (name, super::output::cell(&v)))
        .collect();
    outln!("{}", event_line(&cells));
}

/// A line of `faults watch`: each column as wide as its usual content, so lines and the
/// header line up as events stream (a rare longer value just pushes its line along).
fn event_line(cells: &[(&str, String)]) -> String {
    let width = |name: &str| match name {
        "first_seen" | "last_seen" => 20,
        "type" => 19,
        "kind" | "state" => 12,
        "actor" | "assignee" => 10,
        other => other.len().max(6),
    };
    cells
        .iter()
        .map(|(name, text)| format!("{text:<w$}", w = width(name)))
        .collect::<Vec<_>>()
        .join("  ")
        .trim_end()
        .to_owned()
}

fn parse_state(text: &str) -> Result<FaultState, String> {
    FaultState::parse(text)
        .ok_or_else(|| "expected open, acknowledged, assigned, resolved or cleared".to_owned())
}

fn parse_severity(text: &str) -> Result<Severity, String> {
    Severity::parse(text).ok_or_else(|| "expected warning, minor, major or critical".to_owned())
}

fn parse_type(text: &str) -> Result<FaultType, String> {
    FaultType::parse(&text.replace('-', "_"))
        .ok_or_else(|| "expected a fault type such as lamp_failure or day_burner".to_owned())
}

/// `--since 19:00` (the latest such wall time in `zone`) or an RFC 3339 instant.
fn shift_instant(
    flag: &str,
    text: &str,
    zone: chrono_tz::Tz,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<chrono::DateTime<chrono::Utc>, Failure> {
    if let Ok(at) = chrono::DateTime::parse_from_rfc3339(text.trim()) {
        return Ok(at.with_timezone(&chrono::Utc));
    }
    let time = crate::domain::local_time::wall_time(flag, text).map_err(|_| {
        Failure::Usage(format!(
            "{flag} {text:?}: give HH:MM (e.g. 19:00) or an RFC 3339 instant"
        ))
    })?;
    Ok(crate::domain::local_time::last_wall_time(time, zone, now))
}

/// The handover as one JSON value.
fn handover_json(h: &proto::HandoverResponse) -> Value {
    let instant = |t: &Option<prost_types::Timestamp>| {
        t.as_ref()
            .and_then(|t| chrono::DateTime::<chrono::Utc>::from_timestamp(t.seconds, 0))
            .map(|t| t.to_rfc3339())
    };
    json!({
        "since": instant(&h.since),
        "until": instant(&h.until),
        "time_zone": h.time_zone,
        "opened": h.opened,
        "cleared": h.cleared,
        "resolved": h.resolved,
        "counts": h.counts.iter().map(|c| json!({
            "type": crate::handover::type_name(c.r#type),
            "severity": crate::handover::severity_name(c.severity),
            "opened": c.opened,
            "cleared": c.cleared,
            "resolved": c.resolved,
        })).collect::<Vec<_>>(),
        "waiting_total": h.waiting_total,
        "waiting": h.waiting.iter().map(|f| object(f.fields())).collect::<Vec<_>>(),
        "outages": h.outages.iter().map(|o| json!({
            "fault": o.fault.as_ref().map(|f| object(f.fields())),
            "lamps": o.lamps,
        })).collect::<Vec<_>>(),
        "claims": h.claims.iter().map(|c| json!({
            "fault_id": c.fault_id,
            "claimed_by": c.claimed_by,
            "until": instant(&c.until),
        })).collect::<Vec<_>>(),
        "operators": h.operators.iter().map(|o| json!({
            "actor": o.actor,
            "acknowledged": o.acknowledged,
            "assigned": o.assigned,
            "resolved": o.resolved,
            "notes": o.notes,
        })).collect::<Vec<_>>(),
        "notes_total": h.notes_total,
        "notes": h.notes.iter().map(|n| json!({
            "fault_id": n.fault_id,
            "at": instant(&n.at),
            "actor": n.actor,
            "action": n.action,
            "note": n.note,
        })).collect::<Vec<_>>(),
    })
}
