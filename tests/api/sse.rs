//! The SSE transport: the protocol's main flows over `GET /sse` and
//! `POST /sse/{session}`, between SSE and WebSocket users, and every
//! refusal of both endpoints.

use bson::doc;
use serde_json::{json, Value};

use std::time::Duration;

use jsonwebtoken::Algorithm;
use roomcast::settings::JwtAlgorithm;

use crate::client::{f_ref_client, Client, Conversation};
use crate::helpers::{mongo, spawn_app, unique_database, wait_for_http};
use crate::security::{claims, jwt, now, sign};
use crate::sse_client::{post, SseClient};

fn encode(cursor: &Value) -> String {
    cursor.as_str().unwrap().replace(':', "%3A")
}

#[tokio::test]
async fn a_stream_is_text_event_stream_and_its_first_event_names_the_session() {
    let app = spawn_app().await;
    let client = SseClient::connect(app.port, "alice").await;
    assert!(client.head.starts_with("http/1.1 200"), "{}", client.head);
    assert!(client.head.contains("content-type: text/event-stream"), "{}", client.head);
    assert!(client.head.contains("cache-control: no-store"), "{}", client.head);
    assert!(client.head.contains("x-accel-buffering: no"), "{}", client.head);
    assert!(client.session.len() >= 22, "an id nobody guesses: {}", client.session);
}

#[tokio::test]
async fn an_sse_user_and_a_websocket_user_chat_with_acks_in_order() {
    let app = spawn_app().await;
    let mut alice = SseClient::connect(app.port, "alice").await;
    let mut bob = Client::connect(app.port, "bob").await;
    alice.join("r").await;
    bob.join("r").await;
    let ack = alice.post("r", "a1", json!({"text": "hi"})).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let seq = ack["seq"].as_i64().unwrap();
    for message in [alice.message("r", seq).await, bob.message("r", seq).await] {
        assert_eq!(message["body"], json!({"text": "hi"}));
        assert_eq!(message["author"], "alice");
    }
    let reply = bob.post("r", "b1", json!("hello")).await;
    let message = alice.message("r", reply["seq"].as_i64().unwrap()).await;
    assert_eq!(message["author"], "bob");
    // An array is handled in order: three sends, acked in order, one seq each.
    let sends: Vec<Value> =
        (1..=3).map(|i| json!({"type": "send", "room": "r", "client_id": format!("x{i}"), "body": i})).collect();
    let answer = alice.post_body(&Value::Array(sends).to_string()).await;
    assert_eq!(answer.status, 204, "{}", answer.body);
    let mut seqs = Vec::new();
    for i in 1..=3 {
        let ack = alice.wait_for(|f| f["type"] == "ack" && f["client_id"] == format!("x{i}")).await;
        seqs.push(ack["seq"].as_i64().unwrap());
    }
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "in order, gap-free: {seqs:?}");
    // Idempotent: a resend of x1 names the message it stored the first time.
    let again = alice.post("r", "x1", json!(1)).await;
    assert_eq!(again["seq"].as_i64(), Some(seqs[0]), "{again}");
    assert_eq!(app.message_count().await, 5);
}

#[tokio::test]
async fn a_new_stream_rejoins_with_since_and_gets_what_it_missed_once() {
    let app = spawn_app().await;
    let mut alice = SseClient::connect(app.port, "alice").await;
    let mut bob = Client::connect(app.port, "bob").await;
    alice.join("r").await;
    bob.join("r").await;
    let first = bob.post("r", "b1", json!(1)).await["seq"].as_i64().unwrap();
    alice.message("r", first).await;
    alice.hang_up().await;
    for i in 2..=4 {
        bob.post("r", &format!("b{i}"), json!(i)).await;
    }
    let mut back = SseClient::connect(app.port, "alice").await;
    back.join_since("r", first).await;
    back.message("r", first + 3).await;
    bob.post("r", "b5", json!(5)).await;
    back.message("r", first + 4).await;
    assert_eq!(back.seqs("r"), [first + 1, first + 2, first + 3, first + 4]);
}

#[tokio::test]
async fn notifications_arrive_and_are_recovered_with_since_cursor() {
    let app = spawn_app().await;
    let mut watcher = Client::connect(app.port, "bob").await;
    let mut away = SseClient::connect(app.port, "bob").await;
    watcher.ping().await;
    away.send(json!({"type": "ping"})).await;
    away.wait_for(|f| f["type"] == "pong").await;
    app.notifications().insert_one(doc! {"user": "bob", "n": 1}).await.unwrap();
    let cursor = away.wait_for(|f| f["type"] == "notification").await["cursor"].clone();
    away.hang_up().await;
    for (user, n) in [("bob", 2), ("amy", 9), ("bob", 3)] {
        app.notifications().insert_one(doc! {"user": user, "n": n}).await.unwrap();
    }
    watcher.wait_for(|f| f["type"] == "notification" && f["data"]["n"] == 3).await;
    let query = format!("user=bob&since_cursor={}", encode(&cursor));
    let mut back = SseClient::open(app.port, &query, &[]).await.unwrap_or_else(|a| panic!("{}", a.body));
    let recovery = back.wait_for(|f| f["type"] == "recovery").await;
    assert_eq!(recovery["recovered"], true, "{recovery}");
    app.notifications().insert_one(doc! {"user": "bob", "n": 4}).await.unwrap();
    back.wait_for(|f| f["type"] == "notification" && f["data"]["n"] == 4).await;
    let numbers: Vec<i64> =
        back.seen.iter().filter(|f| f["type"] == "notification").map(|f| f["data"]["n"].as_i64().unwrap()).collect();
    assert_eq!(numbers, [2, 3, 4], "missed ones, then live, no duplicate");
}

#[tokio::test]
async fn presence_and_typing_flow_between_an_sse_user_and_a_websocket_user() {
    let app = spawn_app().await;
    let mut alice = SseClient::connect(app.port, "alice").await;
    alice.join("r").await;
    let mut bob = Client::connect(app.port, "bob").await;
    bob.join("r").await;
    // In the snapshot after `joined`, or soon after it if alice's presence
    // was still on its way through the change stream.
    let alice_seen = |f: &Value| {
        (f["type"] == "presence" && f["users"].to_string().contains("alice"))
            || (f["type"] == "presence_join" && f["user"] == "alice")
    };
    bob.wait_for(alice_seen).await;
    alice.wait_for(|f| f["type"] == "presence_join" && f["user"] == "bob").await;
    alice.send(json!({"type": "typing", "room": "r"})).await;
    assert_eq!(bob.wait_for(|f| f["type"] == "typing").await, json!({"type": "typing", "room": "r", "user": "alice"}));
    bob.send(json!({"type": "typing", "room": "r"})).await;
    assert_eq!(alice.wait_for(|f| f["type"] == "typing").await["user"], "bob");
    alice.hang_up().await;
    bob.wait_for(|f| f["type"] == "presence_leave" && f["user"] == "alice").await;
}

#[tokio::test]
async fn history_read_markers_and_the_room_list_work_over_sse() {
    let database = unique_database();
    let app = spawn_app().database(&database).process().await;
    let mut alice = SseClient::connect(app.port, "alice").await;
    alice.join("r").await;
    for i in 1..=5 {
        alice.post("r", &format!("m{i}"), json!(i)).await;
    }
    alice.send(json!({"type": "history", "room": "r", "before": 5, "limit": 2})).await;
    let page = alice.wait_for(|f| f["type"] == "history").await;
    let seqs: Vec<i64> = page["messages"].as_array().unwrap().iter().map(|m| m["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, [3, 4], "{page}");
    alice.send(json!({"type": "read", "room": "r", "seq": 4})).await;
    assert_eq!(
        alice.wait_for(|f| f["type"] == "read_marker").await,
        json!({"type": "read_marker", "room": "r", "seq": 4})
    );
    alice.send(json!({"type": "rooms"})).await;
    let rooms = alice.wait_for(|f| f["type"] == "rooms").await;
    assert!(rooms.to_string().contains("\"unread\":1"), "one message after the marker: {rooms}");
    let markers = mongo(&database).await.collection::<bson::Document>("read_markers");
    assert_eq!(markers.count_documents(doc! {"user": "alice", "room": "r"}).await.unwrap(), 1);
}

#[tokio::test]
async fn a_shutdown_closes_the_stream_with_1001_after_acking_what_was_in_flight() {
    let database = unique_database();
    let mut relay = spawn_app().database(&database).process().await;
    let mut alice = SseClient::connect(relay.port, "alice").await;
    alice.join("r").await;
    let sends: Vec<Value> =
        (0..30).map(|i| json!({"type": "send", "room": "r", "client_id": format!("c{i}"), "body": i})).collect();
    assert_eq!(alice.post_body(&Value::Array(sends).to_string()).await.status, 204);
    alice.wait_for(|f| f["type"] == "ack").await;
    let (code, _) = relay.terminate().await;
    assert_eq!(code, Some(0));
    assert_eq!(alice.closed().await, (1001, "going away".to_string()));
    let acked = alice.seen.iter().filter(|f| f["type"] == "ack").count() as u64;
    let stored = mongo(&database).await.collection::<bson::Document>("messages").count_documents(doc! {}).await;
    assert_eq!(stored.unwrap(), acked, "every stored send was acked, every ack names a stored send");
}

#[tokio::test]
async fn tokens_travel_in_the_header_a_post_must_prove_the_same_user_and_expiry_closes_with_4001() {
    let app = spawn_app()
        .with(|s| {
            jwt(s, JwtAlgorithm::HS256);
            s.auth.jwt.leeway = Duration::ZERO;
        })
        .await;
    let refused = SseClient::open(app.port, "", &[]).await.err().expect("no credentials");
    assert_eq!((refused.status, refused.json()["error"].clone()), (401, json!("unauthorized")), "{}", refused.body);
    let refused = SseClient::open(app.port, "", &[("Authorization", "Bearer nonsense")]).await.err().unwrap();
    assert_eq!(refused.status, 401);

    let mut soon = claims("dave");
    soon["exp"] = json!(now() + 3);
    let bearer = format!("Bearer {}", sign(Algorithm::HS256, &soon, None));
    let mut dave =
        SseClient::open(app.port, "", &[("Authorization", &bearer)]).await.unwrap_or_else(|a| panic!("{}", a.body));
    dave.send(json!({"type": "ping"})).await;
    dave.wait_for(|f| f["type"] == "pong").await;
    let path = format!("/sse/{}", dave.session);
    let ping = b"{\"type\":\"ping\"}";
    let json = ("Content-Type", "application/json");
    // A refreshed token of the same user is verified and accepted.
    let refreshed = format!("Bearer {}", sign(Algorithm::HS256, &claims("dave"), None));
    assert_eq!(post(app.port, &path, &[json, ("Authorization", &refreshed)], ping).await.status, 204);
    dave.wait_for(|f| f["type"] == "pong").await;
    let erin = format!("Bearer {}", sign(Algorithm::HS256, &claims("erin"), None));
    let forbidden = post(app.port, &path, &[json, ("Authorization", &erin)], ping).await;
    assert_eq!((forbidden.status, forbidden.json()["error"].clone()), (403, json!("forbidden")));
    let bad = post(app.port, &path, &[json, ("Authorization", "Bearer nonsense")], ping).await;
    assert_eq!(bad.status, 401);
    let none = post(app.port, &path, &[json], ping).await;
    assert_eq!(none.status, 401);
    assert_eq!(dave.closed().await, (4001, "token expired".to_string()));
    let gone = post(app.port, &path, &[json, ("Authorization", &refreshed)], ping).await;
    assert_eq!((gone.status, gone.json()["error"].clone()), (404, json!("no_session")));
}

#[tokio::test]
async fn posts_are_refused_with_a_status_and_change_nothing() {
    let app = spawn_app().set("limits.max_frame_bytes", "4096").await;
    let mut alice = SseClient::connect(app.port, "alice").await;
    alice.join("r").await;
    let path = format!("/sse/{}?user=alice", alice.session);
    let json = ("Content-Type", "application/json");
    let send = json!({"type": "send", "room": "r", "client_id": "c", "body": 1}).to_string();

    let unknown = post(app.port, "/sse/nonsense?user=alice", &[json], send.as_bytes()).await;
    assert_eq!((unknown.status, unknown.json()["error"].clone()), (404, json!("no_session")));
    let other_user = post(app.port, &format!("/sse/{}?user=mallory", alice.session), &[json], send.as_bytes()).await;
    assert_eq!((other_user.status, other_user.json()["error"].clone()), (403, json!("forbidden")));
    let no_user = post(app.port, &format!("/sse/{}", alice.session), &[json], send.as_bytes()).await;
    assert_eq!(no_user.status, 401, "{}", no_user.body);
    let text = post(app.port, &path, &[("Content-Type", "text/plain")], send.as_bytes()).await;
    assert_eq!((text.status, text.json()["error"].clone()), (415, json!("unsupported_media_type")));
    let big = json!({"type": "send", "room": "r", "client_id": "big", "body": "x".repeat(5000)}).to_string();
    let too_large = post(app.port, &path, &[json], big.as_bytes()).await;
    assert_eq!((too_large.status, too_large.json()["error"].clone()), (413, json!("too_large")));
    let not_utf8 = post(app.port, &path, &[json], b"{\"type\":\"ping\xff\"}").await;
    assert_eq!((not_utf8.status, not_utf8.json()["error"].clone()), (400, json!("invalid_utf8")));
    let many = Value::Array(vec![json!({"type": "ping"}); 101]).to_string();
    let too_many = post(app.port, &path, &[json], many.as_bytes()).await;
    assert_eq!((too_many.status, too_many.json()["error"].clone()), (400, json!("too_many_frames")));
    let chunked = post(app.port, &path, &[json, ("Transfer-Encoding", "chunked")], b"0\r\n\r\n").await;
    assert_eq!((chunked.status, chunked.json()["error"].clone()), (411, json!("length_required")));

    // A frame that is not one gets its error on the stream, as on a WebSocket.
    assert_eq!(alice.post_body("{nope").await.status, 204);
    assert_eq!(alice.error().await["code"], "malformed_json");
    alice.send(json!({"type": "ping"})).await;
    alice.wait_for(|f| f["type"] == "pong").await;
    assert_eq!(app.message_count().await, 0, "nothing refused was stored");
    assert!(!alice.seen.iter().any(|f| f["type"] == "ack"), "{:?}", alice.seen);
}

#[tokio::test]
async fn a_second_post_while_one_is_answered_gets_429() {
    let app = spawn_app().await;
    let mut alice = SseClient::connect(app.port, "alice").await;
    let path = format!("/sse/{}?user=alice", alice.session);
    // The first POST promises a body it does not finish: it holds its turn.
    let mut first = tokio::net::TcpStream::connect(("127.0.0.1", app.port)).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n{{\"type\""
    );
    tokio::io::AsyncWriteExt::write_all(&mut first, head.as_bytes()).await.unwrap();
    // Until the first POST holds its turn, a second one is answered; from then on, refused.
    let status = loop {
        assert!(alice.seen.len() < 1000, "the first POST never took its turn");
        let answer = post(app.port, &path, &[("Content-Type", "application/json")], b"{\"type\":\"ping\"}").await;
        if answer.status != 204 {
            assert_eq!(answer.json()["error"], "post_in_progress", "{}", answer.body);
            break answer.status;
        }
        alice.wait_for(|f| f["type"] == "pong").await;
    };
    assert_eq!(status, 429);
    // Finished, the first POST is answered, and the session handles it.
    tokio::io::AsyncWriteExt::write_all(&mut first, b":\"ping\"}").await.unwrap();
    alice.wait_for(|f| f["type"] == "pong").await;
}

#[tokio::test]
async fn a_replica_serves_at_most_its_sse_streams_and_none_with_zero() {
    let app = spawn_app().set("limits.max_sse_streams", "1").await;
    let first = SseClient::connect(app.port, "alice").await;
    let refused = SseClient::open(app.port, "user=bob", &[]).await.err().expect("one stream only");
    assert_eq!((refused.status, refused.json()["error"].clone()), (503, json!("server_full")));
    // A WebSocket still gets in: the cap is on streams alone.
    Client::connect(app.port, "carol").await.ping().await;
    first.hang_up().await;
    // The stream's place is given back once its session ended.
    wait_for_http(app.port, "/metrics", "roomcast_sse_streams_open 0").await;
    SseClient::connect(app.port, "bob").await;
    let off = spawn_app().set("limits.max_sse_streams", "0").await;
    let refused = SseClient::open(off.port, "user=bob", &[]).await.err().expect("SSE is off");
    assert_eq!(refused.status, 404);
}

#[tokio::test]
async fn a_stream_that_stops_being_read_is_closed_with_4008_after_a_gap_free_prefix() {
    let app = spawn_app()
        .with(|settings| {
            settings.limits.send_queue_frames = 64;
            settings.server.write_timeout = Duration::from_secs(600);
        })
        .await;
    let mut slow = SseClient::connect_stingy(app.port, "slow").await;
    slow.join("r").await;
    let mut sender = app.client("sender").await;
    sender.join("r").await;
    let padding = "x".repeat(16 * 1024);
    let total = 300;
    for i in 1..=total {
        let ack = sender.post("r", &format!("m{i}"), json!({"pad": padding})).await;
        assert_eq!(ack["seq"], i);
    }
    // Its session is over (only the sender remains), while it read nothing.
    wait_for_http(app.port, "/healthz", r#""connections":1"#).await;
    let (code, reason) = slow.closed().await;
    assert_eq!((code, reason.as_str()), (4008, "slow consumer: send queue overflow"));
    let got = slow.seqs("r");
    assert_eq!(got, (1..=got.len() as i64).collect::<Vec<_>>(), "a gap-free prefix");
    assert!((got.len() as i64) < total);
}

#[tokio::test]
async fn a_stream_that_is_read_stays_open_on_its_keep_alives_alone() {
    let app = spawn_app()
        .with(|settings| {
            settings.server.ping_interval = Duration::from_millis(100);
            settings.server.idle_timeout = Duration::from_millis(600);
        })
        .await;
    let mut alice = SseClient::connect(app.port, "alice").await;
    // Twenty keep-alives span more than three idle timeouts, with no POST.
    alice.keep_alives(20).await;
    alice.send(json!({"type": "ping"})).await;
    alice.wait_for(|f| f["type"] == "pong").await;
}

#[tokio::test]
async fn a_stream_that_takes_nothing_and_gets_no_post_ends_with_4000_after_the_idle_timeout() {
    let app = spawn_app()
        .with(|settings| {
            // Neither the queue nor the write timeout ends it: only silence.
            settings.limits.send_queue_bytes = 16 << 20;
            settings.limits.buffer_pool_bytes = 64 << 20;
            settings.limits.user_pool_bytes = 32 << 20;
            settings.server.write_timeout = Duration::from_secs(600);
            settings.server.ping_interval = Duration::from_millis(200);
            settings.server.idle_timeout = Duration::from_secs(1);
        })
        .await;
    let mut stuck = SseClient::connect_stingy(app.port, "stuck").await;
    stuck.join("r").await;
    let mut sender = app.client("sender").await;
    sender.join("r").await;
    let padding = "x".repeat(16 * 1024);
    let total = 300;
    for i in 1..=total {
        sender.post("r", &format!("m{i}"), json!({"pad": padding})).await;
    }
    wait_for_http(app.port, "/healthz", r#""connections":1"#).await;
    let (code, reason) = stuck.closed().await;
    assert_eq!((code, reason.as_str()), (4000, "idle timeout"));
}

#[tokio::test]
async fn a_flood_of_posts_meets_the_users_buckets_and_others_keep_chatting() {
    let app = spawn_app().set_all(&[("limits.sends_per_second", "20"), ("limits.send_burst", "40")]).await;
    let mut flooder = SseClient::connect(app.port, "flooder").await;
    flooder.join("r").await;
    let mut bob = Client::connect(app.port, "bob").await;
    bob.join("r").await;
    // Ten full POSTs of sends, back to back: far past the send bucket's burst.
    for batch in 0..10 {
        let sends: Vec<Value> = (0..100)
            .map(|i| json!({"type": "send", "room": "r", "client_id": format!("f{batch}-{i}"), "body": i}))
            .collect();
        assert_eq!(flooder.post_body(&Value::Array(sends).to_string()).await.status, 204);
    }
    let reply = bob.post("r", "b1", json!("still here")).await;
    assert_eq!(reply["type"], "ack", "bob is served during the flood: {reply}");
    // Every send is answered, in order: an ack, or rate_limited.
    flooder.wait_for(|f| f_ref_client(f) == "f9-99").await;
    let answers: Vec<&Value> = flooder.seen.iter().filter(|f| f["type"] == "ack" || f["type"] == "error").collect();
    assert_eq!(answers.len(), 1000, "one answer per send");
    let acked = answers.iter().filter(|f| f["type"] == "ack").count() as u64;
    assert!(answers.iter().all(|f| f["type"] == "ack" || f["code"] == "rate_limited"), "{answers:?}");
    assert!(acked < 1000, "the bucket refused some");
    let stored = app.messages().count_documents(doc! {"author": "flooder"}).await.unwrap();
    assert_eq!(stored, acked, "exactly the acked sends were stored");
}
