//! `GET /v1/rooms/{room}/messages`: a room's history over plain HTTP, for
//! server-side rendering and mobile cold starts. The caller is identified
//! as a `/ws` handshake is, the room policy decides as for a join, and the
//! page is the `history` frame's.

use std::sync::Arc;

use warp::http::StatusCode;
use warp::{Filter, Rejection, Reply};

use super::handshake::{identify, with_client_request, ClientRequest, HttpRefusal};
use super::pages::{self, Page};
use super::policy::admit;
use super::Context;
use crate::protocol::{self, valid_room, ErrorCode, Refusal};

/// The route.
pub fn route(context: Arc<Context>) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    warp::path!("v1" / "rooms" / String / "messages")
        .and(warp::get())
        .and(with_client_request(context.clone()))
        .and(warp::any().map(move || context.clone()))
        .and_then(answer)
}

async fn answer(room: String, request: ClientRequest, context: Arc<Context>) -> Result<impl Reply, Rejection> {
    let identity = identify(&context, &request)?;
    let refused = |refusal: Refusal| warp::reject::custom(http_refusal(refusal));
    if !valid_room(&room) {
        let message = "room names are 1 to 128 characters of A-Z a-z 0-9 . _ : -";
        return Err(refused(Refusal::new(ErrorCode::InvalidRoom, message)));
    }
    let before = positive(&request, "before").map_err(refused)?;
    let limit = positive(&request, "limit").map_err(refused)?;
    admit(&context, &identity, &room).await.map_err(refused)?;
    let Page { frames, more } = pages::history(&context, &room, before, limit, |_| true).await.map_err(refused)?;
    let body = protocol::history_body(&room, &frames, more);
    Ok(warp::reply::with_header(body.text().to_string(), "content-type", "application/json"))
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
