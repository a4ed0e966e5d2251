//! roomcast: WebSocket rooms and user channels for chat frontends, relayed
//! only from MongoDB change streams. Clients' writes go to MongoDB; what they
//! receive comes from MongoDB's committed changes, one change stream per
//! route per process, fanned out in memory.
//!
//! The event path: `relay` (change stream, dispatch) → `protocol` (one
//! shared frame) → `fanout` (registry, per-connection queue) → `gateway`
//! (writer, socket). The send path: `gateway` (reader) → `protocol`
//! (validation) → `store` (group commit) → `gateway` (ack).

pub mod app;
pub mod auth;
pub mod collections;
pub mod fanout;
pub mod gateway;
pub mod health;
pub mod membership;
pub mod presence;
pub mod prometheus;
pub mod protocol;
pub mod recovery;
pub mod relay;
pub mod settings;
pub mod shutdown;
pub mod store;
pub mod telemetry;

pub use app::Application;
pub use settings::Settings;
