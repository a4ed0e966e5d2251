//! What an HTTP answer holds until its last byte is written: its place in
//! the connection's deadline, and whatever its route charged for it (the
//! bytes of a page, borrowed through the user's share of the pool). A route
//! puts the latter in the response's extensions (`HeldUntilSent`); the
//! server moves both into the response body (`AnswerBody`), which hyper
//! drops once the body is written or the connection is gone. An answer
//! that streams for a session's life (`GET /sse`) carries a `StreamHold`
//! instead: the server puts the connection's deadline guard in it, and the
//! session drops that guard when it ends.

use std::any::Any;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;

use super::deadline::Answering;

type Held = Box<dyn Any + Send + Sync>;

/// Something a route's answer keeps until it is sent, in the response's
/// extensions (which must be `Clone`, hence the shared slot).
#[derive(Clone)]
pub struct HeldUntilSent(Arc<Mutex<Option<Held>>>);

impl HeldUntilSent {
    pub fn new(held: impl Any + Send + Sync) -> Self {
        HeldUntilSent(Arc::new(Mutex::new(Some(Box::new(held)))))
    }

    /// What is held, taken out once.
    pub fn take(&self) -> Option<Held> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take()
    }
}

/// What a streaming answer holds off until its session ends: the server
/// puts guards in (`hold`), the session drops them (`release`), whichever
/// comes first.
#[derive(Clone, Default)]
pub struct StreamHold(Arc<Mutex<Option<Vec<Held>>>>);

impl StreamHold {
    pub fn new() -> Self {
        StreamHold(Arc::new(Mutex::new(Some(Vec::new()))))
    }

    /// Keeps `guard` until `release`; drops it at once if that came first.
    pub fn hold(&self, guard: impl Any + Send + Sync) {
        let mut held = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(guards) = held.as_mut() {
            guards.push(Box::new(guard));
        }
    }

    /// Drops what is held, and anything held from now on.
    pub fn release(&self) {
        let guards = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take();
        drop(guards);
    }
}

/// Most bytes of an answer handed to hyper at a time. hyper asks for more
/// only once it wrote what it holds, so a client that does not read keeps
/// the rest here, where it stays charged and timed, not in hyper's queue.
const CHUNK: usize = 16 * 1024;

/// A response body that keeps its answer's guards until it is dropped, and
/// hands its bytes over a chunk at a time.
pub struct AnswerBody<B> {
    body: B,
    /// The rest of the last data frame, not handed over yet.
    rest: Bytes,
    _answering: Answering,
    _held: Option<Held>,
}

impl<B> AnswerBody<B> {
    pub fn new(body: B, answering: Answering, held: Option<Held>) -> Self {
        AnswerBody { body, rest: Bytes::new(), _answering: answering, _held: held }
    }
}

impl<B: http_body::Body<Data = Bytes> + Unpin> http_body::Body for AnswerBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if this.rest.is_empty() {
            match Pin::new(&mut this.body).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => this.rest = data,
                    Err(frame) => return Poll::Ready(Some(Ok(frame))),
                },
                other => return other,
            }
        }
        let chunk = this.rest.split_to(this.rest.len().min(CHUNK));
        Poll::Ready(Some(Ok(http_body::Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.rest.is_empty() && self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        let mut hint = self.body.size_hint();
        let rest = self.rest.len() as u64;
        hint.set_lower(hint.lower() + rest);
        if let Some(upper) = hint.upper() {
            hint.set_upper(upper + rest);
        }
        hint
    }
}
