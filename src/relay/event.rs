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

/// A change event, borrowed from its batch.
#[derive(Debug)]
pub struct Event<'a> {
    operation: &'a str,
    id: Option<Value<'a>>,
    full_document: Option<&'a RawDocument>,
    before_change: Option<&'a RawDocument>,
    document_key: Option<&'a RawDocument>,
    update_description: Option<&'a RawDocument>,
    cluster_time: Option<Timestamp>,
    wall_time: Option<DateTime>,
}

const FIELDS: [&[u8]; 8] = [
    b"operationType",
    b"_id",
    b"fullDocument",
    b"fullDocumentBeforeChange",
    b"documentKey",
    b"updateDescription",
    b"clusterTime",
    b"wallTime",
];

impl<'a> Event<'a> {
    /// Reads the fields routing may need, in one pass.
    pub fn read(raw: &'a RawDocument) -> Event<'a> {
        let [operation, id, full, before, key, update, cluster, wall] = scan(raw.as_bytes(), FIELDS);
        Event {
            operation: operation.and_then(Value::str).unwrap_or(""),
            id,
            full_document: full.and_then(Value::document),
            before_change: before.and_then(Value::document),
            document_key: key.and_then(Value::document),
            update_description: update.and_then(Value::document),
            cluster_time: cluster.and_then(Value::timestamp),
            wall_time: wall.and_then(Value::datetime),
        }
    }

    pub fn operation(&self) -> Operation {
        match self.operation {
            "insert" => Operation::Insert,
            "update" => Operation::Update,
            "replace" => Operation::Replace,
            "delete" => Operation::Delete,
            "drop" | "rename" | "dropDatabase" | "invalidate" => Operation::Lifecycle,
            _ => Operation::Other,
        }
    }

    /// The operation's name, for the logs.
    pub fn operation_name(&self) -> &str {
        self.operation
    }

    /// The event's `_id`: where a stream resumes to come right after it.
    /// Decoded only when a batch ends, not per event.
    pub fn resume_token(&self) -> Option<bson::Bson> {
        self.id.and_then(Value::to_bson)
    }

    /// The document as it is now (inserts, replaces, looked-up updates).
    pub fn full_document(&self) -> Option<&'a RawDocument> {
        self.full_document
    }

    /// The document as it was before (deletes and replaces, with pre-images).
    pub fn before_change(&self) -> Option<&'a RawDocument> {
        self.before_change
    }

    /// `documentKey`: the `_id`, and the shard key on a sharded collection.
    pub fn document_key(&self) -> Option<&'a RawDocument> {
        self.document_key
    }

    /// The `_id` of `documentKey`, when it is a document (the internal
    /// collections' compound keys).
    pub fn key_document(&self) -> Option<&'a RawDocument> {
        let [id] = scan(self.document_key?.as_bytes(), [b"_id"]);
        id.and_then(Value::document)
    }

    /// The new value of `field`, from an update's `updateDescription`.
    pub fn updated(&self, field: &str) -> Option<i64> {
        let [updated] = scan(self.update_description?.as_bytes(), [b"updatedFields"]);
        let [value] = scan(updated.and_then(Value::document)?.as_bytes(), [field.as_bytes()]);
        value.and_then(Value::integer)
    }

    pub fn cluster_time(&self) -> Option<Timestamp> {
        self.cluster_time
    }

    pub fn wall_time(&self) -> Option<DateTime> {
        self.wall_time
    }
}

/// A document's `room` and integer `seq`, read in one pass: what a room
/// event is routed on.
pub fn room_and_seq(document: &RawDocument) -> Option<(&str, i64)> {
    let [room, seq] = scan(document.as_bytes(), [b"room", b"seq"]);
    Some((room?.str()?, seq?.integer()?))
}

/// The value of one element: its BSON type and its bytes.
#[derive(Debug, Clone, Copy)]
pub struct Value<'a> {
    kind: u8,
    bytes: &'a [u8],
}

impl<'a> Value<'a> {
    pub fn str(self) -> Option<&'a str> {
        // A string: its length with the terminating NUL, then the bytes.
        (self.kind == 0x02).then(|| std::str::from_utf8(self.bytes.get(4..self.bytes.len() - 1)?).ok())?
    }

    pub fn document(self) -> Option<&'a RawDocument> {
        (self.kind == 0x03).then(|| RawDocument::from_bytes(self.bytes).ok())?
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
/// its elements without validating what is skipped. A document that does
/// not parse yields what was found before the fault.
pub fn scan<'a, const N: usize>(bytes: &'a [u8], keys: [&[u8]; N]) -> [Option<Value<'a>>; N] {
    let mut found = [None; N];
    let mut missing = N;
    let mut at = 4;
    let end = bytes.len().saturating_sub(1);
    while at < end && missing > 0 {
        let kind = bytes[at];
        let Some(key_len) = bytes[at + 1..].iter().position(|b| *b == 0) else { break };
        let key = &bytes[at + 1..at + 1 + key_len];
        let value_at = at + 2 + key_len;
        let Some(len) = value_len(kind, &bytes[value_at.min(bytes.len())..]) else { break };
        let Some(value) = bytes.get(value_at..value_at + len) else { break };
        if let Some(slot) = keys.iter().position(|wanted| *wanted == key) {
            if found[slot].is_none() {
                found[slot] = Some(Value { kind, bytes: value });
                missing -= 1;
            }
        }
        at = value_at + len;
    }
    found
}

/// The length of a value of BSON type `kind` that starts `rest`.
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
        let read = Event::read(&event);
        assert_eq!(read.operation(), Operation::Insert);
        assert_eq!(read.cluster_time(), Some(bson::Timestamp { time: 7, increment: 3 }));
        assert_eq!(read.wall_time(), Some(bson::DateTime::from_millis(1234)));
        assert_eq!(room_and_seq(read.full_document().unwrap()), Some(("lobby", 42)));
        assert_eq!(read.key_document().unwrap().get_str("user").unwrap(), "u");
        assert_eq!(read.updated("seq"), Some(9));
        assert_eq!(read.resume_token(), Some(Bson::Document(doc! { "_data": "8266" })));
        let doubles = bson::RawDocumentBuf::from_document(&doc! { "room": "r", "seq": 3.0 }).unwrap();
        assert_eq!(room_and_seq(&doubles), Some(("r", 3)));
        let not_integral = bson::RawDocumentBuf::from_document(&doc! { "room": "r", "seq": 3.5 }).unwrap();
        assert_eq!(room_and_seq(&not_integral), None);
    }

    #[test]
    fn a_truncated_document_yields_what_came_before_the_fault() {
        let document = bson::RawDocumentBuf::from_document(&doc! { "room": "r", "seq": 1, "body": "xyz" }).unwrap();
        let bytes = document.as_bytes();
        for cut in 0..bytes.len() {
            let _ = scan(&bytes[..cut], [b"room", b"seq", b"body"]);
        }
        let [room] = scan(&bytes[..bytes.len() - 8], [b"room"]);
        assert_eq!(room.and_then(Value::str), Some("r"));
    }
}
