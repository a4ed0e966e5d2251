//! HTTP routes (warp filters) and the mapping of every rejection to a JSON
//! body, so a refused handshake always says why: `{"error":CODE,"message":TEXT}`.

use std::convert::Infallible;
use std::sync::Arc;

use serde_json::json;
use warp::http::StatusCode;
use warp::{Filter, Rejection, Reply};

use super::session::{self, Handshake};
use super::Context;
use crate::auth::{authenticate, AuthError};
use crate::health;

/// Every route the server answers.
pub fn routes(context: Arc<Context>) -> impl Filter<Extract = (impl Reply,), Error = Infallible> + Clone {
    let websocket = warp::path("ws")
        .and(warp::path::end())
        .and(warp::get())
        .and(with_handshake(context.clone()))
        .and(warp::ws())
        .and(with_context(context.clone()))
        .map(upgrade);
    let healthz = warp::path("healthz").and(warp::path::end()).and(warp::get()).and(with_context(context.clone())).map(
        |context: Arc<Context>| {
            warp::reply::json(&json!({ "status": "ok", "connections": context.registry.connection_count() }))
        },
    );
    let readyz = warp::path("readyz").and(warp::path::end()).and(warp::get()).and(with_context(context)).map(readyz);
    websocket.or(healthz).or(readyz).recover(rejection_to_json)
}

fn with_context(context: Arc<Context>) -> impl Filter<Extract = (Arc<Context>,), Error = Infallible> + Clone {
    warp::any().map(move || context.clone())
}

/// Authenticates before the upgrade, so a refused client gets an HTTP status,
/// and collects the `since_cursor` parameters (one per user route).
fn with_handshake(context: Arc<Context>) -> impl Filter<Extract = (Handshake,), Error = Rejection> + Clone {
    warp::query::<Vec<(String, String)>>().and_then(move |query: Vec<(String, String)>| {
        let result = authenticate(&context.auth, &query)
            .map(|user| {
                let cursors = query.into_iter().filter(|(key, _)| key == "since_cursor").map(|(_, v)| v).collect();
                Handshake { user, cursors }
            })
            .map_err(warp::reject::custom);
        async move { result }
    })
}

fn readyz(context: Arc<Context>) -> impl Reply {
    let (ready, body) = health::readiness(&context.routes);
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    warp::reply::with_status(warp::reply::json(&body), status)
}

fn upgrade(handshake: Handshake, ws: warp::ws::Ws, context: Arc<Context>) -> impl Reply {
    let limit = context.limits.max_frame_bytes;
    ws.max_message_size(limit).max_frame_size(limit).on_upgrade(move |socket| {
        let tracker = context.sessions.clone();
        tracker.track_future(session::serve(socket, context, handshake))
    })
}

async fn rejection_to_json(rejection: Rejection) -> Result<impl Reply, Infallible> {
    let (status, code, message) = if let Some(error) = rejection.find::<AuthError>() {
        (StatusCode::UNAUTHORIZED, "unauthorized", error.to_string())
    } else if rejection.is_not_found() {
        (StatusCode::NOT_FOUND, "not_found", "no such route".to_string())
    } else if rejection.find::<warp::ws::MissingConnectionUpgrade>().is_some() {
        (StatusCode::UPGRADE_REQUIRED, "upgrade_required", "GET /ws must be a WebSocket upgrade".to_string())
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
