//! Notification recovery with `since_cursor`, on one replica and across two.

use bson::doc;
use serde_json::{json, Value};

use crate::client::Client;
use crate::client::Conversation;
use crate::helpers::{mongo, spawn_app, unique_database};

fn numbers(frames: Vec<&Value>) -> Vec<i64> {
    frames.iter().map(|f| f["data"]["n"].as_i64().unwrap()).collect()
}

fn encode(cursor: &Value) -> String {
    cursor.as_str().unwrap().replace(':', "%3A")
}

/// bob receives n1 and leaves; n2 and n3 are committed while he is away; a
/// second connection of bob's stays, so we know the relay has seen n3.
async fn miss_two(port: u16, notifications: &mongodb::Collection<bson::Document>) -> (Value, Client) {
    let mut watcher = Client::connect(port, "bob").await;
    let mut away = Client::connect(port, "bob").await;
    for client in [&mut watcher, &mut away] {
        client.ping().await;
    }
    notifications.insert_one(doc! {"user": "bob", "n": 1}).await.unwrap();
    let first = away.wait_for(|f| f["type"] == "notification").await;
    let cursor = first["cursor"].clone();
    assert!(cursor.as_str().unwrap().starts_with("notifications:"), "{first}");
    drop(away);
    for (user, n) in [("bob", 2), ("amy", 9), ("bob", 3)] {
        notifications.insert_one(doc! {"user": user, "n": n}).await.unwrap();
    }
    watcher.wait_for(|f| f["type"] == "notification" && f["data"]["n"] == 3).await;
    (cursor, watcher)
}

#[tokio::test]
async fn a_reconnect_inside_the_window_recovers_every_missed_notification_once() {
    let app = spawn_app().await;
    let (cursor, _watcher) = miss_two(app.port, &app.notifications()).await;
    let mut back = Client::connect_query(app.port, &format!("user=bob&since_cursor={}", encode(&cursor))).await;
    let recovery = back.wait_for(|f| f["type"] == "recovery").await;
    assert_eq!(recovery, json!({"type": "recovery", "route": "notifications", "recovered": true}));
    app.notifications().insert_one(doc! {"user": "bob", "n": 4}).await.unwrap();
    back.wait_for(|f| f["type"] == "notification" && f["data"]["n"] == 4).await;
    assert_eq!(numbers(back.notifications()), [2, 3, 4], "missed ones in commit order, then live, no duplicate");
    assert_eq!(back.seen[0]["type"], "recovery", "the answer comes first");
}

#[tokio::test]
async fn a_cursor_the_ring_no_longer_holds_is_recovered_from_the_databases_history() {
    for adjust in [
        (|s: &mut roomcast::Settings| s.recovery.max_events = 2) as fn(&mut roomcast::Settings),
        // Older than recovery.window: the ring keeps nothing at all.
        |s: &mut roomcast::Settings| s.recovery.window = std::time::Duration::ZERO,
    ] {
        let app = spawn_app().with(adjust).await;
        let (cursor, mut watcher) = miss_two(app.port, &app.notifications()).await;
        // One more, so the ring has dropped what came after the cursor.
        app.notifications().insert_one(doc! {"user": "bob", "n": 4}).await.unwrap();
        watcher.wait_for(|f| f["type"] == "notification" && f["data"]["n"] == 4).await;
        let mut back = Client::connect_query(app.port, &format!("user=bob&since_cursor={}", encode(&cursor))).await;
        let recovery = back.wait_for(|f| f["type"] == "recovery").await;
        assert_eq!(recovery["recovered"], true);
        app.notifications().insert_one(doc! {"user": "bob", "n": 5}).await.unwrap();
        back.wait_for(|f| f["type"] == "notification" && f["data"]["n"] == 5).await;
        assert_eq!(numbers(back.notifications()), [2, 3, 4, 5], "exactly what was missed, then live, once each");
        // Each recovered frame carries the cursor it had live.
        let live: Vec<&Value> =
            watcher.notifications().into_iter().filter(|f| f["data"]["n"].as_i64() >= Some(2)).collect();
        let recovered: Vec<&Value> = back.notifications().into_iter().take(3).collect();
        for (live, recovered) in live.iter().zip(&recovered) {
            assert_eq!(live["cursor"], recovered["cursor"]);
        }
    }
}

#[tokio::test]
async fn a_cursor_from_before_a_relay_restart_is_recovered_exactly_by_the_restarted_relay() {
    let database = unique_database();
    let mut before = spawn_app().database(&database).process().await;
    let mut bob = before.client("bob").await;
    bob.ping().await;
    let notifications = mongo(&database).await.collection::<bson::Document>("notifications");
    notifications.insert_one(doc! {"user": "bob", "n": 1}).await.unwrap();
    let cursor = bob.wait_for(|f| f["type"] == "notification").await["cursor"].clone();
    drop(bob);
    before.terminate().await;
    // Missed while no relay ran at all.
    for (user, n) in [("bob", 2), ("amy", 9), ("bob", 3)] {
        notifications.insert_one(doc! {"user": user, "n": n}).await.unwrap();
    }
    let after = spawn_app().database(&database).process().await;
    let query = format!("user=bob&since_cursor={}", encode(&cursor));
    let mut back = Client::connect_query(after.port, &query).await;
    let recovery = back.wait_for(|f| f["type"] == "recovery").await;
    assert_eq!(recovery, json!({"type": "recovery", "route": "notifications", "recovered": true}));
    notifications.insert_one(doc! {"user": "bob", "n": 4}).await.unwrap();
    back.wait_for(|f| f["type"] == "notification" && f["data"]["n"] == 4).await;
    assert_eq!(numbers(back.notifications()), [2, 3, 4]);
}

#[tokio::test]
async fn past_the_scan_span_or_with_every_scan_taken_the_reply_says_recovered_false() {
    for adjust in [
        (|s: &mut roomcast::Settings| s.recovery.max_scans = 0) as fn(&mut roomcast::Settings),
        |s: &mut roomcast::Settings| s.recovery.max_scan_span = std::time::Duration::ZERO,
    ] {
        let app = spawn_app()
            .with(move |s| {
                adjust(s);
                s.recovery.window = std::time::Duration::ZERO;
            })
            .await;
        let (cursor, _watcher) = miss_two(app.port, &app.notifications()).await;
        let mut back = Client::connect_query(app.port, &format!("user=bob&since_cursor={}", encode(&cursor))).await;
        let recovery = back.wait_for(|f| f["type"] == "recovery").await;
        assert_eq!(recovery["recovered"], false);
        app.notifications().insert_one(doc! {"user": "bob", "n": 5}).await.unwrap();
        back.wait_for(|f| f["type"] == "notification" && f["data"]["n"] == 5).await;
        assert_eq!(numbers(back.notifications()), [5], "no silent partial recovery");
    }
}

#[tokio::test]
async fn two_hundred_reconnects_at_once_read_the_history_within_the_scan_bound() {
    let database = unique_database();
    let relay = spawn_app()
        .database(&database)
        .set_all(&[("recovery.window", "0s"), ("recovery.max_scans", "4"), ("limits.max_connections_per_user", "300")])
        .process()
        .await;
    let (cursor, _watcher) = miss_two(relay.port, &mongo(&database).await.collection("notifications")).await;
    let query = format!("user=bob&since_cursor={}", encode(&cursor));
    let reconnects = (0..200).map(|_| {
        let query = query.clone();
        let port = relay.port;
        tokio::spawn(async move {
            let mut client = Client::connect_query(port, &query).await;
            let recovered = client.wait_for(|f| f["type"] == "recovery").await["recovered"] == true;
            client.ping().await;
            (recovered, numbers(client.notifications()))
        })
    });
    let answers = futures::future::join_all(reconnects).await;
    let mut recovered = 0;
    for answer in answers {
        let (ok, numbers) = answer.unwrap();
        if ok {
            recovered += 1;
            assert_eq!(numbers, [2, 3], "a recovery is exact");
        } else {
            assert!(numbers.is_empty(), "or refused whole: {numbers:?}");
        }
    }
    let metrics = relay.metrics().await;
    let peak = metric(&metrics, "roomcast_recovery_scans_peak");
    assert!(peak <= 4.0, "at most recovery.max_scans at once: {peak}");
    let scans = |result: &str| metric(&metrics, &format!(r#"roomcast_recovery_scans_total{{result="{result}"}}"#));
    assert_eq!(scans("recovered"), recovered as f64);
    assert_eq!(scans("recovered") + scans("busy"), 200.0, "every reconnect was answered, none queued");
    eprintln!("200 reconnects: {recovered} recovered from the history, {} refused as busy", scans("busy"));
}

/// A metric's value in Prometheus text, 0 when absent.
fn metric(text: &str, series: &str) -> f64 {
    text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok()).unwrap_or(0.0)
}

#[tokio::test]
async fn a_malformed_cursor_is_refused_and_the_connection_works() {
    let app = spawn_app().await;
    for cursor in ["nonsense", "unknown-route%3A1.2.3", "notifications%3A1.2"] {
        let mut client = Client::connect_query(app.port, &format!("user=bob&since_cursor={cursor}")).await;
        let error = client.error().await;
        assert_eq!(error["code"], "invalid_field", "{cursor}");
        client.ping().await;
        assert!(client.seen.iter().all(|f| f["type"] != "recovery"));
    }
}

#[tokio::test]
async fn a_client_moving_between_replicas_gets_exactly_what_it_missed() {
    let database = unique_database();
    let first = spawn_app().database(&database).process().await;
    let second = spawn_app().database(&database).process().await;
    let notifications = mongo(&database).await.collection::<bson::Document>("notifications");
    let mut alice = first.client("alice").await;
    alice.join("r").await;
    let mut bob = second.client("bob").await;
    bob.join("r").await;
    for i in 1..=3 {
        alice.post("r", &format!("a{i}"), json!(i)).await;
    }
    notifications.insert_one(doc! {"user": "alice", "n": 1}).await.unwrap();
    alice.message("r", 3).await;
    let cursor = alice.wait_for(|f| f["type"] == "notification").await["cursor"].clone();
    drop(alice);

    for i in 4..=6 {
        bob.post("r", &format!("b{i}"), json!(i)).await;
    }
    for n in 2..=3 {
        notifications.insert_one(doc! {"user": "alice", "n": n}).await.unwrap();
    }
    let query = format!("user=alice&since_cursor={}", encode(&cursor));
    let mut moved = Client::connect_query(second.port, &query).await;
    assert_eq!(moved.join_since("r", 3).await["recovered"], true);
    assert_eq!(moved.wait_for(|f| f["type"] == "recovery").await["recovered"], true);
    bob.post("r", "b7", json!(7)).await;
    notifications.insert_one(doc! {"user": "alice", "n": 4}).await.unwrap();
    moved.message("r", 7).await;
    moved.wait_for(|f| f["type"] == "notification" && f["data"]["n"] == 4).await;
    assert_eq!(moved.seqs("r"), [4, 5, 6, 7]);
    assert_eq!(numbers(moved.notifications()), [2, 3, 4]);
}

#[tokio::test]
async fn a_recovery_larger_than_a_replay_may_be_says_recovered_false_and_goes_on() {
    let budget = [("limits.max_replay_bytes", "100000"), ("limits.max_document_bytes", "100000")];
    let app = spawn_app().set_all(&budget).await;
    let mut watcher = app.client("bob").await;
    let mut away = app.client("bob").await;
    for client in [&mut watcher, &mut away] {
        client.ping().await;
    }
    app.notifications().insert_one(doc! {"user": "bob", "n": 1}).await.unwrap();
    let cursor = away.wait_for(|f| f["type"] == "notification").await["cursor"].clone();
    drop(away);
    // Missed while away: more than one replay may hold.
    for n in 2..=4 {
        app.notifications().insert_one(doc! {"user": "bob", "n": n, "pad": "p".repeat(40_000)}).await.unwrap();
    }
    watcher.wait_for(|f| f["type"] == "notification" && f["data"]["n"] == 4).await;
    let mut back = Client::connect_query(app.port, &format!("user=bob&since_cursor={}", encode(&cursor))).await;
    let recovery = back.wait_for(|f| f["type"] == "recovery").await;
    assert_eq!(recovery["recovered"], false, "refused whole, never cut silently");
    app.notifications().insert_one(doc! {"user": "bob", "n": 5}).await.unwrap();
    back.wait_for(|f| f["type"] == "notification" && f["data"]["n"] == 5).await;
    assert_eq!(numbers(back.notifications()), [5], "live ones go on");
}
