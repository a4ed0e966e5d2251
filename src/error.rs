//! Error types of the library. `ErrorCode` is the public, stable list of codes
//! that `error` frames carry (docs/protocol.md lists them); the other types
//! describe start-up and storage failures and convert into codes at the edge.

use std::fmt;

/// Stable snake_case codes sent in `{"type":"error","code":...}` frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    MalformedJson,
    UnknownType,
    InvalidField,
    InvalidRoom,
    NotJoined,
    TooLarge,
    TooDeep,
    NotFound,
    Forbidden,
    Pending,
    RateLimited,
    TooManyRooms,
    UnsupportedFrame,
    DbUnavailable,
    Internal,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::MalformedJson => "malformed_json",
            ErrorCode::UnknownType => "unknown_type",
            ErrorCode::InvalidField => "invalid_field",
            ErrorCode::InvalidRoom => "invalid_room",
            ErrorCode::NotJoined => "not_joined",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::TooDeep => "too_deep",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::Pending => "pending",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::TooManyRooms => "too_many_rooms",
            ErrorCode::UnsupportedFrame => "unsupported_frame",
            ErrorCode::DbUnavailable => "db_unavailable",
            ErrorCode::Internal => "internal",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A request the gateway refuses: the code and a human-readable message.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Refusal {
    pub code: ErrorCode,
    pub message: String,
}

impl Refusal {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Refusal { code, message: message.into() }
    }
}

/// A configuration problem, always naming the key at fault.
#[derive(Debug, Clone, thiserror::Error)]
#[error("invalid configuration: {key}: {message}")]
pub struct ConfigError {
    pub key: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError { key: key.into(), message: message.into() }
    }
}

/// The first document an ordered insert refused, when that is how it failed.
pub(crate) fn first_refused(error: &mongodb::error::Error) -> Option<&mongodb::error::IndexedWriteError> {
    match &*error.kind {
        mongodb::error::ErrorKind::InsertMany(failure) => failure.write_errors.as_ref()?.iter().min_by_key(|e| e.index),
        _ => None,
    }
}

/// Failures of the storage layer. Clone: one failed group commit answers
/// every send in it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("message not found")]
    NotFound,
    #[error("only the author may change a message")]
    Forbidden,
    #[error("the original send with this client_id is not committed yet")]
    Pending,
    #[error("room {0} is too busy to take the send in time")]
    Busy(String),
    #[error("database unavailable: {0}")]
    Unavailable(#[source] mongodb::error::Error),
    #[error("database error: {0}")]
    Database(#[source] mongodb::error::Error),
    #[error("{0}")]
    Invalid(String),
}

impl StoreError {
    /// Sorts a driver error into "try again later" and everything else.
    pub fn from_driver(error: mongodb::error::Error) -> Self {
        use mongodb::error::{ErrorKind, WriteFailure};
        let server_code = match &*error.kind {
            ErrorKind::Command(e) => Some(e.code),
            ErrorKind::Write(WriteFailure::WriteError(e)) => Some(e.code),
            ErrorKind::InsertMany(_) => first_refused(&error).map(|e| e.code),
            _ => None,
        };
        let unavailable = server_code.is_some_and(|code| RETRYABLE_CODES.contains(&code))
            || matches!(
                *error.kind,
                ErrorKind::ServerSelection { .. } | ErrorKind::Io(_) | ErrorKind::ConnectionPoolCleared { .. }
            )
            || matches!(*error.kind, ErrorKind::Write(mongodb::error::WriteFailure::WriteConcernError(_)))
            || matches!(&*error.kind, ErrorKind::InsertMany(failure) if failure.write_concern_error.is_some())
            || error.contains_label("RetryableWriteError")
            || error.contains_label("TransientTransactionError");
        if unavailable {
            StoreError::Unavailable(error)
        } else {
            StoreError::Database(error)
        }
    }
}

/// Server errors that mean "not now": a server shutting down, starting up,
/// stepping down or unreachable (the codes of MongoDB's retryable-writes
/// specification). Nothing was written, or the write can be retried safely.
const RETRYABLE_CODES: [i32; 13] = [6, 7, 89, 91, 134, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436];

impl From<StoreError> for Refusal {
    fn from(error: StoreError) -> Self {
        let code = match &error {
            StoreError::NotFound => ErrorCode::NotFound,
            StoreError::Forbidden => ErrorCode::Forbidden,
            StoreError::Pending => ErrorCode::Pending,
            StoreError::Unavailable(_) | StoreError::Busy(_) => ErrorCode::DbUnavailable,
            StoreError::Invalid(_) => ErrorCode::InvalidField,
            StoreError::Database(_) => ErrorCode::Internal,
        };
        let message = match &error {
            StoreError::Unavailable(_) => "the database is unavailable; nothing was written, retry".to_string(),
            StoreError::Busy(room) => format!("room {room} is too busy; nothing was written, retry"),
            StoreError::Database(cause) => {
                tracing::error!(error = %cause, "database error answered as internal");
                "internal error".to_string()
            }
            other => other.to_string(),
        };
        Refusal::new(code, message)
    }
}

/// Failures while building the application.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot reach MongoDB: {0}")]
    Mongo(#[from] mongodb::error::Error),
    #[error("cannot bind the listener: {0}")]
    Bind(#[from] std::io::Error),
}
