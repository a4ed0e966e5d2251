//! The WebSocket wire format (RFC 6455) as a server speaks it, with no I/O.
//! Frames to clients are unmasked, so a frame is encoded once, header and
//! payload, and the same bytes go to every recipient (`Frame` keeps them).
//! Frames from clients are read by `Decoder`: masked, possibly fragmented,
//! with control frames in between, one message at a time; it holds bytes
//! only while some are not decoded yet, so an idle connection holds nothing.

use bytes::{Bytes, BytesMut};

/// The longest header a server frame needs: 2 bytes, 2 more for a length
/// of up to 65,535, or 8 more beyond.
pub const MAX_HEADER: usize = 10;

const FIN: u8 = 0x80;
const OP_CONTINUATION: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;

/// Writes the header of a final, unmasked frame of `opcode` carrying `len`
/// bytes into the end of `out`, and returns where it starts.
fn header_into(opcode: u8, len: usize, out: &mut [u8; MAX_HEADER]) -> usize {
    let first = FIN | opcode;
    if len < 126 {
        out[8] = first;
        out[9] = len as u8;
        8
    } else if len <= u16::MAX as usize {
        out[6] = first;
        out[7] = 126;
        out[8..10].copy_from_slice(&(len as u16).to_be_bytes());
        6
    } else {
        out[0] = first;
        out[1] = 127;
        out[2..10].copy_from_slice(&(len as u64).to_be_bytes());
        0
    }
}

/// The header of a text frame of `len` bytes, placed at the end of a
/// `MAX_HEADER` buffer; returns the buffer and where the header starts.
pub fn text_header(len: usize) -> ([u8; MAX_HEADER], usize) {
    let mut out = [0; MAX_HEADER];
    let start = header_into(OP_TEXT, len, &mut out);
    (out, start)
}

fn control(opcode: u8, payload: &[u8]) -> Bytes {
    debug_assert!(payload.len() <= 125, "control frames carry at most 125 bytes");
    let mut header = [0; MAX_HEADER];
    let start = header_into(opcode, payload.len(), &mut header);
    let mut frame = BytesMut::with_capacity(MAX_HEADER - start + payload.len());
    frame.extend_from_slice(&header[start..]);
    frame.extend_from_slice(payload);
    frame.freeze()
}

/// A ping, empty.
pub fn ping() -> Bytes {
    control(OP_PING, &[])
}

/// The pong that answers a ping with `payload`.
pub fn pong(payload: &[u8]) -> Bytes {
    control(OP_PONG, payload)
}

/// A close frame with `code` and `reason` (cut to fit a control frame).
pub fn close(code: u16, reason: &str) -> Bytes {
    let mut payload = code.to_be_bytes().to_vec();
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    payload.extend_from_slice(&reason.as_bytes()[..end]);
    control(OP_CLOSE, &payload)
}

/// What a client sent, whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    Text(String),
    Binary,
    Ping(Vec<u8>),
    Pong,
    /// The client closes; its code, if it gave one.
    Close(Option<u16>),
}

/// Why the connection must close (the close code to send).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Violation {
    /// 1002: not a frame a client may send.
    Protocol,
    /// 1007: a text message that is not UTF-8.
    InvalidUtf8,
    /// 1009: a message over the size limit.
    TooBig,
}

/// Reads client frames from the bytes as they arrive, one message at a time.
#[derive(Debug)]
pub struct Decoder {
    max_message: usize,
    /// Bytes read and not decoded yet, from `start`; freed once all are decoded.
    buffer: Vec<u8>,
    start: usize,
    /// A fragmented message being put together, and whether it is text.
    message: Option<(Vec<u8>, bool)>,
}

impl Decoder {
    pub fn new(max_message: usize) -> Self {
        Decoder { max_message, buffer: Vec::new(), start: 0, message: None }
    }

    /// Bytes the decoder holds: what was read and not decoded, and a
    /// fragmented message's parts.
    pub fn holds(&self) -> usize {
        self.buffer.capacity() + self.message.as_ref().map_or(0, |(bytes, _)| bytes.capacity())
    }

    /// Where bytes read from the client go: append to it.
    pub fn buffer(&mut self) -> &mut Vec<u8> {
        if self.start > 0 {
            self.buffer.drain(..self.start);
            self.start = 0;
        }
        &mut self.buffer
    }

    /// The next whole message among the bytes read, if they hold one; a
    /// violation ends the connection.
    pub fn next_message(&mut self) -> Result<Option<Incoming>, Violation> {
        let decoded = self.decode();
        if self.start == self.buffer.len() {
            // Everything read was decoded: an idle connection keeps no buffer.
            self.buffer = Vec::new();
            self.start = 0;
        }
        decoded
    }

    fn decode(&mut self) -> Result<Option<Incoming>, Violation> {
        loop {
            let input = &self.buffer[self.start..];
            let Some((head, len)) = self.header(input)? else { return Ok(None) };
            if input.len() - head < len {
                return Ok(None);
            }
            let first = input[0];
            let mask: [u8; 4] = input[head - 4..head].try_into().expect("four bytes");
            let mut payload = input[head..head + len].to_vec();
            for (i, byte) in payload.iter_mut().enumerate() {
                *byte ^= mask[i % 4];
            }
            self.start += head + len;
            if let Some(incoming) = self.frame(first, payload)? {
                return Ok(Some(incoming));
            }
        }
    }

    /// A frame's header length and payload length, once the whole header
    /// is there.
    fn header(&self, input: &[u8]) -> Result<Option<(usize, usize)>, Violation> {
        if input.len() < 2 {
            return Ok(None);
        }
        let (first, second) = (input[0], input[1]);
        if first & 0x70 != 0 || second & 0x80 == 0 {
            // Reserved bits without an extension, or an unmasked client frame.
            return Err(Violation::Protocol);
        }
        let (extra, len) = match second & 0x7F {
            126 if input.len() < 4 => return Ok(None),
            126 => (2, u16::from_be_bytes([input[2], input[3]]) as u64),
            127 if input.len() < 10 => return Ok(None),
            127 => (8, u64::from_be_bytes(input[2..10].try_into().expect("eight bytes"))),
            len => (0, u64::from(len)),
        };
        if len > self.max_message as u64 {
            return Err(Violation::TooBig);
        }
        let head = 2 + extra + 4;
        if input.len() < head {
            return Ok(None);
        }
        Ok(Some((head, len as usize)))
    }

    /// One frame: a whole message, or `None` for a fragment that is not the last.
    fn frame(&mut self, first: u8, payload: Vec<u8>) -> Result<Option<Incoming>, Violation> {
        let fin = first & FIN != 0;
        match first & 0x0F {
            op @ (OP_PING | OP_PONG | OP_CLOSE) => {
                if !fin || payload.len() > 125 {
                    return Err(Violation::Protocol);
                }
                Ok(Some(match op {
                    OP_PING => Incoming::Ping(payload),
                    OP_PONG => Incoming::Pong,
                    _ => Incoming::Close(close_code(&payload)?),
                }))
            }
            op @ (OP_TEXT | OP_BINARY) => {
                if self.message.is_some() {
                    return Err(Violation::Protocol);
                }
                if fin {
                    return whole(payload, op == OP_TEXT).map(Some);
                }
                self.message = Some((payload, op == OP_TEXT));
                Ok(None)
            }
            OP_CONTINUATION => {
                let Some((mut message, text)) = self.message.take() else { return Err(Violation::Protocol) };
                if message.len() + payload.len() > self.max_message {
                    return Err(Violation::TooBig);
                }
                message.extend_from_slice(&payload);
                if fin {
                    return whole(message, text).map(Some);
                }
                self.message = Some((message, text));
                Ok(None)
            }
            _ => Err(Violation::Protocol),
        }
    }
}

fn whole(payload: Vec<u8>, text: bool) -> Result<Incoming, Violation> {
    if !text {
        return Ok(Incoming::Binary);
    }
    String::from_utf8(payload).map(Incoming::Text).map_err(|_| Violation::InvalidUtf8)
}

fn close_code(payload: &[u8]) -> Result<Option<u16>, Violation> {
    match payload {
        [] => Ok(None),
        [_] => Err(Violation::Protocol),
        [high, low, reason @ ..] => {
            std::str::from_utf8(reason).map_err(|_| Violation::InvalidUtf8)?;
            Ok(Some(u16::from_be_bytes([*high, *low])))
        }
    }
}

/// The `Sec-WebSocket-Accept` answer to a `Sec-WebSocket-Key`.
pub fn accept_key(key: &[u8]) -> String {
    use base64::Engine;
    use sha1::Digest;
    let mut sha1 = sha1::Sha1::new();
    sha1.update(key);
    sha1.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    base64::engine::general_purpose::STANDARD.encode(sha1.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client frame: masked with a fixed key.
    fn client(first: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [1, 2, 3, 4];
        let mut frame = vec![first];
        match payload.len() {
            len if len < 126 => frame.push(0x80 | len as u8),
            len if len <= 65535 => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(len as u16).to_be_bytes());
            }
            len => {
                frame.push(0x80 | 127);
                frame.extend_from_slice(&(len as u64).to_be_bytes());
            }
        }
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        frame
    }

    fn decode_all(decoder: &mut Decoder, input: &[u8]) -> Result<Vec<Incoming>, Violation> {
        decoder.buffer().extend_from_slice(input);
        let mut out = Vec::new();
        while let Some(incoming) = decoder.next_message()? {
            out.push(incoming);
        }
        Ok(out)
    }

    #[test]
    fn the_rfc_example_key_is_accepted() {
        assert_eq!(accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn server_headers_use_the_shortest_length() {
        let (header, start) = text_header(5);
        assert_eq!(&header[start..], [0x81, 5]);
        let (header, start) = text_header(300);
        assert_eq!(&header[start..], [0x81, 126, 1, 44]);
        let (header, start) = text_header(70_000);
        assert_eq!(&header[start..], [0x81, 127, 0, 0, 0, 0, 0, 1, 0x11, 0x70]);
        assert_eq!(&close(1000, "bye")[..], [0x88, 5, 0x03, 0xE8, b'b', b'y', b'e']);
    }

    #[test]
    fn frames_split_anywhere_are_read_whole_and_in_order() {
        let mut stream = client(0x81, b"hello");
        stream.extend(client(0x01, b"frag"));
        stream.extend(client(0x89, b"p"));
        stream.extend(client(0x80, b"mented"));
        stream.extend(client(0x81, &vec![b'x'; 70_000]));
        stream.extend(client(0x88, &[0x03, 0xE8]));
        for split in [1, 2, 7, 100, 65_536, stream.len()] {
            let mut decoder = Decoder::new(100_000);
            let mut seen = Vec::new();
            for chunk in stream.chunks(split) {
                seen.extend(decode_all(&mut decoder, chunk).unwrap());
            }
            assert_eq!(seen.len(), 5, "split {split}");
            assert_eq!(seen[0], Incoming::Text("hello".into()));
            assert_eq!(seen[1], Incoming::Ping(b"p".to_vec()), "a control frame between fragments");
            assert_eq!(seen[2], Incoming::Text("fragmented".into()));
            assert_eq!(seen[3], Incoming::Text("x".repeat(70_000)));
            assert_eq!(seen[4], Incoming::Close(Some(1000)));
            assert_eq!(decoder.holds(), 0, "nothing is kept once every byte was decoded");
        }
    }

    #[test]
    fn violations_close_with_their_code() {
        let mut decoder = Decoder::new(10);
        assert_eq!(decode_all(&mut decoder, &client(0x81, &[b'x'; 11])), Err(Violation::TooBig));
        let mut decoder = Decoder::new(10);
        let mut fragments = client(0x01, b"123456");
        fragments.extend(client(0x80, b"789012"));
        assert_eq!(decode_all(&mut decoder, &fragments), Err(Violation::TooBig));
        let unmasked = [0x81, 1, b'x'];
        assert_eq!(decode_all(&mut Decoder::new(10), &unmasked), Err(Violation::Protocol));
        assert_eq!(decode_all(&mut Decoder::new(10), &client(0xC1, b"x")), Err(Violation::Protocol), "RSV1");
        assert_eq!(decode_all(&mut Decoder::new(10), &client(0x80, b"x")), Err(Violation::Protocol), "orphan");
        assert_eq!(decode_all(&mut Decoder::new(10), &client(0x09, b"x")), Err(Violation::Protocol), "fragmented ping");
        assert_eq!(decode_all(&mut Decoder::new(10), &client(0x81, &[0xC3, 0x28])), Err(Violation::InvalidUtf8));
        assert_eq!(decode_all(&mut Decoder::new(10), &client(0x83, b"x")), Err(Violation::Protocol), "opcode 3");
        let mut binary = Decoder::new(10);
        assert_eq!(decode_all(&mut binary, &client(0x82, b"\x00\x01")), Ok(vec![Incoming::Binary]));
    }
}
