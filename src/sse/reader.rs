//! The client's frames over SSE: each POST's body, taken from the link
//! once the POST charged it to the session, is one client frame or an
//! array of them, given out one at a time, in order. Taking in a
//! keep-alive also counts as hearing from the client, as a pong does on a
//! WebSocket: an SSE client has no other way to show it is there.

use std::collections::VecDeque;

use serde_json::value::RawValue;

use super::link::{Link, Taken};
use crate::protocol::CloseReason;
use crate::session::{ClientFrames, Inbound, Reservation};

pub struct PostReader<'a> {
    link: &'a Link,
    /// Frames of the last body not given out yet, and their bytes.
    frames: VecDeque<String>,
    bytes: usize,
}

impl<'a> PostReader<'a> {
    pub fn new(link: &'a Link) -> Self {
        PostReader { link, frames: VecDeque::new(), bytes: 0 }
    }
}

impl ClientFrames for PostReader<'_> {
    async fn next(&mut self, held: &mut Reservation) -> Option<Result<Inbound, CloseReason>> {
        loop {
            if let Some(frame) = self.frames.pop_front() {
                self.bytes -= frame.len();
                held.shrink_to(self.bytes);
                return Some(Ok(Inbound::Text(frame)));
            }
            match std::future::poll_fn(|cx| self.link.poll_take(cx, held)).await {
                Taken::Gone => return None,
                Taken::Alive => return Some(Ok(Inbound::Pong)),
                Taken::Posted(posted) => {
                    held.absorb(posted.charge);
                    // The POST checked the body is UTF-8.
                    let text = std::str::from_utf8(&posted.body).unwrap_or_default();
                    self.frames = split(text);
                    self.bytes = self.frames.iter().map(String::len).sum();
                    held.shrink_to(self.bytes);
                }
            }
        }
    }
}

/// A body's frames: the elements of an array, or the body itself, which
/// the session answers as it would a WebSocket's text (an error frame
/// when it is not a frame).
pub fn split(body: &str) -> VecDeque<String> {
    if body.trim_start().starts_with('[') {
        if let Ok(frames) = serde_json::from_str::<Vec<&RawValue>>(body) {
            return frames.into_iter().map(|frame| frame.get().to_string()).collect();
        }
    }
    VecDeque::from([body.to_string()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_is_one_frame_or_an_array_of_frames_in_order() {
        assert_eq!(split(r#"{"type":"ping"}"#), [r#"{"type":"ping"}"#]);
        assert_eq!(split(r#" [{"type":"ping"}, {"type":"rooms"}] "#), [r#"{"type":"ping"}"#, r#"{"type":"rooms"}"#]);
        assert!(split("[]").is_empty());
        // Not JSON: handed over whole, so the session says what is wrong.
        assert_eq!(split("[{"), ["[{"]);
        assert_eq!(split("nope"), ["nope"]);
    }
}
