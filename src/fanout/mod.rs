//! In-memory fan-out. The relay hands each event here once, already encoded
//! (`events`); the registry (`registry`) finds who listens to its room or
//! user, and each listener's connection (`connection`) queues a clone of the
//! same frame without waiting, bounded in frames and by the connection's
//! byte budget (`budget`), so a slow connection only ever overflows its own
//! queue and the bytes all connections hold stay bounded.

mod budget;
mod changed;
mod connection;
mod events;
mod registry;

pub use budget::{Budget, Loan, Pool, Share};
pub use changed::ChangedPresence;
pub use connection::{Connection, Outbound, Reservation};
pub use events::{Change, RoomEvent, UserEvent};
pub use registry::Registry;
