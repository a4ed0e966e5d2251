//! Who is on the other end of a connection. With `auth.mode: none` (local use
//! only) the user id is the `user` query parameter of the upgrade request; it
//! is checked like a room name so it can never act as a query operator.

use crate::settings::{AuthMode, AuthSettings};

#[derive(Debug, Clone, thiserror::Error)]
pub enum AuthError {
    #[error("the `user` query parameter is required")]
    MissingUser,
    #[error("user ids are 1 to 128 characters of A-Z a-z 0-9 . _ : @ -")]
    InvalidUser,
}

impl warp::reject::Reject for AuthError {}

/// Identifies the user of an upgrade request, before the upgrade.
pub fn authenticate(settings: &AuthSettings, query: &[(String, String)]) -> Result<String, AuthError> {
    match settings.mode {
        AuthMode::None => {
            let user = query.iter().find(|(key, _)| key == "user").map(|(_, v)| v).ok_or(AuthError::MissingUser)?;
            if valid_user(user) {
                Ok(user.clone())
            } else {
                Err(AuthError::InvalidUser)
            }
        }
    }
}

fn valid_user(user: &str) -> bool {
    (1..=128).contains(&user.len())
        && user.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'@' | b'-'))
}
