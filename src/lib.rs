//! roomcast: WebSocket rooms and user channels for chat frontends, relayed
//! only from MongoDB change streams. Clients' writes go to MongoDB; what they
//! receive comes from MongoDB's committed changes, one change stream per
//! route per process, fanned out in memory.
//!
//! The event path: `relay` (change stream, event, dispatch) → `protocol`
//! (one shared frame) → `fanout` (registry, listeners) → `session`
//! (connection queue, outbox, writer) → `websocket` (socket) or `sse`
//! (event stream). The send path: `websocket` or `sse` (POSTs) → `session`
//! (reader, validated by `protocol`) → `store` (group commit) → `session`
//! (ack). `http` serves the public port and opens sessions.

pub mod app;
pub mod auth;
pub mod collections;
pub mod fanout;
pub mod health;
pub mod http;
pub mod membership;
pub mod presence;
pub mod prometheus;
pub mod protocol;
pub mod recovery;
pub mod relay;
pub mod session;
pub mod settings;
pub mod shutdown;
pub mod sse;
pub mod store;
pub mod telemetry;
pub mod websocket;

pub use app::Application;
pub use settings::Settings;
