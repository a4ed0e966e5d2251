//! The checks a WebSocket handshake passes before the upgrade, so every
//! refusal is an HTTP status with a JSON body: the address's handshake rate
//! (429, first, so refused handshakes count too), the origin (403), the
//! credentials (401), the user's connection count (429), then the replica's
//! (503).

use std::sync::Arc;

use warp::http::StatusCode;
use warp::{Filter, Rejection};

use super::client_addr::limit_key;
use super::server::PeerAddr;
use super::Gate;
use crate::auth::{Credentials, Identity};
use crate::prometheus;
use crate::session::Opening;

/// Who connected, and what they ask to recover, from the upgrade request.
pub struct Handshake {
    /// What the session starts from (boxed: it is moved into every
    /// connection's task, where it should take little room).
    pub opening: Box<Opening>,
    /// Whether the client offered the `roomcast.v1` subprotocol.
    pub subprotocol: bool,
}

/// An HTTP request refused with a status and a JSON body `{"error":CODE,"message":TEXT}`.
#[derive(Debug)]
pub struct HttpRefusal {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl warp::reject::Reject for HttpRefusal {}

/// Refuses a handshake, counting it by reason.
pub fn refuse(status: StatusCode, code: &'static str, reason: &'static str, message: impl Into<String>) -> Rejection {
    ::metrics::counter!(prometheus::AUTH_FAILURES, "reason" => reason).increment(1);
    warp::reject::custom(HttpRefusal { status, code, message: message.into() })
}

/// What a request says about its client: the upgrade of `/ws`, or a
/// request of the HTTP API, which identifies its caller the same way.
pub struct ClientRequest {
    query: Vec<(String, String)>,
    authorization: Option<String>,
    protocols: Option<String>,
    origin: Option<String>,
    forwarded: Option<String>,
    peer: Option<std::net::SocketAddr>,
}

/// Extracts the handshake of a `/ws` request, or refuses it.
pub fn with_handshake(gate: Arc<Gate>) -> impl Filter<Extract = (Handshake,), Error = Rejection> + Clone {
    with_client_request(gate.clone()).and_then(move |request: ClientRequest| {
        let result = check(&gate, request);
        async move { result }
    })
}

/// What a request says about its client.
pub fn with_client_request(gate: Arc<Gate>) -> impl Filter<Extract = (ClientRequest,), Error = Rejection> + Clone {
    let forwarded_header = gate.sessions.server.client_ip_header.clone();
    warp::query::<Vec<(String, String)>>()
        .and(warp::header::optional::<String>("authorization"))
        .and(warp::header::optional::<String>("sec-websocket-protocol"))
        .and(warp::header::optional::<String>("origin"))
        .and(warp::header::headers_cloned())
        .and(warp::ext::optional::<PeerAddr>())
        .map(move |query, authorization, protocols, origin, headers: warp::http::HeaderMap, peer: Option<PeerAddr>| {
            // Every line of the header, in order: a proxy may add a line of its
            // own instead of appending to the client's, and its entries come last.
            let forwarded = forwarded_header.as_ref().map(|name| {
                let lines = headers.get_all(name.as_str()).iter();
                lines.map(|value| String::from_utf8_lossy(value.as_bytes())).collect::<Vec<_>>().join(",")
            });
            ClientRequest { query, authorization, protocols, origin, forwarded, peer: peer.map(|p| p.0) }
        })
}

/// The checks of a handshake, in order; the opening it starts from.
pub fn check(gate: &Gate, request: ClientRequest) -> Result<Handshake, Rejection> {
    let identity = identify(gate, &request)?;
    let context = &gate.sessions;
    if context.registry.user_connection_count(&identity.user) >= context.limits.max_connections_per_user {
        let message = "this user has too many connections";
        return Err(refuse(StatusCode::TOO_MANY_REQUESTS, "too_many_connections", "too_many_connections", message));
    }
    let Some(slot) = context.slots.take() else {
        let message =
            format!("this server holds its maximum of {} connections; try again", context.limits.max_connections);
        return Err(refuse(StatusCode::SERVICE_UNAVAILABLE, "server_full", "server_full", message));
    };
    let cursors = request.query.into_iter().filter(|(key, _)| key == "since_cursor").map(|(_, v)| v).collect();
    let subprotocol = request.protocols.as_deref().is_some_and(Credentials::offers_subprotocol);
    Ok(Handshake { opening: Box::new(Opening { identity, cursors, slot }), subprotocol })
}

/// Who the caller is: the address's handshake rate (429, first, so refused
/// requests count too), the origin (403), then the credentials (401).
pub fn identify(gate: &Gate, request: &ClientRequest) -> Result<Identity, Rejection> {
    let client = request.peer.map(|peer| gate.trusted_proxies.client(peer.ip(), request.forwarded.as_deref()));
    if let Some(client) = client {
        if gate.handshakes.check_key(&limit_key(client)).is_err() {
            let message = "too many handshakes from this address";
            return Err(refuse(StatusCode::TOO_MANY_REQUESTS, "rate_limited", "rate_limited", message));
        }
    }
    check_origin(gate, request)?;
    gate.authenticator
        .authenticate(&request.credentials())
        .map_err(|error| refuse(StatusCode::UNAUTHORIZED, "unauthorized", error.reason(), error.to_string()))
}

/// The origin check of `server.allowed_origins` (403).
pub fn check_origin(gate: &Gate, request: &ClientRequest) -> Result<(), Rejection> {
    let allowed = &gate.sessions.server.allowed_origins;
    if let Some(origin) = &request.origin {
        if !allowed.is_empty() && !allowed.iter().any(|a| a == origin) {
            let message = "this Origin may not connect";
            return Err(refuse(StatusCode::FORBIDDEN, "origin_not_allowed", "origin_not_allowed", message));
        }
    }
    Ok(())
}

impl ClientRequest {
    /// Whatever the request presents to prove who it is.
    pub fn credentials(&self) -> Credentials {
        let param = |name: &str| self.param(name).map(str::to_string);
        Credentials {
            header_token: self.authorization.as_deref().and_then(|h| h.strip_prefix("Bearer ")).map(str::to_string),
            protocol_token: self.protocols.as_deref().and_then(Credentials::token_from_protocols),
            query_token: param("token"),
            query_user: param("user"),
        }
    }

    /// A query parameter's value.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
    }
}
