use bson::doc;
use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test]
async fn a_notification_reaches_every_connection_of_its_user_and_no_one_else() {
    let app = spawn_app().await;
    let mut bob_phone = app.client("bob").await;
    let mut bob_laptop = app.client("bob").await;
    let mut alice = app.client("alice").await;
    // Each connection is registered once the server answered it.
    for client in [&mut bob_phone, &mut bob_laptop, &mut alice] {
        client.ping().await;
    }

    let inserted = app
        .notifications()
        .insert_one(doc! {"user": "bob", "kind": "mention", "count": 3, "at": bson::DateTime::from_millis(0)})
        .await
        .unwrap();
    let id = inserted.inserted_id.as_object_id().unwrap().to_hex();
    for bob in [&mut bob_phone, &mut bob_laptop] {
        let frame = bob.wait_for(|f| f["type"] == "notification").await;
        assert_eq!(frame["route"], "notifications");
        assert_eq!(frame["id"], id);
        assert_eq!(
            frame["data"],
            json!({"_id": id, "user": "bob", "kind": "mention", "count": 3, "at": {"$date": "1970-01-01T00:00:00Z"}})
        );
    }
    // Barrier for alice: her own notification comes after bob's in the stream.
    app.notifications().insert_one(doc! {"user": "alice", "kind": "barrier"}).await.unwrap();
    let own = alice.wait_for(|f| f["type"] == "notification").await;
    assert_eq!(own["data"]["user"], "alice");
    assert_eq!(alice.seen.len(), 2, "pong and her own notification only: {:?}", alice.seen);
    // And bob's connections never see alice's.
    app.notifications().insert_one(doc! {"user": "bob", "kind": "barrier"}).await.unwrap();
    for bob in [&mut bob_phone, &mut bob_laptop] {
        bob.wait_for(|f| f["type"] == "notification" && f["data"]["kind"] == "barrier").await;
        assert!(bob.seen.iter().all(|f| f["type"] != "notification" || f["data"]["user"] == "bob"));
    }
}

#[tokio::test]
async fn a_client_cannot_subscribe_to_another_users_channel() {
    let app = spawn_app().await;
    let mut eve = app.client("eve").await;
    // There is no frame to pick a user channel: whatever eve sends, only her own user counts.
    eve.send(json!({"type": "join", "room": "user:bob"})).await;
    eve.wait_for(|f| f["type"] == "joined").await;
    app.notifications().insert_one(doc! {"user": "bob", "secret": true}).await.unwrap();
    app.notifications().insert_one(doc! {"user": "eve", "secret": false}).await.unwrap();
    let frame = eve.wait_for(|f| f["type"] == "notification").await;
    assert_eq!(frame["data"]["user"], "eve");
}

#[tokio::test]
async fn a_user_key_of_another_type_never_reaches_the_user_with_that_spelling() {
    let hex = "0123456789abcdef01234567";
    let oid = bson::oid::ObjectId::parse_str(hex).unwrap();
    // Default `key_type: string`: the ObjectId is not the user whose id is its hex.
    let app = spawn_app().await;
    let mut lookalike = app.client(hex).await;
    lookalike.ping().await;
    app.notifications().insert_one(doc! {"user": oid, "n": 1}).await.unwrap();
    app.notifications().insert_one(doc! {"user": hex, "n": 2}).await.unwrap();
    let note = lookalike.wait_for(|f| f["type"] == "notification").await;
    assert_eq!(note["data"]["n"], 2, "only the string key is this user's");
    lookalike.ping().await;
    assert_eq!(lookalike.notifications().len(), 1);

    // A route whose users are ObjectIds relays only ObjectId keys.
    let by_oid = spawn_app().set("routes[1].key_type", "object_id").await;
    let mut owner = by_oid.client(hex).await;
    owner.ping().await;
    by_oid.notifications().insert_one(doc! {"user": hex, "n": 3}).await.unwrap();
    by_oid.notifications().insert_one(doc! {"user": oid, "n": 4}).await.unwrap();
    assert_eq!(owner.wait_for(|f| f["type"] == "notification").await["data"]["n"], 4);
    owner.ping().await;
    assert_eq!(owner.notifications().len(), 1);
}
