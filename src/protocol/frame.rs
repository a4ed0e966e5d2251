//! An encoded server frame. The relay serializes each event once, and keeps
//! the WebSocket frame around it too: a server's frames are unmasked, so
//! the header and the JSON text are the same bytes for every recipient.
//! Every recipient's queue then holds a clone of the same frame, which
//! shares those bytes instead of copying them, and a writer hands them to
//! the socket as they are. Other transports take the JSON text alone.

use bytes::{BufMut, Bytes, BytesMut};

use super::websocket::{text_header, MAX_HEADER};

/// One encoded server frame: a WebSocket text frame whose payload is the
/// frame's JSON text; clones share the bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    wire: Bytes,
    /// Where the JSON text starts in `wire`.
    text_at: u8,
    /// Its `type`, as an index into `prometheus::FRAME_TYPES`: read once
    /// here, so writers count frames without looking at them.
    kind: u8,
}

impl Frame {
    /// Encodes a frame by writing its JSON text with `write` into a buffer
    /// that keeps room for the WebSocket header in front, so neither is
    /// copied afterwards.
    pub fn encode(write: impl FnOnce(&mut BytesMut)) -> Frame {
        let mut buffer = BytesMut::with_capacity(MAX_HEADER + 128);
        buffer.put_bytes(0, MAX_HEADER);
        write(&mut buffer);
        let len = buffer.len() - MAX_HEADER;
        let (header, start) = text_header(len);
        buffer[start..MAX_HEADER].copy_from_slice(&header[start..]);
        let kind = crate::prometheus::frame_type(&buffer[MAX_HEADER..]) as u8;
        let wire = buffer.freeze().slice(start..);
        Frame { wire, text_at: (MAX_HEADER - start) as u8, kind }
    }

    /// Its `type`, as an index into `prometheus::FRAME_TYPES`.
    pub fn kind(&self) -> usize {
        self.kind as usize
    }

    /// The frame's JSON text.
    pub fn text(&self) -> &str {
        // Built only from `String`s and serde_json's output: always UTF-8.
        std::str::from_utf8(&self.wire[self.text_at as usize..]).expect("frames are UTF-8")
    }

    /// Bytes of JSON text, which is what a queue holding it is charged.
    pub fn len(&self) -> usize {
        self.wire.len() - self.text_at as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The whole WebSocket frame, header and text, shared.
    pub fn websocket(&self) -> &Bytes {
        &self.wire
    }

    /// The JSON text's bytes, shared, not copied (an HTTP answer's body).
    pub fn into_bytes(self) -> Bytes {
        self.wire.slice(self.text_at as usize..)
    }
}

impl From<&str> for Frame {
    fn from(text: &str) -> Self {
        Frame::encode(|buffer| buffer.extend_from_slice(text.as_bytes()))
    }
}

impl From<String> for Frame {
    fn from(text: String) -> Self {
        Frame::from(text.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_is_its_websocket_bytes_with_the_text_inside() {
        let frame = Frame::from(r#"{"type":"pong"}"#);
        assert_eq!(frame.text(), r#"{"type":"pong"}"#);
        assert_eq!(frame.len(), 15);
        assert_eq!(&frame.websocket()[..2], [0x81, 15]);
        assert_eq!(&frame.websocket()[2..], frame.text().as_bytes());
        let long = Frame::from("x".repeat(300));
        assert_eq!(&long.websocket()[..4], [0x81, 126, 1, 44]);
        assert_eq!(long.clone().into_bytes().len(), 300);
    }
}
