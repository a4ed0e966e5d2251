//! HTTP routes (warp filters) and the mapping of every rejection to a JSON
//! body, so a refused handshake always says why: `{"error":CODE,"message":TEXT}`.

use std::convert::Infallible;
use std::sync::Arc;

use serde_json::json;
use warp::http::StatusCode;
use warp::{Filter, Rejection, Reply};

use super::handshake::{with_handshake, Handshake, HttpRefusal};
use super::Gate;
use crate::auth::SUBPROTOCOL;
use crate::health;
use crate::websocket::upgrade::{self, NotAnUpgrade, Upgrade};

/// Every HTTP endpoint the public port answers, as docs/protocol.md's input
/// table names them: a test holds the table to this list, and the list to
/// the routes below.
pub const ENDPOINTS: [&str; 8] = [
    "GET /ws",
    "GET /sse",
    "POST /sse/{session}",
    "GET /v1/rooms/{room}/messages",
    "GET /healthz",
    "GET /readyz",
    "GET /metrics",
    "GET /{file}",
];

/// Every route the server answers.
pub fn routes(gate: Arc<Gate>) -> impl Filter<Extract = (impl Reply,), Error = Infallible> + Clone {
    let context = gate.clone();
    let static_dir = context.sessions.server.static_dir.clone();
    let websocket = warp::path("ws")
        .and(warp::path::end())
        .and(warp::get())
        .and(with_handshake(gate.clone()))
        .and(upgrade::websocket())
        .and(with_context(gate.clone()))
        .map(upgrade);
    let healthz = warp::path("healthz").and(warp::path::end()).and(warp::get()).and(with_context(context.clone())).map(
        |gate: Arc<Gate>| {
            warp::reply::json(&json!({ "status": "ok", "connections": gate.sessions.registry.connection_count() }))
        },
    );
    let readyz =
        warp::path("readyz").and(warp::path::end()).and(warp::get()).and(with_context(context.clone())).then(readyz);
    // With a metrics port of its own, the main port does not serve /metrics.
    let here = context.sessions.server.metrics_port.is_none();
    let metrics = warp::any()
        .and_then(move || async move {
            if here {
                Ok(())
            } else {
                Err(warp::reject::not_found())
            }
        })
        .untuple_one()
        .and(metrics(context));
    let pages = warp::get().and(match static_dir {
        Some(dir) => warp::fs::dir(dir).boxed(),
        None => warp::any().and_then(|| async { Err::<warp::fs::File, _>(warp::reject::not_found()) }).boxed(),
    });
    let history = super::history::route(gate.clone());
    let sse = super::sse::routes(gate);
    websocket.or(sse).or(history).or(healthz).or(readyz).or(metrics).or(pages).recover(rejection_to_json)
}

/// `GET /metrics` alone, for `server.metrics_port`.
pub fn metrics_routes(gate: Arc<Gate>) -> impl Filter<Extract = (impl Reply,), Error = Infallible> + Clone {
    metrics(gate).recover(rejection_to_json)
}

fn metrics(gate: Arc<Gate>) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    warp::path("metrics").and(warp::path::end()).and(warp::get()).and(with_context(gate)).map(|gate: Arc<Gate>| {
        let context = &gate.sessions;
        ::metrics::gauge!(crate::prometheus::BUFFERED_BYTES).set(context.registry.held_bytes() as f64);
        ::metrics::gauge!(crate::prometheus::BUFFER_POOL_BYTES).set(context.pool.used() as f64);
        if let Some(bytes) = crate::prometheus::resident_memory() {
            ::metrics::gauge!(crate::prometheus::RESIDENT_MEMORY).set(bytes as f64);
        }
        warp::reply::with_header(gate.metrics.render(), "content-type", "text/plain; version=0.0.4")
    })
}

fn with_context(gate: Arc<Gate>) -> impl Filter<Extract = (Arc<Gate>,), Error = Infallible> + Clone {
    warp::any().map(move || gate.clone())
}

/// How long `/readyz` waits for MongoDB to answer a ping.
const PING_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

async fn readyz(gate: Arc<Gate>) -> impl Reply {
    let context = &gate.sessions;
    let ping = context.store.background().run_command(bson::doc! { "ping": 1 });
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

fn upgrade(handshake: Handshake, upgrade: Upgrade, gate: Arc<Gate>) -> impl Reply {
    // A browser that offered `roomcast.v1` fails the handshake unless it is answered.
    let protocol = handshake.subprotocol.then_some(SUBPROTOCOL);
    let context = gate.sessions.clone();
    upgrade.accept(protocol, move |socket, read_ahead| {
        let tracker = context.sessions.clone();
        tracker.track_future(crate::websocket::serve(socket, read_ahead, context, handshake.opening))
    })
}

async fn rejection_to_json(rejection: Rejection) -> Result<impl Reply, Infallible> {
    let (status, code, message) = if let Some(refused) = rejection.find::<HttpRefusal>() {
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
