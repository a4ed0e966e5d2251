use bson::doc;
use futures::TryStreamExt;
use serde_json::json;

use crate::helpers::{mongo, spawn_process, unique_database};

#[tokio::test]
async fn a_writer_killed_mid_send_leaves_no_gap_and_no_blocked_room() {
    let database = unique_database();
    let mut doomed = spawn_process(&database).await;
    let survivor = spawn_process(&database).await;
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

    let messages = mongo(&database).await.collection::<bson::Document>("messages");
    let stored: Vec<i64> = messages
        .find(doc! {"room": "room"})
        .sort(doc! {"seq": 1})
        .await
        .unwrap()
        .map_ok(|d| d.get_i64("seq").unwrap())
        .try_collect()
        .await
        .unwrap();
    let contiguous: Vec<i64> = (1..=last).collect();
    assert_eq!(stored, contiguous, "committed seqs have no gap");
    for seq in &acked {
        assert!(stored.contains(seq), "acked seq {seq} is committed");
    }
    watcher.message("room", last).await;
    assert_eq!(watcher.seqs("room"), contiguous, "the other replica relayed every committed message once, in order");
}
