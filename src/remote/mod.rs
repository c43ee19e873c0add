//! The other processes a process calls: the instances of each part of the API and whether
//! they serve (`upstreams`), and who a token belongs to, asked of the auth service
//! (`sessions`). The gateway forwards through them; a server without the auth service checks
//! its callers' sessions through them, never through the sessions table, and asks the
//! inventory (`inventory`) for lamps and wiring, as its callers or its service account
//! (`account`).

pub mod account;
pub mod inventory;
pub mod observed;
pub mod sessions;
pub mod upstreams;

/// Why the instances of a part could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("{part} at {url}: {reason}")]
    Route {
        part: &'static str,
        url: String,
        reason: String,
    },
    #[error(
        "no instance of {0} is given: name one (the gateway: --route {0}=URL; a server: --auth-url URL)"
    )]
    Unrouted(&'static str),
}

/// Why the auth service did not say who a token belongs to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// The auth service refused the token (unknown, revoked, expired, account inactive).
    #[error("{0}")]
    SignedOut(String),
    #[error("cannot check the session just now ({0}); retry shortly")]
    Unavailable(String),
}
