//! The WebSocket upgrade, owned here rather than left to `warp::ws()` so the
//! session gets the TCP socket itself: it reads and writes the WebSocket
//! framing on it with no buffer of its own while idle (see the module
//! above), where a WebSocket library keeps read and write buffers per
//! connection. The HTTP server moves hyper's upgrade handle into the
//! request as a [`PendingUpgrade`]; the `/ws` route validates the request
//! (RFC 6455 §4.2.1), answers 101 and hands the socket to the session.

use std::future::Future;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use warp::http::{header, HeaderMap, Response, StatusCode};
use warp::{Filter, Rejection};

use crate::protocol::websocket::accept_key;

/// hyper's upgrade handle, made clonable so a warp filter can take it out of
/// the request's extensions exactly once.
#[derive(Clone)]
pub struct PendingUpgrade(Arc<Mutex<Option<OnUpgrade>>>);

impl PendingUpgrade {
    pub fn new(upgrade: OnUpgrade) -> Self {
        PendingUpgrade(Arc::new(Mutex::new(Some(upgrade))))
    }

    fn take(&self) -> Option<OnUpgrade> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take()
    }
}

/// A request that is not a valid WebSocket upgrade (answered 426).
#[derive(Debug)]
pub struct NotAnUpgrade(pub &'static str);

impl warp::reject::Reject for NotAnUpgrade {}

/// A validated upgrade request, ready to be answered.
pub struct Upgrade {
    accept_key: String,
    pending: PendingUpgrade,
}

/// Extracts a valid upgrade request, or rejects with [`NotAnUpgrade`].
pub fn websocket() -> impl Filter<Extract = (Upgrade,), Error = Rejection> + Copy {
    warp::header::headers_cloned().and(warp::ext::optional::<PendingUpgrade>()).and_then(
        |headers: HeaderMap, pending: Option<PendingUpgrade>| async move {
            let accept_key = validate(&headers).map_err(|why| warp::reject::custom(NotAnUpgrade(why)))?;
            let pending =
                pending.ok_or_else(|| warp::reject::custom(NotAnUpgrade("this connection cannot upgrade")))?;
            Ok::<_, Rejection>(Upgrade { accept_key, pending })
        },
    )
}

fn validate(headers: &HeaderMap) -> Result<String, &'static str> {
    let has_token = |name: header::HeaderName, token: &str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|value| value.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    };
    if !has_token(header::CONNECTION, "upgrade") || !has_token(header::UPGRADE, "websocket") {
        return Err("GET /ws must be a WebSocket upgrade");
    }
    if headers.get(header::SEC_WEBSOCKET_VERSION).map(|v| v.as_bytes()) != Some(b"13") {
        return Err("only WebSocket version 13 is supported");
    }
    let key = headers.get(header::SEC_WEBSOCKET_KEY).ok_or("Sec-WebSocket-Key is missing")?;
    Ok(accept_key(key.as_bytes()))
}

impl Upgrade {
    /// Answers 101 (naming `protocol` if one was agreed) and, once hyper
    /// hands the connection over, runs `serve` on its TCP socket and the
    /// bytes already read past the request, in the task that serves it
    /// from then on.
    pub fn accept<F, Fut>(self, protocol: Option<&'static str>, serve: F) -> Response<Bytes>
    where
        F: FnOnce(TcpStream, Bytes) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        if let Some(upgrade) = self.pending.take() {
            tokio::spawn(async move {
                let (io, read_buf) = match upgrade.await.map(|upgraded| upgraded.downcast::<TokioIo<TcpStream>>()) {
                    Ok(Ok(hyper::upgrade::Parts { io, read_buf, .. })) => (io.into_inner(), read_buf),
                    Ok(Err(_)) => return tracing::error!("an upgraded connection is not a TCP socket; closed"),
                    Err(error) => return tracing::debug!(%error, "the upgrade did not complete"),
                };
                // A task of its own, and this one ends: what waiting for the
                // upgrade took (its handle, the closure's place) would
                // otherwise sit in the connection's task for its whole life.
                tokio::spawn(serve(io, read_buf));
            });
        }
        let mut response = Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header(header::CONNECTION, "upgrade")
            .header(header::UPGRADE, "websocket")
            .header(header::SEC_WEBSOCKET_ACCEPT, self.accept_key);
        if let Some(protocol) = protocol {
            response = response.header(header::SEC_WEBSOCKET_PROTOCOL, protocol);
        }
        response.body(Default::default()).expect("static headers are valid")
    }
}
