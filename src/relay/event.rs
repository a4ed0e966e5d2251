//! One change event, read where it lies in the batch MongoDB sent: routing
//! reads only the few fields it needs, in one pass over the event's bytes,
//! and an event that no connection here will receive is never decoded
//! further; a document is decoded whole only for someone who listens.
//! Decoding every event into the driver's `ChangeStreamEvent` built a tree
//! of every field of every event first, and the BSON library's own lookup
//! walks the document once per field it is asked for, validating every key
//! on the way: most of the cost of an event nobody here wanted.

use bson::raw::RawDocument;
use bson::{DateTime, Timestamp};

use crate::protocol::as_i64;

/// What happened, from `operationType`; lifecycle events end a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Insert,
    Update,
    Replace,
    Delete,
    /// `drop`, `rename`, `dropDatabase` or `invalidate`: the collection went away.
    Lifecycle,
    /// Anything else (a newer server's new kind): not relayed.
    Other,
}

/// A change event, borrowed from its batch. Reading it finds only what
/// every event is routed on (`operationType` and `fullDocument`), and stops
/// there; the rest is looked up when a route asks for it, which for most
/// events is never.
#[derive(Debug, Clone, Copy)]
pub struct Event<'a> {
    raw: &'a [u8],
    operation: Operation,
    operation_name: &'a [u8],
    full_document: Option<&'a [u8]>,
}

impl<'a> Event<'a> {
    /// Reads the fields every route needs, in one pass that ends once both
    /// are found.
    pub fn read(raw: &'a [u8]) -> Event<'a> {
        let mut event = Event { raw, operation: Operation::Other, operation_name: b"", full_document: None };
        for element in Elements::of(raw) {
            match element.key {
                b"operationType" => event.operation_name = element.value.str_bytes().unwrap_or(b""),
                b"fullDocument" => event.full_document = element.value.document_bytes(),
                _ => continue,
            }
            if !event.operation_name.is_empty() && event.full_document.is_some() {
                break;
            }
        }
        event.operation = match event.operation_name {
            b"insert" => Operation::Insert,
            b"update" => Operation::Update,
            b"replace" => Operation::Replace,
            b"delete" => Operation::Delete,
            b"drop" | b"rename" | b"dropDatabase" | b"invalidate" => Operation::Lifecycle,
            _ => Operation::Other,
        };
        event
    }

    pub fn operation(&self) -> Operation {
        self.operation
    }

    /// The operation's name, for the logs.
    pub fn operation_name(&self) -> &str {
        std::str::from_utf8(self.operation_name).unwrap_or("?")
    }

    fn field(&self, name: &[u8]) -> Option<Value<'a>> {
        let [value] = scan(self.raw, [name]);
        value
    }

    /// The event's `_id`: where a stream resumes to come right after it.
    /// Decoded only when a batch ends, not per event.
    pub fn resume_token(&self) -> Option<bson::Bson> {
        self.field(b"_id").and_then(Value::to_bson)
    }

    /// The document as it is now (inserts, replaces, looked-up updates), as
    /// its bytes: enough to route it.
    pub fn full_document_bytes(&self) -> Option<&'a [u8]> {
        self.full_document
    }

    /// The document as it is now, to decode.
    pub fn full_document(&self) -> Option<&'a RawDocument> {
        RawDocument::from_bytes(self.full_document?).ok()
    }

    /// The document as it was before (deletes and replaces, with pre-images).
    pub fn before_change(&self) -> Option<&'a RawDocument> {
        self.field(b"fullDocumentBeforeChange").and_then(Value::document)
    }

    /// `documentKey`: the `_id`, and the shard key on a sharded collection.
    pub fn document_key(&self) -> Option<&'a RawDocument> {
        self.field(b"documentKey").and_then(Value::document)
    }

    /// The `_id` of `documentKey`, when it is a document (the internal
    /// collections' compound keys).
    pub fn key_document(&self) -> Option<&'a RawDocument> {
        let [id] = scan(self.document_key()?.as_bytes(), [b"_id"]);
        id.and_then(Value::document)
    }

    /// The new value of `field`, from an update's `updateDescription`.
    pub fn updated(&self, field: &str) -> Option<i64> {
        let update = self.field(b"updateDescription").and_then(Value::document_bytes)?;
        let [updated] = scan(update, [b"updatedFields"]);
        let [value] = scan(updated.and_then(Value::document_bytes)?, [field.as_bytes()]);
        value.and_then(Value::integer)
    }

    pub fn cluster_time(&self) -> Option<Timestamp> {
        self.field(b"clusterTime").and_then(Value::timestamp)
    }

    pub fn wall_time(&self) -> Option<DateTime> {
        self.field(b"wallTime").and_then(Value::datetime)
    }
}

/// A document's `room` and integer `seq`, read in one pass from its bytes:
/// what a room event is routed on.
pub fn room_and_seq(document: &[u8]) -> Option<(&str, i64)> {
    let (room, seq) = room_bytes_and_seq(document)?;
    Some((std::str::from_utf8(room).ok()?, seq))
}

/// The same, with the room's name as bytes not yet checked to be UTF-8:
/// enough to skip a room nobody here listens to, which most events are.
pub fn room_bytes_and_seq(document: &[u8]) -> Option<(&[u8], i64)> {
    // Matched against constant keys, which compile to a compare or two,
    // where `scan`'s keys only known at run time cost a call each.
    let (mut room, mut seq) = (None, None);
    for element in Elements::of(document) {
        match element.key {
            b"room" => room = Some(element.value),
            b"seq" => seq = Some(element.value),
            _ => continue,
        }
        if room.is_some() && seq.is_some() {
            break;
        }
    }
    Some((room?.str_bytes()?, seq?.integer()?))
}

/// One element of a BSON document or array.
#[derive(Debug, Clone, Copy)]
pub struct Element<'a> {
    pub key: &'a [u8],
    pub value: Value<'a>,
}

/// The elements of the BSON document (or array) `bytes`, in order, without
/// validating what nobody looks at; iteration ends at the first fault.
pub struct Elements<'a> {
    bytes: &'a [u8],
    at: usize,
    end: usize,
}

impl<'a> Elements<'a> {
    pub fn of(bytes: &'a [u8]) -> Self {
        Elements { bytes, at: 4, end: bytes.len().saturating_sub(1) }
    }
}

impl<'a> Iterator for Elements<'a> {
    type Item = Element<'a>;

    // Inlined into each loop over a document's elements: the call itself
    // (saving and restoring registers) was a fifth of reading an element.
    #[inline(always)]
    fn next(&mut self) -> Option<Element<'a>> {
        if self.at >= self.end {
            return None;
        }
        let found = self.element();
        if found.is_none() {
            self.at = self.end;
        }
        found
    }
}

impl<'a> Elements<'a> {
    #[inline(always)]
    fn element(&mut self) -> Option<Element<'a>> {
        // Everything an element spans lies before the document's final NUL.
        let (&kind, rest) = self.bytes.get(self.at..self.end)?.split_first()?;
        let key_len = nul_at(rest)?;
        let (key, rest) = rest.split_at(key_len);
        let rest = &rest[1..];
        let value = rest.get(..value_len(kind, rest)?)?;
        self.at += 2 + key_len + value.len();
        Some(Element { key, value: Value { kind, bytes: value } })
    }
}

/// The value of one element: its BSON type and its bytes.
#[derive(Debug, Clone, Copy)]
pub struct Value<'a> {
    kind: u8,
    bytes: &'a [u8],
}

impl<'a> Value<'a> {
    /// A string's bytes, not yet checked to be UTF-8: its length with the
    /// terminating NUL comes first.
    fn str_bytes(self) -> Option<&'a [u8]> {
        (self.kind == 0x02).then(|| self.bytes.get(4..self.bytes.len().checked_sub(1)?))?
    }

    pub fn document(self) -> Option<&'a RawDocument> {
        RawDocument::from_bytes(self.document_bytes()?).ok()
    }

    /// An embedded document's bytes, checked only for what iterating them
    /// relies on: at least a length and a terminating NUL.
    pub fn document_bytes(self) -> Option<&'a [u8]> {
        (self.kind == 0x03 && self.bytes.len() >= 5 && self.bytes.last() == Some(&0)).then_some(self.bytes)
    }

    /// An integer stored by any driver: Int32, Int64, or an integral Double.
    pub fn integer(self) -> Option<i64> {
        match self.kind {
            0x10 => Some(i64::from(i32::from_le_bytes(self.bytes.try_into().ok()?))),
            0x12 => Some(i64::from_le_bytes(self.bytes.try_into().ok()?)),
            0x01 => as_i64(&bson::Bson::Double(f64::from_le_bytes(self.bytes.try_into().ok()?))),
            _ => None,
        }
    }

    fn timestamp(self) -> Option<Timestamp> {
        let value = u64::from_le_bytes(self.bytes.try_into().ok()?);
        (self.kind == 0x11).then_some(Timestamp { time: (value >> 32) as u32, increment: value as u32 })
    }

    fn datetime(self) -> Option<DateTime> {
        (self.kind == 0x09).then(|| Some(DateTime::from_millis(i64::from_le_bytes(self.bytes.try_into().ok()?))))?
    }

    /// The value, decoded whole: for what is rare enough not to matter.
    pub fn to_bson(self) -> Option<bson::Bson> {
        // A one-element document holding the value, for the library to read.
        let mut element = Vec::with_capacity(self.bytes.len() + 8);
        element.extend_from_slice(&[0; 4]);
        element.push(self.kind);
        element.extend_from_slice(b"v\0");
        element.extend_from_slice(self.bytes);
        element.push(0);
        let len = element.len() as i32;
        element[..4].copy_from_slice(&len.to_le_bytes());
        let mut document = bson::Document::try_from(bson::RawDocumentBuf::from_bytes(element).ok()?).ok()?;
        document.remove("v")
    }
}

/// The values of `keys` in the BSON document `bytes`, read in one pass over
/// its elements that ends once all are found. A document that does not
/// parse yields what was found before the fault.
pub fn scan<'a, const N: usize>(bytes: &'a [u8], keys: [&[u8]; N]) -> [Option<Value<'a>>; N] {
    let mut found = [None; N];
    let mut missing = N;
    for element in Elements::of(bytes) {
        if let Some(slot) = keys.iter().position(|wanted| *wanted == element.key) {
            if found[slot].is_none() {
                found[slot] = Some(element.value);
                missing -= 1;
                if missing == 0 {
                    break;
                }
            }
        }
    }
    found
}

/// Where the first NUL byte of `bytes` is: eight bytes at a time, as keys
/// are short and a vectorised search's set-up would cost more than it saves.
fn nul_at(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    let mut chunks = bytes.chunks_exact(8);
    let mut at = 0;
    for chunk in &mut chunks {
        let word = u64::from_le_bytes(chunk.try_into().unwrap_or_default());
        // Sets the high bit of the lowest zero byte, and of no byte before it.
        let zeros = word.wrapping_sub(ONES) & !word & HIGHS;
        if zeros != 0 {
            return Some(at + zeros.trailing_zeros() as usize / 8);
        }
        at += 8;
    }
    chunks.remainder().iter().position(|b| *b == 0).map(|offset| at + offset)
}

/// The length of a value of BSON type `kind` that starts `rest`.
#[inline(always)]
fn value_len(kind: u8, rest: &[u8]) -> Option<usize> {
    let int32 = |at: usize| -> Option<usize> {
        let len = i32::from_le_bytes(rest.get(at..at + 4)?.try_into().ok()?);
        usize::try_from(len).ok()
    };
    let cstring = |at: usize| rest.get(at..)?.iter().position(|b| *b == 0).map(|len| len + 1);
    Some(match kind {
        0x01 | 0x09 | 0x11 | 0x12 => 8,
        0x02 | 0x0D | 0x0E => 4 + int32(0)?,
        0x03 | 0x04 | 0x0F => int32(0)?,
        0x05 => 5 + int32(0)?,
        0x06 | 0x0A | 0xFF | 0x7F => 0,
        0x07 => 12,
        0x08 => 1,
        0x0B => {
            let pattern = cstring(0)?;
            pattern + cstring(pattern)?
        }
        0x0C => 4 + int32(0)? + 12,
        0x10 => 4,
        0x13 => 16,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::{doc, oid::ObjectId, Bson};

    #[test]
    fn an_event_is_read_in_one_pass_whatever_its_field_types() {
        let event = bson::RawDocumentBuf::from_document(&doc! {
            "_id": { "_data": "8266" },
            "operationType": "insert",
            "clusterTime": bson::Timestamp { time: 7, increment: 3 },
            "wallTime": bson::DateTime::from_millis(1234),
            "odd": { "$regex": "a", "$options": "i" },
            "re": Bson::RegularExpression(bson::Regex { pattern: "x+".into(), options: "i".into() }),
            "bin": Bson::Binary(bson::Binary { subtype: bson::spec::BinarySubtype::Generic, bytes: vec![1, 2] }),
            "fullDocument": { "_id": ObjectId::new(), "room": "lobby", "seq": 42_i64, "body": { "t": [1, 2.5, null] } },
            "documentKey": { "_id": { "room": "r", "user": "u" } },
            "updateDescription": { "updatedFields": { "seq": 9 } },
            "ns": { "db": "d", "coll": "c" },
        })
        .unwrap();
        let read = Event::read(event.as_bytes());
        assert_eq!(read.operation(), Operation::Insert);
        assert_eq!(read.cluster_time(), Some(bson::Timestamp { time: 7, increment: 3 }));
        assert_eq!(read.wall_time(), Some(bson::DateTime::from_millis(1234)));
        assert_eq!(room_and_seq(read.full_document().unwrap().as_bytes()), Some(("lobby", 42)));
        assert_eq!(read.key_document().unwrap().get_str("user").unwrap(), "u");
        assert_eq!(read.updated("seq"), Some(9));
        assert_eq!(read.resume_token(), Some(Bson::Document(doc! { "_data": "8266" })));
        let doubles = bson::RawDocumentBuf::from_document(&doc! { "room": "r", "seq": 3.0 }).unwrap();
        assert_eq!(room_and_seq(doubles.as_bytes()), Some(("r", 3)));
        let not_integral = bson::RawDocumentBuf::from_document(&doc! { "room": "r", "seq": 3.5 }).unwrap();
        assert_eq!(room_and_seq(not_integral.as_bytes()), None);
    }

    #[test]
    fn a_nul_is_found_wherever_it_lies() {
        for len in 0..20 {
            for nul in 0..len {
                let mut bytes = vec![0xFFu8; len];
                bytes[nul] = 0;
                if nul + 1 < len {
                    bytes[nul + 1] = 0;
                }
                assert_eq!(nul_at(&bytes), Some(nul), "len {len}, NUL at {nul}");
                bytes[nul] = 0x80;
                assert_eq!(nul_at(&bytes[..nul + 1]), None);
            }
        }
    }

    #[test]
    fn a_truncated_document_yields_what_came_before_the_fault() {
        let document = bson::RawDocumentBuf::from_document(&doc! { "room": "r", "seq": 1, "body": "xyz" }).unwrap();
        let bytes = document.as_bytes();
        for cut in 0..bytes.len() {
            let _ = scan(&bytes[..cut], [b"room", b"seq", b"body"]);
        }
        let [room] = scan(&bytes[..bytes.len() - 8], [b"room"]);
        assert_eq!(room.and_then(Value::str_bytes), Some(&b"r"[..]));
    }
}
