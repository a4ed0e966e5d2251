//! Other programs changing messages straight in MongoDB, as moderation tools
//! do: hard deletes and replaces reach every member, on every replica, from
//! the change stream; a removed newest seq is never taken again; holes read
//! as absent.

use bson::doc;
use futures::TryStreamExt;
use serde_json::{json, Value};

use crate::client::Client;
use crate::client::Conversation;
use crate::helpers::{mongo, spawn_app, stored_seqs, unique_database, TestApp};
use crate::operations::metric;

/// Room `r` on two replicas, alice on the first and bob on the second, with
/// messages 1..=n from alice. The second replica lives as long as the last item.
async fn two_replicas_with(n: i64) -> (String, TestApp, Client, Client, TestApp) {
    let database = unique_database();
    let first = spawn_app().database(&database).await;
    let second = spawn_app().database(&database).await;
    let mut alice = first.client("alice").await;
    let mut bob = second.client("bob").await;
    alice.join("r").await;
    bob.join("r").await;
    for seq in 1..=n {
        alice.post("r", &format!("m{seq}"), json!({"text": seq})).await;
    }
    bob.message("r", n).await;
    alice.message("r", n).await;
    (database, first, alice, bob, second)
}

fn last_of(client: &Client, seq: i64) -> Value {
    client.messages("r").into_iter().rfind(|m| m["seq"] == seq).cloned().unwrap()
}

#[tokio::test]
async fn a_hard_delete_reaches_every_member_on_every_replica_as_deleted() {
    let (_database, app, mut alice, mut bob, _second) = two_replicas_with(3).await;
    let original = last_of(&bob, 2);
    app.messages().delete_one(doc! {"room": "r", "seq": 2}).await.unwrap();
    for client in [&mut alice, &mut bob] {
        let deleted = client.wait_for(|f| f["type"] == "message" && f["seq"] == 2 && f["deleted"] == true).await;
        assert_eq!(deleted["body"], Value::Null);
        assert_eq!((&deleted["id"], &deleted["author"]), (&original["id"], &original["author"]));
        assert_eq!(deleted["sent_at"], original["sent_at"]);
    }
    // An older seq stays a hole: history and a replay skip it.
    let mut late = app.client("carol").await;
    late.join_since("r", 0).await;
    late.message("r", 3).await;
    assert_eq!(late.seqs("r"), [1, 3]);
    late.send(json!({"type": "history", "room": "r"})).await;
    let page = late.wait_for(|f| f["type"] == "history").await;
    let seqs: Vec<&Value> = page["messages"].as_array().unwrap().iter().map(|m| &m["seq"]).collect();
    assert_eq!(seqs, [1, 3]);
}

#[tokio::test]
async fn a_replace_reaches_every_member_with_its_new_body_and_one_out_of_the_room_as_deleted() {
    let (_database, app, mut alice, mut bob, _second) = two_replicas_with(2).await;
    let original = last_of(&alice, 1);
    let replacement = doc! {"room": "r", "seq": 1, "author": "alice", "body": {"text": "[removed by a moderator]"}};
    app.messages().replace_one(doc! {"room": "r", "seq": 1}, replacement).await.unwrap();
    for client in [&mut alice, &mut bob] {
        let replaced = client.wait_for(|f| f["type"] == "message" && f["seq"] == 1 && f["id"] == original["id"]).await;
        let replaced = if replaced["body"] == original["body"] {
            client.wait_for(|f| f["type"] == "message" && f["seq"] == 1 && f["id"] == original["id"]).await
        } else {
            replaced
        };
        assert_eq!(replaced["body"], json!({"text": "[removed by a moderator]"}));
    }
    // Replaced by a document in no room: gone from its room.
    app.messages().replace_one(doc! {"room": "r", "seq": 2}, doc! {"purged": true}).await.unwrap();
    for client in [&mut alice, &mut bob] {
        let gone = client.wait_for(|f| f["type"] == "message" && f["seq"] == 2 && f["deleted"] == true).await;
        assert_eq!(gone["body"], Value::Null);
    }
}

#[tokio::test]
async fn a_removed_newest_seq_is_held_by_a_tombstone_and_never_taken_again() {
    let (database, app, mut alice, mut bob, _second) = two_replicas_with(3).await;
    let original = last_of(&alice, 3);
    // A tombstone is written once the relay sees the removal: watch for it.
    let mut inserted = app.messages().watch().pipeline([doc! {"$match": {"operationType": "insert"}}]).await.unwrap();
    app.messages().delete_one(doc! {"room": "r", "seq": 3}).await.unwrap();
    let next = tokio::time::timeout(crate::client::PATIENCE, inserted.try_next()).await.expect("a tombstone");
    let tombstone = next.unwrap().unwrap().full_document.unwrap();
    assert_eq!((tombstone.get_i64("seq").ok(), tombstone.contains_key("body")), (Some(3), false));
    assert!(tombstone.contains_key("deleted_at") && !tombstone.contains_key("sent_at"));
    // The next send takes 4, and a late joiner sees 3 as deleted, with its id.
    let ack = bob.post("r", "after", json!("next")).await;
    assert_eq!(ack["seq"], 4);
    alice.message("r", 4).await;
    assert_eq!(stored_seqs(&database, "r").await, [1, 2, 3, 4]);
    let mut late = app.client("carol").await;
    late.join_since("r", 2).await;
    late.message("r", 4).await;
    let held = last_of(&late, 3);
    assert_eq!(
        (held["deleted"].clone(), held["id"].clone(), held["body"].clone()),
        (json!(true), original["id"].clone(), Value::Null)
    );
    // Members that saw the delete are not told anything new about 3 but what they knew.
    alice.ping().await;
    assert!(alice.messages("r").iter().filter(|m| m["seq"] == 3).skip(1).all(|m| m["deleted"] == true));
}

#[tokio::test]
async fn a_delete_without_a_pre_image_is_counted_and_the_room_goes_on() {
    let database_name = unique_database();
    let relay = spawn_app().database(&database_name).process().await;
    let mut alice = relay.client("alice").await;
    alice.join("r").await;
    alice.post("r", "m1", json!(1)).await;
    alice.post("r", "m2", json!(2)).await;
    alice.message("r", 2).await;
    let database = mongo(&database_name).await;
    let off = doc! {"collMod": "messages", "changeStreamPreAndPostImages": {"enabled": false}};
    database.run_command(off).await.unwrap();
    database.collection::<bson::Document>("messages").delete_one(doc! {"seq": 1}).await.unwrap();
    alice.post("r", "m3", json!(3)).await;
    alice.message("r", 3).await;
    assert!(alice.messages("r").iter().all(|m| m["deleted"] != true), "nothing routed without the room");
    let metrics = relay.metrics().await;
    assert_eq!(metric(&metrics, r#"roomcast_deletes_unrouted_total{route="messages"}"#), Some(1.0), "{metrics}");
}

/// Edits are read as of their lookup (`updateLookup`): a member may skip an
/// intermediate state, never end on an older one, and an edit whose message
/// is deleted before its lookup is not relayed (the delete is).
#[tokio::test]
async fn members_end_on_the_newest_state_of_a_message_changed_quickly_by_a_program() {
    let (_database, app, mut alice, mut bob, _second) = two_replicas_with(3).await;
    let messages = app.messages();
    let edit = |body: &str| doc! {"$set": {"body": body, "edited_at": bson::DateTime::now()}};
    messages.update_one(doc! {"room": "r", "seq": 1}, edit("v1")).await.unwrap();
    messages.update_one(doc! {"room": "r", "seq": 1}, edit("v2")).await.unwrap();
    messages.update_one(doc! {"room": "r", "seq": 2}, edit("gone soon")).await.unwrap();
    messages.delete_one(doc! {"room": "r", "seq": 2}).await.unwrap();
    // A barrier: a send after them all.
    bob.post("r", "m4", json!(4)).await;
    for client in [&mut alice, &mut bob] {
        client.message("r", 4).await;
        let first: Vec<&Value> = client.messages("r").into_iter().filter(|m| m["seq"] == 1).skip(1).collect();
        assert_eq!(first.last().unwrap()["body"], "v2", "{first:?}");
        let v2 = first.iter().position(|m| m["body"] == "v2").unwrap();
        assert!(first[v2..].iter().all(|m| m["body"] == "v2"), "never back to an older state: {first:?}");
        let second = client.messages("r").into_iter().rfind(|m| m["seq"] == 2).unwrap();
        assert_eq!((second["deleted"].clone(), second["body"].clone()), (json!(true), Value::Null));
    }
}
