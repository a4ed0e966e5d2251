//! `GET /v1/rooms/{room}/messages`: a room's history over plain HTTP, for
//! server-side rendering and mobile cold starts. The caller is identified
//! as a `/ws` handshake is, the room policy decides as for a join, and the
//! page is the `history` frame's.

use std::sync::Arc;

use warp::http::StatusCode;
use warp::{Filter, Rejection, Reply};

use super::handshake::{identify, with_client_request, ClientRequest, HttpRefusal};
use super::held::HeldUntilSent;
use super::Gate;
use crate::fanout::Loan;
use crate::protocol::{self, valid_room, ErrorCode, Refusal};
use crate::session::pages::{self, Page};
use crate::session::policy::admit;
use crate::session::Bucket;

/// The route.
pub fn route(gate: Arc<Gate>) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    warp::path!("v1" / "rooms" / String / "messages")
        .and(warp::get())
        .and(with_client_request(gate.clone()))
        .and(warp::any().map(move || gate.clone()))
        .and_then(answer)
}

async fn answer(room: String, request: ClientRequest, gate: Arc<Gate>) -> Result<impl Reply, Rejection> {
    let identity = identify(&gate, &request)?;
    let context = &gate.sessions;
    let refused = |refusal: Refusal| warp::reject::custom(http_refusal(refusal));
    context.buckets.take(Bucket::Joins, &identity, "history requests").map_err(refused)?;
    if !valid_room(&room) {
        let message = "room names are 1 to 128 characters of A-Z a-z 0-9 . _ : -";
        return Err(refused(Refusal::new(ErrorCode::InvalidRoom, message)));
    }
    let before = positive(&request, "before").map_err(refused)?;
    let limit = positive(&request, "limit").map_err(refused)?;
    admit(context, &identity, &room).await.map_err(refused)?;
    // The page is charged to the user's share of the pool as it is read,
    // and stays charged until its last byte is written: a client that
    // reads answers slowly, or not at all, holds only its own share.
    let mut loan = Loan::new(context.pool.share(&identity.user));
    let take = |bytes| loan.try_grow(bytes);
    let Page { frames, more } = pages::history(context, &room, before, limit, take).await.map_err(refused)?;
    let body = protocol::history_body(&room, &frames, more);
    drop(frames);
    let mut response = warp::http::Response::new(body.into_bytes());
    response.headers_mut().insert("content-type", warp::http::HeaderValue::from_static("application/json"));
    response.extensions_mut().insert(HeldUntilSent::new(loan));
    Ok(response)
}

/// A query parameter that must be an integer of at least 1, when present.
fn positive(request: &ClientRequest, name: &str) -> Result<Option<i64>, Refusal> {
    match request.param(name) {
        None => Ok(None),
        Some(text) => match text.parse::<i64>() {
            Ok(value) if value >= 1 => Ok(Some(value)),
            _ => Err(Refusal::new(ErrorCode::InvalidField, format!("`{name}` must be an integer of at least 1"))),
        },
    }
}

/// The HTTP answer to a refusal.
fn http_refusal(refusal: Refusal) -> HttpRefusal {
    let status = match refusal.code {
        ErrorCode::Forbidden => StatusCode::FORBIDDEN,
        ErrorCode::InvalidRoom | ErrorCode::InvalidField => StatusCode::BAD_REQUEST,
        ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::DbUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    HttpRefusal { status, code: refusal.code.as_str(), message: refusal.message }
}
