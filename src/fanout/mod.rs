//! In-memory fan-out. The relay hands each event here once, already encoded
//! (`events`); the registry (`registry`) finds who listens to its room or
//! user and hands each listener (`listener`: a connection, as the fan-out
//! sees it) a clone of the same frame without waiting. A listener takes it
//! within its byte budget (`budget`) or closes, so a slow connection only
//! ever overflows its own queue and the bytes all connections hold stay
//! bounded.

mod budget;
mod changed;
mod events;
mod listener;
mod registry;

pub use budget::{Budget, Loan, Pool, Share};
pub use changed::ChangedPresence;
pub use events::{Change, Delivery, RoomEvent, UserEvent};
pub use listener::{JoinedRooms, Listener};
pub use registry::{Registry, Subscribed};
