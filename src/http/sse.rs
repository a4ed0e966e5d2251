//! The two endpoints of the SSE transport. `GET /sse` passes the same
//! checks as a WebSocket handshake, then answers a stream that lives as
//! long as its session (`sse`). `POST /sse/{session}` brings that session
//! the client's frames: it must name an open stream (404) and prove the
//! same user (401, 403), send JSON (415) of a known length (411) within
//! `limits.max_frame_bytes` (413), UTF-8 (400), with at most
//! `MAX_FRAMES_PER_POST` frames (400), and wait for the POST before it to
//! be answered (429). Its bytes are charged to the session before they are
//! read, and it is answered 204 once the session took them in; the
//! replies come on the stream.

use std::sync::Arc;

use bytes::{Buf, BytesMut};
use futures::{Stream, StreamExt};
use serde_json::value::RawValue;
use sha1::{Digest, Sha1};
use warp::http::{header, HeaderValue, StatusCode};
use warp::{Filter, Rejection, Reply};

use super::handshake::{check, check_origin, refuse, with_client_request, ClientRequest, HttpRefusal};
use super::held::StreamHold;
use super::Gate;
use crate::auth::Credentials;
use crate::sse::{self, EventStream, Proof};

/// The most frames one POST may carry: each is a string of its own while
/// it waits for the session, beyond the bytes the POST was charged.
pub const MAX_FRAMES_PER_POST: usize = 100;

/// `GET /sse` and `POST /sse/{session}`.
pub fn routes(gate: Arc<Gate>) -> impl Filter<Extract = (warp::reply::Response,), Error = Rejection> + Clone {
    let with_gate = {
        let gate = gate.clone();
        warp::any().map(move || gate.clone())
    };
    let open = warp::path("sse")
        .and(warp::path::end())
        .and(warp::get())
        .and(with_client_request(gate.clone()))
        .and(with_gate.clone())
        .and_then(|request: ClientRequest, gate: Arc<Gate>| async move { open(&gate, request) });
    let post = warp::path("sse")
        .and(warp::path::param::<String>())
        .and(warp::path::end())
        .and(warp::post())
        .and(with_client_request(gate))
        .and(warp::header::optional::<String>("content-type"))
        .and(warp::header::optional::<u64>("content-length"))
        .and(warp::body::stream())
        .and(with_gate)
        .and_then(post);
    open.or(post).unify()
}

/// A digest of whatever a request presents as credentials.
fn proof(credentials: &Credentials) -> Proof {
    let mut digest = Sha1::new();
    for part in
        [&credentials.header_token, &credentials.protocol_token, &credentials.query_token, &credentials.query_user]
    {
        // Each part's length first, so no two sets of parts read the same.
        let part = part.as_deref().unwrap_or_default();
        digest.update((part.len() as u64).to_le_bytes());
        digest.update(part.as_bytes());
    }
    digest.finalize().into()
}

fn open(gate: &Gate, request: ClientRequest) -> Result<warp::reply::Response, Rejection> {
    let streams = &gate.streams;
    if streams.max() == 0 {
        let message = "this server does not serve SSE (limits.max_sse_streams is 0)";
        return Err(refuse(StatusCode::NOT_FOUND, "not_found", "sse_off", message));
    }
    let credentials = proof(&request.credentials());
    let handshake = check(gate, request)?;
    let Some((link, slot)) = streams.open(&handshake.opening.identity.user, credentials) else {
        let message = format!("this server holds its maximum of {} event streams; try again", streams.max());
        return Err(refuse(StatusCode::SERVICE_UNAVAILABLE, "server_full", "server_full", message));
    };
    // Empty, so it takes the first event at once.
    let _ = link.try_put(sse::session_event(&link.id));
    let hold = StreamHold::new();
    let ended = {
        let hold = hold.clone();
        move || {
            drop(slot);
            hold.release();
        }
    };
    let context = gate.sessions.clone();
    let session = sse::serve(link.clone(), context.clone(), handshake.opening, ended);
    tokio::spawn(context.sessions.track_future(session));
    let mut response = warp::reply::stream(EventStream::new(link)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // Proxies that buffer answers (nginx) pass this one through as it comes.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    // The connection ends with the stream: what follows would wait behind it.
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    response.extensions_mut().insert(hold);
    Ok(response)
}

fn refusal(status: StatusCode, code: &'static str, message: impl Into<String>) -> Rejection {
    warp::reject::custom(HttpRefusal { status, code, message: message.into() })
}

fn no_session() -> Rejection {
    refusal(StatusCode::NOT_FOUND, "no_session", "no such session: it ended; open a new stream")
}

async fn post(
    id: String,
    request: ClientRequest,
    content_type: Option<String>,
    length: Option<u64>,
    body: impl Stream<Item = Result<impl Buf, warp::Error>> + Send,
    gate: Arc<Gate>,
) -> Result<warp::reply::Response, Rejection> {
    let link = gate.streams.find(&id).ok_or_else(no_session)?;
    check_origin(&gate, &request)?;
    let credentials = request.credentials();
    let presented = proof(&credentials);
    if !link.proven_by(&presented) {
        // Other credentials than last time (a refreshed token): verified afresh.
        let identity = gate
            .authenticator
            .authenticate(&credentials)
            .map_err(|error| refuse(StatusCode::UNAUTHORIZED, "unauthorized", error.reason(), error.to_string()))?;
        if identity.user != link.user {
            let message = "this session belongs to another user";
            return Err(refuse(StatusCode::FORBIDDEN, "forbidden", "wrong_user", message));
        }
        link.remember(presented);
    }
    let is_json = content_type
        .as_deref()
        .and_then(|value| value.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        let message = "a POST carries client frames as application/json";
        return Err(refusal(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", message));
    }
    let max = gate.sessions.limits.max_frame_bytes;
    let length =
        length.ok_or_else(|| refusal(StatusCode::LENGTH_REQUIRED, "length_required", "Content-Length is required"))?;
    if length > max as u64 {
        let message = format!("a POST's body may hold at most {max} bytes (limits.max_frame_bytes)");
        return Err(refusal(StatusCode::PAYLOAD_TOO_LARGE, "too_large", message));
    }
    let length = length as usize;
    let turn = link.begin_post().ok_or_else(|| {
        let message = "another POST for this session is being answered; send one at a time";
        refusal(StatusCode::TOO_MANY_REQUESTS, "post_in_progress", message)
    })?;
    // Charged before it is read, as a WebSocket's frame is.
    let charge = turn.charge(length).await.map_err(|_| no_session())?;
    let body = read_body(body, length).await?;
    let text = std::str::from_utf8(&body)
        .map_err(|_| refusal(StatusCode::BAD_REQUEST, "invalid_utf8", "the body is not UTF-8"))?;
    if text.trim_start().starts_with('[') {
        if let Ok(frames) = serde_json::from_str::<Vec<&RawValue>>(text) {
            if frames.len() > MAX_FRAMES_PER_POST {
                let message = format!("a POST may carry at most {MAX_FRAMES_PER_POST} frames");
                return Err(refusal(StatusCode::BAD_REQUEST, "too_many_frames", message));
            }
        }
    }
    turn.deliver(body.freeze(), charge).await.map_err(|_| no_session())?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The body, which hyper holds to its `Content-Length`.
async fn read_body(
    body: impl Stream<Item = Result<impl Buf, warp::Error>>,
    length: usize,
) -> Result<BytesMut, Rejection> {
    let mut body = std::pin::pin!(body);
    let mut read = BytesMut::with_capacity(length);
    while let Some(chunk) = body.next().await {
        let mut chunk = chunk.map_err(|_| refusal(StatusCode::BAD_REQUEST, "bad_request", "the body was cut short"))?;
        if read.len() + chunk.remaining() > length {
            return Err(refusal(StatusCode::BAD_REQUEST, "bad_request", "the body is longer than its Content-Length"));
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            read.extend_from_slice(part);
            let n = part.len();
            chunk.advance(n);
        }
    }
    Ok(read)
}
