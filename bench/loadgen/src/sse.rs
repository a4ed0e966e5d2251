//! roomcast's SSE transport, from the client's side (the peer has none):
//! `GET /sse` on a socket of its own, the chunked answer decoded and cut
//! into events here, and frames up in `POST /sse/{session}`. A POST goes on
//! a connection of its own, closed by the server once it answered
//! (`Connection: close`): a subscriber posts once, its join, so only the
//! stream stays open, as only the socket does for a WebSocket. Written on
//! a bare TcpStream rather than an HTTP crate so that 20k idle streams cost
//! the generator two small buffers each, and reading a frame costs about
//! what the WebSocket client's does.

use std::ops::Range;
use std::sync::Arc;

use anyhow::{bail, ensure, Context, Result};
use futures::{stream, StreamExt, TryStreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use crate::conn::{self, close_reason, CONNECT_CONCURRENCY, STEP_TIMEOUT};
use crate::dialect::{integer_after, Incoming, Target};
use crate::stats::Stats;

/// Bytes asked of the socket per read: a 16 KiB piece of the relay's takes
/// a few reads, and an idle stream keeps no more than this.
const READ: usize = 4096;
/// A longer answer head is not the relay's.
const MAX_HEAD: usize = 16 * 1024;
/// The relay takes at most this many frames in one POST.
pub const MAX_FRAMES_PER_POST: usize = 100;

/// One event of the stream.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// A `data:` line: one server frame's JSON, as a WebSocket text frame carries it.
    Frame(&'a str),
    /// A keep-alive comment (`:`).
    KeepAlive,
}

pub struct SseStream {
    socket: TcpStream,
    decoder: Decoder,
    /// What the POSTs name, from the stream's first event.
    pub session: String,
}

impl SseStream {
    /// Opens `user`'s stream and reads its first event, the session's id.
    pub async fn open(port: u16, user: &str) -> Result<SseStream> {
        let mut socket = conn::tcp(port).await?;
        let request =
            format!("GET /sse?user={user} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: text/event-stream\r\n\r\n");
        socket.write_all(request.as_bytes()).await?;
        let mut stream = SseStream { socket, decoder: Decoder::default(), session: String::new() };
        let head = stream.read_head().await.with_context(|| format!("GET /sse of {user}"))?;
        if status(&head) != Some(200) {
            // The refusal's JSON body names why (server_full at limits.max_sse_streams).
            let _ = stream.fill().await;
            bail!("GET /sse of {user}: {head} {}", String::from_utf8_lossy(&stream.decoder.raw));
        }
        ensure!(head.contains("transfer-encoding: chunked"), "GET /sse of {user} is not chunked: {head}");
        let session = match stream.next_event().await? {
            Some(Event::Frame(text)) if text.starts_with(r#"{"type":"session""#) => {
                string_after(text, r#""session":""#)
            }
            other => bail!("the stream of {user} began with {other:?}, not its session"),
        };
        stream.session = session.context("a session event without its id")?.to_string();
        Ok(stream)
    }

    /// The answer's head, lower-cased; what follows it stays in `raw`.
    async fn read_head(&mut self) -> Result<String> {
        loop {
            if let Some(end) = find(&self.decoder.raw, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.decoder.raw[..end]).to_ascii_lowercase();
                self.decoder.raw.drain(..end + 4);
                return Ok(head);
            }
            ensure!(self.decoder.raw.len() < MAX_HEAD, "an answer head over {MAX_HEAD} bytes");
            ensure!(self.fill().await? > 0, "closed before answering");
        }
    }

    async fn fill(&mut self) -> Result<usize> {
        let raw = &mut self.decoder.raw;
        let len = raw.len();
        raw.resize(len + READ, 0);
        let read = self.socket.read(&mut raw[len..]).await;
        raw.truncate(len + *read.as_ref().unwrap_or(&0));
        Ok(read?)
    }

    /// The next event; `None` once the stream ended (its last chunk, or the
    /// socket closed).
    pub async fn next_event(&mut self) -> Result<Option<Event<'_>>> {
        // Ready is checked apart from taking the event, so that the borrow
        // the event holds starts only once nothing more is read. Chunks are
        // decoded only when no whole event is left, so the body is compacted
        // once per read, not once per event.
        loop {
            if self.decoder.ready() {
                break;
            }
            if !self.decoder.raw.is_empty() {
                self.decoder.decode()?;
                if self.decoder.ready() {
                    break;
                }
            }
            if self.decoder.ended {
                return Ok(None);
            }
            if self.fill().await? == 0 {
                self.decoder.ended = true;
            }
        }
        self.decoder.take_event()
    }
}

/// `POST /sse/{session}` carrying `frames` (one frame alone, more as an
/// array) on a connection of its own; returns once it was answered 204.
/// The caller sends the next POST of a session only after this one
/// returned: the relay answers a second one in flight with 429.
pub async fn post(port: u16, session: &str, user: &str, frames: &[String]) -> Result<()> {
    ensure!(!frames.is_empty() && frames.len() <= MAX_FRAMES_PER_POST, "{} frames in one POST", frames.len());
    let body = if frames.len() == 1 { frames[0].clone() } else { format!("[{}]", frames.join(",")) };
    let mut socket = conn::tcp(port).await?;
    let request = format!(
        "POST /sse/{session}?user={user} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    socket.write_all(request.as_bytes()).await?;
    // Read to the end: the server closes first, so the TIME_WAIT is its
    // kernel's and no source port of the generator's is held by it.
    let mut answer = Vec::new();
    socket.read_to_end(&mut answer).await?;
    let answer = String::from_utf8_lossy(&answer);
    if status(&answer) != Some(204) {
        bail!("POST /sse of {user}: {answer}");
    }
    Ok(())
}

/// Opens `user`'s stream and joins `rooms` in one POST, reading the stream
/// until every join is answered.
pub async fn open_joined(port: u16, user: &str, rooms: &[String]) -> Result<SseStream> {
    tokio::time::timeout(STEP_TIMEOUT, async {
        let mut stream = SseStream::open(port, user).await?;
        if rooms.is_empty() {
            return Ok(stream);
        }
        let joins: Vec<String> = rooms.iter().map(|room| Target::Roomcast.join_frame(room, 0)).collect();
        post(port, &stream.session, user, &joins).await?;
        let mut joined = 0;
        while joined < rooms.len() {
            match stream.next_event().await? {
                Some(Event::Frame(text)) => match Target::Roomcast.classify(text) {
                    Incoming::Joined => joined += 1,
                    Incoming::Refused => bail!("join of {user} refused: {text}"),
                    _ if is_close(text) => bail!("stream of {user} closed: {text}"),
                    _ => {}
                },
                Some(Event::KeepAlive) => {}
                None => bail!("the stream of {user} ended before its joins were answered"),
            }
        }
        Ok(stream)
    })
    .await
    .with_context(|| format!("SSE stream of {user} timed out"))?
}

/// Opens reading streams `indices`, a bounded number at a time, as
/// `conn::open_readers` opens WebSockets; `who(i)` gives stream i's user and rooms.
pub async fn open_readers(
    port: u16,
    indices: Range<usize>,
    stats: &Arc<Stats>,
    who: impl Fn(usize) -> (String, Vec<String>),
) -> Result<Vec<JoinHandle<()>>> {
    stream::iter(indices)
        .map(|i| {
            let (user, rooms) = who(i);
            let stats = stats.clone();
            async move {
                let stream = open_joined(port, &user, &rooms).await?;
                anyhow::Ok(tokio::spawn(read_deliveries(stream, i, stats)))
            }
        })
        .buffer_unordered(CONNECT_CONCURRENCY)
        .try_collect()
        .await
}

/// Reads a subscriber's events as fast as they come until the task is
/// aborted, recording every delivery; reports how the stream ended.
pub async fn read_deliveries(mut stream: SseStream, conn: usize, stats: Arc<Stats>) {
    loop {
        match stream.next_event().await {
            Ok(Some(Event::Frame(text))) => match Target::Roomcast.classify(text) {
                Incoming::Message(Some(sent_at)) | Incoming::Notification(Some(sent_at)) => {
                    stats.record_delivery(conn, sent_at)
                }
                _ if is_close(text) => {
                    let code = integer_after(text, r#""code":"#).and_then(|c| u16::try_from(c).ok());
                    stats.record_close(format!("sse {}", close_reason(code)));
                    return;
                }
                _ => {}
            },
            Ok(Some(Event::KeepAlive)) => {}
            Ok(None) => return stats.record_close("sse eof".to_string()),
            Err(error) => return stats.record_close(format!("sse error: {error:#}")),
        }
    }
}

/// The relay's last event on a stream: `{"type":"close","code":N,"reason":…}`.
fn is_close(text: &str) -> bool {
    text.starts_with(r#"{"type":"close""#)
}

/// The status of an HTTP answer's head.
fn status(head: &str) -> Option<u16> {
    head.split(' ').nth(1)?.parse().ok()
}

fn string_after<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let start = text.find(key)? + key.len();
    text[start..].split('"').next()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|window| window == needle)
}

/// The chunked transfer coding and the events inside it.
#[derive(Default)]
struct Decoder {
    /// Bytes read and not yet decoded.
    raw: Vec<u8>,
    /// The body's bytes; those before `taken` are events already returned.
    body: Vec<u8>,
    taken: usize,
    /// The end of the next whole event in `body`, once found.
    event_end: Option<usize>,
    /// Bytes of the current chunk still to come; `None` between chunks.
    chunk_left: Option<usize>,
    /// A chunk's data ended and its CRLF is still to come.
    crlf: bool,
    /// The last chunk came, or the socket closed.
    ended: bool,
}

impl Decoder {
    /// Moves the data of every chunk read so far into `body`.
    fn decode(&mut self) -> Result<()> {
        if self.taken > 0 {
            self.body.drain(..self.taken);
            self.taken = 0;
            self.event_end = None;
        }
        let mut at = 0;
        while !self.ended {
            let rest = &self.raw[at..];
            if self.crlf {
                if rest.len() < 2 {
                    break;
                }
                ensure!(rest.starts_with(b"\r\n"), "a chunk not followed by CRLF");
                at += 2;
                self.crlf = false;
            } else if let Some(left) = self.chunk_left {
                let take = left.min(rest.len());
                if take == 0 {
                    break;
                }
                self.body.extend_from_slice(&rest[..take]);
                at += take;
                self.chunk_left = (take < left).then_some(left - take);
                self.crlf = take == left;
            } else {
                let Some(end) = find(rest, b"\r\n") else { break };
                let line = std::str::from_utf8(&rest[..end]).context("a chunk size that is not text")?;
                let hex = line.split(';').next().unwrap_or_default().trim();
                let size = usize::from_str_radix(hex, 16).with_context(|| format!("a chunk size {line:?}"))?;
                at += end + 2;
                self.chunk_left = Some(size);
                // The last chunk; what trails it ends the answer.
                self.ended = size == 0;
            }
        }
        self.raw.drain(..at);
        Ok(())
    }

    /// True when `body` holds a whole event not yet returned.
    fn ready(&mut self) -> bool {
        if self.event_end.is_none() {
            self.event_end = find(&self.body[self.taken..], b"\n\n").map(|end| self.taken + end);
        }
        self.event_end.is_some()
    }

    fn take_event(&mut self) -> Result<Option<Event<'_>>> {
        let Some(end) = self.event_end.take() else { return Ok(None) };
        let event = &self.body[self.taken..end];
        self.taken = end + 2;
        if event.starts_with(b":") {
            return Ok(Some(Event::KeepAlive));
        }
        let Some(data) = event.strip_prefix(b"data: ") else {
            bail!("an event that is neither one data line nor a comment: {:?}", String::from_utf8_lossy(event))
        };
        Ok(Some(Event::Frame(std::str::from_utf8(data).context("an event that is not UTF-8")?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every event of `raw` fed in pieces of `step` bytes.
    fn events(raw: &[u8], step: usize) -> (Vec<String>, bool) {
        let mut decoder = Decoder::default();
        let mut seen = Vec::new();
        for piece in raw.chunks(step) {
            decoder.raw.extend_from_slice(piece);
            decoder.decode().unwrap();
            while decoder.ready() {
                seen.push(match decoder.take_event().unwrap().unwrap() {
                    Event::Frame(text) => text.to_string(),
                    Event::KeepAlive => ":".to_string(),
                });
            }
        }
        (seen, decoder.ended)
    }

    #[test]
    fn decodes_chunks_and_events_however_they_are_cut() {
        // An event split over two chunks, two events in one, a keep-alive, the last chunk.
        let raw = b"7\r\ndata: {\r\n13\r\n\"a\":1}\n\ndata: [2]\n\n\r\n3\r\n:\n\n\r\n0\r\n\r\n";
        for step in [1, 2, 5, raw.len()] {
            let (seen, ended) = events(raw, step);
            assert_eq!(seen, [r#"{"a":1}"#, "[2]", ":"], "pieces of {step}");
            assert!(ended);
        }
    }

    #[test]
    fn a_chunk_size_may_carry_an_extension_and_capitals() {
        let (seen, ended) = events(b"B;x=y\r\ndata: \"q\"\n\n\r\n", 3);
        assert_eq!(seen, ["\"q\""]);
        assert!(!ended);
    }

    #[test]
    fn reads_the_session_and_the_close() {
        let session = r#"{"type":"session","session":"Ab-9_x"}"#;
        assert_eq!(string_after(session, r#""session":""#), Some("Ab-9_x"));
        let close = r#"{"type":"close","code":4008,"reason":"slow consumer"}"#;
        assert!(is_close(close));
        assert_eq!(integer_after(close, r#""code":"#), Some(4008));
        assert_eq!(status("http/1.1 204 no content\r\n"), Some(204));
    }
}
