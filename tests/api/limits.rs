//! One test per limit, and the hostile-input table run while another client
//! keeps chatting. Each breach has its documented error or close code.

use futures::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::client::Client;
use crate::client::Conversation;
use crate::helpers::{mongo, spawn_app, unique_database, RelayProcess};

#[tokio::test]
async fn rooms_per_connection_and_connections_per_user_are_capped() {
    let app = spawn_app()
        .with(|s| {
            s.limits.max_rooms_per_connection = 2;
            s.limits.max_connections_per_user = 2;
        })
        .await;
    let mut alice = app.client("alice").await;
    alice.join("a").await;
    alice.join("b").await;
    alice.join("a").await; // re-joining a room does not count twice
    alice.send(json!({"type": "join", "room": "c"})).await;
    let error = alice.error().await;
    assert_eq!((error["code"].as_str(), error["ref"]["room"].as_str()), (Some("too_many_rooms"), Some("c")));
    alice.send(json!({"type": "leave", "room": "a"})).await;
    alice.wait_for(|f| f["type"] == "left").await;
    alice.join("c").await;

    let _second = app.client("alice").await;
    assert_eq!(Client::handshake(app.port, "?user=alice", &[]).await.err(), Some(429));
    assert!(Client::handshake(app.port, "?user=bob", &[]).await.is_ok(), "other users are not affected");
}

#[tokio::test]
async fn a_replica_holds_at_most_its_joined_rooms_and_a_leave_or_a_close_gives_them_back() {
    let app = spawn_app().with(|s| s.limits.max_joined_rooms = 3).await;
    let mut alice = app.client("alice").await;
    alice.join("a").await;
    alice.join("b").await;
    let mut bob = app.client("bob").await;
    bob.join("a").await; // a room shared counts once per connection in it
    bob.send(json!({"type": "join", "room": "c"})).await;
    let error = bob.error().await;
    assert_eq!((error["code"].as_str(), error["ref"]["room"].as_str()), (Some("too_many_rooms"), Some("c")));
    // The refused join left nothing behind: bob is not in c.
    bob.send(json!({"type": "send", "room": "c", "client_id": "x", "body": {"text": "hi"}})).await;
    assert_eq!(bob.error().await["code"], "not_joined");

    alice.send(json!({"type": "leave", "room": "b"})).await;
    alice.wait_for(|f| f["type"] == "left" && f["room"] == "b").await;
    bob.join("c").await;

    // A connection that closes gives back every room it held.
    alice.socket.send(Message::Close(None)).await.unwrap();
    while alice.socket.next().await.is_some_and(|m| m.is_ok()) {}
    bob.join("d").await;
}

#[tokio::test]
async fn sends_and_joins_are_rate_limited_and_the_connection_survives() {
    let app = spawn_app()
        .with(|s| {
            (s.limits.sends_per_second, s.limits.send_burst) = (1, 3);
            (s.limits.joins_per_second, s.limits.join_burst) = (1, 2);
        })
        .await;
    let mut alice = app.client("alice").await;
    alice.join("r").await;
    for i in 0..6 {
        alice.send(json!({"type": "send", "room": "r", "client_id": format!("c{i}"), "body": i})).await;
    }
    alice.ping().await;
    let acks = alice.seen.iter().filter(|f| f["type"] == "ack").count();
    let limited: Vec<_> = alice.seen.iter().filter(|f| f["code"] == "rate_limited").collect();
    assert!((2..=3).contains(&acks), "about the burst went through: {acks}");
    assert_eq!(acks + limited.len(), 6, "every send was answered");
    assert!(limited.iter().all(|f| f["ref"]["room"] == "r" && f["ref"]["client_id"].is_string()));
    assert_eq!(app.message_count().await, acks as u64, "a limited send writes nothing");
    for room in ["j1", "j2", "j3", "j4"] {
        alice.send(json!({"type": "join", "room": room})).await;
    }
    alice.ping().await;
    let limited_joins =
        alice.seen.iter().filter(|f| f["code"] == "rate_limited" && f["ref"]["client_id"].is_null()).count();
    assert!(limited_joins >= 2, "joins beyond the burst are limited");
}

#[tokio::test]
async fn a_user_s_buckets_outlive_their_connections() {
    let app = spawn_app()
        .with(|s| {
            (s.limits.joins_per_second, s.limits.join_burst) = (1, 10);
            (s.limits.sends_per_second, s.limits.send_burst) = (1, 10);
        })
        .await;
    let started = std::time::Instant::now();
    let (mut pages, mut sends) = (0, 0);
    // Three rounds of connections, two at once in each: per connection,
    // each would get a whole burst. Mallory reads pages (the join bucket);
    // eve joins once per connection, then sends (the send bucket).
    for round in 0..3 {
        for _ in 0..2 {
            let mut mallory = app.client("mallory").await;
            let mut eve = app.client("eve").await;
            eve.join("r").await;
            for i in 0..15 {
                mallory.send(json!({"type": "history", "room": "r", "limit": 1})).await;
                let id = format!("c{round}-{i}-{}", fastrand::u32(..));
                eve.send(json!({"type": "send", "room": "r", "client_id": id, "body": i})).await;
            }
            mallory.ping().await;
            eve.ping().await;
            pages += mallory.seen.iter().filter(|f| f["type"] == "history").count();
            sends += eve.seen.iter().filter(|f| f["type"] == "ack").count();
        }
    }
    let (status, _) = crate::helpers::http_get_json(app.port, "/v1/rooms/r/messages?user=mallory", &[]).await;
    let seconds = started.elapsed().as_secs_f64();
    // One bucket per user: its burst, and a token a second since.
    let bound = 10.0 + (seconds + 1.0);
    assert!(pages as f64 <= bound, "{pages} pages in {seconds:.1} s");
    assert!(sends as f64 <= bound, "{sends} sends in {seconds:.1} s");
    assert_eq!(app.message_count().await, sends as u64, "a refused send writes nothing");
    if seconds < 1.0 {
        assert_eq!(status, 429, "the HTTP history shares the join bucket");
    }
    // Another user has buckets of their own.
    let mut bob = app.client("bob").await;
    bob.join("b").await;
    for i in 0..5 {
        assert_eq!(bob.post("b", &format!("b{i}"), json!(i)).await["type"], "ack");
    }
}

#[tokio::test]
async fn handshakes_per_address_and_origins_are_checked_before_the_upgrade() {
    let app = spawn_app()
        .with(|s| {
            (s.limits.handshakes_per_second_per_ip, s.limits.handshake_burst_per_ip) = (1, 3);
            s.server.allowed_origins = vec!["https://chat.example".into()];
        })
        .await;
    assert_eq!(Client::handshake(app.port, "?user=a", &[("origin", "https://evil.example")]).await.err(), Some(403));
    assert!(Client::handshake(app.port, "?user=a", &[("origin", "https://chat.example")]).await.is_ok());
    assert!(Client::handshake(app.port, "?user=a", &[]).await.is_ok(), "clients without Origin are not browsers");
    // The refused handshake counted too: the burst of 3 is spent.
    assert_eq!(Client::handshake(app.port, "?user=a", &[]).await.err(), Some(429));
}

/// The token buckets of `config/base.yaml`, as in production, instead of the
/// tests' relaxed ones: the burst below meets the real buckets.
const DEFAULT_BUCKETS: [(&str, &str); 4] = [
    ("limits.sends_per_second", "20"),
    ("limits.send_burst", "40"),
    ("limits.joins_per_second", "10"),
    ("limits.join_burst", "50"),
];

#[tokio::test]
async fn hostile_input_changes_nothing_and_disturbs_nobody() {
    let database = unique_database();
    let relay = spawn_app().database(&database).set_all(&DEFAULT_BUCKETS).process().await;
    let mut alice = relay.client("alice").await;
    let mut bob = relay.client("bob").await;
    alice.join("calm").await;
    bob.join("calm").await;
    let rss_before = relay.rss_kib();

    // Alice keeps chatting while mallory tries everything.
    let chatting = tokio::spawn(async move {
        for i in 1..=30 {
            alice.post("calm", &format!("a{i}"), json!({"i": i})).await;
        }
        alice
    });
    let mut mallory = relay.client("mallory").await;
    mallory.join("den").await;
    every_bad_frame_gets_its_code(&mut mallory).await;
    let burst_seconds = a_burst_is_bounded_by_the_token_buckets(&mut mallory).await;
    oversized_and_garbled_frames_close_only_their_connection(&relay).await;

    let mut alice = chatting.await.unwrap();
    alice.message("calm", 30).await;
    bob.message("calm", 30).await;
    let all: Vec<i64> = (1..=30).collect();
    for client in [&alice, &bob] {
        assert_eq!(client.seqs("calm"), all, "no disturbance: every message, in order");
        assert!(client.seen.iter().all(|f| f["type"] != "error"));
    }
    the_database_holds_only_what_was_allowed(&database, burst_seconds).await;
    let grown = relay.rss_kib().saturating_sub(rss_before);
    eprintln!("hostile input: relay RSS grew by {grown} KiB");
    assert!(grown < 64 * 1024, "memory stays bounded: grew {grown} KiB");
}

/// The hostile-input table of docs/protocol.md, one frame at a time.
async fn every_bad_frame_gets_its_code(mallory: &mut Client) {
    let mut deep = json!(1);
    for _ in 0..100 {
        deep = json!([deep]);
    }
    let table: Vec<(String, &str)> = vec![
        ("{\"type\":".into(), "malformed_json"),
        (json!({"type": "join", "room": ["calm"]}).to_string(), "invalid_field"),
        (json!({"type": "join", "room": "calm", "since": "0"}).to_string(), "invalid_field"),
        (r#"{"type":"join","room":"calm","since":99999999999999999999999}"#.into(), "invalid_field"),
        (r#"{"type":"send","room":"den","client_id":"n","body":1e999}"#.into(), "malformed_json"),
        (json!({"type": "send", "room": "den", "client_id": "d", "body": deep}).to_string(), "too_deep"),
        (json!({"type": "join", "room": "calm\u{0}"}).to_string(), "invalid_room"),
        ("{\"type\":\"ping\u{0}\"}".into(), "malformed_json"),
        (
            json!({"type": "send", "room": "den", "client_id": "nul", "body": {"a\u{0}": 1}}).to_string(),
            "invalid_field",
        ),
        (json!({"type": "join", "room": ".*"}).to_string(), "invalid_room"),
        (json!({"type": "join", "room": {"$gt": ""}}).to_string(), "invalid_field"),
        (json!({"type": "join", "room": "$where"}).to_string(), "invalid_room"),
        (json!({"type": "send", "room": "calm", "client_id": "x", "body": 1}).to_string(), "not_joined"),
        (json!({"type": "edit", "room": "den", "id": {"$ne": null}, "body": 1}).to_string(), "invalid_field"),
    ];
    for (text, code) in &table {
        mallory.send_text(text.clone()).await;
        assert_eq!(mallory.error().await["code"], *code, "{text}");
    }
    mallory.socket.send(Message::binary(vec![0xff, 0x00])).await.unwrap();
    assert_eq!(mallory.error().await["code"], "unsupported_frame");
    // Unknown fields are ignored, and operator-looking bodies are only data.
    mallory.send(json!({"type": "ping", "admin": true})).await;
    mallory.wait_for(|f| f["type"] == "pong").await;
    let verbatim = json!({"$where": "1", "$set": {"author": "alice"}, "a.b": 1});
    assert_eq!(mallory.post("den", "v", verbatim.clone()).await["type"], "ack");
}

/// 10,000 frames: pongs and refusals, bounded by the token buckets. Sent in
/// chunks, reading the answers in between: a client that never reads is
/// throttled by its own queue, which is the relay working as meant. Returns
/// how long the burst took.
async fn a_burst_is_bounded_by_the_token_buckets(mallory: &mut Client) -> f64 {
    let answer = |f: &serde_json::Value| f["type"] != "message";
    let pong = |f: &serde_json::Value| f["type"] == "pong";
    let pongs_before = mallory.seen.iter().filter(|f| pong(f)).count();
    let burst_started = std::time::Instant::now();
    let mut answered = mallory.seen.iter().filter(|f| answer(f)).count();
    for chunk in 0..25 {
        for i in chunk * 400..(chunk + 1) * 400 {
            let frame = match i % 4 {
                0 => json!({"type": "ping"}),
                1 => json!({"type": "join", "room": format!("burst{i}")}),
                2 => json!({"type": "send", "room": "den", "client_id": format!("b{i}"), "body": i}),
                _ => json!({"type": "nonsense"}),
            };
            mallory.send(frame).await;
        }
        answered += 400;
        mallory.wait_for_count(answered, answer).await;
    }
    // A successful join answers with more than one frame, so the count
    // above can be reached before the last answers arrived. The pong of
    // one more ping, the burst's 2,500 and then this one, comes after every
    // answer to the frames before it.
    mallory.send(json!({"type": "ping"})).await;
    mallory.wait_for_count(pongs_before + 2500 + 1, pong).await;
    // 2,500 joins and 2,500 sends: the buckets let through at most their
    // bursts plus their rates over the burst's time (longer on a busy
    // machine); everything else is refused as rate_limited.
    let seconds = burst_started.elapsed().as_secs_f64();
    let limited = mallory.seen.iter().filter(|f| f["code"] == "rate_limited").count() as f64;
    let let_through = (40.0 + 50.0) + (20.0 + 10.0) * (seconds + 1.0);
    assert!(limited >= 5000.0 - let_through, "the buckets refused the rest: {limited} in {seconds:.1} s");
    seconds
}

/// Frames over the size limit and invalid UTF-8 close only that connection.
async fn oversized_and_garbled_frames_close_only_their_connection(relay: &RelayProcess) {
    let mut huge = relay.client("mallory").await;
    huge.send_text(format!("{{\"type\":\"ping\",\"pad\":\"{}\"}}", "x".repeat(1 << 20))).await;
    assert_eq!(huge.closed().await.0, 1009);
    let mut garbled = relay.client("mallory").await;
    garbled
        .socket
        .send(Message::Text(unsafe { String::from_utf8_unchecked(vec![b'"', 0xc3, 0x28, b'"']) }.into()))
        .await
        .unwrap();
    assert_eq!(garbled.closed().await.0, 1007);
}

/// Alice's 30 messages, what the send bucket let through of the burst, the
/// verbatim body, and nothing else.
async fn the_database_holds_only_what_was_allowed(database: &str, burst_seconds: f64) {
    let messages = mongo(database).await.collection::<bson::Document>("messages");
    let calm = messages.count_documents(bson::doc! {"room": "calm", "author": "alice"}).await.unwrap();
    assert_eq!(calm, 30);
    let den: Vec<bson::Document> = {
        use futures::TryStreamExt;
        messages.find(bson::doc! {"room": "den"}).await.unwrap().try_collect().await.unwrap()
    };
    let bursts = den.iter().filter(|d| d.get_str("client_id").unwrap().starts_with('b')).count();
    let bucket = 40.0 + 20.0 * (burst_seconds + 1.0);
    assert!((bursts as f64) <= bucket, "the send bucket bounded what the burst wrote: {bursts} > {bucket}");
    let stored_verbatim = den.iter().find(|d| d.get_str("client_id") == Ok("v")).unwrap();
    assert_eq!(stored_verbatim.get_document("body").unwrap().get_str("$where").unwrap(), "1");
    assert_eq!(messages.count_documents(bson::doc! {}).await.unwrap(), 30 + den.len() as u64, "nothing else");
}
