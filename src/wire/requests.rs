//! The contract's own checks on each request: what a method's request decodes into when its
//! fields are sound, or the first bad field named. The services act on what these return
//! (and on the decoders `wire` already had for listings, creates, updates and tariffs), and
//! the gateway runs the same functions (`CHECKS`, one per method whose request is a single
//! message) before forwarding, so a malformed request is refused in the same words wherever
//! it is caught. What needs the database or a server's own settings (a zone that exists, a
//! day settled in the server's zone, an event still in the log) stays with the services.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use chrono_tz::Tz;
use prost::Message;

use super::billing as wire_billing;
use super::faults as wire_faults;
use super::{from_timestamp, id};
use crate::domain::ValidationError;
use crate::domain::auth::AuditQuery;
use crate::domain::billing::totals::TotalsGroup;
use crate::domain::faults::lifecycle::Action;
use crate::domain::faults::record::FaultFilter;
use crate::domain::inventory::validate_password;
use crate::domain::local_time;
use crate::domain::paging::{self, Cursor};
use crate::domain::validation::{optional_id, optional_text, required_text};
use crate::proto;

// ---- Inventory ----

pub fn id_request(r: &proto::IdRequest) -> Result<i64, ValidationError> {
    id("id", r.id)
}

/// `Lamps.AddToAsset`: the lamp and the asset it is mounted on.
pub fn add_to_asset(r: &proto::AddToAssetRequest) -> Result<(i64, i64), ValidationError> {
    Ok((id("lamp_id", r.lamp_id)?, id("asset_id", r.asset_id)?))
}

/// The most lamps one `Lamps.WatchStatus` follows.
pub const MAX_WATCHED_LAMPS: usize = 20_000;

/// What a `Lamps.WatchStatus` follows: the lamps named, or every lamp of a zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchedLamps {
    Named(BTreeSet<i64>),
    Zone(i64),
}

pub fn watch_status(r: &proto::WatchStatusRequest) -> Result<WatchedLamps, ValidationError> {
    if r.lamp_ids.is_empty() {
        return match r.zone_id {
            0 => Err(ValidationError::new(
                "lamp_ids",
                "name some lamps or a zone",
            )),
            zone => Ok(WatchedLamps::Zone(id("zone_id", zone)?)),
        };
    }
    Ok(WatchedLamps::Named(lamp_set(&r.lamp_ids, "watcher")?))
}

/// `lamp_ids`, each once, at most `MAX_WATCHED_LAMPS` of them (`per`: a watcher, a request).
fn lamp_set(lamp_ids: &[i64], per: &str) -> Result<BTreeSet<i64>, ValidationError> {
    let lamps = lamp_ids
        .iter()
        .map(|&lamp| id("lamp_ids", lamp))
        .collect::<Result<BTreeSet<_>, _>>()?;
    if lamps.len() > MAX_WATCHED_LAMPS {
        return Err(ValidationError::new(
            "lamp_ids",
            format!(
                "at most {MAX_WATCHED_LAMPS} lamps per {per} (asked for {})",
                lamps.len()
            ),
        ));
    }
    Ok(lamps)
}

/// `Telemetry.GetLatest` and `WatchLatest`: the lamps, each once, in id order.
pub fn latest(r: &proto::LatestRequest) -> Result<Vec<i64>, ValidationError> {
    if r.lamp_ids.is_empty() {
        return Err(ValidationError::new("lamp_ids", "name at least one lamp"));
    }
    Ok(lamp_set(&r.lamp_ids, "request")?.into_iter().collect())
}

// ---- Catalog and tariffs: small lists paged by a token ----

/// `Catalog.ListCircuits`: an optional zone and where the page starts.
pub fn list_circuits(
    r: &proto::ListCircuitsRequest,
) -> Result<(Option<i64>, i64), ValidationError> {
    Ok((
        optional_id("zone_id", r.zone_id)?,
        Cursor::from_token("page_token", &r.page_token)?.after_id,
    ))
}

pub fn list_tariffs(r: &proto::ListTariffsRequest) -> Result<i64, ValidationError> {
    Ok(Cursor::from_token("page_token", &r.page_token)?.after_id)
}

/// A request with no fields: nothing to check but that it decodes.
pub fn nothing<M>(_: &M) -> Result<(), ValidationError> {
    Ok(())
}

// ---- Auth and audit ----

/// The longest username or password a sign-in reads, in bytes.
const CREDENTIAL_MAX: usize = 1024;

fn credential(field: &str, value: &str) -> Result<(), ValidationError> {
    if value.is_empty() {
        return Err(ValidationError::new(field, "is required"));
    }
    if value.len() > CREDENTIAL_MAX {
        return Err(ValidationError::new(
            field,
            format!("is longer than {CREDENTIAL_MAX} bytes"),
        ));
    }
    Ok(())
}

pub fn login(r: &proto::LoginRequest) -> Result<(), ValidationError> {
    credential("username", &r.username)?;
    credential("password", &r.password)
}

pub fn change_password(r: &proto::ChangePasswordRequest) -> Result<(), ValidationError> {
    credential("current_password", &r.current_password)?;
    validate_password("new_password", &r.new_password)
}

/// The most audit entries one `Audit.List` returns.
pub const MAX_AUDIT_LIMIT: i32 = 10_000;
const DEFAULT_AUDIT_LIMIT: usize = 500;

pub fn list_audit(r: &proto::ListAuditRequest) -> Result<AuditQuery, ValidationError> {
    let limit = match r.limit {
        None => DEFAULT_AUDIT_LIMIT,
        Some(n) if (1..=MAX_AUDIT_LIMIT).contains(&n) => n as usize,
        Some(_) => {
            return Err(ValidationError::new(
                "limit",
                format!("must be 1 to {MAX_AUDIT_LIMIT}"),
            ));
        }
    };
    let instant = |field: &str, t: Option<&prost_types::Timestamp>| {
        t.map(|t| from_timestamp(field, t)).transpose()
    };
    let asked = AuditQuery {
        from: instant("from", r.from.as_ref())?,
        to: instant("to", r.to.as_ref())?,
        actor: Some(optional_text("actor", &r.actor, 64)?).filter(|a| !a.is_empty()),
        entity: Some(optional_text("entity", &r.entity, 32)?).filter(|e| !e.is_empty()),
        entity_id: Some(r.entity_id).filter(|id| *id != 0),
        limit,
    };
    if let (Some(from), Some(to)) = (asked.from, asked.to)
        && from > to
    {
        return Err(ValidationError::new(
            "to",
            format!("{to} is before from ({from})"),
        ));
    }
    Ok(asked)
}

// ---- Faults ----

/// A page of `Faults.List`: which faults, how many, from where.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultPageAsked {
    pub filter: FaultFilter,
    pub page_size: usize,
    pub after_id: i64,
}

pub fn list_faults(r: &proto::ListFaultsRequest) -> Result<FaultPageAsked, ValidationError> {
    Ok(FaultPageAsked {
        filter: wire_faults::filter(r.filter.as_ref())?,
        page_size: paging::page_size("page_size", r.page_size)?,
        after_id: Cursor::from_token("page_token", &r.page_token)?.after_id,
    })
}

pub fn get_fault(r: &proto::GetFaultRequest) -> Result<i64, ValidationError> {
    id("id", r.id)
}

/// `Faults.DailyFaults`: one local day in a time zone.
pub fn daily_faults(r: &proto::DailyFaultsRequest) -> Result<(NaiveDate, Tz), ValidationError> {
    Ok((
        local_time::date("date", &r.date)?,
        local_time::time_zone("time_zone", &r.time_zone)?,
    ))
}

/// `Faults.Watch`: the filter, and the last event seq the caller holds (0: none).
pub fn watch_faults(r: &proto::WatchFaultsRequest) -> Result<(FaultFilter, u64), ValidationError> {
    Ok((wire_faults::filter(r.filter.as_ref())?, r.after_seq))
}

/// One triage action on one fault, checked: the actor is the signed-in caller, added by the
/// service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Triage {
    pub fault_id: i64,
    pub expected_version: i64,
    pub action: Action,
    pub note: String,
}

/// The checks every triage action shares, one fault at a time (`ActOnMany` applies them to
/// each fault it reaches).
pub fn triage(
    fault_id: i64,
    expected_version: i64,
    action: Action,
    note: &str,
) -> Result<Triage, ValidationError> {
    let fault_id = id("fault_id", fault_id)?;
    // A note never conflicts, so it needs no version.
    if expected_version < 1 && action != Action::AddNote {
        return Err(ValidationError::new(
            "expected_version",
            "is required: the version of the fault you saw (1 or more)",
        ));
    }
    let note = wire_faults::note(note)?;
    if action == Action::AddNote && note.is_empty() {
        return Err(ValidationError::new("note", "must not be empty"));
    }
    Ok(Triage {
        fault_id,
        expected_version,
        action,
        note,
    })
}

pub fn acknowledge(r: &proto::FaultActionRequest) -> Result<Triage, ValidationError> {
    triage(r.fault_id, r.expected_version, Action::Acknowledge, &r.note)
}

pub fn resolve(r: &proto::FaultActionRequest) -> Result<Triage, ValidationError> {
    triage(r.fault_id, r.expected_version, Action::Resolve, &r.note)
}

pub fn add_note(r: &proto::FaultActionRequest) -> Result<Triage, ValidationError> {
    triage(r.fault_id, r.expected_version, Action::AddNote, &r.note)
}

/// The longest name of whoever a fault is assigned to.
const ASSIGNEE_MAX: usize = 100;

pub fn assign(r: &proto::AssignFaultRequest) -> Result<Triage, ValidationError> {
    let assignee = required_text("assignee", &r.assignee, ASSIGNEE_MAX)?;
    triage(
        r.fault_id,
        r.expected_version,
        Action::Assign { assignee },
        &r.note,
    )
}

/// Faults one `ActOnMany` may name.
pub const MAX_NAMED_FAULTS: usize = 1_000;

/// One action on several faults: each fault at the version the caller saw (0: not given, which
/// only a note accepts), named once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManyTriage {
    pub action: Action,
    pub faults: Vec<(i64, i64)>,
    pub include_children: bool,
    pub note: String,
}

pub fn act_on_many(r: &proto::ActOnManyRequest) -> Result<ManyTriage, ValidationError> {
    let action = match proto::TriageAction::try_from(r.action) {
        Ok(proto::TriageAction::Acknowledge) => Action::Acknowledge,
        Ok(proto::TriageAction::Resolve) => Action::Resolve,
        Ok(proto::TriageAction::Assign) => Action::Assign {
            assignee: required_text("assignee", &r.assignee, ASSIGNEE_MAX)?,
        },
        Ok(proto::TriageAction::AddNote) => Action::AddNote,
        _ => {
            return Err(ValidationError::new(
                "action",
                "must be ACKNOWLEDGE, ASSIGN, RESOLVE or ADD_NOTE",
            ));
        }
    };
    let note = wire_faults::note(&r.note)?;
    if action == Action::AddNote && note.is_empty() {
        return Err(ValidationError::new("note", "must not be empty"));
    }
    if r.faults.is_empty() {
        return Err(ValidationError::new("faults", "name at least one fault"));
    }
    if r.faults.len() > MAX_NAMED_FAULTS {
        return Err(ValidationError::new(
            "faults",
            format!(
                "{} named; at most {MAX_NAMED_FAULTS} in one call",
                r.faults.len()
            ),
        ));
    }
    let mut seen = BTreeSet::new();
    let mut faults = Vec::with_capacity(r.faults.len());
    for named in &r.faults {
        let fault_id = id("faults.fault_id", named.fault_id)?;
        if seen.insert(fault_id) {
            faults.push((fault_id, named.expected_version));
        }
    }
    Ok(ManyTriage {
        action,
        faults,
        include_children: r.include_children,
        note,
    })
}

/// The longest shift a handover covers: the event log's default retention.
pub const LONGEST_SHIFT_DAYS: i64 = 7;

/// `Faults.Handover`: the shift's window (its end defaults to now) and the caller's zone.
pub fn handover(
    r: &proto::HandoverRequest,
) -> Result<(DateTime<Utc>, DateTime<Utc>, Tz), ValidationError> {
    let since = r
        .since
        .as_ref()
        .ok_or_else(|| ValidationError::new("since", "is required: when the shift began"))
        .and_then(|t| from_timestamp("since", t))?;
    let until = match &r.until {
        Some(t) => from_timestamp("until", t)?,
        None => Utc::now(),
    };
    if until <= since {
        return Err(ValidationError::new("until", "must be after since"));
    }
    if until - since > Duration::days(LONGEST_SHIFT_DAYS) {
        return Err(ValidationError::new(
            "until",
            format!("a handover covers at most {LONGEST_SHIFT_DAYS} days after since"),
        ));
    }
    Ok((
        since,
        until,
        local_time::time_zone("time_zone", &r.time_zone)?,
    ))
}

// ---- Billing ----

/// The longest range one totals request may cover, in days.
pub const MAX_TOTALS_DAYS: i64 = 800;
const DEFAULT_LAMP_ROWS: u32 = 100;
/// The most lamp rows one totals reply lists.
pub const MAX_LAMP_ROWS: u32 = 1_000;

/// What a totals request asks for, before the server checks it against its settlement zone,
/// its calendar and its zones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TotalsAsked {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub group: TotalsGroup,
    /// A zone to filter by (`None`: every zone); the server checks that it exists.
    pub zone_id: Option<i64>,
    pub limit: usize,
    /// The zone the caller asks in, when it names one.
    pub time_zone: Option<Tz>,
}

pub fn get_totals(r: &proto::GetTotalsRequest) -> Result<TotalsAsked, ValidationError> {
    let from = local_time::date("from", &r.from)?;
    let to = local_time::date("to", &r.to)?;
    if to < from {
        return Err(ValidationError::new(
            "to",
            format!("{to} is before from ({from})"),
        ));
    }
    if (to - from).num_days() >= MAX_TOTALS_DAYS {
        return Err(ValidationError::new(
            "from",
            format!("ask for at most {MAX_TOTALS_DAYS} days at a time"),
        ));
    }
    Ok(TotalsAsked {
        from,
        to,
        group: wire_billing::group_field("group_by", r.group_by)?,
        zone_id: zone_filter("zone_id", r.zone_id)?,
        limit: lamp_rows("limit", r.limit)?,
        time_zone: if r.time_zone.is_empty() {
            None
        } else {
            Some(local_time::time_zone("time_zone", &r.time_zone)?)
        },
    })
}

/// What a `Billing.WatchTotals` follows; the server holds it to its fastest interval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchTotalsAsked {
    pub group: TotalsGroup,
    pub zone_id: Option<i64>,
    pub limit: usize,
    pub min_interval: std::time::Duration,
}

pub fn watch_totals(r: &proto::WatchTotalsRequest) -> Result<WatchTotalsAsked, ValidationError> {
    Ok(WatchTotalsAsked {
        group: wire_billing::group_field("group_by", r.group_by)?,
        zone_id: zone_filter("zone_id", r.zone_id)?,
        limit: lamp_rows("limit", r.limit)?,
        min_interval: std::time::Duration::from_millis(u64::from(r.min_interval_ms)),
    })
}

/// `Billing.GetLampEnergy`: one lamp on one settlement day.
pub fn get_lamp_energy(
    r: &proto::GetLampEnergyRequest,
) -> Result<(i64, NaiveDate), ValidationError> {
    Ok((
        id("lamp_id", r.lamp_id)?,
        local_time::date("date", &r.date)?,
    ))
}

fn zone_filter(field: &str, zone_id: i64) -> Result<Option<i64>, ValidationError> {
    match zone_id {
        0 => Ok(None),
        id if id < 0 => Err(ValidationError::new(
            field,
            "a zone id is positive (0: every zone)",
        )),
        id => Ok(Some(id)),
    }
}

fn lamp_rows(field: &str, limit: u32) -> Result<usize, ValidationError> {
    match limit {
        0 => Ok(DEFAULT_LAMP_ROWS as usize),
        n if n <= MAX_LAMP_ROWS => Ok(n as usize),
        n => Err(ValidationError::new(
            field,
            format!("{n} rows is more than {MAX_LAMP_ROWS}"),
        )),
    }
}

// ---- Every method's check, for the gateway ----

/// Why a request's bytes were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("the request is not a {message} message: {reason}")]
    Undecodable {
        message: &'static str,
        reason: String,
    },
    #[error(transparent)]
    Invalid(#[from] ValidationError),
}

/// One method whose request is a single message, and the check its service makes.
pub struct MethodCheck {
    /// The gRPC path, `/singularity.v1.Service/Method`.
    pub path: &'static str,
    /// The request message's full name, as the contract gives it.
    pub message: &'static str,
    /// Decodes the message and checks it.
    pub check: fn(&[u8]) -> Result<(), Refused>,
}

fn decode_and<M: Message + Default, T>(
    message: &'static str,
    bytes: &[u8],
    check: fn(&M) -> Result<T, ValidationError>,
) -> Result<(), Refused> {
    let decoded = M::decode(bytes).map_err(|e| Refused::Undecodable {
        message,
        reason: e.to_string(),
    })?;
    check(&decoded).map(drop).map_err(Refused::from)
}

macro_rules! method_checks {
    ($( $service:literal $method:literal $message:ident => $check:expr ;)*) => {
        /// Every method of the contract whose request is one message, with its check. A
        /// test holds this to the contract: none missing, none extra, each message right.
        pub const CHECKS: &[MethodCheck] = &[$(
            MethodCheck {
                path: concat!("/singularity.v1.", $service, "/", $method),
                message: concat!("singularity.v1.", stringify!($message)),
                check: |bytes| {
                    decode_and::<proto::$message, _>(
                        concat!("singularity.v1.", stringify!($message)),
                        bytes,
                        $check,
                    )
                },
            },
        )*];
    };
}

method_checks! {
    "Assets" "Get" IdRequest => id_request;
    "Assets" "List" ListOptions => super::list_request;
    "Assets" "Create" CreateAssetRequest => super::new_asset;
    "Assets" "Update" UpdateAssetRequest => super::asset_update;
    "Assets" "Delete" IdRequest => id_request;
    "Assets" "Prune" IdRequest => id_request;
    "Assets" "SearchByLocation" SearchByLocationRequest => super::search_request;
    "Auth" "Login" LoginRequest => login;
    "Auth" "Logout" LogoutRequest => nothing;
    "Auth" "WhoAmI" WhoAmIRequest => nothing;
    "Auth" "ChangePassword" ChangePasswordRequest => change_password;
    "Audit" "List" ListAuditRequest => list_audit;
    "Basestations" "Get" IdRequest => id_request;
    "Basestations" "List" ListOptions => super::list_request;
    "Basestations" "Create" CreateBasestationRequest => super::new_basestation;
    "Basestations" "Update" UpdateBasestationRequest => super::basestation_update;
    "Basestations" "Delete" IdRequest => id_request;
    "Basestations" "Prune" IdRequest => id_request;
    "Basestations" "SearchByLocation" SearchByLocationRequest => super::search_request;
    "Billing" "GetTotals" GetTotalsRequest => get_totals;
    "Billing" "WatchTotals" WatchTotalsRequest => watch_totals;
    "Billing" "GetLampEnergy" GetLampEnergyRequest => get_lamp_energy;
    "Billing" "ListTariffs" ListTariffsRequest => list_tariffs;
    "Billing" "SetTariff" SetTariffRequest => wire_billing::set_tariff;
    "Catalog" "ListZones" ListZonesRequest => nothing;
    "Catalog" "ListCircuits" ListCircuitsRequest => list_circuits;
    "Catalog" "ListLampTypes" ListLampTypesRequest => nothing;
    "Faults" "List" ListFaultsRequest => list_faults;
    "Faults" "Get" GetFaultRequest => get_fault;
    "Faults" "DailyFaults" DailyFaultsRequest => daily_faults;
    "Faults" "Watch" WatchFaultsRequest => watch_faults;
    "Faults" "Acknowledge" FaultActionRequest => acknowledge;
    "Faults" "Assign" AssignFaultRequest => assign;
    "Faults" "Resolve" FaultActionRequest => resolve;
    "Faults" "AddNote" FaultActionRequest => add_note;
    "Faults" "ActOnMany" ActOnManyRequest => act_on_many;
    "Faults" "Handover" HandoverRequest => handover;
    "Lamps" "Get" IdRequest => id_request;
    "Lamps" "List" ListOptions => super::list_request;
    "Lamps" "Create" CreateLampRequest => super::new_lamp;
    "Lamps" "Update" UpdateLampRequest => super::lamp_update;
    "Lamps" "Delete" IdRequest => id_request;
    "Lamps" "Prune" IdRequest => id_request;
    "Lamps" "SearchByLocation" SearchByLocationRequest => super::search_request;
    "Lamps" "AddToAsset" AddToAssetRequest => add_to_asset;
    "Lamps" "GetStatus" IdRequest => id_request;
    "Lamps" "WatchStatus" WatchStatusRequest => watch_status;
    "Lamps" "ListWiring" ListWiringRequest => super::wiring::list_wiring;
    "Telemetry" "GetLatest" LatestRequest => latest;
    "Telemetry" "WatchLatest" LatestRequest => latest;
    "Telecells" "Get" IdRequest => id_request;
    "Telecells" "List" ListOptions => super::list_request;
    "Telecells" "Create" CreateTelecellRequest => super::new_telecell;
    "Telecells" "Update" UpdateTelecellRequest => super::telecell_update;
    "Telecells" "Delete" IdRequest => id_request;
    "Telecells" "Prune" IdRequest => id_request;
    "Telecells" "SearchByLocation" SearchByLocationRequest => super::search_request;
    "Telecells" "AddToLamps" TelecellLampsRequest => super::lamp_ids;
    "Telecells" "RemoveFromLamps" TelecellLampsRequest => super::lamp_ids;
    "Users" "Get" IdRequest => id_request;
    "Users" "List" ListOptions => super::list_request;
    "Users" "Create" CreateUserRequest => super::new_user;
    "Users" "Update" UpdateUserRequest => super::user_update;
    "Users" "Delete" IdRequest => id_request;
    "Users" "Prune" IdRequest => id_request;
}

/// The check for a path, if its request is a single message of the contract (found by a
/// map built once: the gateway asks for every call).
pub fn check_for(path: &str) -> Option<&'static MethodCheck> {
    static BY_PATH: std::sync::LazyLock<
        std::collections::HashMap<&'static str, &'static MethodCheck>,
    > = std::sync::LazyLock::new(|| CHECKS.iter().map(|check| (check.path, check)).collect());
    BY_PATH.get(path).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latest_readings_are_asked_for_some_lamps_each_once() {
        let asking = |lamp_ids: Vec<i64>| latest(&proto::LatestRequest { lamp_ids });
        assert_eq!(asking(vec![3, 1, 3]).unwrap(), vec![1, 3]);
        assert_eq!(asking(Vec::new()).unwrap_err().field, "lamp_ids");
        assert_eq!(asking(vec![1, -2]).unwrap_err().field, "lamp_ids");
        let too_many = (1..=MAX_WATCHED_LAMPS as i64 + 1).collect();
        assert!(asking(too_many).unwrap_err().reason.contains("per request"));
    }

    /// Every method of the contract, its request message and whether that is a stream.
    fn contract() -> Vec<(String, String, bool)> {
        let set = prost_types::FileDescriptorSet::decode(proto::FILE_DESCRIPTOR_SET)
            .expect("the contract's descriptors decode");
        set.file
            .iter()
            .flat_map(|file| {
                file.service.iter().flat_map(move |service| {
                    service.method.iter().map(move |m| {
                        (
                            format!("/{}.{}/{}", file.package(), service.name(), m.name()),
                            m.input_type().trim_start_matches('.').to_owned(),
                            m.client_streaming(),
                        )
                    })
                })
            })
            .collect()
    }

    #[test]
    fn every_method_with_one_request_message_has_its_check_and_no_other_does() {
        let contract = contract();
        for (path, message, streams) in &contract {
            match (check_for(path), streams) {
                (Some(check), false) => assert_eq!(&check.message, message, "{path}"),
                (None, false) => panic!("{path} has no check"),
                (Some(_), true) => panic!(
                    "{path} takes a stream: its messages are judged one by one by its service"
                ),
                (None, true) => {}
            }
        }
        assert_eq!(
            CHECKS.len(),
            contract.iter().filter(|(_, _, streams)| !streams).count(),
            "a check for a method the contract does not have"
        );
    }

    #[test]
    fn a_check_names_the_bad_field_and_refuses_bytes_that_are_not_the_message() {
        let check = check_for("/singularity.v1.Lamps/Get").expect("Lamps.Get is checked");
        let bad = proto::IdRequest { id: -4 }.encode_to_vec();
        match (check.check)(&bad) {
            Err(Refused::Invalid(e)) => assert_eq!(e.field, "id"),
            other => panic!("expected the id refused, got {other:?}"),
        }
        assert_eq!(
            (check.check)(&proto::IdRequest { id: 4 }.encode_to_vec()),
            Ok(())
        );
        assert!(matches!(
            (check.check)(&[0xff, 0xff, 0xff]),
            Err(Refused::Undecodable { .. })
        ));
    }

    #[test]
    fn a_note_needs_text_and_other_actions_need_the_version_seen() {
        assert_eq!(
            add_note(&proto::FaultActionRequest {
                fault_id: 3,
                note: "  ".into(),
                ..Default::default()
            })
            .map_err(|e| e.field),
            Err("note".to_owned())
        );
        assert!(
            add_note(&proto::FaultActionRequest {
                fault_id: 3,
                note: "crew on site".into(),
                ..Default::default()
            })
            .is_ok()
        );
        assert_eq!(
            acknowledge(&proto::FaultActionRequest {
                fault_id: 3,
                ..Default::default()
            })
            .map_err(|e| e.field),
            Err("expected_version".to_owned())
        );
    }

    #[test]
    fn act_on_many_names_each_fault_once() {
        let many = act_on_many(&proto::ActOnManyRequest {
            action: proto::TriageAction::Acknowledge as i32,
            faults: [(4, 1), (5, 2), (4, 1)]
                .into_iter()
                .map(|(fault_id, expected_version)| proto::FaultAtVersion {
                    fault_id,
                    expected_version,
                })
                .collect(),
            ..Default::default()
        })
        .expect("a sound request");
        assert_eq!(many.faults, vec![(4, 1), (5, 2)]);
    }
}
