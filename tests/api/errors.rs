use futures::SinkExt;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

use crate::client::Conversation;
use crate::helpers::{http_get, spawn_app};

#[tokio::test]
async fn bad_frames_get_their_error_code_change_nothing_and_the_connection_keeps_working() {
    let app = spawn_app().set("limits.max_body_bytes", "1024").await;
    let mut alice = app.client("alice").await;
    let mut bob = app.client("bob").await;
    bob.join("lobby").await;

    let cases: Vec<(String, &str)> = vec![
        ("not json".into(), "malformed_json"),
        ("{\"type\":\"send\",".into(), "malformed_json"),
        ("[1,2]".into(), "invalid_field"),
        (json!({"kind": "send"}).to_string(), "invalid_field"),
        (json!({"type": 7}).to_string(), "invalid_field"),
        (json!({"type": "dance"}).to_string(), "unknown_type"),
        (json!({"type": "send", "room": "lobby"}).to_string(), "invalid_field"),
        (json!({"type": "send", "room": "lobby", "client_id": 5, "body": 1}).to_string(), "invalid_field"),
        (json!({"type": "join", "room": "lobby", "since": "yesterday"}).to_string(), "invalid_field"),
        (json!({"type": "join", "room": "lobby", "since": 1.5}).to_string(), "invalid_field"),
        (json!({"type": "send", "room": "lobby", "client_id": "c1", "body": 1}).to_string(), "not_joined"),
        (json!({"type": "edit", "room": "lobby", "id": "x", "body": 1}).to_string(), "not_joined"),
        (json!({"type": "leave", "room": "lobby"}).to_string(), "not_joined"),
        (r#"{"type":"join","room":"lobby","since":1e400}"#.into(), "malformed_json"),
        (format!("{}1{}", "[".repeat(200), "]".repeat(200)), "malformed_json"),
    ];
    for (text, code) in &cases {
        alice.send_text(text.clone()).await;
        let error = alice.error().await;
        assert_eq!(error["code"], *code, "for {text}");
        assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let not_joined = alice.seen.iter().find(|f| f["code"] == "not_joined").unwrap();
    assert_eq!(not_joined["ref"], json!({"room": "lobby", "client_id": "c1"}));

    alice.join("lobby").await;
    let too_large = json!({"type": "send", "room": "lobby", "client_id": "big", "body": "x".repeat(2000)});
    alice.send(too_large).await;
    assert_eq!(alice.error().await["code"], "too_large");
    let mut deep = json!(1);
    for _ in 0..40 {
        deep = json!([deep]);
    }
    alice.send(json!({"type": "send", "room": "lobby", "client_id": "deep", "body": deep})).await;
    assert_eq!(alice.error().await["code"], "too_deep");
    alice.send(json!({"type": "send", "room": "lobby", "client_id": "huge", "body": 18446744073709551615_u64})).await;
    assert_eq!(alice.error().await["code"], "invalid_field");
    alice.send(json!({"type": "send", "room": "lobby", "client_id": "nul", "body": {"a\u{0}b": 1}})).await;
    assert_eq!(alice.error().await["code"], "invalid_field");
    alice.socket.send(Message::binary(vec![0_u8, 1, 2])).await.unwrap();
    assert_eq!(alice.error().await["code"], "unsupported_frame");

    assert_eq!(app.message_count().await, 0, "no bad input wrote anything");
    // The connection still works, and nobody else noticed anything.
    alice.ping().await;
    assert_eq!(alice.post("lobby", "ok", json!("fine")).await["seq"], 1);
    bob.message("lobby", 1).await;
    assert!(bob.seen.iter().all(|f| f["type"] != "error"));
    assert_eq!(bob.seqs("lobby"), [1]);
}

#[tokio::test]
async fn an_oversized_frame_closes_only_that_connection_with_1009() {
    let app = spawn_app().set("limits.max_frame_bytes", "4096").await;
    let mut bob = app.client("bob").await;
    bob.join("lobby").await;
    let mut mallory = app.client("mallory").await;
    mallory.join("lobby").await;
    mallory.send(json!({"type": "send", "room": "lobby", "client_id": "c", "body": "x".repeat(8000)})).await;
    let (code, reason) = mallory.closed().await;
    assert_eq!(code, 1009);
    assert_eq!(reason, "frame too large");
    assert_eq!(app.message_count().await, 0);
    assert_eq!(bob.post("lobby", "c", json!("still here")).await["seq"], 1);
}

#[tokio::test]
async fn handshakes_without_a_valid_user_are_refused_with_401_before_the_upgrade() {
    let app = spawn_app().await;
    for query in ["", "?user=", "?user=a%20b", "?user=%24where"] {
        let url = format!("ws://127.0.0.1:{}/ws{query}", app.port);
        match tokio_tungstenite::connect_async(url).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), 401, "{query}");
                let body: serde_json::Value = serde_json::from_slice(response.body().as_ref().unwrap()).unwrap();
                assert_eq!(body["error"], "unauthorized");
            }
            other => panic!("{query}: expected 401, got {other:?}"),
        }
    }
    let plain = http_get(app.port, "/ws?user=alice").await;
    assert!(plain.starts_with("HTTP/1.1 426"), "{plain}");
    assert!(plain.contains("upgrade_required"));
    // An upgrade in a WebSocket version other than 13 is refused the same way.
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", app.port)).await.unwrap();
    let request =
        "GET /ws?user=alice HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade, close\r\nUpgrade: websocket\r\n\
                   Sec-WebSocket-Version: 8\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut old_version = String::new();
    stream.read_to_string(&mut old_version).await.unwrap();
    assert!(old_version.starts_with("HTTP/1.1 426") && old_version.contains("version 13"), "{old_version}");
    let health = http_get(app.port, "/healthz").await;
    assert!(health.starts_with("HTTP/1.1 200") && health.contains(r#""status":"ok""#), "{health}");
    let ready = http_get(app.port, "/readyz").await;
    assert!(ready.starts_with("HTTP/1.1 200") && ready.contains(r#""status":"ready""#), "{ready}");
    let missing = http_get(app.port, "/nope").await;
    assert!(missing.starts_with("HTTP/1.1 404") && missing.contains("not_found"), "{missing}");
}
