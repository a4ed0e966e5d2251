//! The database and the change streams failing under live clients. Each test
//! has a database server of its own, so it can break it.

use bson::doc;
use serde_json::json;

use crate::client::Conversation;
use crate::db::{DbOptions, DbServer};
use crate::helpers::{spawn_app, wait_for_http, RECOVER_FAST};

/// alice and bob in room `r`, where alice's first message reached bob.
async fn chatting_pair(app: &crate::helpers::TestApp) -> (crate::client::Client, crate::client::Client) {
    let mut alice = app.client("alice").await;
    let mut bob = app.client("bob").await;
    alice.join("r").await;
    bob.join("r").await;
    alice.post("r", "m1", json!(1)).await;
    bob.message("r", 1).await;
    (alice, bob)
}

fn notes(client: &crate::client::Client) -> Vec<i64> {
    client.notifications().iter().map(|f| f["data"]["n"].as_i64().unwrap()).collect()
}

#[tokio::test]
async fn a_broken_stream_resumes_from_its_token_and_delivers_what_was_committed_meanwhile() {
    let db = DbServer::start(DbOptions { test_commands: true, ..Default::default() });
    let app = spawn_app().at(&db.uri).set_all(&RECOVER_FAST).await;
    let (mut alice, mut bob) = chatting_pair(&app).await;

    db.break_change_streams().await;
    wait_for_http(app.port, "/readyz", "not_ready").await;
    // Committed while no stream can be read: through the relay, and by other programs.
    assert_eq!(alice.post("r", "m2", json!(2)).await["seq"], 2, "writes do not need the stream");
    let sent_at = bson::DateTime::now();
    app.messages()
        .insert_one(doc! {"room": "r", "seq": 3_i64, "author": "bot", "body": 3, "sent_at": sent_at})
        .await
        .unwrap();
    app.notifications().insert_one(doc! {"user": "bob", "n": 1}).await.unwrap();
    db.heal_change_streams().await;

    bob.message("r", 3).await;
    bob.wait_for(|f| f["type"] == "notification").await;
    wait_for_http(app.port, "/readyz", r#""status":"ready""#).await;
    alice.post("r", "m4", json!(4)).await;
    for client in [&mut alice, &mut bob] {
        client.message("r", 4).await;
        assert_eq!(client.seqs("r"), [1, 2, 3, 4], "once each, in order");
    }
    assert_eq!(notes(&bob), [1]);
    assert!(alice.notifications().is_empty());
}

#[tokio::test]
async fn after_lost_history_rooms_are_refilled_and_user_channels_are_told_to_resync() {
    let db = DbServer::start(DbOptions { test_commands: true, oplog_max_entries: Some(10), ..Default::default() });
    let app = spawn_app().at(&db.uri).set_all(&RECOVER_FAST).await;
    let mut alice = app.client("alice").await;
    alice.join("r").await;
    let mut bob = app.client("bob").await;
    bob.ping().await;
    alice.post("r", "m1", json!(1)).await;
    alice.message("r", 1).await;

    db.break_change_streams().await;
    wait_for_http(app.port, "/readyz", "not_ready").await;
    let sent_at = bson::DateTime::now();
    for seq in 2..=25_i64 {
        let message = doc! {"room": "r", "seq": seq, "author": "bot", "body": seq, "sent_at": sent_at};
        app.messages().insert_one(message).await.unwrap();
    }
    app.notifications().insert_one(doc! {"user": "bob", "n": 1}).await.unwrap();
    // The relay's resume point is now older than anything the oplog holds.
    db.prune_oplog().await;
    db.heal_change_streams().await;

    alice.message("r", 25).await;
    let expected: Vec<i64> = (1..=25).collect();
    assert_eq!(alice.seqs("r"), expected, "re-filled from the messages collection, once each");
    // Every user route says so, read markers too, in whichever order their
    // streams notice.
    let resync = bob.wait_for(|f| f["type"] == "resync" && f["route"] == "notifications").await;
    assert_eq!(resync, json!({"type": "resync", "route": "notifications"}));
    bob.wait_for(|f| f["type"] == "resync" && f["route"] == "read_markers").await;
    alice.wait_for(|f| f["type"] == "resync").await;
    // Live delivery goes on from the new stream.
    alice.post("r", "m26", json!(26)).await;
    alice.message("r", 26).await;
    app.notifications().insert_one(doc! {"user": "bob", "n": 2}).await.unwrap();
    bob.wait_for(|f| f["type"] == "notification" && f["data"]["n"] == 2).await;
    assert_eq!(alice.seqs("r").len(), 26);
}

#[tokio::test]
async fn a_database_restart_keeps_clients_connected_and_delivers_everything_committed() {
    let mut db = DbServer::start(DbOptions::default());
    let app = spawn_app().at(&db.uri).set_all(&RECOVER_FAST).await;
    let (mut alice, mut bob) = chatting_pair(&app).await;
    app.notifications().insert_one(doc! {"user": "bob", "n": 1}).await.unwrap();
    bob.wait_for(|f| f["type"] == "notification").await;

    db.stop(libc::SIGKILL);
    // During the outage: no false ack, and the connections stay open.
    alice.send(json!({"type": "send", "room": "r", "client_id": "m2", "body": 2})).await;
    let refused = alice.wait_for(|f| f["type"] == "error").await;
    assert_eq!(refused["code"], "db_unavailable");
    assert_eq!(refused["ref"]["client_id"], "m2");
    alice.ping().await;
    bob.ping().await;

    db.restart();
    // Committed right after the restart, while the relay may still be reconnecting.
    let producer = db.client().await;
    let notifications = producer.database(app.database.name()).collection::<bson::Document>("notifications");
    notifications.insert_one(doc! {"user": "bob", "n": 2}).await.unwrap();
    // The same send, retried with its client_id, goes through without reconnecting.
    let ack = loop {
        let answer = alice.post("r", "m2", json!(2)).await;
        if answer["type"] == "ack" {
            break answer;
        }
        assert_eq!(answer["code"], "db_unavailable");
    };
    assert_eq!(ack["seq"], 2);
    bob.message("r", 2).await;
    bob.wait_for(|f| f["type"] == "notification" && f["data"]["n"] == 2).await;
    alice.post("r", "m3", json!(3)).await;
    for client in [&mut alice, &mut bob] {
        client.message("r", 3).await;
        assert_eq!(client.seqs("r"), [1, 2, 3]);
    }
    assert_eq!(notes(&bob), [1, 2]);
    let stored = app.messages().count_documents(doc! {"room": "r"}).await.unwrap();
    assert_eq!(stored, 3);
}

#[tokio::test]
async fn a_dropped_collection_invalidates_the_stream_and_clients_are_told_to_resync() {
    let app = spawn_app().set_all(&RECOVER_FAST).await;
    let mut bob = app.client("bob").await;
    bob.ping().await;
    app.notifications().insert_one(doc! {"user": "bob", "n": 1}).await.unwrap();
    bob.wait_for(|f| f["type"] == "notification").await;
    app.notifications().drop().await.unwrap();
    assert_eq!(bob.wait_for(|f| f["type"] == "resync").await["route"], "notifications");
    // The route follows the collection again once it is recreated.
    app.notifications().insert_one(doc! {"user": "bob", "n": 2}).await.unwrap();
    bob.wait_for(|f| f["type"] == "notification" && f["data"]["n"] == 2).await;
    assert_eq!(notes(&bob), [1, 2]);
}

#[tokio::test]
async fn after_lost_history_presence_is_read_again_and_sent_anew() {
    use futures::StreamExt;
    let db = DbServer::start(DbOptions { test_commands: true, oplog_max_entries: Some(10), ..Default::default() });
    let database = crate::helpers::unique_database();
    let first = spawn_app().at(&db.uri).database(&database).set_all(&RECOVER_FAST).await;
    let second = spawn_app().at(&db.uri).database(&database).set_all(&RECOVER_FAST).await;
    let mut alice = first.client("alice").await;
    alice.join("r").await;
    let snapshot = alice.wait_for(|f| f["type"] == "presence").await;
    assert!(snapshot["users"].as_array().unwrap().len() <= 1, "{snapshot}");

    db.break_change_streams().await;
    wait_for_http(first.port, "/readyz", "not_ready").await;
    // Bob arrives while no relay's stream runs, and the oplog then moves on
    // past his arrival: the first relay can only learn of it by reading again.
    let presence = first.database.collection::<bson::Document>("presence");
    let mut written = presence.watch().await.unwrap();
    let mut bob = second.client("bob").await;
    bob.join("r").await;
    while written.next().await.unwrap().unwrap().document_key.unwrap().get_document("_id").unwrap().get_str("user")
        != Ok("bob")
    {}
    let filler = first.database.collection::<bson::Document>("filler");
    for n in 0..20 {
        filler.insert_one(doc! {"n": n}).await.unwrap();
    }
    db.prune_oplog().await;
    db.heal_change_streams().await;

    let again = alice.wait_for(|f| f["type"] == "presence").await;
    assert_eq!(again, json!({"type": "presence", "room": "r", "users": ["alice", "bob"], "count": 2}));
    wait_for_http(first.port, "/readyz", r#""status":"ready""#).await;
    // Live presence goes on from the new stream.
    drop(bob);
    alice.wait_for(|f| f["type"] == "presence_leave" && f["user"] == "bob").await;
}
