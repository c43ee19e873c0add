//! The estate's records (basestations, telecells, assets, lamps, users and reference data)
//! and the validated commands that create and change them.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::geo::GeoPoint;

/// Lifecycle of every inventory record; `Deleted` is a soft delete that `Prune` completes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntityStatus {
    Unavailable,
    Active,
    Inactive,
    Deleted,
}

impl EntityStatus {
    pub const ALL: [EntityStatus; 4] = [
        EntityStatus::Unavailable,
        EntityStatus::Active,
        EntityStatus::Inactive,
        EntityStatus::Deleted,
    ];

    /// The stable name used in storage and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            EntityStatus::Unavailable => "unavailable",
            EntityStatus::Active => "active",
            EntityStatus::Inactive => "inactive",
            EntityStatus::Deleted => "deleted",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str().eq_ignore_ascii_case(text))
    }
}

/// Which kind of record an id refers to; used in errors and by the generic listing code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntityKind {
    Basestation,
    Telecell,
    Asset,
    Lamp,
    User,
    Zone,
    Circuit,
    LampType,
    Fault,
    Tariff,
}

impl EntityKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EntityKind::Basestation => "basestation",
            EntityKind::Telecell => "telecell",
            EntityKind::Asset => "asset",
            EntityKind::Lamp => "lamp",
            EntityKind::User => "user",
            EntityKind::Zone => "zone",
            EntityKind::Circuit => "circuit",
            EntityKind::LampType => "lamp type",
            EntityKind::Fault => "fault",
            EntityKind::Tariff => "tariff",
        }
    }
}

impl std::fmt::Display for EntityKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Creation and change bookkeeping shared by every record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordMeta {
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What every inventory record has: a kind, an id and its bookkeeping.
pub trait Record {
    const KIND: EntityKind;
    fn id(&self) -> i64;
    fn meta(&self) -> &RecordMeta;
}

macro_rules! record {
    ($type:ty, $kind:expr) => {
        impl Record for $type {
            const KIND: EntityKind = $kind;
            fn id(&self) -> i64 {
                self.id
            }
            fn meta(&self) -> &RecordMeta {
                &self.meta
            }
        }
    };
}

record!(Basestation, EntityKind::Basestation);
record!(Telecell, EntityKind::Telecell);
record!(Asset, EntityKind::Asset);
record!(Lamp, EntityKind::Lamp);
record!(User, EntityKind::User);

#[derive(Debug, Clone, PartialEq)]
pub struct Basestation {
    pub id: i64,
    pub uuid: Uuid,
    pub name: String,
    pub firmware_version: String,
    pub location: GeoPoint,
    pub status: EntityStatus,
    pub meta: RecordMeta,
    pub telecell_count: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Telecell {
    pub id: i64,
    pub uuid: Uuid,
    pub basestation_id: i64,
    pub relay_via_id: Option<i64>,
    pub location: GeoPoint,
    pub firmware_version: String,
    pub status: EntityStatus,
    pub meta: RecordMeta,
    pub lamp_ids: Vec<i64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Asset {
    pub id: i64,
    pub reference: String,
    pub location: GeoPoint,
    pub zone_id: i64,
    pub zone_name: String,
    pub circuit_id: Option<i64>,
    pub circuit_name: String,
    pub status: EntityStatus,
    pub meta: RecordMeta,
    pub lamp_ids: Vec<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LampTechnology {
    Led,
    Son,
    Sox,
    Cmh,
}

impl LampTechnology {
    pub const ALL: [LampTechnology; 4] = [
        LampTechnology::Led,
        LampTechnology::Son,
        LampTechnology::Sox,
        LampTechnology::Cmh,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LampTechnology::Led => "LED",
            LampTechnology::Son => "SON",
            LampTechnology::Sox => "SOX",
            LampTechnology::Cmh => "CMH",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(text))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ControlType {
    Dali,
    OneToTenVolt,
    Switch,
}

impl ControlType {
    pub const ALL: [ControlType; 3] = [
        ControlType::Dali,
        ControlType::OneToTenVolt,
        ControlType::Switch,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ControlType::Dali => "DALI",
            ControlType::OneToTenVolt => "1-10V",
            ControlType::Switch => "switch",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(text))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LampType {
    pub id: i64,
    /// Shared, not copied: every lamp carries its type, and a million lamps have a dozen types.
    pub name: std::sync::Arc<str>,
    pub technology: LampTechnology,
    pub wattage_w: u32,
    pub control_type: ControlType,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Lamp {
    pub id: i64,
    pub reference: String,
    pub asset_id: Option<i64>,
    pub lamp_type: LampType,
    pub telecell_id: Option<i64>,
    pub status: EntityStatus,
    pub meta: RecordMeta,
    /// Where the lamp's asset stands, when it is mounted.
    pub location: Option<GeoPoint>,
    pub zone_id: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Admin,
    Manager,
    User,
    Dev,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Admin, Role::Manager, Role::User, Role::Dev];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Manager => "manager",
            Role::User => "user",
            Role::Dev => "dev",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str().eq_ignore_ascii_case(text))
    }
}

/// A person who uses the system. The password hash is deliberately not part of this type,
/// so no reply can ever carry it.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub display_name: String,
    pub role: Role,
    pub status: EntityStatus,
    pub meta: RecordMeta,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zone {
    pub id: i64,
    pub name: String,
    pub asset_count: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Circuit {
    pub id: i64,
    pub name: String,
    pub zone_id: i64,
    pub asset_count: i64,
}

// ---- Commands: validated inputs that create or change records ----

#[derive(Debug, Clone, PartialEq)]
pub struct NewBasestation {
    pub uuid: Uuid,
    pub name: String,
    pub firmware_version: String,
    pub location: GeoPoint,
    pub status: EntityStatus,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct BasestationPatch {
    pub name: Option<String>,
    pub firmware_version: Option<String>,
    pub location: Option<GeoPoint>,
    pub status: Option<EntityStatus>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewTelecell {
    pub uuid: Uuid,
    pub basestation_id: i64,
    pub relay_via_id: Option<i64>,
    pub location: GeoPoint,
    pub firmware_version: String,
    pub status: EntityStatus,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct TelecellPatch {
    pub basestation_id: Option<i64>,
    /// `Some(None)` stops relaying.
    pub relay_via_id: Option<Option<i64>>,
    pub location: Option<GeoPoint>,
    pub firmware_version: Option<String>,
    pub status: Option<EntityStatus>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewAsset {
    pub reference: String,
    pub location: GeoPoint,
    pub zone_id: i64,
    pub circuit_id: Option<i64>,
    pub status: EntityStatus,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct AssetPatch {
    pub reference: Option<String>,
    pub location: Option<GeoPoint>,
    pub zone_id: Option<i64>,
    /// `Some(None)` takes the asset off its circuit.
    pub circuit_id: Option<Option<i64>>,
    pub status: Option<EntityStatus>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewLamp {
    pub reference: String,
    pub asset_id: Option<i64>,
    pub lamp_type_id: i64,
    pub telecell_id: Option<i64>,
    pub status: EntityStatus,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct LampPatch {
    pub reference: Option<String>,
    pub lamp_type_id: Option<i64>,
    pub status: Option<EntityStatus>,
}

/// A new user; the password is already hashed, so the plaintext never reaches storage.
#[derive(Debug, Clone, PartialEq)]
pub struct NewUser {
    pub username: String,
    pub display_name: String,
    pub role: Role,
    pub password_hash: String,
    pub status: EntityStatus,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct UserPatch {
    pub display_name: Option<String>,
    pub role: Option<Role>,
    pub password_hash: Option<String>,
    pub status: Option<EntityStatus>,
}

/// Usernames: 1-64 of letters, digits, '.', '_' or '-', so they are safe in logs and prompts.
pub fn validate_username(value: &str) -> Result<String, super::ValidationError> {
    let name = value.trim();
    if name.is_empty() || name.len() > 64 {
        return Err(super::ValidationError::new(
            "username",
            "must be 1 to 64 characters",
        ));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Err(super::ValidationError::new(
            "username",
            "may only contain letters, digits, '.', '_' and '-'",
        ));
    }
    Ok(name.to_owned())
}

pub const MIN_PASSWORD_CHARS: usize = 8;

pub fn validate_password(field: &str, value: &str) -> Result<(), super::ValidationError> {
    let length = value.chars().count();
    if length < MIN_PASSWORD_CHARS {
        return Err(super::ValidationError::new(
            field,
            format!("must be at least {MIN_PASSWORD_CHARS} characters"),
        ));
    }
    if length > 1024 {
        return Err(super::ValidationError::new(
            field,
            "must be at most 1024 characters",
        ));
    }
    Ok(())
}

// ---- Applying patches: only the fields a patch names change ----

impl BasestationPatch {
    pub fn apply_to(self, record: &mut Basestation) {
        set(&mut record.name, self.name);
        set(&mut record.firmware_version, self.firmware_version);
        set(&mut record.location, self.location);
        set(&mut record.status, self.status);
    }
}

impl TelecellPatch {
    pub fn apply_to(self, record: &mut Telecell) {
        set(&mut record.basestation_id, self.basestation_id);
        set(&mut record.relay_via_id, self.relay_via_id);
        set(&mut record.location, self.location);
        set(&mut record.firmware_version, self.firmware_version);
        set(&mut record.status, self.status);
    }
}

impl AssetPatch {
    pub fn apply_to(self, record: &mut Asset) {
        set(&mut record.reference, self.reference);
        set(&mut record.location, self.location);
        set(&mut record.zone_id, self.zone_id);
        set(&mut record.circuit_id, self.circuit_id);
        set(&mut record.status, self.status);
    }
}

impl LampPatch {
    /// The lamp type is applied by id; storage resolves it to the full type.
    pub fn apply_to(self, record: &mut Lamp) {
        set(&mut record.reference, self.reference);
        set(&mut record.lamp_type.id, self.lamp_type_id);
        set(&mut record.status, self.status);
    }
}

/// A user patch as stored: the password hash travels beside the record, never inside it.
impl UserPatch {
    pub fn apply_to(self, record: &mut User) -> Option<String> {
        set(&mut record.display_name, self.display_name);
        set(&mut record.role, self.role);
        set(&mut record.status, self.status);
        self.password_hash
    }
}

fn set<T>(field: &mut T, value: Option<T>) {
    if let Some(value) = value {
        *field = value;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enum_names_round_trip() {
        for s in EntityStatus::ALL {
            assert_eq!(EntityStatus::parse(s.as_str()), Some(s));
        }
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        for t in LampTechnology::ALL {
            assert_eq!(LampTechnology::parse(t.as_str()), Some(t));
        }
        for c in ControlType::ALL {
            assert_eq!(ControlType::parse(c.as_str()), Some(c));
        }
        assert_eq!(EntityStatus::parse("nope"), None);
    }

    #[test]
    fn usernames() {
        assert_eq!(validate_username(" ops.1 "), Ok("ops.1".to_owned()));
        assert!(validate_username("").is_err());
        assert!(validate_username("robert'); drop table users;--").is_err());
        assert!(validate_username(&"a".repeat(65)).is_err());
    }

    #[test]
    fn passwords() {
        assert!(validate_password("password", "short").is_err());
        assert!(validate_password("password", "long enough").is_ok());
    }
}
