//! The answer to `GET /sse`: the HTTP server polls it for the session's
//! next piece, and drops it when the client is gone, which ends the session.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;

use super::link::Link;

/// The stream of a session's events, as the HTTP server sends them.
pub struct EventStream(Arc<Link>);

impl EventStream {
    pub fn new(link: Arc<Link>) -> Self {
        EventStream(link)
    }
}

impl futures::Stream for EventStream {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_piece(cx).map(|piece| piece.map(Ok))
    }
}

impl Drop for EventStream {
    fn drop(&mut self) {
        self.0.stream_gone();
    }
}
