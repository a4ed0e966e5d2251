//! Bodies are data: stored and relayed exactly as the client sent them,
//! whatever their keys, and one send's body never decides another's fate.

use bson::raw::RawDocumentBuf;
use bson::{doc, Bson, Document};
use futures::TryStreamExt;
use serde_json::{json, Value};

use crate::client::Conversation;
use crate::helpers::{mongo, spawn_app, stored_seqs, unique_database};

#[tokio::test]
async fn bodies_that_look_like_extended_json_are_stored_and_relayed_exactly_as_sent() {
    let app = spawn_app().await;
    let mut alice = app.client("alice").await;
    alice.join("r").await;
    let bodies = [
        json!({"$date": 0}),
        json!({"$numberLong": "5"}),
        json!({"$oid": "ABCDEF0123456789ABCDEF01"}),
        json!({"at": {"$date": {"$numberLong": "1700000000000"}}, "n": {"$numberDouble": "NaN"}}),
        json!({"$regularExpression": {"pattern": "a\u{0}b", "options": ""}}),
        json!([{"$binary": {"base64": "AAAA", "subType": "00"}}, 1.5, -0.0, 9007199254740993_i64]),
    ];
    for (i, body) in bodies.iter().enumerate() {
        let ack = alice.post("r", &format!("c{i}"), body.clone()).await;
        assert_eq!(ack["type"], "ack", "{body}: {ack}");
        let seq = ack["seq"].as_i64().unwrap();
        assert_eq!(alice.message("r", seq).await["body"], *body, "relayed as sent");
    }
    // Stored as plain documents, never as dates, longs or ObjectIds. Read raw:
    // the driver's own decoding would take `{"$date": 0}` for a date.
    let raw = app.messages().clone_with_type::<RawDocumentBuf>();
    let stored: Vec<RawDocumentBuf> =
        raw.find(doc! {}).sort(doc! {"seq": 1}).await.unwrap().try_collect().await.unwrap();
    let body = |i: usize| Document::try_from(stored[i].get_document("body").unwrap()).unwrap();
    assert_eq!(body(0).get("$date"), Some(&Bson::Int64(0)));
    assert_eq!(body(1).get_str("$numberLong"), Ok("5"));
    assert_eq!(body(2).get_str("$oid"), Ok("ABCDEF0123456789ABCDEF01"));
    // A late joiner's replay shows the same bodies.
    let mut bob = app.client("bob").await;
    bob.join_since("r", 0).await;
    bob.message("r", bodies.len() as i64).await;
    let replayed: Vec<Value> = bob.messages("r").iter().map(|f| f["body"].clone()).collect();
    assert_eq!(replayed, bodies);
}

#[tokio::test]
async fn documents_other_programs_write_keep_relaxed_extended_json() {
    let app = spawn_app().await;
    let mut bob = app.client("bob").await;
    bob.join("r").await;
    let id = bson::oid::ObjectId::parse_str("0123456789abcdef01234567").unwrap();
    let at = bson::DateTime::from_millis(1_700_000_000_000);
    let body = doc! {"id": id, "at": at, "n": 5_i64, "x": 1.5};
    let message = doc! {"room": "r", "seq": 1_i64, "author": "bot", "body": body, "sent_at": at};
    app.messages().insert_one(message).await.unwrap();
    let frame = bob.message("r", 1).await;
    let expected =
        json!({"id": {"$oid": "0123456789abcdef01234567"}, "at": {"$date": "2023-11-14T22:13:20Z"}, "n": 5, "x": 1.5});
    assert_eq!(frame["body"], expected);
}

#[tokio::test]
async fn a_body_the_database_refuses_fails_only_its_own_send() {
    // Limits that let a body through that no insert can hold (over 16 MiB).
    let database = unique_database();
    let big = (20 << 20).to_string();
    let limits = [
        ("limits.max_frame_bytes", big.as_str()),
        ("limits.max_body_bytes", big.as_str()),
        ("limits.max_document_bytes", big.as_str()),
        ("limits.max_replay_bytes", big.as_str()),
        ("limits.send_queue_bytes", "67108864"),
        ("limits.user_pool_bytes", "67108864"),
    ];
    let app = spawn_app().database(&database).set_all(&limits).await;
    let mut mallory = app.client("mallory").await;
    let mut bob = app.client("bob").await;
    mallory.join("r").await;
    bob.join("r").await;
    // Bob keeps pipelining sends while mallory's refused bodies arrive, so
    // they land in the same group commits.
    let total = 400;
    let chatting = tokio::spawn(async move {
        for window in 0..total / 40 {
            for i in 0..40 {
                bob.send(json!({"type": "send", "room": "r", "client_id": format!("b{window}-{i}"), "body": i})).await;
            }
            bob.wait_for_count((window + 1) * 40, |f| f["type"] == "ack" || f["type"] == "error").await;
        }
        bob
    });
    let too_big = json!("y".repeat(17 << 20));
    for round in 0..3 {
        mallory.send(json!({"type": "send", "room": "r", "client_id": format!("big{round}"), "body": too_big})).await;
    }
    let bob = chatting.await.unwrap();
    let errors: Vec<&Value> = bob.seen.iter().filter(|f| f["type"] == "error").collect();
    assert!(errors.is_empty(), "bob's sends failed with mallory's body: {errors:?}");
    let refused =
        |f: &Value| f["type"] == "error" && f["ref"]["client_id"].as_str().is_some_and(|c| c.starts_with("big"));
    mallory.wait_for_count(3, refused).await;
    let expected: Vec<i64> = (1..=total as i64).collect();
    assert_eq!(stored_seqs(&database, "r").await, expected, "only bob's sends were written, gap-free");
    let count = mongo(&database)
        .await
        .collection::<Document>("messages")
        .count_documents(doc! {"author": "mallory"})
        .await
        .unwrap();
    assert_eq!(count, 0);
}
