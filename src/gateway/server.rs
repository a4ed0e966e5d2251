//! The HTTP server: accepts connections, serves each with hyper (HTTP/1.1
//! with upgrades, or HTTP/2), and runs warp's routes on every request. It is
//! warp's own server loop with one addition: before the routes see a request,
//! hyper's upgrade handle and the peer address are put where a warp filter can
//! reach them, so `/ws` can own its upgrade (see `upgrade`). Until it
//! upgrades, a connection takes a place in its address's count (see
//! `http_connections`), and it is closed if it waits too long for a request
//! (see `deadline`).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use warp::{Filter, Reply};

use super::deadline::{Expired, HttpDeadline};
use super::http_connections::HttpConnections;
use super::upgrade::{PeerAddr, PendingUpgrade};
use crate::prometheus;

/// How long an HTTP exchange may still take once shutdown began. No route
/// takes longer than `/readyz`'s 2 s database ping; a request unfinished by
/// then is a stalled client, which must not hold the exit up.
pub const LONGEST_EXCHANGE: Duration = Duration::from_secs(3);

/// What bounds a connection in its HTTP phase.
#[derive(Clone)]
pub struct HttpBounds {
    /// For the first request's head, from the accept (`server.header_timeout`).
    pub header_timeout: Duration,
    /// For each later request, from the previous answer (`server.keep_alive_timeout`).
    pub keep_alive_timeout: Duration,
    /// How many each address may hold (`limits.http_connections_per_ip`).
    pub connections: Arc<HttpConnections>,
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
    let graceful = GracefulShutdown::new();
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
        let watcher = graceful.watcher();
        let routes = routes.clone();
        let (header_timeout, keep_alive_timeout) = (bounds.header_timeout, bounds.keep_alive_timeout);
        tokio::spawn(async move {
            let deadline = HttpDeadline::new(header_timeout, keep_alive_timeout);
            let requests = deadline.clone();
            let service = hyper::service::service_fn(move |mut request: warp::http::Request<Incoming>| {
                let answering = requests.answering();
                let upgrade = hyper::upgrade::on(&mut request);
                request.extensions_mut().insert(PendingUpgrade::new(upgrade));
                request.extensions_mut().insert(PeerAddr(peer));
                let answer = hyper::service::Service::call(&routes, request);
                async move {
                    let response = answer.await;
                    // The keep-alive wait starts once the answer is ready; a
                    // client that takes longer to read it is closed too.
                    drop(answering);
                    response
                }
            });
            let mut http = auto::Builder::new(TokioExecutor::new());
            // `deadline` bounds request heads and idle waits instead: hyper's
            // timer counts the idle wait as part of the next head.
            http.http1().header_read_timeout(None);
            let connection = http.serve_connection_with_upgrades(TokioIo::new(stream), service);
            tokio::select! {
                served = watcher.watch(connection) => {
                    if let Err(error) = served {
                        tracing::debug!(%error, "HTTP connection ended with an error");
                    }
                }
                expired = deadline.expired() => {
                    if expired == Expired::Header {
                        ::metrics::counter!(prometheus::HTTP_HEADER_TIMEOUTS).increment(1);
                    }
                    tracing::debug!(?expired, %peer, "closing an HTTP connection that waited too long for a request");
                }
            }
            // Upgraded or closed: either way it leaves the HTTP phase.
            drop(counted);
        });
    }
    drop(listener);
    if tokio::time::timeout(drain, graceful.shutdown()).await.is_err() {
        tracing::debug!("HTTP exchanges still unfinished at shutdown were dropped");
    }
}

/// Accept errors that concern one connection only, as hyper's old server had them.
fn is_per_connection(error: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(error.kind(), ConnectionRefused | ConnectionAborted | ConnectionReset)
}
