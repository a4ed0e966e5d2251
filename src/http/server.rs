//! The HTTP server: accepts connections, serves each with hyper (HTTP/1.1,
//! with upgrades), and runs warp's routes on every request. It is warp's
//! own server loop with these additions: before the routes see a request,
//! hyper's upgrade handle and the peer address are put where a warp filter
//! can reach them, so `/ws` can own its upgrade (see `websocket::upgrade`); until it
//! upgrades, a connection takes a place in its address's count (see
//! `connections`), and it is closed if it waits too long for a
//! request or for its answer to be sent (see `deadline`); and an answer
//! keeps what it holds (`held`) until its last byte is written.
//!
//! HTTP/2 is not served: every client of the public port (browsers through
//! an ingress, probes, scrapers, WebSocket upgrades) speaks HTTP/1.1, and a
//! multiplexed connection would let one client hold many answers at once.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use warp::{Filter, Reply};

use super::connections::HttpConnections;
use super::deadline::{Expired, HttpDeadline};
use super::held::{AnswerBody, HeldUntilSent, StreamHold};
use crate::prometheus;
use crate::websocket::upgrade::PendingUpgrade;

/// The TCP peer of the request, set by the server.
#[derive(Clone, Copy, Debug)]
pub struct PeerAddr(pub std::net::SocketAddr);

/// How long an HTTP exchange may still take once shutdown began. No route
/// takes longer than `/readyz`'s 2 s database ping; a request unfinished by
/// then is a stalled client, which must not hold the exit up.
pub const LONGEST_EXCHANGE: Duration = Duration::from_secs(3);

/// The most a connection buffers of a request head it is reading (hyper's
/// smallest allowed is 8 KiB): room for a token and a browser's cookies,
/// not the 400 KiB hyper would otherwise hold per half-read head.
const MAX_REQUEST_HEAD: usize = 32 * 1024;

/// What bounds a connection in its HTTP phase.
#[derive(Clone)]
pub struct HttpBounds {
    /// For the first request's head, from the accept (`server.header_timeout`).
    pub header_timeout: Duration,
    /// For each later request, from the previous answer (`server.keep_alive_timeout`).
    pub keep_alive_timeout: Duration,
    /// For each answer, from its request's head (`server.write_timeout`).
    pub answer_timeout: Duration,
    /// How many each address may hold (`limits.http_connections_per_ip`).
    pub connections: Arc<HttpConnections>,
    /// How long the kernel waits for a peer to acknowledge what it was
    /// sent, or to open its window, before it ends the connection
    /// (`server.idle_timeout` plus `server.write_timeout`: the relay's own
    /// timeouts, which close with a code, come first).
    pub user_timeout: Option<Duration>,
}

/// Serves `routes` on `listener` until `stop` completes, then stops accepting
/// and waits up to `drain` for the HTTP exchanges in progress. Upgraded
/// sockets are not waited for here: they belong to their sessions.
pub async fn serve<F>(
    listener: TcpListener,
    routes: F,
    bounds: HttpBounds,
    stop: impl Future<Output = ()>,
    drain: Duration,
) where
    F: Filter + Clone + Send + Sync + 'static,
    F::Extract: Reply,
{
    let routes = TowerToHyperService::new(warp::service(routes));
    let connections = TaskTracker::new();
    let stopping = CancellationToken::new();
    let mut stop = std::pin::pin!(stop);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    if !is_per_connection(&error) {
                        // Out of descriptors, most likely: give closing connections a moment.
                        tracing::error!(%error, "accept failed");
                        tokio::select! {
                            _ = &mut stop => break,
                            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                        }
                    }
                    continue;
                }
            },
        };
        let counted = match bounds.connections.admit(peer.ip()) {
            Ok(counted) => counted,
            Err(refused) => {
                // Counted before the close, so whoever sees the close sees the
                // count; closed unread, before a task or a buffer is spent on it.
                ::metrics::counter!(prometheus::HTTP_REFUSED, "reason" => "too_many_per_ip").increment(1);
                drop(stream);
                tracing::debug!(%refused, "connection refused");
                continue;
            }
        };
        // Frames are small and latency-bound: Nagle's algorithm against delayed
        // ACKs would stall back-to-back small writes by about 40 ms.
        let _ = stream.set_nodelay(true);
        if let Some(timeout) = bounds.user_timeout {
            // A peer that acknowledges nothing for this long is gone: the
            // kernel ends the connection, which is how a stream without
            // pongs (`GET /sse`) learns that its client vanished.
            let _ = socket2::SockRef::from(&stream).set_tcp_user_timeout(Some(timeout));
        }
        let routes = routes.clone();
        let bounds = bounds.clone();
        let stopping = stopping.clone();
        // Shared with the requests: a stream that becomes a session leaves the count.
        let counted = Arc::new(std::sync::Mutex::new(Some(counted)));
        connections.spawn(async move {
            let deadline = HttpDeadline::new(bounds.header_timeout, bounds.keep_alive_timeout, bounds.answer_timeout);
            let requests = deadline.clone();
            let in_count = counted.clone();
            let service = hyper::service::service_fn(move |mut request: warp::http::Request<Incoming>| {
                let answering = requests.answering();
                let streams = requests.clone();
                let in_count = in_count.clone();
                let upgrade = hyper::upgrade::on(&mut request);
                request.extensions_mut().insert(PendingUpgrade::new(upgrade));
                request.extensions_mut().insert(PeerAddr(peer));
                let answer = hyper::service::Service::call(&routes, request);
                async move {
                    // The answer is in progress until its last byte is
                    // written: the body keeps it, and what the route held.
                    let response = answer.await?;
                    let held = response.extensions().get::<HeldUntilSent>().and_then(HeldUntilSent::take);
                    if let Some(hold) = response.extensions().get::<StreamHold>() {
                        // A session now: timed by its own rules, and counted
                        // among the replica's connections, not this address's.
                        hold.hold(streams.streaming());
                        drop(in_count.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take());
                    }
                    Ok::<_, std::convert::Infallible>(response.map(|body| AnswerBody::new(body, answering, held)))
                }
            });
            let mut http = hyper::server::conn::http1::Builder::new();
            // `deadline` bounds request heads and idle waits instead: hyper's
            // timer counts the idle wait as part of the next head.
            http.header_read_timeout(None).max_buf_size(MAX_REQUEST_HEAD);
            let connection = http.serve_connection(TokioIo::new(stream), service).with_upgrades();
            tokio::pin!(connection);
            let served = tokio::select! {
                served = connection.as_mut() => Some(served),
                expired = deadline.expired() => {
                    match expired {
                        Expired::Header => ::metrics::counter!(prometheus::HTTP_HEADER_TIMEOUTS).increment(1),
                        Expired::Answer => ::metrics::counter!(prometheus::HTTP_ANSWER_TIMEOUTS).increment(1),
                        Expired::KeepAlive => {}
                    }
                    tracing::debug!(?expired, %peer, "closing an HTTP connection that waited too long");
                    None
                }
                // Answers in progress finish; a connection waiting for a
                // request, or for the rest of one, closes at once.
                _ = stopping.cancelled() => {
                    if deadline.is_answering() {
                        connection.as_mut().graceful_shutdown();
                        tokio::select! {
                            served = connection.as_mut() => Some(served),
                            _ = deadline.expired() => None,
                        }
                    } else {
                        None
                    }
                }
            };
            if let Some(Err(error)) = served {
                tracing::debug!(%error, "HTTP connection ended with an error");
            }
            // Upgraded, streaming or closed: either way it leaves the HTTP phase.
            drop(counted);
        });
    }
    drop(listener);
    stopping.cancel();
    connections.close();
    if tokio::time::timeout(drain, connections.wait()).await.is_err() {
        tracing::debug!("HTTP exchanges still unfinished at shutdown were dropped");
    }
}

/// Accept errors that concern one connection only, as hyper's old server had them.
fn is_per_connection(error: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(error.kind(), ConnectionRefused | ConnectionAborted | ConnectionReset)
}
