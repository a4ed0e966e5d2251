//! The stable codes of the protocol: the `code` of every `error` frame
//! (`ErrorCode`, carried with its message in a `Refusal`) and the code of
//! every close the server initiates (`CloseReason`). docs/protocol.md lists
//! them all; clients program against these strings and numbers.

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

/// A request the server refuses: the code and a message for people, sent
/// back as an `error` frame.
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

/// Why the server closes a connection, with its WebSocket close code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    SlowConsumer,
    TokenExpired,
    IdleTimeout,
    GoingAway,
    TooBig,
    InvalidUtf8,
    ProtocolError,
}

impl CloseReason {
    pub fn code(self) -> u16 {
        match self {
            CloseReason::GoingAway => 1001,
            CloseReason::ProtocolError => 1002,
            CloseReason::InvalidUtf8 => 1007,
            CloseReason::TooBig => 1009,
            CloseReason::IdleTimeout => 4000,
            CloseReason::TokenExpired => 4001,
            CloseReason::SlowConsumer => 4008,
        }
    }

    /// The code as text, for a metric's label.
    pub fn code_text(self) -> &'static str {
        match self {
            CloseReason::GoingAway => "1001",
            CloseReason::ProtocolError => "1002",
            CloseReason::InvalidUtf8 => "1007",
            CloseReason::TooBig => "1009",
            CloseReason::IdleTimeout => "4000",
            CloseReason::TokenExpired => "4001",
            CloseReason::SlowConsumer => "4008",
        }
    }

    pub fn text(self) -> &'static str {
        match self {
            CloseReason::GoingAway => "going away",
            CloseReason::ProtocolError => "protocol error",
            CloseReason::InvalidUtf8 => "invalid utf-8",
            CloseReason::TooBig => "frame too large",
            CloseReason::IdleTimeout => "idle timeout",
            CloseReason::TokenExpired => "token expired",
            CloseReason::SlowConsumer => "slow consumer: send queue overflow",
        }
    }
}
