//! A database an older roomcast left behind: `messages` with the unique
//! `author_client_id {author: 1, client_id: 1}` index, which
//! `room_author_client_id {room: 1, author: 1, client_id: 1}` replaced.
//! Start-up creates the new index, then drops the old one; resends of what
//! was stored before keep getting their original ack.

use bson::oid::ObjectId;
use bson::{doc, Document};
use mongodb::options::IndexOptions;
use mongodb::{Collection, IndexModel};
use serde_json::json;
use std::future::IntoFuture;

use crate::client::Conversation;
use crate::helpers::{mongo, spawn_app, unique_database};

/// Prepares `database` as an older roomcast left it: its two unique
/// indexes and three messages sent with client_ids. The ids of the stored
/// messages, in insertion order.
async fn older_schema(database: &str) -> Vec<ObjectId> {
    let messages: Collection<Document> = mongo(database).await.collection("messages");
    let index = |name: &str, keys: Document, partial: Option<Document>| {
        let options = IndexOptions::builder().name(name.to_string()).unique(true).partial_filter_expression(partial);
        IndexModel::builder().keys(keys).options(options.build()).build()
    };
    let old = [
        index("room_seq", doc! {"room": 1, "seq": 1}, None),
        index("author_client_id", doc! {"author": 1, "client_id": 1}, Some(doc! {"client_id": {"$type": "string"}})),
    ];
    messages.create_indexes(old).await.unwrap();
    let mut ids = Vec::new();
    for (room, seq, author, client_id) in [("r", 1_i64, "alice", "c1"), ("r", 2, "bob", "c1"), ("s", 1, "alice", "c2")]
    {
        let id = ObjectId::new();
        let sent_at = bson::DateTime::now();
        let message = doc! {"_id": id, "room": room, "seq": seq, "author": author, "client_id": client_id, "body": seq, "sent_at": sent_at};
        messages.insert_one(message).await.unwrap();
        ids.push(id);
    }
    ids
}

/// The indexes of a collection, as `listIndexes` describes them.
pub async fn listed_indexes(database: &str, collection: &str) -> Vec<Document> {
    let reply = mongo(database).await.run_command(doc! {"listIndexes": collection, "cursor": {}}).await.unwrap();
    let batch = reply.get_document("cursor").unwrap().get_array("firstBatch").unwrap();
    batch.iter().map(|index| index.as_document().unwrap().clone()).collect()
}

fn named<'a>(indexes: &'a [Document], name: &str) -> Option<&'a Document> {
    indexes.iter().find(|index| index.get_str("name") == Ok(name))
}

/// The new index exists as roomcast defines it, and the old one is gone.
async fn assert_migrated(database: &str) {
    let indexes = listed_indexes(database, "messages").await;
    assert!(named(&indexes, "author_client_id").is_none(), "the old index is still there: {indexes:?}");
    let new = named(&indexes, "room_author_client_id").unwrap_or_else(|| panic!("no new index: {indexes:?}"));
    assert_eq!(new.get_document("key").unwrap(), &doc! {"room": 1, "author": 1, "client_id": 1});
    assert_eq!(new.get_bool("unique"), Ok(true));
    assert_eq!(new.get_document("partialFilterExpression").unwrap(), &doc! {"client_id": {"$type": "string"}});
}

#[tokio::test]
async fn start_up_replaces_the_old_client_id_index_and_stored_sends_stay_idempotent() {
    let database = unique_database();
    let ids = older_schema(&database).await;
    let app = spawn_app().database(&database).await;
    assert_migrated(&database).await;

    let mut alice = app.client("alice").await;
    alice.join("r").await;
    let resent = alice.post("r", "c1", json!("written before the upgrade")).await;
    assert_eq!(resent, json!({"type": "ack", "client_id": "c1", "room": "r", "seq": 1, "id": ids[0].to_hex()}));
    let mut bob = app.client("bob").await;
    bob.join("r").await;
    let resent = bob.post("r", "c1", json!("written before the upgrade")).await;
    assert_eq!(resent, json!({"type": "ack", "client_id": "c1", "room": "r", "seq": 2, "id": ids[1].to_hex()}));
    assert_eq!(app.message_count().await, 3, "the resends wrote nothing");

    // New sends go on at the next seq, and a stored client_id in another room is a new message.
    assert_eq!(alice.post("r", "c2", json!("new")).await["seq"], 3);
    assert_eq!(alice.message("r", 3).await["body"], "new");
    assert_eq!(app.message_count().await, 4);
}

#[tokio::test]
async fn relays_starting_at_once_on_the_older_schema_all_serve() {
    let database = unique_database();
    let ids = older_schema(&database).await;
    // Each sees the old index, creates the new one and drops the old one,
    // unless another did first: eight, so that they race.
    let starting = (0..8).map(|_| spawn_app().database(&database).into_future());
    let relays = futures::future::join_all(starting).await;
    assert_migrated(&database).await;

    let mut alice = relays[0].client("alice").await;
    alice.join("r").await;
    let mut again = relays[7].client("alice").await;
    again.join("r").await;
    let original = json!({"type": "ack", "client_id": "c1", "room": "r", "seq": 1, "id": ids[0].to_hex()});
    assert_eq!(alice.post("r", "c1", json!("resent")).await, original);
    assert_eq!(again.post("r", "c1", json!("resent")).await, original);
    let sent = alice.post("r", "c9", json!("new")).await;
    assert_eq!(again.post("r", "c9", json!("resent elsewhere")).await, sent);
    assert_eq!(sent["seq"], 3);
    let messages: Collection<Document> = mongo(&database).await.collection("messages");
    assert_eq!(messages.count_documents(doc! {}).await.unwrap(), 4);
}

#[tokio::test]
async fn while_an_old_relay_brings_the_old_index_back_a_client_id_reused_in_another_room_waits_and_is_never_doubled() {
    // During a rolling upgrade an old relay that restarts creates the old
    // index again, after a new relay dropped it. A send that collides on it
    // is answered as a repeated client_id: its original is looked up in its
    // own room, and since there is none yet, the answer is `pending`
    // (retried by clients) rather than a write or a spin on seqs.
    let database = unique_database();
    let ids = older_schema(&database).await;
    let app = spawn_app().database(&database).await;
    let messages: Collection<Document> = mongo(&database).await.collection("messages");
    let old = IndexModel::builder()
        .keys(doc! {"author": 1, "client_id": 1})
        .options(
            IndexOptions::builder()
                .name("author_client_id".to_string())
                .unique(true)
                .partial_filter_expression(doc! {"client_id": {"$type": "string"}})
                .build(),
        )
        .build();
    messages.create_index(old).await.unwrap();

    let mut alice = app.client("alice").await;
    alice.join("r").await;
    alice.join("s").await;
    let original = json!({"type": "ack", "client_id": "c1", "room": "r", "seq": 1, "id": ids[0].to_hex()});
    assert_eq!(alice.post("r", "c1", json!("resent")).await, original);
    let refused = alice.post("s", "c1", json!("another room")).await;
    assert_eq!(refused["code"], "pending", "{refused}");
    assert_eq!(messages.count_documents(doc! {}).await.unwrap(), 3);

    // Once a new relay's start-up drops it again, the same send is written, once.
    drop(app);
    let restarted = spawn_app().database(&database).await;
    assert_migrated(&database).await;
    let mut alice = restarted.client("alice").await;
    alice.join("s").await;
    let written = alice.post("s", "c1", json!("another room")).await;
    assert_eq!((&written["type"], &written["room"], &written["seq"]), (&json!("ack"), &json!("s"), &json!(2)));
    assert_eq!(alice.post("s", "c1", json!("again")).await, written);
    assert_eq!(messages.count_documents(doc! {}).await.unwrap(), 4);
}
