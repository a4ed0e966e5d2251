use bson::doc;
use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test]
async fn a_resend_with_the_same_client_id_writes_nothing_and_gets_the_original_ack() {
    let app = spawn_app().await;
    let mut alice = app.client("alice").await;
    alice.join("r").await;
    let first = alice.post("r", "same", json!("once")).await;
    alice.message("r", 1).await;
    let again = alice.post("r", "same", json!("twice?")).await;
    assert_eq!(again, first);
    // From another connection of the same user, after a reconnect, too.
    let mut reconnected = app.client("alice").await;
    reconnected.join("r").await;
    assert_eq!(reconnected.post("r", "same", json!("thrice?")).await, first);
    // Another author may use the same client_id.
    let mut bob = app.client("bob").await;
    bob.join("r").await;
    assert_eq!(bob.post("r", "same", json!("bob's")).await["seq"], 2);
    alice.message("r", 2).await;
    assert_eq!(alice.seqs("r"), [1, 2]);
    assert_eq!(app.message_count().await, 2);
    let stored = app.messages().find_one(doc! {"seq": 1}).await.unwrap().unwrap();
    assert_eq!(stored.get_str("body").unwrap(), "once");
}

#[tokio::test]
async fn bodies_with_operator_and_dotted_keys_are_stored_and_relayed_verbatim() {
    let app = spawn_app().await;
    let mut alice = app.client("alice").await;
    alice.join("r").await;
    let body = json!({"$where": "sleep(1000)", "$set": {"author": "mallory"}, "a.b": {"$gt": ""}, "text": "$room"});
    alice.post("r", "c1", body.clone()).await;
    assert_eq!(alice.message("r", 1).await["body"], body);
    let stored = app.messages().find_one(doc! {"seq": 1}).await.unwrap().unwrap();
    assert_eq!(stored.get_str("author").unwrap(), "alice", "the author comes from the connection");
    assert_eq!(stored.get_document("body").unwrap().get_str("$where").unwrap(), "sleep(1000)");

    // The author field of a frame is never trusted either.
    alice.send(json!({"type": "send", "room": "r", "client_id": "c2", "body": 1, "author": "mallory"})).await;
    alice.message("r", 2).await;
    assert_eq!(alice.messages("r")[1]["author"], "alice");

    let edited = json!({"$unset": {"body": 1}, "x.y": "$$NOW"});
    let id = alice.messages("r")[0]["id"].clone();
    alice.send(json!({"type": "edit", "room": "r", "id": id, "body": edited.clone()})).await;
    let frame = alice.wait_for(|f| f["type"] == "message" && f["edited_at"].is_string()).await;
    assert_eq!(frame["body"], edited);
}

#[tokio::test]
async fn a_frame_many_times_the_socket_read_buffer_is_read_whole_and_relayed_intact() {
    // The server reads client frames 4 KiB at a time; a 60 KB body (under the
    // default 64 KiB limit) arrives in many reads and must come back intact.
    let app = spawn_app().await;
    let mut alice = app.client("alice").await;
    let mut bob = app.client("bob").await;
    alice.join("r").await;
    bob.join("r").await;
    let text: String = (0..60_000).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
    let body = json!({ "text": text });
    assert_eq!(alice.post("r", "big", body.clone()).await["seq"], 1);
    assert_eq!(bob.message("r", 1).await["body"], body);
    let stored = app.messages().find_one(doc! {"seq": 1}).await.unwrap().unwrap();
    assert_eq!(stored.get_document("body").unwrap().get_str("text").unwrap(), text);
}
