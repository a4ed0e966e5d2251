//! The queries a client's request makes the relay run, built in one place
//! so the store runs them and the tests can ask the database how it runs
//! them (`explain`). Each is a `find` on an index, bounded in the documents
//! it examines by the page it answers, not by the size of the room or the
//! user's history: by its `limit` on a server that stops an index scan at
//! the limit (MongoDB does), and, where the shape allows, by a range of
//! seqs that holds no more keys than the page (which bounds it on any
//! server). docs/design.md ("Query bounds") lists each with its bound.

use bson::{doc, Bson, Document};

use crate::collections::{MEMBER_ROOMS_INDEX, READ_MARKERS, ROOM_MEMBERS};

/// Which end of a room's history a read starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    OldestFirst,
    NewestFirst,
}

impl Order {
    fn direction(self) -> i32 {
        match self {
            Order::OldestFirst => 1,
            Order::NewestFirst => -1,
        }
    }
}

/// One `find`, as the store runs it and as `explain` takes it.
#[derive(Debug, Clone)]
pub struct Find {
    pub collection: String,
    pub filter: Document,
    pub sort: Option<Document>,
    pub limit: Option<i64>,
    pub projection: Option<Document>,
    /// The index it must use, by name, where the planner could pick
    /// another. Not given where the filter and sort name one index alone:
    /// secantusd-rs takes a hinted `find` an order of magnitude slower.
    pub hint: Option<&'static str>,
}

impl Find {
    fn new(collection: &str, filter: Document) -> Find {
        Find { collection: collection.to_string(), filter, sort: None, limit: None, projection: None, hint: None }
    }

    fn sort(mut self, sort: Document) -> Find {
        self.sort = Some(sort);
        self
    }

    fn limit(mut self, limit: Option<i64>) -> Find {
        self.limit = limit;
        self
    }

    fn projection(mut self, projection: Document) -> Find {
        self.projection = Some(projection);
        self
    }

    fn hint(mut self, index: &'static str) -> Find {
        self.hint = Some(index);
        self
    }

    /// The `find` command, for `explain`.
    pub fn command(&self) -> Document {
        let mut command = doc! { "find": &self.collection, "filter": self.filter.clone() };
        if let Some(sort) = &self.sort {
            command.insert("sort", sort.clone());
        }
        if let Some(limit) = self.limit {
            command.insert("limit", limit);
        }
        if let Some(projection) = &self.projection {
            command.insert("projection", projection.clone());
        }
        if let Some(hint) = self.hint {
            command.insert("hint", hint);
        }
        command
    }
}

/// The filter that finds the message a send with this `client_id` wrote
/// to this room. The `$type` predicate lets the planner use the partial
/// index `CLIENT_ID_INDEX` (which holds string ids only), which is hinted
/// too; the room, its first field, makes the lookup one shard's on a
/// cluster sharded by room.
pub fn resend_filter(room: &str, author: &str, client_id: &str) -> Document {
    doc! { "room": room, "author": author, "client_id": { "$eq": client_id, "$type": "string" } }
}

/// The room's newest seq, if it is at least `at_least`: the `(room, seq)`
/// index walked backwards, one key. A lower bound the caller knows (a read
/// marker, a `since`, a seq it saw committed) narrows the range to the
/// seqs above it, which a server that sizes up the whole range before it
/// reads (both builds of the development database do) reads quickly too.
pub fn newest_seq(collection: &str, room: &str, at_least: i64) -> Find {
    Find::new(collection, doc! { "room": room, "seq": { "$gte": at_least } })
        .sort(doc! { "seq": -1 })
        .limit(Some(1))
        .projection(doc! { "seq": 1, "_id": 0 })
}

/// The room's newest message, if its seq is at least `at_least`, as
/// `messages_in` shapes it.
pub fn newest_message(collection: &str, room: &str, at_least: i64, max_document_bytes: usize) -> Find {
    Find::new(collection, doc! { "room": room, "seq": { "$gte": at_least } })
        .sort(doc! { "seq": -1 })
        .limit(Some(1))
        .projection(message_projection(max_document_bytes))
}

/// Messages with `after < seq <= upto`, in `order`, at most `limit`: the
/// `(room, seq)` index walked forwards or backwards. Seqs are unique per
/// room, so the range itself holds at most `upto - after` keys.
pub fn messages_in(
    collection: &str,
    room: &str,
    after: i64,
    upto: i64,
    order: Order,
    limit: Option<i64>,
    max_document_bytes: usize,
) -> Find {
    Find::new(collection, doc! { "room": room, "seq": { "$gt": after, "$lte": upto } })
        .sort(doc! { "seq": order.direction() })
        .limit(limit)
        .projection(message_projection(max_document_bytes))
}

/// The fields a message frame shows, with the body left out of a document
/// over `max_document_bytes` (measured by the database) and `too_large` set.
fn message_projection(max_document_bytes: usize) -> Document {
    let too_large = doc! { "$gt": [{ "$bsonSize": "$$ROOT" }, max_document_bytes as i64] };
    doc! {
        "room": 1, "seq": 1, "author": 1, "sent_at": 1, "edited_at": 1, "deleted_at": 1,
        "body": { "$cond": [too_large.clone(), "$$REMOVE", "$body"] },
        "too_large": too_large,
    }
}

/// A user's documents of a user route with an `_id` below `before`, newest
/// first, at most `limit`: the route's `{key: 1, _id: -1}` index. Each
/// comes as `{_id, too_large, document}`, without `document` when it is
/// over `max_document_bytes`.
pub fn user_documents(
    collection: &str,
    key: &str,
    user: Bson,
    before: Option<Bson>,
    limit: i64,
    max_document_bytes: usize,
) -> Find {
    let mut filter = doc! { key: user };
    if let Some(before) = before {
        filter.insert("_id", doc! { "$lt": before });
    }
    let too_large = doc! { "$gt": [{ "$bsonSize": "$$ROOT" }, max_document_bytes as i64] };
    let projection = doc! {
        "_id": 1,
        "too_large": too_large.clone(),
        "document": { "$cond": [too_large, "$$REMOVE", "$$ROOT"] },
    };
    Find::new(collection, filter).sort(doc! { "_id": -1 }).limit(Some(limit)).projection(projection)
}

/// A user's read markers, most recently raised first, at most `limit`: the
/// `user_at` index.
pub fn read_markers_of(user: &str, limit: usize) -> Find {
    Find::new(READ_MARKERS, doc! { "user": user })
        .sort(doc! { "at": -1 })
        .limit(Some(limit as i64))
        .projection(doc! { "room": 1, "seq": 1, "_id": 0 })
        .hint("user_at")
}

/// The rooms of a user's memberships, at most `limit`, or only those among
/// `rooms`: the `{user, room}` index.
pub fn member_rooms(user: &str, among: Option<&[String]>, limit: usize) -> Find {
    let mut filter = doc! { "user": user };
    if let Some(rooms) = among {
        filter.insert("room", doc! { "$in": rooms });
    }
    Find::new(ROOM_MEMBERS, filter)
        .limit(Some(limit as i64))
        .projection(doc! { "room": 1, "_id": 0 })
        .hint(MEMBER_ROOMS_INDEX)
}

/// The membership that lets `user` into `room`: one key of the unique
/// `room_user` index.
pub fn membership(room: &str, user: &str) -> Find {
    Find::new(ROOM_MEMBERS, doc! { "room": room, "user": user })
        .limit(Some(1))
        .projection(doc! { "_id": 1 })
        .hint("room_user")
}
