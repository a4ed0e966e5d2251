//! The queries the relay runs for its reads, built in one place so the
//! store runs them and the tests can ask the database how it plans them
//! (`explain`). Every one of them is served by an index; docs/design.md
//! shows the plans.

use bson::{doc, Bson, Document};

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

/// The filter that finds the message a send with this `client_id` wrote
/// to this room. The `$type` predicate lets the planner use the partial
/// index `CLIENT_ID_INDEX` (which holds string ids only), which is hinted
/// too; the room, its first field, makes the lookup one shard's on a
/// cluster sharded by room.
pub fn resend_filter(room: &str, author: &str, client_id: &str) -> Document {
    doc! { "room": room, "author": author, "client_id": { "$eq": client_id, "$type": "string" } }
}

/// Messages with `after < seq <= upto`, in `order`, at most `limit`: the
/// `(room, seq)` index, walked forwards or backwards.
pub fn messages_between(
    room: &str,
    after: i64,
    upto: i64,
    order: Order,
    limit: Option<i64>,
    max_document_bytes: usize,
) -> Vec<Document> {
    let mut pipeline = vec![
        doc! { "$match": { "room": room, "seq": { "$gt": after, "$lte": upto } } },
        doc! { "$sort": { "seq": order.direction() } },
    ];
    if let Some(limit) = limit {
        pipeline.push(doc! { "$limit": limit });
    }
    pipeline.push(message_projection(max_document_bytes));
    pipeline
}

/// The newest message of each of `rooms`: the `(room, seq)` index, walked
/// from each room's highest seq.
pub fn newest_messages(rooms: &[String], max_document_bytes: usize) -> Vec<Document> {
    vec![
        doc! { "$match": { "room": { "$in": rooms } } },
        doc! { "$sort": { "room": 1, "seq": -1 } },
        doc! { "$group": { "_id": "$room", "newest": { "$first": "$$ROOT" } } },
        doc! { "$replaceRoot": { "newRoot": "$newest" } },
        message_projection(max_document_bytes),
    ]
}

/// The fields a message frame shows, with the body left out of a document
/// over `max_document_bytes` (measured by the database) and `too_large` set.
fn message_projection(max_document_bytes: usize) -> Document {
    let too_large = doc! { "$gt": [{ "$bsonSize": "$$ROOT" }, max_document_bytes as i64] };
    doc! { "$project": {
        "room": 1, "seq": 1, "author": 1, "sent_at": 1, "edited_at": 1, "deleted_at": 1,
        "body": { "$cond": [too_large.clone(), "$$REMOVE", "$body"] },
        "too_large": too_large,
    } }
}

/// A user's documents of a user route with an `_id` below `before`, newest
/// first, at most `limit`: the route's `{key: 1, _id: -1}` index. A
/// document over `max_document_bytes` becomes `{_id, too_large: true}`.
pub fn user_documents(
    key: &str,
    user: Bson,
    before: Option<Bson>,
    limit: i64,
    max_document_bytes: usize,
) -> Vec<Document> {
    let mut filter = doc! { key: user };
    if let Some(before) = before {
        filter.insert("_id", doc! { "$lt": before });
    }
    let too_large = doc! { "$gt": [{ "$bsonSize": "$$ROOT" }, max_document_bytes as i64] };
    let stub = doc! { "_id": "$_id", "too_large": true };
    vec![
        doc! { "$match": filter },
        doc! { "$sort": { "_id": -1 } },
        doc! { "$limit": limit },
        doc! { "$replaceRoot": { "newRoot": { "$cond": [too_large, stub, "$$ROOT"] } } },
    ]
}

/// A user's read markers, most recently raised first: the `user_at` index.
pub fn read_markers_of(user: &str) -> (Document, Document) {
    (doc! { "user": user }, doc! { "at": -1 })
}
