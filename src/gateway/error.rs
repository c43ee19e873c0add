//! The gateway's errors: why it could not start, and why it refused or could not forward a
//! call, each mapped to its gRPC status in one place.

use tonic::Status;

use crate::remote::SessionError;
use crate::wire::requests::Refused;

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error(transparent)]
    Routes(#[from] crate::remote::RemoteError),
    #[error("cannot build the reflection service: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("the gateway failed: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// Why a call was not forwarded.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("{0}")]
    SignedOut(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("too many calls {0}; slow down and retry")]
    TooMany(String),
    #[error("{0} is not part of this API")]
    UnknownService(String),
    #[error("no instance of the {0} service is available just now; retry shortly")]
    NoInstance(&'static str),
    #[error(transparent)]
    Session(#[from] crate::remote::SessionError),
    /// A field the contract refuses: the same words its service would use.
    #[error(transparent)]
    Invalid(#[from] Refused),
    #[error("{0}")]
    Malformed(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("compressed requests are not accepted; send them uncompressed")]
    Compressed,
}

impl From<Refusal> for Status {
    fn from(refusal: Refusal) -> Self {
        let message = refusal.to_string();
        match refusal {
            Refusal::SignedOut(_) => Status::unauthenticated(message),
            Refusal::Forbidden(_) => Status::permission_denied(message),
            Refusal::TooMany(_) => Status::resource_exhausted(message),
            Refusal::UnknownService(_) => Status::unimplemented(message),
            Refusal::Session(SessionError::SignedOut(_)) => Status::unauthenticated(message),
            Refusal::NoInstance(_) | Refusal::Session(SessionError::Unavailable(_)) => {
                Status::unavailable(message)
            }
            Refusal::Invalid(Refused::Invalid(field)) => field.into(),
            Refusal::Invalid(Refused::Undecodable { .. }) | Refusal::Malformed(_) => {
                Status::invalid_argument(message)
            }
            Refusal::TooLarge(_) => Status::resource_exhausted(message),
            Refusal::Compressed => Status::unimplemented(message),
        }
    }
}
