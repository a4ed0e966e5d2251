//! The refusals a session builds itself, and how a storage failure is
//! told to a client: the code it maps to, and a message that never leaks
//! database internals.

use crate::protocol::{ErrorCode, Refusal};
use crate::store::StoreError;

pub(super) fn rate_limited(what: &str) -> Refusal {
    Refusal::new(ErrorCode::RateLimited, format!("too many {what}; slow down"))
}

pub(super) fn not_joined(message: &str) -> Refusal {
    Refusal::new(ErrorCode::NotJoined, message)
}

pub(super) fn forbidden_room(room: &str) -> Refusal {
    Refusal::new(ErrorCode::Forbidden, format!("you may not join room {room}"))
}

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
