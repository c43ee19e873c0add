//! `singularity client faults ...` and `client lamps status`: listings, detail, Daily Faults,
//! triage, and a watch that prints events as they come and resumes after a reconnect.

use std::time::Duration;

use crate::link::AuthedChannel;
use clap::Subcommand;
use futures::StreamExt;
use tonic::Code;

use super::client::Failure;
use super::output::{Fields, print_many, print_one};
use crate::domain::faults::lifecycle::FaultState;
use crate::domain::faults::{FaultType, Severity};
use crate::proto::{self, faults_client::FaultsClient};
use crate::wire_faults;

#[derive(Debug, Subcommand)]
pub enum FaultCommand {
    /// Faults in id order, filtered: --state open --min-severity major --zone 3.
    List {
        #[arg(long, value_parser = parse_state)]
        state: Vec<FaultState>,
        #[arg(long, value_parser = parse_severity)]
        min_severity: Option<Severity>,
        #[arg(long = "type", value_parser = parse_type)]
        fault_type: Vec<FaultType>,
        #[arg(long)]
        zone: Option<i64>,
        #[arg(long)]
        lamp: Option<i64>,
        /// At most this many.
        #[arg(long, default_value_t = 200)]
        limit: usize,
    },
    /// One fault with its history.
    Get { id: i64 },
    /// Faults opened during a local day, by type and severity.
    Daily {
        /// YYYY-MM-DD; today when omitted.
        #[arg(long)]
        date: Option<String>,
        #[arg(long, env = "SINGULARITY_TZ", default_value = "Europe/London")]
        tz: String,
    },
    /// Print fault events as they happen; resumes after the last seen event on reconnect.
    Watch {
        /// Start after this event (0: the whole retained log).
        #[arg(long, default_value_t = 0)]
        after_seq: u64,
    },
    /// Acknowledge a fault (a cleared one too, so it leaves the board).
    Ack(ActionArgs),
    /// Close a fault as repaired.
    Resolve(ActionArgs),
    /// Add a note to a fault's history (--note is required).
    Note(ActionArgs),
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
    id: i64,
    /// The version you saw (from `faults get`); a stale one is refused.
    #[arg(long)]
    version: i64,
    #[arg(long, default_value = "")]
    note: String,
    /// Who is acting.
    #[arg(long = "as", env = "USER", default_value = "operator")]
    actor: String,
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
            if let Some(fault) = &detail.fault {
                print_one(fault, json);
            }
            if !json {
                println!();
            }
            print_many(&detail.history, json);
        }
        FaultCommand::Daily { date, tz } => {
            let date = date.unwrap_or_else(|| {
                let zone: chrono_tz::Tz = tz.parse().unwrap_or(chrono_tz::UTC);
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
                print_many(&reply.counts, true);
            } else {
                println!(
                    "{} ({}, {} hours): {} faults opened\nby hour: {:?}\n",
                    reply.date, reply.time_zone, reply.hours, reply.total, reply.by_hour
                );
                print_many(&reply.counts, false);
            }
        }
        FaultCommand::Watch { after_seq } => watch(client, after_seq, json).await?,
        FaultCommand::Ack(a) => act(&mut client, Verb::Ack, a, String::new(), json).await?,
        FaultCommand::Resolve(a) => act(&mut client, Verb::Resolve, a, String::new(), json).await?,
        FaultCommand::Note(a) => act(&mut client, Verb::Note, a, String::new(), json).await?,
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
        actor: a.actor.clone(),
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
                actor: a.actor,
            };
            client.assign(assign).await?
        }
    };
    print_one(&fault.into_inner(), json);
    Ok(())
}

/// Follows the feed for ever, reconnecting with backoff and resuming after the last event.
async fn watch(
    mut client: FaultsClient<AuthedChannel>,
    mut after_seq: u64,
    json: bool,
) -> Result<(), Failure> {
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
        println!(
            "{}",
            serde_json::Value::Object(
                event
                    .fields()
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v))
                    .collect()
            )
        );
        return;
    }
    let cells: Vec<String> = event
        .fields()
        .into_iter()
        .map(|(_, v)| super::output::cell(&v))
        .collect();
    println!("{}", cells.join("  "));
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
