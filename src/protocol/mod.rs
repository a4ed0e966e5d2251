//! Protocol v1, with no I/O: what clients send (`client`, with message bodies
//! in `body`), what the server sends (`server`, each frame encoded once into a
//! shared `Frame`), messages as frames show them (`message`), and the stable
//! error and close codes (`codes`), and the WebSocket wire format
//! (`websocket`). docs/protocol.md is the reference; the sessions, the HTTP
//! answers and the relay all speak through here.

mod body;
mod client;
mod codes;
mod frame;
mod message;
mod server;
pub mod websocket;

pub use body::{body_to_bson, BodyLimits};
pub use client::{
    decode, is_plain_name, reference, valid_room, ClientFrame, Undecodable, FRAME_TYPES as CLIENT_FRAME_TYPES,
    MAX_ID_LEN,
};
pub use codes::{CloseReason, ErrorCode, Refusal};
pub use frame::Frame;
pub use message::{as_i64, Ack, MessageDoc};
pub use server::{
    ack, error, history, history_body, message, notification, notification_stub, notifications_page, resync, rooms,
    RoomEntry, ServerFrame,
};
