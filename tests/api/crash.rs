use bson::doc;
use futures::TryStreamExt;
use serde_json::json;

use crate::client::Conversation;
use crate::helpers::{mongo, spawn_app, stored_seqs, unique_database};

#[tokio::test]
async fn a_writer_killed_mid_send_leaves_no_gap_and_no_blocked_room() {
    let database = unique_database();
    let mut doomed = spawn_app().database(&database).process().await;
    let survivor = spawn_app().database(&database).process().await;
    let mut watcher = survivor.client("watcher").await;
    watcher.join("room").await;
    let mut alice = doomed.client("alice").await;
    alice.join("room").await;

    // A steady stream of sends, pipelined, so the kill lands between and inside writes.
    let sends = 40;
    for i in 0..sends {
        alice.send(json!({"type": "send", "room": "room", "client_id": format!("k{i}"), "body": i})).await;
    }
    alice.wait_for(|f| f["type"] == "ack" && f["client_id"] == "k5").await;
    doomed.kill().await;
    let acked: Vec<i64> =
        alice.seen.iter().filter(|f| f["type"] == "ack").map(|f| f["seq"].as_i64().unwrap()).collect();

    // The room accepts sends through the other replica at once: nothing is held.
    let mut bob = survivor.client("bob").await;
    bob.join("room").await;
    let last = bob.post("room", "after-kill", json!("still open")).await["seq"].as_i64().unwrap();
    assert!(last > acked.len() as i64);

    let stored = stored_seqs(&database, "room").await;
    let contiguous: Vec<i64> = (1..=last).collect();
    assert_eq!(stored, contiguous, "committed seqs have no gap");
    for seq in &acked {
        assert!(stored.contains(seq), "acked seq {seq} is committed");
    }
    watcher.message("room", last).await;
    assert_eq!(watcher.seqs("room"), contiguous, "the other replica relayed every committed message once, in order");
}

#[tokio::test]
async fn a_relay_killed_during_a_thousand_sends_loses_nothing_and_invents_nothing() {
    use std::collections::HashSet;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use crate::chatter::Chatter;

    let database = unique_database();
    let mut doomed = spawn_app().database(&database).process().await;
    let survivor = spawn_app().database(&database).process().await;
    let (senders, each, window) = (4, 250, 4);
    let total = (senders * each) as i64;
    let acks = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for i in 0..senders {
        // Half start on the replica that will die; all fall back to the survivor.
        let ports = if i % 2 == 0 { vec![doomed.port, survivor.port] } else { vec![survivor.port] };
        let chatter = Chatter::connect(ports, &format!("user{i}"), "room").await;
        tasks.push(tokio::spawn(chatter.run(each, window, total, acks.clone())));
    }
    let observer = Chatter::connect(vec![survivor.port], "observer", "room").await;
    let observing = tokio::spawn(observer.run(0, 1, total, acks.clone()));

    // Strike in the middle of the stream of sends.
    let struck = tokio::time::timeout(crate::client::PATIENCE, async {
        while acks.load(Ordering::SeqCst) < total as usize / 3 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    struck.expect("sends did not progress");
    let killed_at = std::time::Instant::now();
    doomed.kill().await;

    let mut everyone = Vec::new();
    for task in tasks {
        everyone.push(task.await.unwrap());
    }
    let observer = observing.await.unwrap();
    let all: Vec<i64> = (1..=total).collect();
    let messages = mongo(&database).await.collection::<bson::Document>("messages");
    let stored: Vec<bson::Document> =
        messages.find(doc! {}).sort(doc! {"seq": 1}).await.unwrap().try_collect().await.unwrap();
    let seqs: Vec<i64> = stored.iter().map(|d| d.get_i64("seq").unwrap()).collect();
    assert_eq!(seqs, all, "exactly one stored message per send, seq 1..N with no gap");
    let keys: HashSet<(String, String)> = stored
        .iter()
        .map(|d| (d.get_str("author").unwrap().to_string(), d.get_str("client_id").unwrap().to_string()))
        .collect();
    assert_eq!(keys.len(), total as usize, "no send was stored twice");

    for chatter in everyone.iter().chain([&observer]) {
        assert_eq!(chatter.received(), all, "{} holds exactly 1..N, in order, once", chatter.user);
        for (client_id, seq) in &chatter.acked {
            let document = &stored[(*seq - 1) as usize];
            assert_eq!(document.get_str("client_id").unwrap(), client_id, "ack of {client_id} names its message");
        }
        assert!(chatter.errors.is_empty(), "{}: {:?}", chatter.user, chatter.errors);
    }
    let moved: Vec<&Chatter> = everyone.iter().filter(|c| c.reconnects > 0).collect();
    assert_eq!(moved.len(), senders / 2, "the clients of the killed replica moved");
    let worst = everyone.iter().map(|c| c.worst_pause).max().unwrap();
    eprintln!(
        "relay kill: {total} sends by {senders} clients, all delivered {:?} after the kill; worst pause between two acks of one sender: {worst:?}",
        killed_at.elapsed()
    );
}
