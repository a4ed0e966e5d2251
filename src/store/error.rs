//! Failures of the storage layer, and how driver errors are sorted: "not
//! now" (the database is unavailable; nothing was written, or retrying is
//! safe) against everything else, and which document an ordered insert
//! refused, and why.

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

/// Server errors that mean "not now": a server shutting down, starting up,
/// stepping down or unreachable (the codes of MongoDB's retryable-writes
/// specification). Nothing was written, or the write can be retried safely.
const RETRYABLE_CODES: [i32; 13] = [6, 7, 89, 91, 134, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436];

/// A unique index refused the write.
const DUPLICATE_KEY: i32 = 11000;

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
            || matches!(*error.kind, ErrorKind::Write(WriteFailure::WriteConcernError(_)))
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

/// The first document an ordered insert refused, when that is how it failed.
pub(super) fn first_refused(error: &mongodb::error::Error) -> Option<&mongodb::error::IndexedWriteError> {
    match &*error.kind {
        mongodb::error::ErrorKind::InsertMany(failure) => failure.write_errors.as_ref()?.iter().min_by_key(|e| e.index),
        _ => None,
    }
}

/// Whether an unordered insert failed only because documents were already
/// there (and wrote every other one).
pub(super) fn only_duplicates(error: &mongodb::error::Error) -> bool {
    match &*error.kind {
        mongodb::error::ErrorKind::InsertMany(failure) => {
            failure.write_concern_error.is_none()
                && failure.write_errors.as_ref().is_some_and(|errors| errors.iter().all(|e| e.code == DUPLICATE_KEY))
        }
        _ => duplicate_index(error).is_some(),
    }
}

/// The name of the unique index a write collided with, if that is what failed.
pub(super) fn duplicate_index(error: &mongodb::error::Error) -> Option<String> {
    use mongodb::error::{ErrorKind, WriteFailure};
    let message = match &*error.kind {
        ErrorKind::Write(WriteFailure::WriteError(e)) if e.code == DUPLICATE_KEY => &e.message,
        ErrorKind::Command(e) if e.code == DUPLICATE_KEY => &e.message,
        // An ordered insert reports the one document it stopped at.
        ErrorKind::InsertMany(_) => match first_refused(error)? {
            first if first.code == DUPLICATE_KEY => &first.message,
            _ => return None,
        },
        _ => return None,
    };
    let name = message.split("index: ").nth(1)?.split_whitespace().next()?;
    Some(name.to_string())
}
