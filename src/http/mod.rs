//! The HTTP side of the public port. The server (`server`) accepts
//! connections, bounds their HTTP phase (`deadline`, `connections` per
//! address, answers `held` until sent) and runs the routes (`routes`).
//! Every request that names a user is identified the same way
//! (`handshake`, which knows the client by the rule of `client_addr`):
//! `/ws` hands the socket to the WebSocket transport, `/sse` and its POSTs
//! carry a session over the SSE transport (`sse`), and
//! `GET /v1/rooms/{room}/messages` answers a page of `history`.

mod client_addr;
mod connections;
mod deadline;
mod handshake;
mod held;
mod history;
pub mod routes;
pub mod server;
mod sse;

use std::sync::Arc;

use self::client_addr::TrustedProxies;
use self::connections::HttpConnections;
use crate::auth::Authenticator;
use crate::session::{quota, Context};
use crate::settings::{ConfigError, Settings};

/// Handshakes allowed per client address (an IPv6 client's /64).
pub type HandshakeLimiter = governor::DefaultKeyedRateLimiter<std::net::IpAddr>;

/// What every request passes through before it reaches a session or a
/// page: who the client is, and how much its address may ask.
pub struct Gate {
    /// What the sessions share.
    pub sessions: Arc<Context>,
    pub authenticator: Authenticator,
    pub handshakes: HandshakeLimiter,
    /// Whose forwarding header names the client (`server.trusted_proxies`).
    pub trusted_proxies: TrustedProxies,
    /// The connections not upgraded yet, per address.
    pub connections: Arc<HttpConnections>,
    /// The open SSE streams, by session id.
    pub streams: Arc<crate::sse::Streams>,
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
}

impl Gate {
    pub fn new(sessions: Arc<Context>, settings: &Settings, authenticator: Authenticator) -> Result<Self, ConfigError> {
        let limits = &settings.limits;
        let trusted_proxies = TrustedProxies::new(settings.server.trusted_networks()?);
        Ok(Gate {
            sessions,
            authenticator,
            handshakes: governor::RateLimiter::keyed(quota(
                limits.handshakes_per_second_per_ip,
                limits.handshake_burst_per_ip,
            )),
            connections: HttpConnections::new(limits.http_connections_per_ip, trusted_proxies.clone()),
            trusted_proxies,
            streams: crate::sse::Streams::new(limits.max_sse_streams),
            metrics: crate::prometheus::install(),
        })
    }
}
