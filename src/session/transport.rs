//! What a session needs of the transport that carries it, and nothing
//! more: the client's frames, decoded (`ClientFrames`), and a way to write
//! ordered batches of server frames and to say goodbye (`FrameWriter`). The
//! WebSocket transport (`websocket`) implements both; the session (joins,
//! sends, replies, limits, budgets) would be the same over any other.

use std::future::Future;

use super::connection::Reservation;
use super::outbox::Batch;
use crate::protocol::CloseReason;

/// One message from the client, whole.
#[derive(Debug, PartialEq, Eq)]
pub enum Inbound {
    /// A client frame's JSON text.
    Text(String),
    /// A binary message: refused, the protocol is JSON text.
    Binary,
    /// A transport-level ping, to be answered with its payload.
    Ping(Vec<u8>),
    /// A transport-level pong: the client is alive.
    Pong,
    /// The client says goodbye.
    Close,
}

/// The client's messages, in order.
pub trait ClientFrames: Send {
    /// The next message; `None` once the client is gone, `Err` when what it
    /// sent breaks the transport's rules (the connection closes with that
    /// reason). Whatever the transport holds of messages not yet returned
    /// (a frame half read) is charged to `held`, grown before the bytes are
    /// taken in and shrunk once they are given out: a client that sends
    /// faster than its frames are answered waits for its own budget.
    fn next(&mut self, held: &mut Reservation) -> impl Future<Output = Option<Result<Inbound, CloseReason>>> + Send;
}

/// Why a batch was not written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteError {
    /// The client is gone.
    Gone,
    /// The client took no byte for `server.write_timeout`: it stopped reading.
    Stalled,
}

/// Where a session's frames go. Writing is split in two so that the usual
/// batch, which the network takes at once, costs no future at all: only a
/// batch that has to wait does (and the session boxes that wait, so its
/// state sits in no idle connection's task).
pub trait FrameWriter: Send {
    /// Starts writing the batch: its keep-alive if it asks for one, then its
    /// frames, in order, as far as the network takes them now. `Ok(true)`
    /// once every byte is written; `Ok(false)` when the rest waits for
    /// `finish` (the batch must not change meanwhile).
    fn write_now(&mut self, batch: &mut Batch) -> Result<bool, WriteError>;

    /// Writes the rest of the batch `write_now` began, waiting for the
    /// network to take it, a byte at least every `server.write_timeout`.
    fn finish(&mut self, batch: &mut Batch) -> impl Future<Output = Result<(), WriteError>> + Send;

    /// Ends the conversation: tells the client why (`None`: the client
    /// closed it), then stops writing.
    fn close(&mut self, reason: Option<CloseReason>) -> impl Future<Output = ()> + Send;
}
