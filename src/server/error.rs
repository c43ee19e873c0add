//! The server's error type and its one exhaustive mapping to gRPC status codes.

use tonic::Status;
use tonic::metadata::MetadataValue;

use crate::domain::ValidationError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A failure of the server itself (a lost worker thread, a hashing fault).
    #[error("internal error: {0}")]
    Internal(String),
    /// No signed-in user stands behind the call: no token, an ended session, an inactive
    /// account, a wrong password at sign-in.
    #[error("{0}")]
    SignedOut(String),
    /// The caller is known but may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// Too much at once (sign-in attempts, a watcher that fell behind); `retry_after` in
    /// seconds when the server knows it.
    #[error("{message}")]
    Exhausted {
        message: String,
        retry_after: Option<u64>,
    },
    /// The server cannot answer now (shutting down, the session store unreachable); the
    /// message says how to resume.
    #[error("{0}")]
    Unavailable(String),
    /// A position outside what the server still keeps (an event log already pruned).
    #[error("{0}")]
    OutOfRange(String),
}

impl ServiceError {
    pub fn signed_out(message: impl Into<String>) -> Self {
        Self::SignedOut(message.into())
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::Forbidden(message.into())
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::Unavailable(message.into())
    }
}

impl From<ServiceError> for Status {
    fn from(error: ServiceError) -> Self {
        match error {
            ServiceError::Invalid(e) => Status::invalid_argument(e.to_string()),
            ServiceError::Store(e) => store_status(e),
            ServiceError::Internal(message) => {
                tracing::error!(%message, "internal error");
                Status::internal("internal error; see the server log")
            }
            ServiceError::SignedOut(message) => Status::unauthenticated(message),
            ServiceError::Forbidden(message) => Status::permission_denied(message),
            ServiceError::Exhausted {
                message,
                retry_after,
            } => {
                let mut status = Status::resource_exhausted(message);
                if let Some(value) = retry_after
                    .and_then(|seconds| MetadataValue::try_from(seconds.to_string()).ok())
                {
                    status.metadata_mut().insert("retry-after", value);
                }
                status
            }
            ServiceError::Unavailable(message) => Status::unavailable(message),
            ServiceError::OutOfRange(message) => Status::out_of_range(message),
        }
    }
}

/// Lets handlers use `?` on validation directly; it goes through the same mapping.
impl From<ValidationError> for Status {
    fn from(error: ValidationError) -> Self {
        ServiceError::from(error).into()
    }
}

impl From<StoreError> for Status {
    fn from(error: StoreError) -> Self {
        store_status(error)
    }
}

fn store_status(error: StoreError) -> Status {
    let message = error.to_string();
    match error {
        StoreError::NotFound { .. } | StoreError::MissingReference { .. } => {
            Status::not_found(message)
        }
        StoreError::Duplicate { .. } => Status::already_exists(message),
        StoreError::StaleVersion { .. } | StoreError::StaleFault { .. } => Status::aborted(message),
        StoreError::Conflict(_) | StoreError::NotEmpty { .. } => {
            Status::failed_precondition(message)
        }
        StoreError::Database(detail) => {
            tracing::error!(%detail, "database error");
            Status::internal("database error; see the server log")
        }
        StoreError::Invalid(error) => Status::invalid_argument(error.to_string()),
        StoreError::Closed => Status::unavailable("the server is shutting down; retry shortly"),
        // Nothing of the batch was stored; the engine reloads before judging the resend.
        StoreError::Superseded => Status::unavailable(message),
        // Nothing was stored; the sender resends, and it reaches the new leader.
        StoreError::NotLeader => Status::unavailable(format!("{message}; resend")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::inventory::EntityKind;
    use tonic::Code;

    #[test]
    fn codes() {
        let code = |e: ServiceError| Status::from(e).code();
        assert_eq!(
            code(ValidationError::new("x", "bad").into()),
            Code::InvalidArgument
        );
        assert_eq!(
            code(
                StoreError::NotFound {
                    kind: EntityKind::Lamp,
                    id: 1
                }
                .into()
            ),
            Code::NotFound
        );
        assert_eq!(
            code(
                StoreError::StaleVersion {
                    kind: EntityKind::Lamp,
                    id: 1,
                    expected: 1,
                    current: 2,
                    current_state: String::new()
                }
                .into()
            ),
            Code::Aborted
        );
        assert_eq!(
            code(StoreError::Conflict("no".into()).into()),
            Code::FailedPrecondition
        );
        assert_eq!(
            code(StoreError::Database("disk".into()).into()),
            Code::Internal
        );
        assert_eq!(code(StoreError::Closed.into()), Code::Unavailable);
    }

    #[test]
    fn database_details_stay_in_the_log() {
        let status = Status::from(ServiceError::from(StoreError::Database(
            "secret path".into(),
        )));
        assert!(!status.message().contains("secret"));
    }
}
