//! Conversions between the gRPC messages and the domain: outgoing records become messages,
//! incoming requests become validated commands, and bad input becomes a `ValidationError`
//! naming the request field.

pub mod billing;
pub mod faults;
pub mod requests;
pub mod wiring;

use chrono::{DateTime, TimeZone, Utc};
use uuid::Uuid;

use crate::domain::ValidationError;
use crate::domain::geo::{GeoBox, GeoPoint};
use crate::domain::inventory::{
    self as inv, AssetPatch, BasestationPatch, ControlType, EntityStatus, LampPatch,
    LampTechnology, NewAsset, NewBasestation, NewLamp, NewTelecell, Role, TelecellPatch,
};
use crate::domain::paging::{self, Cursor};
use crate::domain::paging::{Scan, StatusFilter};
use crate::domain::telemetry::{NodeAlarms, RawReading, Reading};
use crate::domain::validation::{optional_id, optional_text, required_id, required_text};
use crate::proto;

const NAME_MAX: usize = 200;

// ---- Outgoing: domain -> messages ----

pub fn timestamp(instant: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: instant.timestamp(),
        nanos: instant.timestamp_subsec_nanos() as i32,
    }
}

pub fn from_timestamp(
    field: &str,
    value: &prost_types::Timestamp,
) -> Result<DateTime<Utc>, ValidationError> {
    u32::try_from(value.nanos)
        .ok()
        .and_then(|nanos| Utc.timestamp_opt(value.seconds, nanos).single())
        .ok_or_else(|| ValidationError::new(field, "is not a valid instant"))
}

/// A reading as a telecell's report about `lamp_id` (what the simulator sends, and what
/// `Telemetry.GetLatest` answers with an empty `uuid`).
pub fn report_of(uuid: String, lamp_id: i64, r: &Reading) -> proto::TelecellReport {
    proto::TelecellReport {
        telecell_uuid: uuid,
        lamp_id,
        at: Some(timestamp(r.at)),
        lamp_on: r.lamp_on,
        dim_target_pct: r.dim_target_pct.into(),
        dim_actual_pct: r.dim_actual_pct.into(),
        voltage_v: r.voltage_v.into(),
        current_a: r.current_a.into(),
        power_w: r.power_w.into(),
        power_factor: r.power_factor.into(),
        energy_wh: r.energy_wh,
        burn_hours: r.burn_hours,
        switch_count: r.switch_count,
        supply_loss_count: r.supply_loss_count,
        temperature_c: r.temperature_c.into(),
        link_quality_pct: r.link_quality_pct.into(),
        alarms: Some(proto::NodeAlarms {
            relay_failure: r.alarms.relay_failure,
            driver_failure: r.alarms.driver_failure,
            earth_leakage: r.alarms.earth_leakage,
            tilt_or_impact: r.alarms.tilt_or_impact,
            supply_lost: r.alarms.supply_lost,
        }),
    }
}

fn meta(meta: &inv::RecordMeta) -> proto::RecordMeta {
    proto::RecordMeta {
        version: meta.version,
        created_at: Some(timestamp(meta.created_at)),
        updated_at: Some(timestamp(meta.updated_at)),
    }
}

fn point(point: GeoPoint) -> proto::GeoPoint {
    proto::GeoPoint {
        lat: point.lat(),
        lon: point.lon(),
    }
}

pub fn entity_status(status: EntityStatus) -> proto::EntityStatus {
    match status {
        EntityStatus::Unavailable => proto::EntityStatus::Unavailable,
        EntityStatus::Active => proto::EntityStatus::Active,
        EntityStatus::Inactive => proto::EntityStatus::Inactive,
        EntityStatus::Deleted => proto::EntityStatus::Deleted,
    }
}

pub fn role(role: Role) -> proto::Role {
    match role {
        Role::Admin => proto::Role::Admin,
        Role::Manager => proto::Role::Manager,
        Role::User => proto::Role::User,
        Role::Dev => proto::Role::Dev,
    }
}

impl From<inv::Basestation> for proto::Basestation {
    fn from(b: inv::Basestation) -> Self {
        Self {
            id: b.id,
            uuid: b.uuid.to_string(),
            name: b.name,
            firmware_version: b.firmware_version,
            location: Some(point(b.location)),
            status: entity_status(b.status).into(),
            meta: Some(meta(&b.meta)),
            telecell_count: b.telecell_count,
        }
    }
}

impl From<inv::Telecell> for proto::Telecell {
    fn from(t: inv::Telecell) -> Self {
        Self {
            id: t.id,
            uuid: t.uuid.to_string(),
            basestation_id: t.basestation_id,
            relay_via_id: t.relay_via_id.unwrap_or_default(),
            location: Some(point(t.location)),
            firmware_version: t.firmware_version,
            status: entity_status(t.status).into(),
            meta: Some(meta(&t.meta)),
            lamp_ids: t.lamp_ids,
        }
    }
}

impl From<inv::Asset> for proto::Asset {
    fn from(a: inv::Asset) -> Self {
        Self {
            id: a.id,
            reference: a.reference,
            location: Some(point(a.location)),
            zone_id: a.zone_id,
            zone_name: a.zone_name,
            circuit_id: a.circuit_id.unwrap_or_default(),
            circuit_name: a.circuit_name,
            status: entity_status(a.status).into(),
            meta: Some(meta(&a.meta)),
            lamp_ids: a.lamp_ids,
        }
    }
}

impl From<inv::LampType> for proto::LampType {
    fn from(t: inv::LampType) -> Self {
        let technology = match t.technology {
            LampTechnology::Led => proto::LampTechnology::Led,
            LampTechnology::Son => proto::LampTechnology::Son,
            LampTechnology::Sox => proto::LampTechnology::Sox,
            LampTechnology::Cmh => proto::LampTechnology::Cmh,
        };
        let control_type = match t.control_type {
            ControlType::Dali => proto::ControlType::Dali,
            ControlType::OneToTenVolt => proto::ControlType::OneToTenV,
            ControlType::Switch => proto::ControlType::Switch,
        };
        Self {
            id: t.id,
            name: t.name.to_string(),
            technology: technology.into(),
            wattage_w: t.wattage_w,
            control_type: control_type.into(),
        }
    }
}

impl From<inv::Lamp> for proto::Lamp {
    fn from(l: inv::Lamp) -> Self {
        Self {
            id: l.id,
            reference: l.reference,
            asset_id: l.asset_id.unwrap_or_default(),
            lamp_type: Some(l.lamp_type.into()),
            telecell_id: l.telecell_id.unwrap_or_default(),
            status: entity_status(l.status).into(),
            meta: Some(meta(&l.meta)),
            location: l.location.map(point),
            zone_id: l.zone_id.unwrap_or_default(),
        }
    }
}

impl From<inv::User> for proto::User {
    fn from(u: inv::User) -> Self {
        Self {
            id: u.id,
            username: u.username,
            display_name: u.display_name,
            role: role(u.role).into(),
            status: entity_status(u.status).into(),
            meta: Some(meta(&u.meta)),
        }
    }
}

impl From<inv::Zone> for proto::Zone {
    fn from(z: inv::Zone) -> Self {
        Self {
            id: z.id,
            name: z.name,
            asset_count: z.asset_count,
        }
    }
}

impl From<inv::Circuit> for proto::Circuit {
    fn from(c: inv::Circuit) -> Self {
        Self {
            id: c.id,
            name: c.name,
            zone_id: c.zone_id,
            asset_count: c.asset_count,
        }
    }
}

// ---- Incoming: messages -> validated domain values ----

/// An enum field: UNSPECIFIED is `None`, a number this build does not know is refused.
fn known_enum<P, D>(
    field: &str,
    value: i32,
    to_domain: fn(P) -> Option<D>,
) -> Result<Option<D>, ValidationError>
where
    P: TryFrom<i32>,
{
    let known = P::try_from(value)
        .map_err(|_| ValidationError::new(field, format!("unknown value {value}")))?;
    Ok(to_domain(known))
}

pub fn status_field(field: &str, value: i32) -> Result<Option<EntityStatus>, ValidationError> {
    known_enum(field, value, |s: proto::EntityStatus| match s {
        proto::EntityStatus::Unspecified => None,
        proto::EntityStatus::Unavailable => Some(EntityStatus::Unavailable),
        proto::EntityStatus::Active => Some(EntityStatus::Active),
        proto::EntityStatus::Inactive => Some(EntityStatus::Inactive),
        proto::EntityStatus::Deleted => Some(EntityStatus::Deleted),
    })
}

pub fn role_field(field: &str, value: i32) -> Result<Option<Role>, ValidationError> {
    known_enum(field, value, |r: proto::Role| match r {
        proto::Role::Unspecified => None,
        proto::Role::Admin => Some(Role::Admin),
        proto::Role::Manager => Some(Role::Manager),
        proto::Role::User => Some(Role::User),
        proto::Role::Dev => Some(Role::Dev),
    })
}

/// The status of a new record: ACTIVE when unspecified; a record cannot be born deleted.
fn new_status(value: i32) -> Result<EntityStatus, ValidationError> {
    match status_field("status", value)? {
        None => Ok(EntityStatus::Active),
        Some(EntityStatus::Deleted) => Err(ValidationError::new(
            "status",
            "a new record cannot be DELETED",
        )),
        Some(status) => Ok(status),
    }
}

fn geo_point(
    field: &str,
    value: Option<&proto::GeoPoint>,
) -> Result<Option<GeoPoint>, ValidationError> {
    value
        .map(|p| GeoPoint::new(p.lat, p.lon).map_err(|e| e.within(field)))
        .transpose()
}

fn required_point(
    field: &str,
    value: Option<&proto::GeoPoint>,
) -> Result<GeoPoint, ValidationError> {
    geo_point(field, value)?.ok_or_else(|| ValidationError::new(field, "is required"))
}

fn hardware_uuid(value: &str) -> Result<Uuid, ValidationError> {
    if value.trim().is_empty() {
        return Ok(Uuid::new_v4());
    }
    Uuid::parse_str(value.trim()).map_err(|_| {
        ValidationError::new(
            "uuid",
            format!("{} is not a UUID", crate::domain::validation::quoted(value)),
        )
    })
}

fn expected_version(value: Option<i64>) -> Result<Option<i64>, ValidationError> {
    match value {
        Some(v) if v < 1 => Err(ValidationError::new(
            "expected_version",
            format!("must be a version this server issued, 1 or more (got {v})"),
        )),
        other => Ok(other),
    }
}

pub fn id(field: &str, value: i64) -> Result<i64, ValidationError> {
    required_id(field, value)
}

/// A List request: which records, how many per page, from where.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ListRequest {
    pub scan: Scan,
    pub page_size: usize,
    pub limit: Option<u64>,
}

pub fn list_request(options: &proto::ListOptions) -> Result<ListRequest, ValidationError> {
    let page_size = paging::page_size("page_size", options.page_size)?;
    let cursor = Cursor::from_token("page_token", &options.page_token)?;
    let status = match status_field("status", options.status)? {
        Some(status) => StatusFilter::Only(status),
        None if options.include_deleted => StatusFilter::All,
        None => StatusFilter::Live,
    };
    let limit = match options.limit {
        None | Some(0) => None,
        Some(n) if n < 0 => {
            return Err(ValidationError::new(
                "limit",
                format!("must be 0 (no limit) or more (got {n})"),
            ));
        }
        Some(n) => Some(n as u64),
    };
    Ok(ListRequest {
        scan: Scan {
            after_id: cursor.after_id,
            limit: page_size,
            status,
            area: None,
        },
        page_size,
        limit,
    })
}

pub fn search_request(
    request: &proto::SearchByLocationRequest,
) -> Result<ListRequest, ValidationError> {
    let page_size = paging::page_size("page_size", request.page_size)?;
    let b = request
        .r#box
        .as_ref()
        .ok_or_else(|| ValidationError::new("box", "is required"))?;
    let area = GeoBox::new(b.south, b.west, b.north, b.east).map_err(|e| e.within("box"))?;
    Ok(ListRequest {
        scan: Scan {
            after_id: 0,
            limit: page_size,
            status: if request.include_deleted {
                StatusFilter::All
            } else {
                StatusFilter::Live
            },
            area: Some(area),
        },
        page_size,
        limit: None,
    })
}

pub fn new_basestation(
    r: &proto::CreateBasestationRequest,
) -> Result<NewBasestation, ValidationError> {
    Ok(NewBasestation {
        uuid: hardware_uuid(&r.uuid)?,
        name: required_text("name", &r.name, NAME_MAX)?,
        firmware_version: optional_text("firmware_version", &r.firmware_version, 64)?,
        location: required_point("location", r.location.as_ref())?,
        status: new_status(r.status)?,
    })
}

pub fn basestation_update(
    r: &proto::UpdateBasestationRequest,
) -> Result<(i64, Option<i64>, BasestationPatch), ValidationError> {
    Ok((
        id("id", r.id)?,
        expected_version(r.expected_version)?,
        BasestationPatch {
            name: r
                .name
                .as_deref()
                .map(|n| required_text("name", n, NAME_MAX))
                .transpose()?,
            firmware_version: r
                .firmware_version
                .as_deref()
                .map(|f| optional_text("firmware_version", f, 64))
                .transpose()?,
            location: geo_point("location", r.location.as_ref())?,
            status: status_field("status", r.status)?,
        },
    ))
}

pub fn new_telecell(r: &proto::CreateTelecellRequest) -> Result<NewTelecell, ValidationError> {
    Ok(NewTelecell {
        uuid: hardware_uuid(&r.uuid)?,
        basestation_id: id("basestation_id", r.basestation_id)?,
        relay_via_id: optional_id("relay_via_id", r.relay_via_id)?,
        location: required_point("location", r.location.as_ref())?,
        firmware_version: optional_text("firmware_version", &r.firmware_version, 64)?,
        status: new_status(r.status)?,
    })
}

pub fn telecell_update(
    r: &proto::UpdateTelecellRequest,
) -> Result<(i64, Option<i64>, TelecellPatch), ValidationError> {
    Ok((
        id("id", r.id)?,
        expected_version(r.expected_version)?,
        TelecellPatch {
            basestation_id: r
                .basestation_id
                .map(|b| id("basestation_id", b))
                .transpose()?,
            relay_via_id: r
                .relay_via_id
                .map(|v| optional_id("relay_via_id", v))
                .transpose()?,
            location: geo_point("location", r.location.as_ref())?,
            firmware_version: r
                .firmware_version
                .as_deref()
                .map(|f| optional_text("firmware_version", f, 64))
                .transpose()?,
            status: status_field("status", r.status)?,
        },
    ))
}

/// The lamp ids of a link request: at least one, each positive, duplicates dropped.
pub fn lamp_ids(r: &proto::TelecellLampsRequest) -> Result<(i64, Vec<i64>), ValidationError> {
    let telecell_id = id("telecell_id", r.telecell_id)?;
    if r.lamp_ids.is_empty() {
        return Err(ValidationError::new(
            "lamp_ids",
            "must name at least one lamp",
        ));
    }
    if r.lamp_ids.len() > paging::MAX_PAGE_SIZE {
        return Err(ValidationError::new(
            "lamp_ids",
            format!("at most {} lamps per request", paging::MAX_PAGE_SIZE),
        ));
    }
    let mut ids = r
        .lamp_ids
        .iter()
        .map(|&lamp| id("lamp_ids", lamp))
        .collect::<Result<Vec<_>, _>>()?;
    ids.sort_unstable();
    ids.dedup();
    Ok((telecell_id, ids))
}

pub fn new_asset(r: &proto::CreateAssetRequest) -> Result<NewAsset, ValidationError> {
    Ok(NewAsset {
        reference: required_text("reference", &r.reference, NAME_MAX)?,
        location: required_point("location", r.location.as_ref())?,
        zone_id: id("zone_id", r.zone_id)?,
        circuit_id: optional_id("circuit_id", r.circuit_id)?,
        status: new_status(r.status)?,
    })
}

pub fn asset_update(
    r: &proto::UpdateAssetRequest,
) -> Result<(i64, Option<i64>, AssetPatch), ValidationError> {
    Ok((
        id("id", r.id)?,
        expected_version(r.expected_version)?,
        AssetPatch {
            reference: r
                .reference
                .as_deref()
                .map(|n| required_text("reference", n, NAME_MAX))
                .transpose()?,
            location: geo_point("location", r.location.as_ref())?,
            zone_id: r.zone_id.map(|z| id("zone_id", z)).transpose()?,
            circuit_id: r
                .circuit_id
                .map(|c| optional_id("circuit_id", c))
                .transpose()?,
            status: status_field("status", r.status)?,
        },
    ))
}

pub fn new_lamp(r: &proto::CreateLampRequest) -> Result<NewLamp, ValidationError> {
    Ok(NewLamp {
        reference: required_text("reference", &r.reference, NAME_MAX)?,
        asset_id: optional_id("asset_id", r.asset_id)?,
        lamp_type_id: id("lamp_type_id", r.lamp_type_id)?,
        telecell_id: optional_id("telecell_id", r.telecell_id)?,
        status: new_status(r.status)?,
    })
}

pub fn lamp_update(
    r: &proto::UpdateLampRequest,
) -> Result<(i64, Option<i64>, LampPatch), ValidationError> {
    Ok((
        id("id", r.id)?,
        expected_version(r.expected_version)?,
        LampPatch {
            reference: r
                .reference
                .as_deref()
                .map(|n| required_text("reference", n, NAME_MAX))
                .transpose()?,
            lamp_type_id: r.lamp_type_id.map(|t| id("lamp_type_id", t)).transpose()?,
            status: status_field("status", r.status)?,
        },
    ))
}

/// A new user before its password is hashed: (username, display name, role, password, status).
pub struct UserDraft {
    pub username: String,
    pub display_name: String,
    pub role: Role,
    pub password: String,
    pub status: EntityStatus,
}

pub fn new_user(r: &proto::CreateUserRequest) -> Result<UserDraft, ValidationError> {
    let username = inv::validate_username(&r.username)?;
    inv::validate_password("password", &r.password)?;
    Ok(UserDraft {
        display_name: match optional_text("display_name", &r.display_name, NAME_MAX)? {
            name if name.is_empty() => username.clone(),
            name => name,
        },
        username,
        role: role_field("role", r.role)?.ok_or_else(|| {
            ValidationError::new("role", "is required: ADMIN, MANAGER, USER or DEV")
        })?,
        password: r.password.clone(),
        status: new_status(r.status)?,
    })
}

/// A user update before any new password is hashed.
pub struct UserChange {
    pub id: i64,
    pub expected_version: Option<i64>,
    pub display_name: Option<String>,
    pub role: Option<Role>,
    pub password: Option<String>,
    pub status: Option<EntityStatus>,
}

pub fn user_update(r: &proto::UpdateUserRequest) -> Result<UserChange, ValidationError> {
    if let Some(password) = &r.password {
        inv::validate_password("password", password)?;
    }
    Ok(UserChange {
        id: id("id", r.id)?,
        expected_version: expected_version(r.expected_version)?,
        display_name: r
            .display_name
            .as_deref()
            .map(|n| required_text("display_name", n, NAME_MAX))
            .transpose()?,
        role: role_field("role", r.role)?,
        password: r.password.clone(),
        status: status_field("status", r.status)?,
    })
}

/// A telecell report as received; its ranges are checked by `RawReading::validate`.
pub fn telecell_report(r: &proto::TelecellReport) -> Result<RawReading, ValidationError> {
    if r.telecell_uuid.trim().is_empty() {
        return Err(ValidationError::new("telecell_uuid", "is required"));
    }
    if r.lamp_id < 0 {
        return Err(ValidationError::new(
            "lamp_id",
            format!("must be a lamp id or 0 for all (got {})", r.lamp_id),
        ));
    }
    let at =
        r.at.as_ref()
            .ok_or_else(|| ValidationError::new("at", "is required"))?;
    let alarms = r.alarms.unwrap_or_default();
    Ok(RawReading {
        at: from_timestamp("at", at)?,
        lamp_on: r.lamp_on,
        dim_target_pct: r.dim_target_pct,
        dim_actual_pct: r.dim_actual_pct,
        voltage_v: r.voltage_v,
        current_a: r.current_a,
        power_w: r.power_w,
        power_factor: r.power_factor,
        energy_wh: r.energy_wh,
        burn_hours: r.burn_hours,
        switch_count: r.switch_count,
        supply_loss_count: r.supply_loss_count,
        temperature_c: r.temperature_c,
        link_quality_pct: r.link_quality_pct,
        alarms: NodeAlarms {
            relay_failure: alarms.relay_failure,
            driver_failure: alarms.driver_failure,
            earth_leakage: alarms.earth_leakage,
            tilt_or_impact: alarms.tilt_or_impact,
            supply_lost: alarms.supply_lost,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_enum_numbers_are_refused_by_name() {
        let error = status_field("status", 99).unwrap_err();
        assert_eq!(error.field, "status");
        assert_eq!(role_field("role", 0), Ok(None));
    }

    #[test]
    fn a_nan_in_a_search_box_names_the_nested_field() {
        let request = proto::SearchByLocationRequest {
            r#box: Some(proto::GeoBox {
                south: f64::NAN,
                west: 0.0,
                north: 1.0,
                east: 1.0,
            }),
            ..Default::default()
        };
        assert_eq!(search_request(&request).unwrap_err().field, "box.south");
    }

    #[test]
    fn a_new_record_cannot_be_born_deleted() {
        let request = proto::CreateAssetRequest {
            reference: "COL-1".into(),
            location: Some(proto::GeoPoint {
                lat: 51.0,
                lon: 0.0,
            }),
            zone_id: 1,
            circuit_id: 0,
            status: proto::EntityStatus::Deleted.into(),
        };
        assert_eq!(new_asset(&request).unwrap_err().field, "status");
    }

    #[test]
    fn list_options_map_to_a_scan() {
        let options = proto::ListOptions {
            page_size: Some(10),
            page_token: Cursor { after_id: 7 }.to_token(),
            include_deleted: true,
            ..Default::default()
        };
        let request = list_request(&options).unwrap();
        assert_eq!(request.scan.after_id, 7);
        assert_eq!(request.scan.status, StatusFilter::All);
        assert_eq!(request.page_size, 10);
        assert!(
            list_request(&proto::ListOptions {
                limit: Some(-1),
                ..Default::default()
            })
            .is_err()
        );
    }

    #[test]
    fn link_requests_need_lamps() {
        let empty = proto::TelecellLampsRequest {
            telecell_id: 1,
            lamp_ids: vec![],
        };
        assert_eq!(lamp_ids(&empty).unwrap_err().field, "lamp_ids");
        let dup = proto::TelecellLampsRequest {
            telecell_id: 1,
            lamp_ids: vec![3, 3, 2],
        };
        assert_eq!(lamp_ids(&dup).unwrap().1, vec![2, 3]);
    }
}
