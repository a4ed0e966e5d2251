use bson::doc;
use bson::oid::ObjectId;
use serde_json::json;

use crate::client::Conversation;
use crate::helpers::spawn_app;

#[tokio::test]
async fn edit_and_delete_reach_the_room_and_only_the_author_may_do_them() {
    let app = spawn_app().await;
    let mut alice = app.client("alice").await;
    let mut bob = app.client("bob").await;
    alice.join("r").await;
    bob.join("r").await;
    let ack = alice.post("r", "c1", json!({"text": "draft"})).await;
    let id = ack["id"].as_str().unwrap().to_string();
    bob.message("r", 1).await;

    bob.send(json!({"type": "edit", "room": "r", "id": id, "body": "hijacked", "client_id": "e0"})).await;
    let refused = bob.error().await;
    assert_eq!(refused["code"], "forbidden");
    assert_eq!(refused["ref"], json!({"room": "r", "client_id": "e0"}));
    bob.send(json!({"type": "delete", "room": "r", "id": id})).await;
    assert_eq!(bob.error().await["code"], "forbidden");
    let stored = app.messages().find_one(doc! {}).await.unwrap().unwrap();
    assert_eq!(stored.get_document("body").unwrap(), &doc! {"text": "draft"});
    assert!(!stored.contains_key("edited_at") && !stored.contains_key("deleted_at"));

    alice.send(json!({"type": "edit", "room": "r", "id": id, "body": {"text": "final"}, "client_id": "e1"})).await;
    let edit_ack = alice.wait_for(|f| f["type"] == "ack" && f["client_id"] == "e1").await;
    assert_eq!(edit_ack, json!({"type":"ack","client_id":"e1","room":"r","seq":1,"id":id}));
    for client in [&mut alice, &mut bob] {
        let edited = client.wait_for(|f| f["type"] == "message" && f["edited_at"].is_string()).await;
        assert_eq!(edited["seq"], 1);
        assert_eq!(edited["id"], id);
        assert_eq!(edited["body"], json!({"text": "final"}));
    }

    alice.send(json!({"type": "delete", "room": "r", "id": id})).await;
    let delete_ack = alice.wait_for(|f| f["type"] == "ack" && f.get("client_id").is_none()).await;
    assert_eq!(delete_ack["seq"], 1);
    for client in [&mut alice, &mut bob] {
        let deleted = client.wait_for(|f| f["type"] == "message" && f["deleted"] == true).await;
        assert_eq!(deleted["seq"], 1);
        assert_eq!(deleted["body"], serde_json::Value::Null);
    }
    let stored = app.messages().find_one(doc! {}).await.unwrap().unwrap();
    assert!(stored.get("body").is_none());
    assert!(stored.get_datetime("deleted_at").is_ok());

    // A deleted message cannot be edited; an unknown id is not found.
    alice.send(json!({"type": "edit", "room": "r", "id": id, "body": "again"})).await;
    assert_eq!(alice.error().await["code"], "not_found");
    let unknown = ObjectId::new().to_hex();
    alice.send(json!({"type": "delete", "room": "r", "id": unknown})).await;
    assert_eq!(alice.error().await["code"], "not_found");
    assert_eq!(app.message_count().await, 1);
}
