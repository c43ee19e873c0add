//! Who may call what: the caller a session stands for, the one table of which roles may call
//! each RPC, and bearer tokens (random, kept by the server only as a hash).

use std::fmt::Write as _;

use blake2::{Blake2s256, Digest};
use rand::RngCore;

use super::inventory::Role;

/// The signed-in user behind a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub user_id: i64,
    pub username: String,
    pub role: Role,
    /// The address the call came from, for the audit trail.
    pub peer: String,
    /// The hash of the token the call carried (so Logout knows which session to end).
    pub token_hash: Vec<u8>,
}

/// What a call needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, signed in or not: signing in, health and reflection.
    Public,
    /// Any signed-in user.
    SignedIn,
    /// Only these roles.
    Roles(&'static [Role]),
}

const ADMIN: &[Role] = &[Role::Admin];
const TRIAGE: &[Role] = &[Role::Admin, Role::Manager, Role::User];
const BILLING: &[Role] = &[Role::Admin, Role::Manager];
const INGEST: &[Role] = &[Role::Admin, Role::Dev];

/// The access rule for a gRPC path (`/package.Service/Method`). Reads are open to every role;
/// each mutation names its roles; an unknown path is for admins only, so a new RPC is closed
/// until it is placed here.
pub fn access(path: &str) -> Access {
    let mut parts = path.trim_start_matches('/').splitn(2, '/');
    let (service, method) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if service.starts_with("grpc.health.") || service.starts_with("grpc.reflection.") {
        return Access::Public;
    }
    let Some(service) = service.strip_prefix("singularity.v1.") else {
        return Access::Roles(ADMIN);
    };
    match (service, method) {
        ("Auth", "Login") => Access::Public,
        ("Auth", "Logout" | "WhoAmI" | "ChangePassword") => Access::SignedIn,
        ("Presence", "Share") | ("Faults", "Handover") => Access::SignedIn,
        ("Telemetry", "Report") => Access::Roles(INGEST),
        ("Faults", "Acknowledge" | "Assign" | "Resolve" | "AddNote" | "ActOnMany") => {
            Access::Roles(TRIAGE)
        }
        ("Billing", "SetTariff") => Access::Roles(BILLING),
        ("Audit", "List") => Access::Roles(BILLING),
        ("Users", "List" | "Get") => Access::Roles(ADMIN),
        (
            "Basestations" | "Telecells" | "Assets" | "Lamps" | "Users",
            "Create" | "Update" | "Delete" | "Prune" | "AddToLamps" | "RemoveFromLamps"
            | "AddToAsset",
        ) => Access::Roles(ADMIN),
        (_, method) if is_read(method) => Access::SignedIn,
        _ => Access::Roles(ADMIN),
    }
}

/// Whether a method only reads (so a call that failed on one server may be asked again of
/// another).
pub fn is_read(method: &str) -> bool {
    ["Get", "List", "Search", "Watch", "Daily"]
        .iter()
        .any(|prefix| method.starts_with(prefix))
}

/// The token of an `authorization` header's value: `Bearer <token>`.
pub fn bearer_token(header: &str) -> Option<&str> {
    let token = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))?
        .trim();
    (!token.is_empty()).then_some(token)
}

/// Why `role` may not call `path` under `rule`.
pub fn refusal(rule: Access, role: Role, path: &str) -> String {
    let roles = match rule {
        Access::Roles(roles) => roles,
        _ => &Role::ALL[..],
    };
    format!(
        "{} may not call {}: it needs the role {}",
        role.as_str(),
        path.trim_start_matches("/singularity.v1."),
        roles
            .iter()
            .map(|r| r.as_str())
            .collect::<Vec<_>>()
            .join(" or ")
    )
}

impl Access {
    pub fn allows(self, role: Role) -> bool {
        match self {
            Access::Public | Access::SignedIn => true,
            Access::Roles(roles) => roles.contains(&role),
        }
    }
}

/// A new bearer token: 32 random bytes, hex, with a prefix that says what it is.
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let mut token = String::with_capacity(TOKEN_PREFIX.len() + 64);
    token.push_str(TOKEN_PREFIX);
    for byte in bytes {
        let _ = write!(token, "{byte:02x}");
    }
    token
}

const TOKEN_PREFIX: &str = "sgt_";

/// What the server stores of a token. Tokens are long and random, so a fast hash is enough:
/// nobody can guess one from its hash.
pub fn token_hash(token: &str) -> Vec<u8> {
    Blake2s256::digest(token.as_bytes()).to_vec()
}

/// Which entries of the audit trail a listing asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    pub from: Option<chrono::DateTime<chrono::Utc>>,
    pub to: Option<chrono::DateTime<chrono::Utc>>,
    pub actor: Option<String>,
    pub entity: Option<String>,
    pub entity_id: Option<i64>,
    pub limit: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_mutation_names_its_roles_and_reads_are_open() {
        let p = |s: &str| access(&format!("/singularity.v1.{s}"));
        assert_eq!(p("Auth/Login"), Access::Public);
        assert_eq!(access("/grpc.health.v1.Health/Check"), Access::Public);
        assert_eq!(p("Faults/List"), Access::SignedIn);
        assert_eq!(p("Billing/GetTotals"), Access::SignedIn);
        assert_eq!(p("Lamps/WatchStatus"), Access::SignedIn);
        assert_eq!(p("Faults/DailyFaults"), Access::SignedIn);
        assert!(p("Faults/Acknowledge").allows(Role::User));
        assert!(!p("Faults/Acknowledge").allows(Role::Dev));
        assert!(p("Billing/SetTariff").allows(Role::Manager));
        assert!(!p("Billing/SetTariff").allows(Role::User));
        assert!(p("Telemetry/Report").allows(Role::Dev));
        assert!(!p("Telemetry/Report").allows(Role::Manager));
        assert!(!p("Assets/Update").allows(Role::Manager));
        assert!(p("Assets/Update").allows(Role::Admin));
        assert!(!p("Users/List").allows(Role::Manager));
        assert_eq!(
            p("Made/Up"),
            Access::Roles(ADMIN),
            "unknown paths are closed"
        );
        assert_eq!(access("/other.v1.Thing/Get"), Access::Roles(ADMIN));
    }

    #[test]
    fn tokens_are_random_and_hashed() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert!(a.starts_with("sgt_") && a.len() == 68);
        assert_eq!(token_hash(&a), token_hash(&a));
        assert_ne!(token_hash(&a), token_hash(&b));
        assert_eq!(token_hash(&a).len(), 32);
    }
}
