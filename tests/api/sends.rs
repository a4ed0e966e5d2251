use bson::doc;
use serde_json::json;

use crate::client::Conversation;
use crate::helpers::{spawn_app, stored_seqs, unique_database};
use crate::operations::metric;

#[tokio::test]
async fn a_resend_with_the_same_client_id_writes_nothing_and_gets_the_original_ack() {
    let app = spawn_app().await;
    let mut alice = app.client("alice").await;
    alice.join("r").await;
    let first = alice.post("r", "same", json!("once")).await;
    alice.message("r", 1).await;
    let again = alice.post("r", "same", json!("twice?")).await;
    assert_eq!(again, first);
    // From another connection of the same user, after a reconnect, too.
    let mut reconnected = app.client("alice").await;
    reconnected.join("r").await;
    assert_eq!(reconnected.post("r", "same", json!("thrice?")).await, first);
    // Another author may use the same client_id.
    let mut bob = app.client("bob").await;
    bob.join("r").await;
    assert_eq!(bob.post("r", "same", json!("bob's")).await["seq"], 2);
    alice.message("r", 2).await;
    assert_eq!(alice.seqs("r"), [1, 2]);
    assert_eq!(app.message_count().await, 2);
    let stored = app.messages().find_one(doc! {"seq": 1}).await.unwrap().unwrap();
    assert_eq!(stored.get_str("body").unwrap(), "once");
}

#[tokio::test]
async fn bodies_with_operator_and_dotted_keys_are_stored_and_relayed_verbatim() {
    let app = spawn_app().await;
    let mut alice = app.client("alice").await;
    alice.join("r").await;
    let body = json!({"$where": "sleep(1000)", "$set": {"author": "mallory"}, "a.b": {"$gt": ""}, "text": "$room"});
    alice.post("r", "c1", body.clone()).await;
    assert_eq!(alice.message("r", 1).await["body"], body);
    let stored = app.messages().find_one(doc! {"seq": 1}).await.unwrap().unwrap();
    assert_eq!(stored.get_str("author").unwrap(), "alice", "the author comes from the connection");
    assert_eq!(stored.get_document("body").unwrap().get_str("$where").unwrap(), "sleep(1000)");

    // The author field of a frame is never trusted either.
    alice.send(json!({"type": "send", "room": "r", "client_id": "c2", "body": 1, "author": "mallory"})).await;
    alice.message("r", 2).await;
    assert_eq!(alice.messages("r")[1]["author"], "alice");

    let edited = json!({"$unset": {"body": 1}, "x.y": "$$NOW"});
    let id = alice.messages("r")[0]["id"].clone();
    alice.send(json!({"type": "edit", "room": "r", "id": id, "body": edited.clone()})).await;
    let frame = alice.wait_for(|f| f["type"] == "message" && f["edited_at"].is_string()).await;
    assert_eq!(frame["body"], edited);
}

#[tokio::test]
async fn a_frame_many_times_the_socket_read_buffer_is_read_whole_and_relayed_intact() {
    // The server reads client frames 4 KiB at a time; a 60 KB body (under the
    // default 64 KiB limit) arrives in many reads and must come back intact.
    let app = spawn_app().await;
    let mut alice = app.client("alice").await;
    let mut bob = app.client("bob").await;
    alice.join("r").await;
    bob.join("r").await;
    let text: String = (0..60_000).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
    let body = json!({ "text": text });
    assert_eq!(alice.post("r", "big", body.clone()).await["seq"], 1);
    assert_eq!(bob.message("r", 1).await["body"], body);
    let stored = app.messages().find_one(doc! {"seq": 1}).await.unwrap().unwrap();
    assert_eq!(stored.get_document("body").unwrap().get_str("text").unwrap(), text);
}

#[tokio::test]
async fn concurrent_sends_to_one_room_commit_in_groups_with_contiguous_seqs() {
    let database = unique_database();
    let relay = spawn_app().database(&database).process().await;
    let (writers, each) = (16usize, 8usize);
    let mut clients = Vec::new();
    for w in 0..writers {
        let mut client = relay.client(&format!("w{w}")).await;
        client.join("busy").await;
        clients.push(client);
    }
    // A second connection of w0 sends w0's first client_id at the same time:
    // whichever lands first is the one write, and both get its ack.
    let mut twin = relay.client("w0").await;
    twin.join("busy").await;
    for (w, client) in clients.iter_mut().enumerate() {
        for i in 0..each {
            let body = json!({"w": w, "i": i});
            client.send(json!({"type": "send", "room": "busy", "client_id": format!("c{i}"), "body": body})).await;
        }
    }
    twin.send(json!({"type": "send", "room": "busy", "client_id": "c0", "body": "twin"})).await;

    let mut acked = Vec::new();
    for client in clients.iter_mut() {
        client.wait_for_count(each, |f| f["type"] == "ack").await;
        let acks: Vec<&serde_json::Value> = client.seen.iter().filter(|f| f["type"] == "ack").collect();
        let in_send_order: Vec<i64> = (0..each)
            .map(|i| acks.iter().find(|a| a["client_id"] == format!("c{i}")).unwrap()["seq"].as_i64().unwrap())
            .collect();
        assert!(
            in_send_order.windows(2).all(|p| p[0] < p[1]),
            "one connection's sends keep their order: {in_send_order:?}"
        );
        acked.extend(in_send_order);
    }
    let twin_ack = twin.wait_for(|f| f["type"] == "ack").await;
    let first = clients[0].seen.iter().find(|f| f["type"] == "ack" && f["client_id"] == "c0").unwrap();
    assert_eq!((&twin_ack["seq"], &twin_ack["id"]), (&first["seq"], &first["id"]), "one write for one client_id");

    let total = (writers * each) as i64;
    acked.sort();
    assert_eq!(acked, (1..=total).collect::<Vec<_>>(), "every seq acked exactly once");
    let stored = stored_seqs(&database, "busy").await;
    assert_eq!(stored, (1..=total).collect::<Vec<_>>(), "stored seqs are 1..N with no gap");

    let body = relay.metrics().await;
    let sends = metric(&body, "roomcast_send_group_size_sum").unwrap();
    let groups = metric(&body, "roomcast_send_group_size_count").unwrap();
    assert_eq!(sends, (total + 1) as f64, "every send, the twin's included, went through one group");
    assert!(groups < sends, "{sends} concurrent sends took {groups} inserts: no grouping happened");
}

#[tokio::test]
async fn one_connection_pipelines_its_sends_and_gets_every_reply_in_order() {
    let database = unique_database();
    let relay = spawn_app().database(&database).process().await;
    let mut alice = relay.client("alice").await;
    alice.join("r").await;
    let send = |room: &str, client_id: String| json!({"type": "send", "room": room, "client_id": client_id, "body": 1});
    let mut expected = Vec::new();
    for i in 0..10 {
        alice.send(send("r", format!("c{i}"))).await;
        expected.push(format!("ack c{i}"));
    }
    // Refused before it could be queued, yet answered in its place in line.
    alice.send(send("not-joined", "x".to_string())).await;
    expected.push("error x".to_string());
    for i in 10..20 {
        alice.send(send("r", format!("c{i}"))).await;
        expected.push(format!("ack c{i}"));
    }
    alice.send(json!({"type": "ping"})).await;
    expected.push("pong ".to_string());
    alice.wait_for(|f| f["type"] == "pong").await;

    let replies: Vec<String> = alice
        .seen
        .iter()
        .filter(|f| matches!(f["type"].as_str(), Some("ack" | "error" | "pong")))
        .map(|f| format!("{} {}", f["type"].as_str().unwrap(), crate::client::f_ref_client(f)))
        .collect();
    assert_eq!(replies, expected, "every reply in the order of the frames it answers");
    let seqs: Vec<i64> = alice.seen.iter().filter(|f| f["type"] == "ack").map(|f| f["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, (1..=20).collect::<Vec<_>>(), "one connection's sends commit in the order sent");
    assert_eq!(stored_seqs(&database, "r").await, seqs, "what was acked is what is stored");
    assert!(stored_seqs(&database, "not-joined").await.is_empty(), "the refused send wrote nothing");

    let body = relay.metrics().await;
    let sends = metric(&body, "roomcast_send_group_size_sum").unwrap();
    let groups = metric(&body, "roomcast_send_group_size_count").unwrap();
    assert_eq!(sends, 20.0, "the refused send was never queued");
    assert!(groups < sends, "20 pipelined sends took {groups} inserts: the connection waited for each commit");
}

#[tokio::test]
async fn the_same_client_id_in_two_rooms_makes_two_messages() {
    // Idempotency is per (room, author, client_id): the unique index that
    // decides it starts with the room, as a collection sharded by room needs.
    let app = spawn_app().await;
    let mut alice = app.client("alice").await;
    alice.join("a").await;
    alice.join("b").await;
    let in_a = alice.post("a", "same", json!("to a")).await;
    let in_b = alice.post("b", "same", json!("to b")).await;
    assert_eq!((&in_a["type"], &in_a["room"], &in_a["seq"]), (&json!("ack"), &json!("a"), &json!(1)));
    assert_eq!((&in_b["type"], &in_b["room"], &in_b["seq"]), (&json!("ack"), &json!("b"), &json!(1)), "{in_b}");
    assert_ne!(in_a["id"], in_b["id"]);
    assert_eq!(alice.message("a", 1).await["body"], "to a");
    assert_eq!(alice.message("b", 1).await["body"], "to b");
    assert_eq!(app.message_count().await, 2);
    // Each is still idempotent in its own room.
    assert_eq!(alice.post("a", "same", json!("again")).await, in_a);
    assert_eq!(alice.post("b", "same", json!("again")).await, in_b);
    assert_eq!(app.message_count().await, 2);
}
