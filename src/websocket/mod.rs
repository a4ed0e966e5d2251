//! The WebSocket transport. After the upgrade (`upgrade`), the TCP socket
//! itself is shared by the session's two halves, which run in one task: the
//! reader waits for the socket to be readable and only then takes a
//! buffer, decodes client frames one at a time (`protocol::websocket`) and
//! frees the buffer once it is used up; the writer hands the frames' shared
//! bytes to the kernel in vectored writes, with nothing copied or framed
//! per recipient. So an idle connection holds no read buffer and no write
//! buffer. After the goodbye the socket lingers a moment, reading what the
//! client still sends, so its last bytes are not answered by a reset.

pub mod upgrade;

use std::io::{ErrorKind, IoSlice};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::protocol::websocket::{self as wire, Decoder, Incoming, Violation};
use crate::protocol::{CloseReason, Frame};
use crate::session::{self, Batch, ClientFrames, Context, FrameWriter, Inbound, Opening, Reservation, WriteError};

/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 4 * 1024;

/// Slices handed to the kernel in one vectored write.
const SLICES_PER_WRITE: usize = 64;

/// How long a closed connection keeps reading (and discarding) what its
/// client still sends, waiting for it to close its side.
const LINGER: Duration = Duration::from_secs(2);

/// Serves an upgraded socket, and the bytes the HTTP server read past the
/// request, as one session. (A function returning a future rather than an
/// `async fn`: the future it returns keeps one copy of its arguments, not
/// two, and it is what every connection's task holds.)
#[allow(clippy::manual_async_fn)] // see the comment above
pub fn serve(
    stream: TcpStream,
    read_ahead: Bytes,
    context: Arc<Context>,
    opening: Box<Opening>,
) -> impl std::future::Future<Output = ()> + Send {
    // Filled before the future is made, so the read-ahead (a slice of the
    // HTTP server's read buffer, which it would keep whole) has no place in
    // the task's state.
    let mut decoder = Decoder::new(context.limits.max_frame_bytes);
    decoder.buffer().extend_from_slice(&read_ahead);
    drop(read_ahead);
    async move {
        let mut reader = SocketReader { stream: &stream, decoder: &mut decoder };
        let mut writer = SocketWriter::new(&stream, context.server.write_timeout);
        session::serve(&mut reader, &mut writer, &context, opening).await;
        linger(&stream).await;
    }
}

/// The client's frames, read from the shared socket.
struct SocketReader<'a> {
    stream: &'a TcpStream,
    decoder: &'a mut Decoder,
}

impl ClientFrames for SocketReader<'_> {
    async fn next(&mut self, held: &mut Reservation) -> Option<Result<Inbound, CloseReason>> {
        loop {
            let decoded = self.decoder.next_message();
            held.shrink_to(self.decoder.holds());
            match decoded {
                Err(violation) => return Some(Err(close_reason(violation))),
                Ok(Some(incoming)) => return Some(Ok(inbound(incoming))),
                Ok(None) => {}
            }
            // Waits with no buffer: one is taken only once there is something to read.
            std::future::poll_fn(|cx| self.stream.poll_read_ready(cx)).await.ok()?;
            self.decoder.buffer().reserve(READ_CHUNK);
            let holds = self.decoder.holds();
            // Boxed: it waits only when the budget is spent, and its state
            // would otherwise sit in every idle connection's task.
            if holds > held.bytes() && !Box::pin(held.grow(holds - held.bytes())).await {
                return None;
            }
            match self.stream.try_read_buf(self.decoder.buffer()) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(error) if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {}
                Err(_) => return None,
            }
        }
    }
}

fn inbound(incoming: Incoming) -> Inbound {
    match incoming {
        Incoming::Text(text) => Inbound::Text(text),
        Incoming::Binary => Inbound::Binary,
        Incoming::Ping(payload) => Inbound::Ping(payload),
        Incoming::Pong => Inbound::Pong,
        Incoming::Close(_) => Inbound::Close,
    }
}

fn close_reason(violation: Violation) -> CloseReason {
    match violation {
        Violation::Protocol => CloseReason::ProtocolError,
        Violation::InvalidUtf8 => CloseReason::InvalidUtf8,
        Violation::TooBig => CloseReason::TooBig,
    }
}

/// Frames to the client, written to the shared socket.
struct SocketWriter<'a> {
    stream: &'a TcpStream,
    /// How long the socket may take no byte (`server.write_timeout`).
    stall: Duration,
    /// Control frames written before the batch's frames (a pong, a ping, a
    /// goodbye); empty, and holding no memory, most of the time.
    control: Vec<Bytes>,
    /// How far the write in progress got.
    cursor: Cursor,
    /// The rest of a frame only partly written, while it is: if its write
    /// is abandoned, the goodbye finishes it first, as nothing else may
    /// follow a frame cut short.
    unfinished: Option<Bytes>,
}

/// How far a write got: the part (control frames, then frames) it is at,
/// and the offset inside it.
#[derive(Default, Clone, Copy)]
struct Cursor {
    at: usize,
    offset: usize,
}

/// What a write that did not wait achieved.
enum Attempt {
    Done,
    /// The socket is full; whether it took anything first.
    Blocked {
        progressed: bool,
    },
}

impl<'a> SocketWriter<'a> {
    fn new(stream: &'a TcpStream, stall: Duration) -> Self {
        SocketWriter { stream, stall, control: Vec::new(), cursor: Cursor::default(), unfinished: None }
    }

    /// Writes the control frames, then `frames`, from the cursor on, until
    /// everything is written or the socket is full.
    fn advance(&mut self, frames: &[Frame]) -> Result<Attempt, WriteError> {
        let control = &self.control;
        let part = |i: usize| -> &Bytes {
            match control.get(i) {
                Some(bytes) => bytes,
                None => frames[i - control.len()].websocket(),
            }
        };
        let total = control.len() + frames.len();
        let cursor = &mut self.cursor;
        let mut progressed = false;
        while cursor.at < total {
            let attempt = if total - cursor.at == 1 {
                // One frame, the usual batch of a quiet room: a plain write.
                self.stream.try_write(&part(cursor.at)[cursor.offset..])
            } else {
                let mut slices = [IoSlice::new(&[]); SLICES_PER_WRITE];
                let count = (total - cursor.at).min(SLICES_PER_WRITE);
                for (n, slice) in slices[..count].iter_mut().enumerate() {
                    let bytes = part(cursor.at + n);
                    *slice = IoSlice::new(if n == 0 { &bytes[cursor.offset..] } else { bytes });
                }
                self.stream.try_write_vectored(&slices[..count])
            };
            match attempt {
                Ok(0) => return Err(WriteError::Gone),
                Ok(mut written) => {
                    progressed = true;
                    while written > 0 {
                        let left = part(cursor.at).len() - cursor.offset;
                        if written >= left {
                            written -= left;
                            *cursor = Cursor { at: cursor.at + 1, offset: 0 };
                        } else {
                            cursor.offset += written;
                            written = 0;
                        }
                    }
                    self.unfinished = (cursor.offset > 0).then(|| part(cursor.at).slice(cursor.offset..));
                }
                Err(error) if error.kind() == ErrorKind::WouldBlock => return Ok(Attempt::Blocked { progressed }),
                Err(error) if error.kind() == ErrorKind::Interrupted => {}
                Err(_) => return Err(WriteError::Gone),
            }
        }
        // Done: the next write starts afresh, and keeps no memory meanwhile.
        self.cursor = Cursor::default();
        self.control = Vec::new();
        Ok(Attempt::Done)
    }

    /// Waits for the socket to take the rest of a write, at least a byte
    /// every `stall`.
    async fn advance_all(&mut self, frames: &[Frame]) -> Result<(), WriteError> {
        // The clock is read only once the socket is full.
        let mut since = Instant::now();
        loop {
            tokio::select! {
                ready = std::future::poll_fn(|cx| self.stream.poll_write_ready(cx)) => {
                    ready.map_err(|_| WriteError::Gone)?
                }
                _ = tokio::time::sleep_until(since + self.stall) => return Err(WriteError::Stalled),
            }
            match self.advance(frames)? {
                Attempt::Done => return Ok(()),
                Attempt::Blocked { progressed: true } => since = Instant::now(),
                Attempt::Blocked { progressed: false } => {}
            }
        }
    }
}

impl FrameWriter for SocketWriter<'_> {
    fn write_now(&mut self, batch: &mut Batch) -> Result<bool, WriteError> {
        if let Some(payload) = batch.pong.take() {
            self.control.push(wire::pong(&payload));
        }
        if std::mem::take(&mut batch.ping) {
            self.control.push(wire::ping());
        }
        Ok(matches!(self.advance(&batch.frames)?, Attempt::Done))
    }

    async fn finish(&mut self, batch: &mut Batch) -> Result<(), WriteError> {
        self.advance_all(&batch.frames).await
    }

    async fn close(&mut self, reason: Option<CloseReason>) {
        let goodbye = match reason {
            Some(reason) => wire::close(reason.code(), reason.text()),
            // The client closed: its close is answered, as RFC 6455 asks.
            None => wire::close(1000, ""),
        };
        self.control = self.unfinished.take().into_iter().chain([goodbye]).collect();
        self.cursor = Cursor::default();
        if matches!(self.advance(&[]), Ok(Attempt::Blocked { .. })) {
            let _ = self.advance_all(&[]).await;
        }
        let _ = socket2::SockRef::from(self.stream).shutdown(std::net::Shutdown::Write);
    }
}

/// Reads and discards what the client still sends, until it closes its
/// side or `LINGER` passes: closing a socket with unread bytes would reset
/// the connection, and the client could lose the close frame it was sent.
async fn linger(stream: &TcpStream) {
    let _ = tokio::time::timeout(LINGER, async {
        loop {
            if stream.readable().await.is_err() {
                return;
            }
            let mut discarded = [0u8; 1024];
            match stream.try_read(&mut discarded) {
                Ok(0) => return,
                Ok(_) => {}
                Err(error) if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {}
                Err(_) => return,
            }
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What every idle connection's task holds for its whole life: tokio
    /// keeps it in a cell aligned to 128 bytes (with a 32-byte header, a
    /// 48-byte trailer, the scheduler's handle and the task id, and 16 bytes
    /// of task tracking and stage), and mimalloc serves 1,281 to 1,536 bytes
    /// from one size class. Up to 1,168 bytes, the cell is 1,280.
    #[test]
    fn a_connections_future_fits_a_cell_of_1280_bytes() {
        fn returned<A, B, C, D, F>(_: fn(A, B, C, D) -> F) -> usize {
            std::mem::size_of::<F>()
        }
        let size = returned(serve);
        assert!(size <= 1_168, "the connection's future is {size} bytes: its task cell would be 1,408");
    }
}
