//! roomcast: WebSocket rooms and user channels for chat frontends, relayed
//! only from MongoDB change streams. Clients' writes go to MongoDB; what they
//! receive comes from MongoDB's committed changes, one change stream per
//! route per process, fanned out in memory.

pub mod app;
pub mod auth;
pub mod error;
pub mod gateway;
pub mod health;
pub mod membership;
pub mod metrics;
pub mod recovery;
pub mod registry;
pub mod relay;
pub mod settings;
pub mod shutdown;
pub mod store;
pub mod telemetry;

pub use app::Application;
pub use settings::Settings;
