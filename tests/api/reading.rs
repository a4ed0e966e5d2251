//! The read side of a chat: history pages (over the WebSocket and HTTP),
//! read markers on every device, the room list with unread counts, and
//! pages of a user's notifications.

use bson::doc;
use jsonwebtoken::Algorithm;
use roomcast::settings::{JwtAlgorithm, RoomPolicy};
use serde_json::{json, Value};

use crate::client::Client;
use crate::client::Conversation;
use crate::helpers::{http_get_json, mongo, spawn_app, unique_database};
use crate::security::{claims, jwt, sign};

/// The seqs of a `history` page, and its `more`.
fn page(frame: &Value) -> (Vec<i64>, bool) {
    let seqs = frame["messages"].as_array().unwrap().iter().map(|m| m["seq"].as_i64().unwrap()).collect();
    (seqs, frame["more"].as_bool().unwrap())
}

async fn history(client: &mut Client, request: Value) -> Value {
    client.send(request).await;
    client.wait_for(|f| f["type"] == "history" || f["type"] == "error").await
}

#[tokio::test]
async fn history_pages_walk_back_with_edits_and_deletes_inside_pages() {
    let app = spawn_app().set("limits.max_history_page", "12").await;
    let mut alice = app.client("alice").await;
    alice.join("r").await;
    let mut ids = Vec::new();
    for i in 1..=25 {
        ids.push(alice.post("r", &format!("c{i}"), json!({"n": i})).await["id"].as_str().unwrap().to_string());
    }
    alice.send(json!({"type": "edit", "room": "r", "id": ids[6], "body": {"n": "seven"}})).await;
    alice.send(json!({"type": "delete", "room": "r", "id": ids[11]})).await;
    alice.ping().await;

    // A reader who never joined pages back from the newest message.
    let mut bob = app.client("bob").await;
    let newest = history(&mut bob, json!({"type": "history", "room": "r", "limit": 10})).await;
    assert_eq!(page(&newest), ((16..=25).collect(), true));
    let middle = history(&mut bob, json!({"type": "history", "room": "r", "before": 16, "limit": 10})).await;
    assert_eq!(page(&middle), ((6..=15).collect(), true));
    let seven = &middle["messages"][1];
    assert_eq!((seven["seq"].as_i64(), &seven["body"]), (Some(7), &json!({"n": "seven"})));
    assert!(seven["edited_at"].is_string());
    let twelve = &middle["messages"][6];
    assert_eq!((twelve["seq"].as_i64(), &twelve["body"], &twelve["deleted"]), (Some(12), &Value::Null, &json!(true)));
    assert_eq!(twelve["type"], "message", "entries are message frames");
    let oldest = history(&mut bob, json!({"type": "history", "room": "r", "before": 6, "limit": 10})).await;
    assert_eq!(page(&oldest), ((1..=5).collect(), false));
    let none = history(&mut bob, json!({"type": "history", "room": "r", "before": 1})).await;
    assert_eq!(page(&none), (vec![], false));
    // A larger limit is capped by limits.max_history_page.
    let capped = history(&mut bob, json!({"type": "history", "room": "r", "limit": 1000})).await;
    assert_eq!(page(&capped), ((14..=25).collect(), true));
    let empty = history(&mut bob, json!({"type": "history", "room": "nobody-here"})).await;
    assert_eq!(page(&empty), (vec![], false));
    for (request, code) in [
        (json!({"type": "history", "room": "r", "before": 0}), "invalid_field"),
        (json!({"type": "history", "room": "r", "limit": -3}), "invalid_field"),
        (json!({"type": "history", "room": "r", "before": "16"}), "invalid_field"),
        (json!({"type": "history", "room": "a b"}), "invalid_room"),
    ] {
        assert_eq!(history(&mut bob, request.clone()).await["code"], code, "{request}");
    }
}

#[tokio::test]
async fn history_follows_the_room_policy_whether_or_not_the_room_was_joined() {
    let app = spawn_app().with(|s| s.auth.room_policy = RoomPolicy::Membership).await;
    let members = app.database.collection::<bson::Document>("room_members");
    members.insert_one(doc! {"room": "club", "user": "alice"}).await.unwrap();
    let mut alice = app.client("alice").await;
    alice.join("club").await;
    alice.post("club", "a1", json!("members only")).await;
    let mut bob = app.client("bob").await;
    let refused = history(&mut bob, json!({"type": "history", "room": "club"})).await;
    assert_eq!((refused["code"].as_str(), refused["ref"]["room"].as_str()), (Some("forbidden"), Some("club")));
    members.insert_one(doc! {"room": "club", "user": "bob"}).await.unwrap();
    let allowed = history(&mut bob, json!({"type": "history", "room": "club"})).await;
    assert_eq!(page(&allowed), (vec![1], false));
    assert!(!bob.seen.iter().any(|f| f["type"] == "message"), "reading history joins nothing");
}

#[tokio::test]
async fn read_markers_reach_every_device_on_every_replica_and_never_go_down() {
    let database = unique_database();
    let first = spawn_app().database(&database).process().await;
    let second = spawn_app().database(&database).process().await;
    let mut phone = first.client("bob").await;
    let mut laptop = second.client("bob").await;
    let mut alice = first.client("alice").await;
    for client in [&mut phone, &mut laptop, &mut alice] {
        client.ping().await;
    }
    alice.join("r").await;
    for i in 1..=5 {
        alice.post("r", &format!("m{i}"), json!(i)).await;
    }
    phone.send(json!({"type": "read", "room": "r", "seq": 3})).await;
    for bob in [&mut phone, &mut laptop] {
        let marker = bob.wait_for(|f| f["type"] == "read_marker").await;
        assert_eq!(marker, json!({"type": "read_marker", "room": "r", "seq": 3}));
    }
    // Lower or equal: nothing changes, nothing is relayed. Beyond the newest: refused.
    laptop.send(json!({"type": "read", "room": "r", "seq": 2})).await;
    laptop.send(json!({"type": "read", "room": "r", "seq": 3})).await;
    laptop.send(json!({"type": "read", "room": "r", "seq": 99})).await;
    let error = laptop.error().await;
    assert_eq!((error["code"].as_str(), error["ref"]["room"].as_str()), (Some("invalid_field"), Some("r")));
    laptop.send(json!({"type": "read", "room": "r", "seq": 5})).await;
    for bob in [&mut phone, &mut laptop] {
        bob.wait_for(|f| f["type"] == "read_marker" && f["seq"] == 5).await;
        let seen: Vec<i64> =
            bob.seen.iter().filter(|f| f["type"] == "read_marker").map(|f| f["seq"].as_i64().unwrap()).collect();
        assert_eq!(seen, [3, 5], "once per rise, never lowered");
    }
    alice.ping().await;
    assert!(!alice.seen.iter().any(|f| f["type"] == "read_marker"), "markers are the user's own");
    let markers = mongo(&database).await.collection::<bson::Document>("read_markers");
    let stored = markers.find_one(doc! {"user": "bob", "room": "r"}).await.unwrap().unwrap();
    assert_eq!(stored.get_i64("seq").or_else(|_| stored.get_i32("seq").map(i64::from)), Ok(5));
    assert_eq!(markers.count_documents(doc! {}).await.unwrap(), 1);
    // A join tells where the user stopped reading.
    assert_eq!(laptop.join("r").await["last_read"], 5);
    assert_eq!(alice.join("r").await["last_read"], 0);
}

#[tokio::test]
async fn the_room_list_counts_unread_messages_newest_activity_first() {
    let app = spawn_app().await;
    let mut alice = app.client("alice").await;
    let mut bob = app.client("bob").await;
    bob.ping().await;
    for (room, count) in [("older", 4), ("newer", 3), ("quiet", 0)] {
        alice.join(room).await;
        for i in 1..=count {
            alice.post(room, &format!("{room}{i}"), json!({"text": format!("{room} {i}")})).await;
        }
    }
    for (room, seq) in [("older", 1), ("newer", 3), ("quiet", 0)] {
        bob.send(json!({"type": "read", "room": room, "seq": seq})).await;
    }
    bob.wait_for_count(2, |f| f["type"] == "read_marker").await;
    bob.send(json!({"type": "rooms"})).await;
    let listed = bob.wait_for(|f| f["type"] == "rooms").await;
    let rooms = listed["rooms"].as_array().unwrap();
    let names: Vec<&str> = rooms.iter().map(|r| r["room"].as_str().unwrap()).collect();
    assert_eq!(names, ["newer", "older", "quiet"], "newest activity first, empty rooms last");
    let numbers: Vec<(i64, i64, i64)> = rooms
        .iter()
        .map(|r| (r["seq"].as_i64().unwrap(), r["last_read"].as_i64().unwrap(), r["unread"].as_i64().unwrap()))
        .collect();
    assert_eq!(numbers, [(3, 3, 0), (4, 1, 3), (0, 0, 0)]);
    assert_eq!(rooms[0]["last_message"]["body"], json!({"text": "newer 3"}));
    assert_eq!(rooms[1]["last_message"]["seq"], 4);
    assert!(rooms[2].get("last_message").is_none());
    // Another user's list holds only their own rooms.
    let mut carol = app.client("carol").await;
    carol.send(json!({"type": "rooms"})).await;
    assert_eq!(carol.wait_for(|f| f["type"] == "rooms").await["rooms"], json!([]));
}

#[tokio::test]
async fn http_history_identifies_its_caller_as_the_websocket_does() {
    let local = spawn_app().await;
    let mut alice = local.client("alice").await;
    alice.join("r").await;
    for i in 1..=3 {
        alice.post("r", &format!("c{i}"), json!(i)).await;
    }
    let (status, body) = http_get_json(local.port, "/v1/rooms/r/messages?user=bob&before=3&limit=5", &[]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["room"], "r");
    assert_eq!(body["more"], false);
    let seqs: Vec<i64> = body["messages"].as_array().unwrap().iter().map(|m| m["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, [1, 2]);
    for (path, status, code) in [
        ("/v1/rooms/r/messages", 401, "unauthorized"),
        ("/v1/rooms/r/messages?user=a%20b", 401, "unauthorized"),
        ("/v1/rooms/a|b/messages?user=bob", 400, "invalid_room"),
        ("/v1/rooms/r/messages?user=bob&before=zero", 400, "invalid_field"),
        ("/v1/rooms/r/messages?user=bob&limit=0", 400, "invalid_field"),
    ] {
        let (got, body) = http_get_json(local.port, path, &[]).await;
        assert_eq!((got, body["error"].as_str()), (status, Some(code)), "{path}: {body}");
    }

    let secured = spawn_app()
        .with(|s| {
            jwt(s, JwtAlgorithm::HS256);
            s.auth.room_policy = RoomPolicy::Claim;
        })
        .await;
    let mut token_claims = claims("bob");
    token_claims["rooms"] = json!(["team:*"]);
    let token = sign(Algorithm::HS256, &token_claims, None);
    let bearer = format!("Bearer {token}");
    let authorized = [("authorization", bearer.as_str())];
    let (status, body) = http_get_json(secured.port, "/v1/rooms/team:1/messages", &authorized).await;
    assert_eq!((status, &body["messages"]), (200, &json!([])), "{body}");
    let (status, body) = http_get_json(secured.port, "/v1/rooms/lobby/messages", &authorized).await;
    assert_eq!((status, body["error"].as_str()), (403, Some("forbidden")));
    let forged = [("authorization", "Bearer not.a.token")];
    let (status, body) = http_get_json(secured.port, "/v1/rooms/team:1/messages", &forged).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("unauthorized")));
    let (status, _) = http_get_json(secured.port, "/v1/rooms/team:1/messages?user=bob", &[]).await;
    assert_eq!(status, 401, "in jwt mode the user parameter means nothing");
}

#[tokio::test]
async fn notification_pages_hold_the_users_own_documents_newest_first() {
    let app = spawn_app().await;
    let notifications = app.notifications();
    for n in 1..=7 {
        notifications.insert_one(doc! {"user": "bob", "n": n}).await.unwrap();
        notifications.insert_one(doc! {"user": "amy", "n": 100 + n}).await.unwrap();
    }
    let mut bob = app.client("bob").await;
    let request = |before: Option<&str>| {
        let mut frame = json!({"type": "notifications", "route": "notifications", "limit": 3});
        if let Some(before) = before {
            frame["before"] = json!(before);
        }
        frame
    };
    let mut numbers = Vec::new();
    let mut before: Option<String> = None;
    loop {
        bob.send(request(before.as_deref())).await;
        let page = bob.wait_for(|f| f["type"] == "notifications").await;
        let items = page["items"].as_array().unwrap();
        for item in items {
            assert_eq!((item["type"].as_str(), item["route"].as_str()), (Some("notification"), Some("notifications")));
            assert!(item.get("cursor").is_none(), "a page is not a place in the stream");
            assert_eq!(item["data"]["user"], "bob");
            numbers.push(item["data"]["n"].as_i64().unwrap());
        }
        before = items.last().map(|item| item["id"].as_str().unwrap().to_string());
        if !page["more"].as_bool().unwrap() {
            break;
        }
    }
    assert_eq!(numbers, [7, 6, 5, 4, 3, 2, 1]);
    bob.send(json!({"type": "notifications", "route": "messages"})).await;
    assert_eq!(bob.error().await["code"], "invalid_field");
}
