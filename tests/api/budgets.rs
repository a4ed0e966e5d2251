//! What a client can make the relay hold: replays nobody reads, re-joins
//! faster than the replay goes out, documents too large to relay. Each is
//! bounded in bytes and charged to the connection, and everyone else keeps
//! being served.

use std::time::Instant;

use bson::{doc, DateTime, Document};
use serde_json::{json, Value};

use crate::client::Client;
use crate::client::Conversation;
use crate::helpers::{mongo, spawn_app, unique_database, wait_for_total};
use crate::operations::metric;

/// `count` messages of `bytes` each in `room`, written by another program.
async fn write_large_history(database: &str, room: &str, count: i64, bytes: usize) {
    let messages = mongo(database).await.collection::<Document>("messages");
    let body = "x".repeat(bytes);
    for chunk in (1..=count).collect::<Vec<_>>().chunks(50) {
        let documents = chunk.iter().map(|seq| {
            doc! { "room": room, "seq": *seq, "author": "bot", "body": &body, "sent_at": DateTime::now() }
        });
        messages.insert_many(documents).await.unwrap();
    }
}

#[tokio::test]
async fn replays_nobody_reads_stay_within_the_byte_budgets_and_disturb_nobody() {
    let database = unique_database();
    let relay = spawn_app().database(&database).process().await;
    write_large_history(&database, "big", 300, 60_000).await;
    // The relay has seen the history go by, so none of it arrives live below.
    wait_for_total(&[&relay], r#"roomcast_route_events_total{route="messages"}"#, 300.0).await;
    let rss_before = relay.rss_kib();

    // Six connections of one user re-join the room from the start twenty
    // times each and never read. (One user: other users' arrivals would reach
    // them as presence and close them as the slow consumers they are, and
    // this test wants them open, holding all they can.)
    let mut hoarders = Vec::new();
    for _ in 0..6 {
        let mut hoarder = Client::connect_stingy(relay.port, "hoarder").await;
        for _ in 0..20 {
            hoarder.send(json!({"type": "join", "room": "big", "since": 0})).await;
        }
        hoarders.push(hoarder);
    }
    // Meanwhile a client that reads gets its round trip as usual.
    let mut alice = relay.client("alice").await;
    let started = Instant::now();
    alice.join("calm").await;
    assert_eq!(alice.post("calm", "c1", json!("hello")).await["seq"], 1);
    alice.message("calm", 1).await;
    eprintln!("replay flood: another client's join + send + echo took {:?}", started.elapsed());

    let metrics = wait_for_total(&[&relay], r#"roomcast_frames_in_total{type="join"}"#, 121.0).await.remove(0);
    let held = metric(&metrics, "roomcast_buffered_bytes").expect("roomcast_buffered_bytes");
    let pool = metric(&metrics, "roomcast_buffer_pool_bytes").expect("roomcast_buffer_pool_bytes");
    let grown = relay.rss_kib().saturating_sub(rss_before);
    let open = metric(&metrics, "roomcast_connections_open").unwrap_or(0.0);
    let closed = metric(&metrics, "roomcast_slow_consumer_disconnects_total").unwrap_or(0.0);
    eprintln!(
        "replay flood: {open} connections open, {closed} closed as slow; they hold {held} bytes ({pool} from the pool); RSS grew by {grown} KiB"
    );
    // One user borrows at most limits.user_pool_bytes (8 MiB), however many
    // connections they open; each also holds its 16 KiB reserve.
    assert!(pool <= 8.0 * 1024.0 * 1024.0, "borrowed {pool} bytes");
    assert!(held <= 8.0 * 1024.0 * 1024.0 + 6.0 * 16384.0, "held {held} bytes");
    assert!(grown < 96 * 1024, "memory stays bounded: grew {grown} KiB");
    // The reader that stayed is still served after the flood.
    assert_eq!(alice.post("calm", "c2", json!("still here")).await["seq"], 2);
}

/// Scrapes `relay` until `series` satisfies `wanted`, and returns its value.
async fn metric_until(relay: &crate::helpers::RelayProcess, series: &str, wanted: impl Fn(f64) -> bool) -> f64 {
    let deadline = Instant::now() + crate::client::PATIENCE;
    loop {
        let value = metric(&relay.metrics().await, series).unwrap_or(0.0);
        if wanted(value) {
            return value;
        }
        assert!(Instant::now() < deadline, "{series} stayed at {value}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn one_users_connections_take_at_most_their_share_and_everyone_else_stays_whole() {
    let database = unique_database();
    // A pool one user's twenty connections could fill four times over, if
    // the pool were all that bounded them.
    let pool = [("limits.buffer_pool_bytes", "16777216"), ("limits.user_pool_bytes", "4194304")];
    let relay = spawn_app().database(&database).set_all(&pool).process().await;
    for room in 0..8 {
        write_large_history(&database, &format!("heavy{room}"), 15, 62_000).await;
    }
    wait_for_total(&[&relay], r#"roomcast_route_events_total{route="messages"}"#, 120.0).await;
    // Mallory: 20 connections that never read, each joining seven heavy
    // rooms from their first message.
    let mut attackers = Vec::new();
    for _ in 0..20 {
        let mut attacker = Client::connect_stingy(relay.port, "mallory").await;
        for room in 0..7 {
            attacker.send(json!({"type": "join", "room": format!("heavy{room}"), "since": 0})).await;
        }
        attackers.push(attacker);
    }
    wait_for_total(&[&relay], r#"roomcast_frames_in_total{type="join"}"#, 140.0).await;
    let borrowed = metric_until(&relay, "roomcast_buffer_pool_bytes", |bytes| bytes >= 3.0 * 1024.0 * 1024.0).await;
    assert!(borrowed <= 4.0 * 1024.0 * 1024.0, "mallory borrowed {borrowed} bytes, past her share");

    // Alice reads as people do: a late join's replay, a page of history
    // and a large live message all arrive whole while the attack holds.
    let mut alice = relay.client("alice").await;
    let mut bob = relay.client("bob").await;
    let joined = alice.join_since("heavy7", 0).await;
    assert_eq!((joined["seq"].as_i64(), joined["recovered"].as_bool()), (Some(15), Some(true)), "{joined}");
    alice.ping().await;
    assert_eq!(alice.seqs("heavy7"), (1..=15).collect::<Vec<_>>());
    alice.send(json!({"type": "history", "room": "heavy1", "limit": 15})).await;
    let page = alice.wait_for(|f| f["type"] == "history").await;
    assert_eq!((page["messages"].as_array().map(Vec::len), &page["more"]), (Some(15), &json!(false)));
    bob.join("heavy7").await;
    let large = json!({"text": "y".repeat(62_000)});
    assert_eq!(bob.post("heavy7", "large", large.clone()).await["seq"], 16);
    assert_eq!(alice.message("heavy7", 16).await["body"], large);
    alice.ping().await;
    let open = metric(&relay.metrics().await, "roomcast_connections_open");
    assert!(open >= Some(2.0), "alice and bob are open: {open:?}");
}

#[tokio::test]
async fn a_connection_whose_socket_takes_nothing_is_closed_after_the_write_timeout() {
    let database = unique_database();
    let relay = spawn_app().database(&database).set("server.write_timeout", "1s").process().await;
    // Eight replays of 1 MiB: more than the kernel's socket buffers take, so
    // the rest waits in the relay.
    for room in 0..8 {
        write_large_history(&database, &format!("big{room}"), 20, 60_000).await;
    }
    wait_for_total(&[&relay], r#"roomcast_route_events_total{route="messages"}"#, 160.0).await;
    let mut hoarder = Client::connect_stingy(relay.port, "hoarder").await;
    for room in 0..8 {
        hoarder.send(json!({"type": "join", "room": format!("big{room}"), "since": 0})).await;
    }
    // Holding replays its socket does not take: closed, its bytes given back.
    metric_until(&relay, "roomcast_slow_consumer_disconnects_total", |count| count >= 1.0).await;
    metric_until(&relay, "roomcast_buffer_pool_bytes", |bytes| bytes == 0.0).await;
    metric_until(&relay, "roomcast_connections_open", |open| open == 0.0).await;
    // Without a close frame, which its socket would not take either.
    let ended = tokio::time::timeout(crate::client::PATIENCE, async {
        use futures::StreamExt;
        while let Some(Ok(_)) = hoarder.socket.next().await {}
    })
    .await;
    assert!(ended.is_ok(), "the socket was closed");
}

#[tokio::test]
async fn a_replay_is_cut_at_its_byte_budget_and_says_so() {
    let database = unique_database();
    let budget = [("limits.max_replay_bytes", "200000"), ("limits.max_document_bytes", "100000")];
    let app = spawn_app().database(&database).set_all(&budget).await;
    write_large_history(&database, "big", 10, 60_000).await;
    let mut bob = app.client("bob").await;
    let joined = bob.join_since("big", 0).await;
    assert_eq!((joined["seq"].as_i64(), joined["recovered"].as_bool()), (Some(10), Some(false)));
    bob.ping().await;
    // The newest messages that fit in 200,000 bytes: three of about 60 KB.
    assert_eq!(bob.seqs("big"), [8, 9, 10]);
    let within: Vec<i64> = {
        let mut all = app.client("carol").await;
        all.join_since("big", 7).await;
        all.ping().await;
        all.seqs("big")
    };
    assert_eq!(within, [8, 9, 10], "a replay that fits is whole");
}

#[tokio::test]
async fn a_rejoin_while_the_rooms_replay_is_still_queued_is_refused() {
    let database = unique_database();
    let app = spawn_app().database(&database).await;
    write_large_history(&database, "big", 40, 60_000).await;
    let mut hoarder = Client::connect_stingy(app.port, "hoarder").await;
    for _ in 0..10 {
        hoarder.send(json!({"type": "join", "room": "big", "since": 0})).await;
    }
    hoarder.ping().await;
    let refused: Vec<&Value> = hoarder.seen.iter().filter(|f| f["code"] == "rate_limited").collect();
    let joined = hoarder.seen.iter().filter(|f| f["type"] == "joined").count();
    assert!(!refused.is_empty(), "some re-joins found the replay still queued");
    assert!(refused.iter().all(|f| f["ref"]["room"] == "big"));
    assert_eq!(joined + refused.len(), 10, "every join was answered once");
    // Whatever was replayed came in order after its `joined`, never doubled within one replay.
    let mut last = 0;
    for frame in &hoarder.seen {
        match frame["type"].as_str() {
            Some("joined") => last = 0,
            Some("message") => {
                let seq = frame["seq"].as_i64().unwrap();
                assert!(seq > last, "replay out of order: {seq} after {last}");
                last = seq;
            }
            _ => {}
        }
    }
}

#[tokio::test]
async fn documents_too_large_to_relay_arrive_as_stubs_and_close_nobody() {
    let database = unique_database();
    let relay = spawn_app().database(&database).process().await;
    let mut bob = relay.client("bob").await;
    bob.join("r").await;
    let db = mongo(&database).await;
    let notifications = db.collection::<Document>("notifications");
    notifications.insert_one(doc! {"user": "bob", "n": 1}).await.unwrap();
    let first = bob.wait_for(|f| f["type"] == "notification").await;
    // A producer's 15 MB notification, and a 2 MB message written by another program.
    let huge = "n".repeat(15 << 20);
    notifications.insert_one(doc! {"user": "bob", "blob": &huge}).await.unwrap();
    let note = bob.wait_for(|f| f["type"] == "notification").await;
    assert_eq!(note["too_large"], true);
    assert!(note.get("data").is_none() && note["id"].is_string() && note["cursor"].is_string(), "{note}");
    let large = "m".repeat(2 << 20);
    let message = doc! {"room": "r", "seq": 1_i64, "author": "bot", "body": &large, "sent_at": DateTime::now()};
    db.collection::<Document>("messages").insert_one(message).await.unwrap();
    let stub = bob.message("r", 1).await;
    assert_eq!((stub["too_large"].as_bool(), stub["author"].as_str()), (Some(true), Some("bot")));
    assert!(stub.get("body").is_none(), "{stub}");
    // The connection lives on, a replay shows the same stub, and a recovery too.
    assert_eq!(bob.post("r", "after", json!("small")).await["seq"], 2);
    let mut late = relay.client("late").await;
    late.join_since("r", 0).await;
    assert_eq!(late.message("r", 1).await["too_large"], true);
    late.message("r", 2).await;
    let cursor = first["cursor"].as_str().unwrap();
    let mut again = Client::connect_query(relay.port, &format!("user=bob&since_cursor={cursor}")).await;
    again.wait_for(|f| f["type"] == "recovery").await;
    assert_eq!(again.wait_for(|f| f["type"] == "notification").await["too_large"], true);
    again.ping().await;
    let metrics = relay.metrics().await;
    assert_eq!(metric(&metrics, "roomcast_documents_too_large_total{route=\"notifications\"}"), Some(1.0));
    assert_eq!(metric(&metrics, "roomcast_documents_too_large_total{route=\"messages\"}"), Some(1.0));
    assert_eq!(metric(&metrics, "roomcast_slow_consumer_disconnects_total"), None, "nobody was closed");
}
