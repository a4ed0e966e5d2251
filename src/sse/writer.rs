//! Frames to the client over SSE: each frame becomes an event,
//! `data: <JSON>` and a blank line (compact JSON has no line breaks, so
//! one `data:` line carries it whole), and a keep-alive a comment line.
//! A batch is copied into pieces of at most `PIECE` bytes, handed to the
//! HTTP server one at a time: the server asks for the next only once it
//! can buffer it, so a client that stops reading stops the pieces here,
//! where the batch is still charged to its connection.

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use tokio::time::Instant;

use super::link::{Link, KEEP_ALIVE};
use crate::protocol::{CloseReason, Frame};
use crate::session::{Batch, FrameWriter, WriteError};

/// The most bytes of one piece.
pub const PIECE: usize = 8 * 1024;

pub struct StreamWriter<'a> {
    link: &'a Link,
    /// How long the stream may take no piece (`server.write_timeout`).
    stall: Duration,
    /// The batch's frame the next piece starts in, and how much of its
    /// event earlier pieces carried.
    at: usize,
    offset: usize,
    /// A keep-alive to put in front of the next piece.
    keep_alive: bool,
    /// The piece waiting for the previous one to be taken.
    ready: Option<Bytes>,
    /// The frame a piece ended in the middle of, and how much of its event
    /// was written: the goodbye finishes it first, as an event cut short
    /// would swallow the close.
    cut: Option<(Frame, usize)>,
}

impl<'a> StreamWriter<'a> {
    pub fn new(link: &'a Link, stall: Duration) -> Self {
        StreamWriter { link, stall, at: 0, offset: 0, keep_alive: false, ready: None, cut: None }
    }

    /// The next piece of the batch, if any is left.
    fn next_piece(&mut self, frames: &[Frame]) -> Option<Bytes> {
        if self.at >= frames.len() && !self.keep_alive {
            return None;
        }
        let mut piece = BytesMut::with_capacity(PIECE.min(self.left(frames)));
        if std::mem::take(&mut self.keep_alive) {
            piece.put_slice(KEEP_ALIVE);
        }
        while self.at < frames.len() && piece.len() < PIECE {
            let written = fill(&mut piece, frames[self.at].text().as_bytes(), self.offset, PIECE);
            self.offset += written;
            if self.offset == event_len(&frames[self.at]) {
                self.at += 1;
                self.offset = 0;
            }
        }
        self.cut = (self.offset > 0).then(|| (frames[self.at].clone(), self.offset));
        Some(piece.freeze())
    }

    /// Bytes of the batch's events not yet in a piece (and the keep-alive).
    fn left(&self, frames: &[Frame]) -> usize {
        let events: usize = frames[self.at.min(frames.len())..].iter().map(event_len).sum();
        events - self.offset + if self.keep_alive { KEEP_ALIVE.len() } else { 0 }
    }

    /// Hands pieces over while the stream takes them at once: true once the
    /// batch is all handed over.
    fn advance(&mut self, frames: &[Frame]) -> Result<bool, WriteError> {
        loop {
            if self.ready.is_none() {
                self.ready = self.next_piece(frames);
            }
            let Some(piece) = self.ready.take() else { return Ok(true) };
            match self.link.try_put(piece) {
                Ok(None) => {}
                Ok(Some(piece)) => {
                    self.ready = Some(piece);
                    return Ok(false);
                }
                Err(_) => return Err(WriteError::Gone),
            }
        }
    }

    /// Waits for the stream to take every piece of the batch, one at
    /// least every `stall`.
    async fn advance_all(&mut self, frames: &[Frame]) -> Result<(), WriteError> {
        let mut since = Instant::now();
        while !self.advance(frames)? {
            tokio::select! {
                taken = std::future::poll_fn(|cx| self.link.poll_drained(cx)) => {
                    taken.map_err(|_| WriteError::Gone)?;
                    since = Instant::now();
                }
                _ = tokio::time::sleep_until(since + self.stall) => return Err(WriteError::Stalled),
            }
        }
        Ok(())
    }
}

/// An event's bytes: `data: `, the JSON text, a blank line.
fn event_len(frame: &Frame) -> usize {
    b"data: ".len() + frame.len() + 2
}

/// Copies what fits in `limit` bytes of the event of `text`, from
/// `offset` on, into `piece`; returns how many bytes it copied.
fn fill(piece: &mut BytesMut, text: &[u8], offset: usize, limit: usize) -> usize {
    let mut skip = offset;
    let mut copied = 0;
    for part in [&b"data: "[..], text, b"\n\n"] {
        if skip >= part.len() {
            skip -= part.len();
            continue;
        }
        let take = (part.len() - skip).min(limit.saturating_sub(piece.len()));
        piece.put_slice(&part[skip..skip + take]);
        copied += take;
        skip = 0;
        if piece.len() >= limit {
            break;
        }
    }
    copied
}

impl FrameWriter for StreamWriter<'_> {
    fn write_now(&mut self, batch: &mut Batch) -> Result<bool, WriteError> {
        // A client of SSE sends no transport pings to answer.
        batch.pong = None;
        self.keep_alive = std::mem::take(&mut batch.ping);
        self.at = 0;
        self.offset = 0;
        let done = self.advance(&batch.frames)?;
        if done {
            self.cut = None;
        }
        Ok(done)
    }

    async fn finish(&mut self, batch: &mut Batch) -> Result<(), WriteError> {
        self.advance_all(&batch.frames).await?;
        self.cut = None;
        Ok(())
    }

    async fn close(&mut self, reason: Option<CloseReason>) {
        // What follows the last piece handed over, whenever the stream takes
        // it: the piece built and not handed over, the rest of an event cut
        // short, and the close. The stream then ends, within the HTTP
        // server's `server.write_timeout` once the session is over.
        let mut tail = BytesMut::new();
        if let Some(ready) = self.ready.take() {
            tail.put_slice(&ready);
        }
        if let Some((frame, offset)) = self.cut.take() {
            fill(&mut tail, frame.text().as_bytes(), offset, usize::MAX);
        }
        // No reason: the client closed, and is gone.
        if let Some(reason) = reason {
            let close = serde_json::json!({ "type": "close", "code": reason.code(), "reason": reason.text() });
            fill(&mut tail, close.to_string().as_bytes(), 0, usize::MAX);
        }
        self.link.end_with(tail.freeze());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(frames: &[Frame], keep_alive: bool) -> Vec<u8> {
        let link = Link::new("id".into(), "u".into(), [0; 20]);
        let mut writer = StreamWriter::new(&link, Duration::from_secs(1));
        writer.keep_alive = keep_alive;
        let mut out = Vec::new();
        while let Some(piece) = writer.next_piece(frames) {
            assert!(piece.len() <= PIECE);
            out.extend_from_slice(&piece);
        }
        out
    }

    #[test]
    fn frames_become_data_events_and_a_keep_alive_a_comment() {
        let frames = [Frame::from(r#"{"type":"pong"}"#), Frame::from(r#"{"a":1}"#)];
        assert_eq!(events(&frames, true), b":\n\ndata: {\"type\":\"pong\"}\n\ndata: {\"a\":1}\n\n");
    }

    #[tokio::test]
    async fn a_close_follows_the_event_it_cut_short() {
        let link = Link::new("id".into(), "u".into(), [0; 20]);
        let mut writer = StreamWriter::new(&link, Duration::from_secs(1));
        let long = format!("\"{}\"", "x".repeat(PIECE));
        let frames = [Frame::from(long.as_str())];
        let first = writer.next_piece(&frames).unwrap();
        writer.close(Some(CloseReason::SlowConsumer)).await;
        let mut stream = first.to_vec();
        let waker = futures::task::noop_waker();
        let mut cx = std::task::Context::from_waker(&waker);
        while let std::task::Poll::Ready(Some(piece)) = link.poll_piece(&mut cx) {
            stream.extend_from_slice(&piece);
        }
        let close = r#"{"type":"close","code":4008,"reason":"slow consumer: send queue overflow"}"#;
        assert_eq!(String::from_utf8(stream).unwrap(), format!("data: {long}\n\ndata: {close}\n\n"));
    }

    #[test]
    fn a_frame_longer_than_a_piece_spans_pieces_whole() {
        let long = format!("\"{}\"", "x".repeat(3 * PIECE));
        let frames = [Frame::from("1"), Frame::from(long.as_str()), Frame::from("2")];
        let expected = format!("data: 1\n\ndata: {long}\n\ndata: 2\n\n");
        assert_eq!(events(&frames, false), expected.as_bytes());
    }
}
