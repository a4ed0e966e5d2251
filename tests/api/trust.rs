//! Every answer that carries a room's content or state applies the room
//! policy when it is made, not only at the join: a user who lost a room
//! (a membership removed, a token that no longer lists it) finds it in no
//! answer, whatever they held before.

use bson::doc;
use jsonwebtoken::Algorithm;
use roomcast::settings::{JwtAlgorithm, RoomPolicy};
use serde_json::{json, Value};

use crate::client::Client;
use crate::client::Conversation;
use crate::helpers::{http_get_json, spawn_app};
use crate::security::{claims, jwt, sign};

/// The rooms a `rooms` answer lists, by name.
async fn listed(client: &mut Client) -> Vec<String> {
    client.send(json!({"type": "rooms"})).await;
    let answer = client.wait_for(|f| f["type"] == "rooms").await;
    answer["rooms"].as_array().unwrap().iter().map(|r| r["room"].as_str().unwrap().to_string()).collect()
}

/// The error a request is answered with.
async fn refusal(client: &mut Client, request: Value) -> String {
    client.send(request).await;
    client.wait_for(|f| f["type"] == "error").await["code"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_removed_membership_takes_the_room_out_of_every_answer() {
    let app = spawn_app().with(|s| s.auth.room_policy = RoomPolicy::Membership).await;
    let members = app.database.collection::<bson::Document>("room_members");
    members.insert_one(doc! {"room": "secret", "user": "alice"}).await.unwrap();
    let mallory_secret = members.insert_one(doc! {"room": "secret", "user": "mallory"}).await.unwrap();
    members.insert_one(doc! {"room": "lobby", "user": "mallory"}).await.unwrap();
    let mut alice = app.client("alice").await;
    let mut mallory = app.client("mallory").await;
    alice.join("secret").await;
    mallory.join("secret").await;
    mallory.join("lobby").await;
    alice.post("secret", "a1", json!("before")).await;
    mallory.message("secret", 1).await;
    mallory.send(json!({"type": "read", "room": "secret", "seq": 1})).await;
    mallory.wait_for(|f| f["type"] == "read_marker" && f["room"] == "secret").await;
    assert_eq!(listed(&mut mallory).await, ["secret", "lobby"]);

    members.delete_one(doc! {"_id": mallory_secret.inserted_id}).await.unwrap();
    mallory.wait_for(|f| f["type"] == "left" && f["reason"] == "revoked").await;
    alice.post("secret", "a2", json!("after: members only")).await;
    // Her marker on `secret` is still stored; the answer leaves the room out.
    assert_eq!(listed(&mut mallory).await, ["lobby"]);
    assert_eq!(refusal(&mut mallory, json!({"type": "read", "room": "secret", "seq": 2})).await, "forbidden");
    assert_eq!(refusal(&mut mallory, json!({"type": "history", "room": "secret"})).await, "forbidden");
    let (status, _) = http_get_json(app.port, "/v1/rooms/secret/messages?user=mallory", &[]).await;
    assert_eq!(status, 403);
    mallory.ping().await;
    let leaked: Vec<&Value> =
        mallory.seen.iter().filter(|f| f.to_string().contains("after: members only") || f["seq"] == 2).collect();
    assert!(leaked.is_empty(), "mallory saw what came after her removal: {leaked:?}");
    let marker = app.database.collection::<bson::Document>("read_markers");
    let stored = marker.find_one(doc! {"user": "mallory", "room": "secret"}).await.unwrap().unwrap();
    assert_eq!(stored.get_i64("seq").unwrap(), 1, "the refused read changed nothing");
}

#[tokio::test]
async fn a_token_that_no_longer_lists_a_room_hides_it_from_the_room_list() {
    let app = spawn_app()
        .with(|s| {
            jwt(s, JwtAlgorithm::HS256);
            s.auth.room_policy = RoomPolicy::Claim;
        })
        .await;
    let token = |rooms: Value| {
        let mut claims = claims("mallory");
        claims["rooms"] = rooms;
        format!("token={}", sign(Algorithm::HS256, &claims, None))
    };
    let mut both = Client::connect_query(app.port, &token(json!(["team:*"]))).await;
    for room in ["team:red", "team:blue"] {
        both.join(room).await;
        both.post(room, &format!("{room}-1"), json!("hi")).await;
        both.send(json!({"type": "read", "room": room, "seq": 1})).await;
        both.wait_for(|f| f["type"] == "read_marker" && f["room"] == room).await;
    }
    let mut listed_both = listed(&mut both).await;
    listed_both.sort();
    assert_eq!(listed_both, ["team:blue", "team:red"]);

    let blue = token(json!(["team:blue"]));
    let mut mallory = Client::connect_query(app.port, &blue).await;
    assert_eq!(listed(&mut mallory).await, ["team:blue"]);
    assert_eq!(refusal(&mut mallory, json!({"type": "read", "room": "team:red", "seq": 1})).await, "forbidden");
    assert_eq!(refusal(&mut mallory, json!({"type": "history", "room": "team:red"})).await, "forbidden");
    let (status, _) = http_get_json(app.port, &format!("/v1/rooms/team:red/messages?{blue}"), &[]).await;
    assert_eq!(status, 403);
}
