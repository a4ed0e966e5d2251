//! HTTP routes (warp filters) and the mapping of every rejection to a JSON
//! body, so a refused handshake always says why: `{"error":CODE,"message":TEXT}`.

use std::convert::Infallible;
use std::sync::Arc;

use serde_json::json;
use warp::http::StatusCode;
use warp::{Filter, Rejection, Reply};

use super::session::{self, Handshake};
use super::upgrade::{self, NotAnUpgrade, PeerAddr, Upgrade};
use super::Context;
use crate::auth::{AuthError, Credentials, SUBPROTOCOL};
use crate::health;

/// Every route the server answers.
pub fn routes(context: Arc<Context>) -> impl Filter<Extract = (impl Reply,), Error = Infallible> + Clone {
    let static_dir = context.server.static_dir.clone();
    let websocket = warp::path("ws")
        .and(warp::path::end())
        .and(warp::get())
        .and(with_handshake(context.clone()))
        .and(upgrade::websocket())
        .and(with_context(context.clone()))
        .map(upgrade);
    let healthz = warp::path("healthz").and(warp::path::end()).and(warp::get()).and(with_context(context.clone())).map(
        |context: Arc<Context>| {
            warp::reply::json(&json!({ "status": "ok", "connections": context.registry.connection_count() }))
        },
    );
    let readyz =
        warp::path("readyz").and(warp::path::end()).and(warp::get()).and(with_context(context.clone())).then(readyz);
    let metrics = warp::path("metrics").and(warp::path::end()).and(warp::get()).and(with_context(context)).map(
        |context: Arc<Context>| {
            warp::reply::with_header(context.metrics.render(), "content-type", "text/plain; version=0.0.4")
        },
    );
    let pages = warp::get().and(match static_dir {
        Some(dir) => warp::fs::dir(dir).boxed(),
        None => warp::any().and_then(|| async { Err::<warp::fs::File, _>(warp::reject::not_found()) }).boxed(),
    });
    websocket.or(healthz).or(readyz).or(metrics).or(pages).recover(rejection_to_json)
}

fn with_context(context: Arc<Context>) -> impl Filter<Extract = (Arc<Context>,), Error = Infallible> + Clone {
    warp::any().map(move || context.clone())
}

/// A handshake refused before the upgrade, with its HTTP status.
#[derive(Debug)]
struct Refused {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl warp::reject::Reject for Refused {}

fn refuse(status: StatusCode, code: &'static str, message: impl Into<String>) -> Rejection {
    ::metrics::counter!(crate::metrics::AUTH_FAILURES, "reason" => code).increment(1);
    warp::reject::custom(Refused { status, code, message: message.into() })
}

/// What the upgrade request says about its client.
struct Request {
    query: Vec<(String, String)>,
    authorization: Option<String>,
    protocols: Option<String>,
    origin: Option<String>,
    forwarded: Option<String>,
    peer: Option<std::net::SocketAddr>,
}

/// Checks a handshake before the upgrade, so every refusal is an HTTP status
/// with a JSON body: the address's handshake rate (429, first, so refused
/// handshakes count too), the origin (403), the credentials (401), then the
/// user's connection count (429).
fn with_handshake(context: Arc<Context>) -> impl Filter<Extract = (Handshake,), Error = Rejection> + Clone {
    let forwarded_header = context.server.client_ip_header.clone();
    warp::query::<Vec<(String, String)>>()
        .and(warp::header::optional::<String>("authorization"))
        .and(warp::header::optional::<String>("sec-websocket-protocol"))
        .and(warp::header::optional::<String>("origin"))
        .and(warp::header::headers_cloned())
        .and(warp::ext::optional::<PeerAddr>())
        .map(move |query, authorization, protocols, origin, headers: warp::http::HeaderMap, peer: Option<PeerAddr>| {
            let forwarded = forwarded_header
                .as_ref()
                .and_then(|name| headers.get(name.as_str()))
                .and_then(|value| value.to_str().ok())
                .map(str::to_string);
            Request { query, authorization, protocols, origin, forwarded, peer: peer.map(|p| p.0) }
        })
        .and_then(move |request: Request| {
            let result = check_handshake(&context, request);
            async move { result }
        })
}

fn check_handshake(context: &Context, request: Request) -> Result<Handshake, Rejection> {
    let address = request
        .forwarded
        .as_deref()
        .and_then(|value| value.split(',').next())
        .and_then(|first| first.trim().parse().ok())
        .or(request.peer.map(|peer| peer.ip()));
    if let Some(address) = address {
        if context.handshakes.check_key(&address).is_err() {
            return Err(refuse(StatusCode::TOO_MANY_REQUESTS, "rate_limited", "too many handshakes from this address"));
        }
    }
    let allowed = &context.server.allowed_origins;
    if let Some(origin) = &request.origin {
        if !allowed.is_empty() && !allowed.iter().any(|a| a == origin) {
            return Err(refuse(StatusCode::FORBIDDEN, "origin_not_allowed", "this Origin may not connect"));
        }
    }
    let param = |name: &str| request.query.iter().find(|(key, _)| key == name).map(|(_, v)| v.clone());
    let credentials = Credentials {
        header_token: request.authorization.as_deref().and_then(|h| h.strip_prefix("Bearer ")).map(str::to_string),
        protocol_token: request.protocols.as_deref().and_then(Credentials::token_from_protocols),
        query_token: param("token"),
        query_user: param("user"),
    };
    let identity = context.authenticator.authenticate(&credentials).map_err(|error| {
        ::metrics::counter!(crate::metrics::AUTH_FAILURES, "reason" => error.reason()).increment(1);
        warp::reject::custom(error)
    })?;
    if context.registry.user_connection_count(&identity.user) >= context.limits.max_connections_per_user {
        return Err(refuse(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_connections",
            "this user has too many connections",
        ));
    }
    let cursors = request.query.into_iter().filter(|(key, _)| key == "since_cursor").map(|(_, v)| v).collect();
    let subprotocol = request.protocols.as_deref().is_some_and(Credentials::offers_subprotocol);
    Ok(Handshake { identity, cursors, subprotocol })
}

/// How long `/readyz` waits for MongoDB to answer a ping.
const PING_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

async fn readyz(context: Arc<Context>) -> impl Reply {
    let ping = context.store.database().run_command(bson::doc! { "ping": 1 });
    let mongo_answers = matches!(tokio::time::timeout(PING_TIMEOUT, ping).await, Ok(Ok(_)));
    let (ready, body) = health::readiness(health::Checks {
        shutting_down: context.shutdown.is_cancelled(),
        mongo_answers,
        routes: &context.routes,
        max_lag: context.server.ready_max_lag,
    });
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    warp::reply::with_status(warp::reply::json(&body), status)
}

fn upgrade(handshake: Handshake, upgrade: Upgrade, context: Arc<Context>) -> impl Reply {
    // A browser that offered `roomcast.v1` fails the handshake unless it is answered.
    let protocol = handshake.subprotocol.then_some(SUBPROTOCOL);
    let config = session::socket_config(&context.limits);
    upgrade.accept(config, protocol, move |socket| {
        let tracker = context.sessions.clone();
        tracker.track_future(session::serve(socket, context, handshake))
    })
}

async fn rejection_to_json(rejection: Rejection) -> Result<impl Reply, Infallible> {
    let (status, code, message) = if let Some(error) = rejection.find::<AuthError>() {
        (StatusCode::UNAUTHORIZED, "unauthorized", error.to_string())
    } else if let Some(refused) = rejection.find::<Refused>() {
        (refused.status, refused.code, refused.message.clone())
    } else if rejection.is_not_found() {
        (StatusCode::NOT_FOUND, "not_found", "no such route".to_string())
    } else if let Some(NotAnUpgrade(why)) = rejection.find::<NotAnUpgrade>() {
        (StatusCode::UPGRADE_REQUIRED, "upgrade_required", why.to_string())
    } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "method not allowed".to_string())
    } else if rejection.find::<warp::reject::InvalidQuery>().is_some() {
        (StatusCode::BAD_REQUEST, "invalid_query", "the query string cannot be decoded".to_string())
    } else {
        (StatusCode::BAD_REQUEST, "bad_request", format!("{rejection:?}"))
    };
    let body = warp::reply::json(&json!({ "error": code, "message": message }));
    Ok(warp::reply::with_status(body, status))
}
