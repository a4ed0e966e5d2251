//! Presence across replicas, kept in MongoDB. Each replica writes who has a
//! connection in which room (`keeper`), and follows what every replica
//! wrote through one change stream to tell its local members who joined
//! and who left (`tracker`). Nothing is shared but the database.

mod keeper;
mod tracker;

pub use keeper::{load, Keeper, Timing};
pub use tracker::{Begin, PresenceChange, Tracker};
