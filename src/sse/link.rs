//! What one session over SSE shares with the HTTP side: its stream's next
//! piece, waiting for the HTTP server to take it; the body of a POST,
//! waiting for the session to take it; and who waits on either. One lock
//! guards it all: each side holds it for a few instructions.
//!
//! Both hand-overs hold one item at a time, so what waits here is bounded:
//! one piece of the stream (`PIECE` bytes) and one POST body (at most
//! `limits.max_frame_bytes`, charged to the session before it was read).

use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;

use crate::session::Reservation;

/// A keep-alive: a comment line, which clients skip.
pub const KEEP_ALIVE: &[u8] = b":\n\n";

/// The session's side of the link was dropped: it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ended;

/// A POST's body, and its bytes charged to the session.
pub struct Posted {
    pub body: Bytes,
    pub charge: Reservation,
}

/// What the session's reader is given.
pub enum Taken {
    Posted(Posted),
    /// The stream took a keep-alive since the last look: the client reads.
    Alive,
    /// The stream is gone: the client left.
    Gone,
}

pub struct Link {
    /// The opaque id that POSTs name (`/sse/{session}`).
    pub id: String,
    /// Who opened the stream: a POST must be the same user.
    pub user: String,
    /// A digest of the credentials last seen to prove it (the stream's,
    /// or a later POST's), so a POST that presents them again is not
    /// verified again.
    proof: Mutex<Proof>,
    state: Mutex<State>,
}

/// A digest of a request's credentials.
pub type Proof = [u8; 20];

#[derive(Default)]
struct State {
    /// Encoded events not yet taken by the HTTP server.
    piece: Option<Piece>,
    /// The session will write no more: once the piece and the tail are
    /// taken, the stream ends.
    ended: bool,
    /// The session's last words, after the piece.
    tail: Option<Bytes>,
    /// The HTTP side dropped the stream: the client is gone.
    gone: bool,
    /// A keep-alive was taken since the reader last looked.
    alive: bool,
    /// A POST's body, waiting for the reader.
    posted: Option<Posted>,
    /// A POST is being answered (one at a time per session).
    posting: bool,
    /// An empty charge on the session's budget, to charge POSTs with; set
    /// once the session reads.
    charger: Option<Reservation>,
    stream: Option<Waker>,
    writer: Option<Waker>,
    reader: Option<Waker>,
    poster: Option<Waker>,
}

struct Piece {
    bytes: Bytes,
    /// Whether it starts with a keep-alive, whose taking shows the client
    /// alive (no event's piece can: compact JSON has no line breaks).
    keep_alive: bool,
}

fn wake(waker: &mut Option<Waker>) {
    if let Some(waker) = waker.take() {
        waker.wake();
    }
}

impl Link {
    pub fn new(id: String, user: String, proof: Proof) -> Arc<Link> {
        Arc::new(Link { id, user, proof: Mutex::new(proof), state: Mutex::new(State::default()) })
    }

    /// Whether `proof` is that of the credentials last seen to prove the user.
    pub fn proven_by(&self, proof: &Proof) -> bool {
        *self.proof.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) == *proof
    }

    /// Other credentials (a refreshed token) proved the user.
    pub fn remember(&self, proof: Proof) {
        *self.proof.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = proof;
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    // The stream's side (the HTTP server polls it).

    /// The next piece of the stream; `None` once the session ended and
    /// everything was taken.
    pub fn poll_piece(&self, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        let mut state = self.state();
        if let Some(piece) = state.piece.take() {
            wake(&mut state.writer);
            if piece.keep_alive {
                state.alive = true;
                wake(&mut state.reader);
            }
            return Poll::Ready(Some(piece.bytes));
        }
        if state.ended {
            return Poll::Ready(state.tail.take());
        }
        state.stream = Some(cx.waker().clone());
        Poll::Pending
    }

    /// The HTTP side dropped the stream.
    pub fn stream_gone(&self) {
        let mut state = self.state();
        state.gone = true;
        state.piece = None;
        wake(&mut state.writer);
        wake(&mut state.reader);
        wake(&mut state.poster);
    }

    // The session's writer.

    /// Hands a piece to the stream if it took the previous one; gives it
    /// back if not.
    pub fn try_put(&self, bytes: Bytes) -> Result<Option<Bytes>, Ended> {
        let mut state = self.state();
        if state.gone {
            return Err(Ended);
        }
        if state.piece.is_some() {
            return Ok(Some(bytes));
        }
        let keep_alive = bytes.starts_with(KEEP_ALIVE);
        state.piece = Some(Piece { bytes, keep_alive });
        wake(&mut state.stream);
        Ok(None)
    }

    /// Whether the stream took everything it was handed; if not, the
    /// writer is woken once it has.
    pub fn poll_drained(&self, cx: &mut Context<'_>) -> Poll<Result<(), Ended>> {
        let mut state = self.state();
        if state.gone {
            return Poll::Ready(Err(Ended));
        }
        if state.piece.is_some() {
            state.writer = Some(cx.waker().clone());
            return Poll::Pending;
        }
        Poll::Ready(Ok(()))
    }

    /// The session writes no more: the stream ends after its last piece,
    /// and a POST from now on finds no session.
    pub fn end(&self) {
        self.end_with(Bytes::new());
    }

    /// Ends as `end` does, with `tail` after the last piece.
    pub fn end_with(&self, tail: Bytes) {
        let mut state = self.state();
        if !state.ended && !tail.is_empty() {
            state.tail = Some(tail);
        }
        state.ended = true;
        state.charger = None;
        state.posted = None;
        wake(&mut state.stream);
        wake(&mut state.poster);
    }

    // The session's reader.

    /// A POST's body, or news of the stream.
    pub fn poll_take(&self, cx: &mut Context<'_>, held: &Reservation) -> Poll<Taken> {
        let mut state = self.state();
        if state.charger.is_none() && !state.ended {
            state.charger = Some(held.empty_like());
            wake(&mut state.poster);
        }
        if let Some(posted) = state.posted.take() {
            wake(&mut state.poster);
            return Poll::Ready(Taken::Posted(posted));
        }
        if state.gone {
            return Poll::Ready(Taken::Gone);
        }
        if std::mem::take(&mut state.alive) {
            return Poll::Ready(Taken::Alive);
        }
        state.reader = Some(cx.waker().clone());
        Poll::Pending
    }

    // A POST.

    /// Starts answering a POST, unless one is being answered.
    pub fn begin_post(self: &Arc<Self>) -> Option<PostTurn> {
        let mut state = self.state();
        if state.posting {
            return None;
        }
        state.posting = true;
        Some(PostTurn(self.clone()))
    }

    /// An empty charge on the session's budget, once the session reads.
    fn poll_charger(&self, cx: &mut Context<'_>) -> Poll<Result<Reservation, Ended>> {
        let mut state = self.state();
        if state.ended || state.gone {
            return Poll::Ready(Err(Ended));
        }
        match &state.charger {
            Some(charger) => Poll::Ready(Ok(charger.empty_like())),
            None => {
                state.poster = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }

    fn poll_post(&self, cx: &mut Context<'_>, posted: &mut Option<Posted>) -> Poll<Result<(), Ended>> {
        let mut state = self.state();
        if state.ended || state.gone {
            return Poll::Ready(Err(Ended));
        }
        if state.posted.is_some() {
            state.poster = Some(cx.waker().clone());
            return Poll::Pending;
        }
        state.posted = posted.take();
        wake(&mut state.reader);
        Poll::Ready(Ok(()))
    }
}

/// The one POST a session answers at a time.
pub struct PostTurn(Arc<Link>);

impl PostTurn {
    /// Charges `bytes` to the session's budget, waiting for room as a
    /// WebSocket's reader would.
    pub async fn charge(&self, bytes: usize) -> Result<Reservation, Ended> {
        let mut charge = std::future::poll_fn(|cx| self.0.poll_charger(cx)).await?;
        if charge.grow(bytes).await {
            Ok(charge)
        } else {
            Err(Ended)
        }
    }

    /// Hands the body to the session, once it took the previous one.
    pub async fn deliver(self, body: Bytes, charge: Reservation) -> Result<(), Ended> {
        let mut posted = Some(Posted { body, charge });
        std::future::poll_fn(|cx| self.0.poll_post(cx, &mut posted)).await
    }
}

impl Drop for PostTurn {
    fn drop(&mut self) {
        self.0.state().posting = false;
    }
}
