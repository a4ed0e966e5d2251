//! What roomcast needs of its database, described once: every index it
//! reads by or relies on, the collections whose change events must carry
//! pre-images, and the indexes it replaced and must not find any more.
//! Start-up either creates it (`provision`, `mongo.create_indexes: true`) or
//! only checks it (`inspection`); deploy/mongodb/setup.js creates the same
//! for operators who provision the database themselves. No I/O here.

use std::fmt;

use bson::{doc, Bson, Document};
use mongodb::options::IndexOptions;
use mongodb::IndexModel;

use crate::collections::{
    CLIENT_ID_INDEX, LEGACY_CLIENT_ID_INDEX, MEMBER_ROOMS_INDEX, MESSAGES, PRESENCE, PRESENCE_REPLICAS, READ_MARKERS,
    ROOM_MEMBERS, ROOM_SEQ_INDEX, TYPING,
};
use crate::settings::{Channel, RoomPolicy, Settings};

/// What an operator does about a missing or wrong part of the schema.
const FIX: &str = "run deploy/mongodb/setup.js or set mongo.create_indexes: true";

/// The options of an index that change what it does, as `listIndexes`
/// shows them. Any other option (`v`, `background`, …) is left out of the
/// comparison.
const MEANINGFUL_OPTIONS: [&str; 6] =
    ["unique", "partialFilterExpression", "expireAfterSeconds", "sparse", "hidden", "collation"];

/// One index roomcast needs: compared by name, key pattern and
/// `MEANINGFUL_OPTIONS`. The name counts, because the relay hints the
/// resend lookup's index by name and tells a repeated `client_id` from a
/// taken seq by the name in a duplicate-key error.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexSpec {
    pub collection: String,
    pub name: String,
    pub keys: Document,
    /// Only meaningful options, as `listIndexes` shows them.
    options: Document,
}

impl IndexSpec {
    fn new(collection: &str, name: &str, keys: Document) -> Self {
        IndexSpec { collection: collection.to_string(), name: name.to_string(), keys, options: Document::new() }
    }

    fn unique(mut self) -> Self {
        self.options.insert("unique", true);
        self
    }

    fn partial(mut self, filter: Document) -> Self {
        self.options.insert("partialFilterExpression", filter);
        self
    }

    fn expire_after(mut self, seconds: i64) -> Self {
        self.options.insert("expireAfterSeconds", seconds);
        self
    }

    /// The index as `createIndexes` takes it.
    pub fn model(&self) -> IndexModel {
        let options = IndexOptions::builder()
            .name(self.name.clone())
            .unique(self.options.get_bool("unique").ok())
            .partial_filter_expression(self.options.get_document("partialFilterExpression").ok().cloned())
            .expire_after(
                self.options.get_i64("expireAfterSeconds").ok().map(|s| std::time::Duration::from_secs(s as u64)),
            )
            .build();
        IndexModel::builder().keys(self.keys.clone()).options(options).build()
    }

    /// What `found`, the indexes `listIndexes` reports, holds of this one.
    pub fn find_in(&self, found: &[Document]) -> Found {
        let named = found.iter().find(|index| index.get_str("name") == Ok(self.name.as_str()));
        if let Some(index) = named {
            return match same_value(&Bson::Document(index_keys(index)), &Bson::Document(self.keys.clone()))
                && same_value(
                    &Bson::Document(meaningful_options(index)),
                    &Bson::Document(meaningful_options(&self.options)),
                ) {
                true => Found::Same,
                false => Found::Conflict(describe_listed(index)),
            };
        }
        // The same key pattern under another name stops `createIndexes` too.
        let same_keys = found
            .iter()
            .find(|index| same_value(&Bson::Document(index_keys(index)), &Bson::Document(self.keys.clone())));
        match same_keys {
            Some(index) => Found::Conflict(describe_listed(index)),
            None => Found::Absent,
        }
    }
}

/// `room_seq {room: 1, seq: 1} (unique)`, as the error lines name it.
impl fmt::Display for IndexSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&describe(&self.name, &self.keys, &meaningful_options(&self.options)))
    }
}

/// What a collection holds of an index roomcast needs.
#[derive(Debug, Clone, PartialEq)]
pub enum Found {
    Same,
    Absent,
    /// An index in its way: its name with another definition, or its key
    /// pattern under another name, described.
    Conflict(String),
}

/// An index roomcast once created and must not find any more.
#[derive(Debug, Clone)]
pub struct ObsoleteIndex {
    pub collection: &'static str,
    pub name: &'static str,
    /// The index that replaced it, which must exist before it is dropped.
    pub replaced_by: &'static str,
    /// Why it must go, for the error line.
    pub reason: &'static str,
}

/// Everything roomcast needs of its database, for one configuration.
#[derive(Debug, Clone)]
pub struct Schema {
    /// In the order they are created and checked.
    pub indexes: Vec<IndexSpec>,
    /// Collections whose change events must carry the document as it was
    /// before (`changeStreamPreAndPostImages`), so a hard delete names its room.
    pub pre_images: Vec<String>,
    /// Dropped by `provision` once their replacements exist; refused by the check.
    pub obsolete: Vec<ObsoleteIndex>,
}

impl Schema {
    /// What a relay with these settings needs: the indexes of its own
    /// collections, one per user route, and `room_members`' under
    /// `room_policy: membership`.
    pub fn for_settings(settings: &Settings) -> Schema {
        let mut indexes = vec![
            // It decides which writer gets a seq, and serves history and the
            // room's current seq.
            IndexSpec::new(MESSAGES, ROOM_SEQ_INDEX, doc! { "room": 1, "seq": 1 }).unique(),
            // Idempotent sends. Partial, so documents other programs write
            // without a client_id never collide with each other on
            // (room, author, null); led by the room, so `messages` can be
            // sharded by room (docs/operations.md).
            IndexSpec::new(MESSAGES, CLIENT_ID_INDEX, doc! { "room": 1, "author": 1, "client_id": 1 })
                .unique()
                .partial(doc! { "client_id": { "$type": "string" } }),
            // A user's markers, most recently raised first, for the room
            // list; `_id: {user, room}` makes each marker unique.
            IndexSpec::new(READ_MARKERS, "user_at", doc! { "user": 1, "at": -1 }),
        ];
        for route in settings.routes.iter().filter(|route| route.channel == Channel::User) {
            // The pages of a user's documents: the key, then `_id` descending.
            let key = route.key.as_str();
            let index = IndexSpec::new(&route.collection, &format!("{key}_1__id_-1"), doc! { key: 1, "_id": -1 });
            if !indexes.contains(&index) {
                indexes.push(index);
            }
        }
        if settings.auth.room_policy == RoomPolicy::Membership {
            // A join's lookup, unique per (room, user); and a user's
            // memberships, for the room list, which would otherwise scan
            // every other user's.
            indexes.push(IndexSpec::new(ROOM_MEMBERS, "room_user", doc! { "room": 1, "user": 1 }).unique());
            indexes.push(IndexSpec::new(ROOM_MEMBERS, MEMBER_ROOMS_INDEX, doc! { "user": 1, "room": 1 }));
        }
        indexes.extend([
            // A room's presence snapshot, and the sweep of a dead replica's.
            IndexSpec::new(PRESENCE, "room", doc! { "room": 1 }),
            IndexSpec::new(PRESENCE, "replica", doc! { "replica": 1 }),
            // Clean-ups of what nothing else removes, not the rule: a dead
            // replica's heartbeat after a day, a typing mark after a minute.
            IndexSpec::new(PRESENCE_REPLICAS, "at_ttl", doc! { "at": 1 }).expire_after(24 * 3600),
            IndexSpec::new(TYPING, "at_ttl", doc! { "at": 1 }).expire_after(60),
        ]);
        Schema {
            indexes,
            pre_images: vec![MESSAGES.to_string()],
            obsolete: vec![ObsoleteIndex {
                collection: MESSAGES,
                name: LEGACY_CLIENT_ID_INDEX,
                replaced_by: CLIENT_ID_INDEX,
                reason: "as it would refuse a client_id reused in another room",
            }],
        }
    }

    /// The indexes, by collection, in the order collections first appear.
    pub fn by_collection(&self) -> Vec<(&str, Vec<&IndexSpec>)> {
        let mut grouped: Vec<(&str, Vec<&IndexSpec>)> = Vec::new();
        for index in &self.indexes {
            match grouped.iter_mut().find(|(collection, _)| *collection == index.collection) {
                Some((_, indexes)) => indexes.push(index),
                None => grouped.push((&index.collection, vec![index])),
            }
        }
        grouped
    }
}

/// What start-up found wrong with the database, in one line that names it
/// and says how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("missing index {index} on {namespace}{}: {FIX}", in_the_way(.conflict))]
    MissingIndex { index: String, namespace: String, conflict: Option<String> },
    #[error("change stream pre-images are off on {namespace} (changeStreamPreAndPostImages), so hard deletes cannot be relayed: {FIX}")]
    PreImagesOff { namespace: String },
    #[error("obsolete index {index} on {namespace} must be dropped, {reason}: {FIX}")]
    ObsoleteIndex { index: String, namespace: String, reason: &'static str },
    #[error("cannot create index {index} on {namespace}: {source}")]
    Refused { index: String, namespace: String, source: mongodb::error::Error },
    /// The database could not be asked: not a fault of the schema.
    #[error(transparent)]
    Database(#[from] mongodb::error::Error),
}

fn in_the_way(conflict: &Option<String>) -> String {
    match conflict {
        Some(found) => format!(" (in its way: {found}; drop that first)"),
        None => String::new(),
    }
}

fn index_keys(listed: &Document) -> Document {
    listed.get_document("key").cloned().unwrap_or_default()
}

/// The options of a listed index that change what it does, in one order;
/// `false` is the same as absent.
fn meaningful_options(listed: &Document) -> Document {
    MEANINGFUL_OPTIONS
        .iter()
        .filter_map(|option| match listed.get(*option) {
            None | Some(Bson::Boolean(false)) => None,
            Some(value) => Some((option.to_string(), value.clone())),
        })
        .collect()
}

fn describe_listed(listed: &Document) -> String {
    describe(listed.get_str("name").unwrap_or("?"), &index_keys(listed), &meaningful_options(listed))
}

/// `name {keys} (options)`, written as a MongoDB shell would.
fn describe(name: &str, keys: &Document, options: &Document) -> String {
    let options: Vec<String> = options
        .iter()
        .map(|(option, value)| match (option.as_str(), value) {
            ("unique" | "sparse" | "hidden", _) => option.clone(),
            ("partialFilterExpression", value) => format!("partial {}", shell(value)),
            ("expireAfterSeconds", value) => format!("TTL {} s", shell(value)),
            (_, value) => format!("{option} {}", shell(value)),
        })
        .collect();
    let keys = shell(&Bson::Document(keys.clone()));
    match options.is_empty() {
        true => format!("{name} {keys}"),
        false => format!("{name} {keys} ({})", options.join(", ")),
    }
}

/// A value as the MongoDB shell writes it: `{room: 1, seq: -1}`.
fn shell(value: &Bson) -> String {
    match value {
        Bson::Document(document) => {
            let fields: Vec<String> = document
                .iter()
                .map(|(key, value)| {
                    let bare = key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$');
                    let key = if bare { key.clone() } else { format!("{key:?}") };
                    format!("{key}: {}", shell(value))
                })
                .collect();
            format!("{{{}}}", fields.join(", "))
        }
        Bson::Double(number) if number.fract() == 0.0 => format!("{number:.0}"),
        Bson::String(text) => format!("{text:?}"),
        other => other.to_string(),
    }
}

/// Equal as the server compares index definitions: numbers by value,
/// whatever their BSON type (a shell's `1` may arrive as a double), and
/// documents field by field, in order.
fn same_value(a: &Bson, b: &Bson) -> bool {
    let number = |value: &Bson| match value {
        Bson::Int32(n) => Some(f64::from(*n)),
        Bson::Int64(n) => Some(*n as f64),
        Bson::Double(n) => Some(*n),
        _ => None,
    };
    match (a, b) {
        (Bson::Document(a), Bson::Document(b)) => {
            a.len() == b.len() && a.iter().zip(b.iter()).all(|((ka, va), (kb, vb))| ka == kb && same_value(va, vb))
        }
        (Bson::Array(a), Bson::Array(b)) => a.len() == b.len() && a.iter().zip(b).all(|(a, b)| same_value(a, b)),
        _ => match (number(a), number(b)) {
            (Some(a), Some(b)) => a == b,
            _ => a == b,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room_seq() -> IndexSpec {
        IndexSpec::new(MESSAGES, ROOM_SEQ_INDEX, doc! { "room": 1, "seq": 1 }).unique()
    }

    #[test]
    fn an_index_is_told_by_name_keys_and_the_options_that_change_it() {
        let spec = room_seq();
        let listed = doc! { "v": 2, "key": { "room": 1.0, "seq": 1_i64 }, "name": "room_seq", "unique": true };
        assert_eq!(spec.find_in(&[listed]), Found::Same);
        let not_unique = doc! { "v": 2, "key": { "room": 1, "seq": 1 }, "name": "room_seq" };
        assert_eq!(spec.find_in(&[not_unique]), Found::Conflict("room_seq {room: 1, seq: 1}".to_string()));
        let renamed = doc! { "key": { "room": 1, "seq": 1 }, "name": "room_1_seq_1", "unique": true };
        assert_eq!(spec.find_in(&[renamed]), Found::Conflict("room_1_seq_1 {room: 1, seq: 1} (unique)".to_string()));
        let other = doc! { "key": { "seq": 1, "room": 1 }, "name": "seq_room" };
        assert_eq!(spec.find_in(&[other]), Found::Absent);
    }

    #[test]
    fn error_lines_write_indexes_as_the_shell_does() {
        let spec = IndexSpec::new(MESSAGES, CLIENT_ID_INDEX, doc! { "room": 1, "author": 1, "client_id": 1 })
            .unique()
            .partial(doc! { "client_id": { "$type": "string" } });
        assert_eq!(
            spec.to_string(),
            r#"room_author_client_id {room: 1, author: 1, client_id: 1} (unique, partial {client_id: {$type: "string"}})"#
        );
        let ttl = IndexSpec::new(TYPING, "at_ttl", doc! { "at": 1 }).expire_after(60);
        assert_eq!(ttl.to_string(), "at_ttl {at: 1} (TTL 60 s)");
        let error = SchemaError::MissingIndex {
            index: room_seq().to_string(),
            namespace: "roomcast.messages".into(),
            conflict: None,
        };
        assert_eq!(
            error.to_string(),
            "missing index room_seq {room: 1, seq: 1} (unique) on roomcast.messages: \
             run deploy/mongodb/setup.js or set mongo.create_indexes: true"
        );
    }
}
