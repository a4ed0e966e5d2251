//! An encoded server frame. The relay serializes each event once; every
//! recipient's queue then holds a clone of the same frame, which shares its
//! bytes instead of copying them.

use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

/// One encoded server frame (JSON text); clones share the bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame(Utf8Bytes);

impl Frame {
    pub fn text(&self) -> &str {
        self.0.as_str()
    }

    /// Bytes of JSON text, which is what a queue holding it is charged.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The frame's bytes, shared, not copied (an HTTP answer's body).
    pub fn into_bytes(self) -> bytes::Bytes {
        self.0.into()
    }

    /// The WebSocket text message that carries the frame.
    pub fn into_message(self) -> Message {
        Message::Text(self.0)
    }
}

impl From<String> for Frame {
    fn from(text: String) -> Self {
        Frame(text.into())
    }
}

impl From<&str> for Frame {
    fn from(text: &str) -> Self {
        Frame(text.into())
    }
}
