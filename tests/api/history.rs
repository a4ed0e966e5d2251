use serde_json::json;

use crate::client::Conversation;
use crate::helpers::spawn_app;

#[tokio::test]
async fn join_with_since_while_others_send_has_no_gap_and_no_duplicate() {
    let app = spawn_app().await;
    let total: i64 = 60;
    let mut writer = app.client("writer").await;
    writer.join("busy").await;
    let (progress, mut acked) = tokio::sync::watch::channel(0_i64);
    let sending = tokio::spawn(async move {
        for i in 1..=total {
            let ack = writer.post("busy", &format!("m{i}"), json!({"i": i})).await;
            assert_eq!(ack["seq"], i);
            progress.send_replace(i);
        }
    });
    // Join in the middle of the stream of sends, asking for everything after seq 5.
    acked.wait_for(|seq| *seq >= 10).await.unwrap();
    let mut reader = app.client("reader").await;
    let joined = reader.join_since("busy", 5).await;
    assert_eq!(joined["recovered"], true);
    let at_join = joined["seq"].as_i64().unwrap();
    assert!(at_join >= 10, "joined.seq is the room's seq at the join: {joined}");
    reader.message("busy", total).await;
    sending.await.unwrap();

    let expected: Vec<i64> = (6..=total).collect();
    assert_eq!(reader.seqs("busy"), expected, "seq order, no gap, no duplicate");
    for frame in reader.messages("busy") {
        assert_eq!(frame["body"]["i"], frame["seq"]);
    }
    // joined comes before every message of the room.
    let joined_at = reader.seen.iter().position(|f| f["type"] == "joined").unwrap();
    let first_message = reader.seen.iter().position(|f| f["type"] == "message").unwrap();
    assert!(joined_at < first_message);
}

#[tokio::test]
async fn replay_is_capped_and_says_when_it_is_not_complete() {
    let app = spawn_app().set("limits.max_replay", "5").await;
    let mut writer = app.client("writer").await;
    writer.join("capped").await;
    for i in 1..=12 {
        writer.post("capped", &format!("m{i}"), json!(i)).await;
    }

    let mut far_behind = app.client("reader").await;
    let joined = far_behind.join_since("capped", 0).await;
    assert_eq!(joined, json!({"type":"joined","room":"capped","seq":12,"recovered":false,"last_read":0}));
    far_behind.message("capped", 12).await;
    assert_eq!(far_behind.seqs("capped"), [8, 9, 10, 11, 12], "the newest messages allowed");

    let mut close_behind = app.client("reader").await;
    let joined = close_behind.join_since("capped", 9).await;
    assert_eq!(joined["recovered"], true);
    close_behind.message("capped", 12).await;
    assert_eq!(close_behind.seqs("capped"), [10, 11, 12]);

    let mut up_to_date = app.client("reader").await;
    assert_eq!(up_to_date.join_since("capped", 12).await["recovered"], true);
    let mut ahead = app.client("reader").await;
    assert_eq!(ahead.join_since("capped", 40).await["recovered"], false, "a since beyond the room is not recovered");

    // Live messages follow the replay for everyone.
    writer.post("capped", "m13", json!(13)).await;
    for client in [&mut up_to_date, &mut ahead, &mut close_behind] {
        client.message("capped", 13).await;
    }
    assert_eq!(up_to_date.seqs("capped"), [13]);
    assert_eq!(ahead.seqs("capped"), [13]);
    assert_eq!(close_behind.seqs("capped"), [10, 11, 12, 13]);
}

#[tokio::test]
async fn leave_stops_delivery_and_a_rejoin_resumes_it() {
    let app = spawn_app().await;
    let mut alice = app.client("alice").await;
    let mut bob = app.client("bob").await;
    alice.join("r").await;
    bob.join("r").await;
    bob.send(json!({"type": "leave", "room": "r"})).await;
    assert_eq!(bob.wait_for(|f| f["type"] == "left").await, json!({"type":"left","room":"r"}));
    alice.post("r", "c1", json!("while bob is away")).await;
    alice.message("r", 1).await;
    // Sending to a room left is refused.
    bob.send(json!({"type": "send", "room": "r", "client_id": "x", "body": 1})).await;
    assert_eq!(bob.error().await["code"], "not_joined");
    let joined = bob.join_since("r", 0).await;
    assert_eq!(joined["seq"], 1);
    bob.message("r", 1).await;
    assert_eq!(bob.seqs("r"), [1], "only the replay delivered it");
}
