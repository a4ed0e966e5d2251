//! In-memory fan-out. The relay hands each event here once, already encoded
//! (`events`); the registry (`registry`) finds who listens to its room or
//! user, and each listener's connection (`connection`) queues a clone of the
//! same frame without waiting, bounded in frames and bytes, so a slow
//! connection only ever overflows its own queue.

mod connection;
mod events;
mod registry;

pub use connection::{Connection, Outbound};
pub use events::{Change, RoomEvent, UserEvent};
pub use registry::Registry;
