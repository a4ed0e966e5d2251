use bson::doc;
use serde_json::json;

use crate::client::Conversation;
use crate::helpers::{spawn_app, unique_database};

#[tokio::test]
async fn both_members_receive_a_message_and_the_sender_exactly_once() {
    let app = spawn_app().await;
    let mut alice = app.client("alice").await;
    let mut bob = app.client("bob").await;
    assert_eq!(
        alice.join("lobby").await,
        json!({"type":"joined","room":"lobby","seq":0,"recovered":false,"last_read":0})
    );
    bob.join("lobby").await;

    let ack = alice.post("lobby", "c1", json!({"text": "hi"})).await;
    assert_eq!(ack["type"], "ack");
    assert_eq!(ack["seq"], 1);
    assert_eq!(ack["room"], "lobby");

    for client in [&mut alice, &mut bob] {
        let message = client.message("lobby", 1).await;
        assert_eq!(message["author"], "alice");
        assert_eq!(message["body"], json!({"text": "hi"}));
        assert_eq!(message["id"], ack["id"]);
        assert!(message["sent_at"].as_str().unwrap().ends_with('Z'));
    }
    // A later message is a barrier: the change stream is ordered, so any
    // second copy of seq 1 would arrive before seq 2.
    bob.post("lobby", "c2", json!("second")).await;
    alice.message("lobby", 2).await;
    bob.message("lobby", 2).await;
    assert_eq!(alice.seqs("lobby"), [1, 2]);
    assert_eq!(bob.seqs("lobby"), [1, 2]);
    assert_eq!(app.message_count().await, 2);
}

#[tokio::test]
async fn a_message_inserted_directly_reaches_the_room() {
    let app = spawn_app().await;
    let mut alice = app.client("alice").await;
    alice.join("lobby").await;
    let sent_at = bson::DateTime::now();
    app.messages()
        .insert_one(doc! {"room": "lobby", "seq": 1_i64, "author": "bot", "body": {"text": "from elsewhere"}, "sent_at": sent_at})
        .await
        .unwrap();
    let message = alice.message("lobby", 1).await;
    assert_eq!(message["author"], "bot");
    assert_eq!(message["body"], json!({"text": "from elsewhere"}));
    // The relay's next send continues after what another writer committed.
    let ack = alice.post("lobby", "c1", json!("after the bot")).await;
    assert_eq!(ack["seq"], 2);
    alice.message("lobby", 2).await;
    assert_eq!(alice.seqs("lobby"), [1, 2]);
}

#[tokio::test]
async fn rooms_are_isolated_even_when_names_look_like_patterns() {
    let app = spawn_app().await;
    let pairs = [("a.b", "axb"), ("room:1", "room:10"), ("x-y", "x_y")];
    for (index, (sender_room, other_room)) in pairs.into_iter().enumerate() {
        let mut sender = app.client("alice").await;
        let mut other = app.client("bob").await;
        sender.join(sender_room).await;
        other.join(other_room).await;
        sender.post(sender_room, &format!("s{index}"), json!("not for the other room")).await;
        sender.message(sender_room, 1).await;
        // Barrier in the other room: anything leaked would have come first.
        other.post(other_room, &format!("o{index}"), json!("own")).await;
        other.message(other_room, 1).await;
        assert!(other.messages(sender_room).is_empty(), "{sender_room} leaked into {other_room}");
        assert_eq!(other.messages(other_room).len(), 1);
    }
    let mut mallory = app.client("mallory").await;
    for hostile in [".*", "$where", "{\"$ne\":null}", "a b", "lobby/../x", ""] {
        mallory.send(json!({"type": "join", "room": hostile})).await;
        let error = mallory.error().await;
        assert_eq!(error["code"], "invalid_room", "{hostile}");
    }
    mallory.send(json!({"type": "join", "room": {"$ne": null}})).await;
    assert_eq!(mallory.error().await["code"], "invalid_field");
}

#[tokio::test]
async fn two_relay_processes_serve_one_room_in_the_same_order() {
    let database = unique_database();
    let first = spawn_app().database(&database).process().await;
    let second = spawn_app().database(&database).process().await;
    let mut alice = first.client("alice").await;
    let mut bob = second.client("bob").await;
    alice.join("shared").await;
    bob.join("shared").await;

    // Both replicas write to the same room at once, contending on seq.
    let sends = 8;
    let (alice_acks, bob_acks) = tokio::join!(
        async {
            let mut acks = Vec::new();
            for i in 0..sends {
                acks.push(alice.post("shared", &format!("a{i}"), json!({"from": "alice", "i": i})).await);
            }
            (alice, acks)
        },
        async {
            let mut acks = Vec::new();
            for i in 0..sends {
                acks.push(bob.post("shared", &format!("b{i}"), json!({"from": "bob", "i": i})).await);
            }
            (bob, acks)
        }
    );
    let (mut alice, alice_acks) = alice_acks;
    let (mut bob, bob_acks) = bob_acks;
    let mut acked: Vec<i64> = alice_acks.iter().chain(&bob_acks).map(|a| a["seq"].as_i64().unwrap()).collect();
    acked.sort();
    let all: Vec<i64> = (1..=2 * sends).collect();
    assert_eq!(acked, all, "every seq acked exactly once");

    alice.message("shared", 2 * sends).await;
    bob.message("shared", 2 * sends).await;
    assert_eq!(alice.seqs("shared"), all);
    assert_eq!(bob.seqs("shared"), all);
    let authors = |frames: Vec<&serde_json::Value>| frames.iter().map(|f| f["author"].clone()).collect::<Vec<_>>();
    assert_eq!(authors(alice.messages("shared")), authors(bob.messages("shared")));
}
