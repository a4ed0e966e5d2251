//! Presence and typing across replicas: relays as separate processes on one
//! database, each client asserting exactly what it was told.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use bson::doc;
use roomcast::settings::RoomPolicy;
use serde_json::{json, Value};

use crate::client::Client;
use crate::client::Conversation;
use crate::helpers::{mongo, spawn_app, unique_database, wait_for_total};
use crate::operations::metric;

/// Who the client believes is present in `room`, from every presence frame it got.
fn present(client: &Client, room: &str) -> BTreeSet<String> {
    let mut users = BTreeSet::new();
    for frame in client.seen.iter().filter(|f| f["room"] == room) {
        match frame["type"].as_str() {
            Some("presence") => {
                users = frame["users"].as_array().unwrap().iter().map(|u| u.as_str().unwrap().to_string()).collect();
            }
            Some("presence_join") => {
                users.insert(frame["user"].as_str().unwrap().to_string());
            }
            Some("presence_leave") => {
                users.remove(frame["user"].as_str().unwrap());
            }
            _ => {}
        }
    }
    users
}

/// Reads until the client believes exactly `expected` are present in `room`.
async fn sees(client: &mut Client, room: &str, expected: &[&str]) {
    let expected: BTreeSet<String> = expected.iter().map(|u| u.to_string()).collect();
    while present(client, room) != expected {
        client.wait_for(|f| f["room"] == room && f["type"].as_str().is_some_and(|t| t.starts_with("presence"))).await;
    }
}

fn count(client: &Client, kind: &str, user: &str) -> usize {
    client.seen.iter().filter(|f| f["type"] == kind && f["user"] == user).count()
}

#[tokio::test]
async fn presence_is_per_user_across_replicas_with_a_snapshot_after_joined() {
    let database = unique_database();
    let first = spawn_app().database(&database).process().await;
    let second = spawn_app().database(&database).process().await;
    let mut alice = first.client("alice").await;
    alice.join("r").await;
    sees(&mut alice, "r", &["alice"]).await;
    let snapshot = alice.seen.iter().position(|f| f["type"] == "presence").unwrap();
    let joined = alice.seen.iter().position(|f| f["type"] == "joined").unwrap();
    assert!(joined < snapshot, "the snapshot follows `joined`");

    // Two connections of bob's, on the other replica: one arrival.
    let mut phone = second.client("bob").await;
    let mut laptop = second.client("bob").await;
    phone.join("r").await;
    laptop.join("r").await;
    sees(&mut alice, "r", &["alice", "bob"]).await;
    sees(&mut laptop, "r", &["alice", "bob"]).await;
    // One connection leaves: bob is still present.
    phone.send(json!({"type": "leave", "room": "r"})).await;
    phone.wait_for(|f| f["type"] == "left").await;
    // The last one goes: one departure.
    drop(laptop);
    sees(&mut alice, "r", &["alice"]).await;
    alice.ping().await;
    assert_eq!((count(&alice, "presence_join", "bob"), count(&alice, "presence_leave", "bob")), (1, 1));

    // A late joiner's snapshot holds who is there, each once.
    let mut carol = second.client("carol").await;
    carol.join("r").await;
    sees(&mut carol, "r", &["alice", "carol"]).await;
    let snapshot = carol.seen.iter().find(|f| f["type"] == "presence").unwrap();
    assert!(snapshot["count"].as_u64().unwrap() >= 1);
    // Presence of one room never reaches another.
    let mut dave = first.client("dave").await;
    dave.join("elsewhere").await;
    sees(&mut dave, "elsewhere", &["dave"]).await;
    dave.ping().await;
    assert!(dave.seen.iter().all(|f| f["room"] != "r"));
}

#[tokio::test]
async fn join_and_leave_churn_ends_in_the_last_state_on_every_replica() {
    let database = unique_database();
    let first = spawn_app().database(&database).process().await;
    let second = spawn_app().database(&database).process().await;
    let mut alice = first.client("alice").await;
    alice.join("r").await;
    sees(&mut alice, "r", &["alice"]).await;
    // Bob ends in the room, carol out of it, after fifty rounds each.
    let mut bob = second.client("bob").await;
    let mut carol = second.client("carol").await;
    for round in 0..50 {
        for (client, stays) in [(&mut bob, round == 49), (&mut carol, false)] {
            client.join("r").await;
            if !stays {
                client.send(json!({"type": "leave", "room": "r"})).await;
                client.wait_for(|f| f["type"] == "left").await;
            }
        }
    }
    // A barrier: eve is marked after dave's write was relayed, so her write
    // comes after everything the churn left to write.
    let mut dave = second.client("dave").await;
    dave.join("r").await;
    sees(&mut dave, "r", &["alice", "bob", "dave"]).await;
    let mut eve = second.client("eve").await;
    eve.join("r").await;
    alice.wait_for(|f| f["type"] == "presence_join" && f["user"] == "eve").await;
    assert_eq!(present(&alice, "r"), ["alice", "bob", "dave", "eve"].map(String::from).into());
    let stored =
        mongo(&database).await.collection::<bson::Document>("presence").count_documents(doc! {"room": "r"}).await;
    assert_eq!(stored.unwrap(), 4, "one document per present user");
    assert!(count(&alice, "presence_join", "bob") <= 50, "at most one write per round");
    // Only changes of state are written: what was written present is bob, dave and eve.
    let metrics = second.metrics().await;
    let written = |kind: &str| metric(&metrics, &format!(r#"roomcast_presence_writes_total{{kind="{kind}"}}"#));
    assert_eq!(written("arrive").unwrap() - written("depart").unwrap_or(0.0), 3.0, "{metrics}");
}

#[tokio::test]
async fn a_killed_replica_loses_its_users_within_thirty_seconds() {
    let database = unique_database();
    let first = spawn_app().database(&database).process().await;
    let second = spawn_app().database(&database).process().await;
    let mut doomed = spawn_app().database(&database).process().await;
    let mut alice = first.client("alice").await;
    let mut dave = second.client("dave").await;
    let mut bob = doomed.client("bob").await;
    for client in [&mut alice, &mut dave, &mut bob] {
        client.join("r").await;
    }
    sees(&mut alice, "r", &["alice", "bob", "dave"]).await;
    sees(&mut dave, "r", &["alice", "bob", "dave"]).await;
    doomed.kill().await;
    let killed = Instant::now();
    // The defaults: a heartbeat every 3 s, gone after 12 s without one.
    for client in [&mut alice, &mut dave] {
        let left = tokio::time::timeout(Duration::from_secs(30).saturating_sub(killed.elapsed()), async {
            client.wait_for(|f| f["type"] == "presence_leave" && f["user"] == "bob").await
        })
        .await;
        assert!(left.is_ok(), "bob did not leave within 30 s of his replica's death");
    }
    eprintln!("presence: a killed replica's user left after {:?}", killed.elapsed());
    // Counted by whichever survivor removed it, once the removal is done.
    wait_for_total(&[&first, &second], "roomcast_presence_replicas_removed_total", 1.0).await;
    sees(&mut alice, "r", &["alice", "dave"]).await;
}

#[tokio::test]
async fn typing_reaches_the_other_replica_but_not_the_typist_nor_other_rooms_and_is_throttled() {
    let database = unique_database();
    let slow_typing = [("limits.typing_interval", "1h")];
    let first = spawn_app().database(&database).set_all(&slow_typing).process().await;
    let second = spawn_app().database(&database).set_all(&slow_typing).process().await;
    let mut alice = first.client("alice").await;
    let mut alice_too = second.client("alice").await;
    let mut bob = second.client("bob").await;
    let mut carol = second.client("carol").await;
    for client in [&mut alice, &mut alice_too, &mut bob] {
        client.join("r").await;
    }
    carol.join("r2").await;
    for _ in 0..10 {
        alice.send(json!({"type": "typing", "room": "r"})).await;
    }
    alice_too.send(json!({"type": "typing", "room": "r"})).await;
    alice.ping().await;
    let typing = bob.wait_for(|f| f["type"] == "typing").await;
    assert_eq!(typing, json!({"type": "typing", "room": "r", "user": "alice"}));
    // Bob types too, so everyone has a frame after alice's to wait for.
    bob.send(json!({"type": "typing", "room": "r"})).await;
    for client in [&mut alice, &mut alice_too] {
        client.wait_for(|f| f["type"] == "typing" && f["user"] == "bob").await;
        assert_eq!(count(client, "typing", "alice"), 0, "nobody is told of their own typing");
        assert!(client.seen.iter().all(|f| f["type"] != "error"), "extra typing is dropped, not refused");
    }
    bob.ping().await;
    assert_eq!(count(&bob, "typing", "alice"), 1, "one write per user and room per interval, across replicas");
    carol.ping().await;
    assert!(carol.seen.iter().all(|f| f["type"] != "typing"), "typing stays in its room");
    carol.send(json!({"type": "typing", "room": "r"})).await;
    assert_eq!(carol.error().await["code"], "not_joined");
}

#[tokio::test]
async fn a_revoked_membership_leaves_presence() {
    let app = spawn_app().with(|s| s.auth.room_policy = RoomPolicy::Membership).await;
    let members = app.database.collection::<bson::Document>("room_members");
    members.insert_one(doc! {"room": "club", "user": "alice"}).await.unwrap();
    let bobs = members.insert_one(doc! {"room": "club", "user": "bob"}).await.unwrap();
    let mut alice = app.client("alice").await;
    let mut bob = app.client("bob").await;
    alice.join("club").await;
    bob.join("club").await;
    sees(&mut alice, "club", &["alice", "bob"]).await;
    members.delete_one(doc! {"_id": bobs.inserted_id}).await.unwrap();
    bob.wait_for(|f| f["type"] == "left").await;
    sees(&mut alice, "club", &["alice"]).await;
}

#[tokio::test]
async fn a_large_room_tells_its_occupancy_instead_of_each_join() {
    let quick = [
        ("limits.presence_max_listed", "2"),
        ("presence.heartbeat_interval", "200ms"),
        ("presence.replica_timeout", "2s"),
    ];
    let app = spawn_app().set_all(&quick).await;
    let mut watcher = app.client("watcher").await;
    watcher.join("big").await;
    let mut others = Vec::new();
    for user in ["u1", "u2", "u3"] {
        let mut client = app.client(user).await;
        client.join("big").await;
        others.push(client);
    }
    let occupancy = watcher.wait_for(|f| f["type"] == "occupancy" && f["count"] == 4).await;
    assert_eq!(occupancy, json!({"type": "occupancy", "room": "big", "count": 4}));
    // Joining after the count reached 4, a late joiner is given the count.
    let mut late = app.client("u4").await;
    late.join("big").await;
    let snapshot = late.wait_for(|f| f["type"] == "presence").await;
    assert!(snapshot.get("users").is_none() && snapshot["count"].as_u64().unwrap() >= 4, "{snapshot}");
    // Its arrival is told as a count, never on its own.
    watcher.wait_for(|f| f["type"] == "occupancy" && f["count"] == 5).await;
    let joins: Vec<&Value> = watcher.seen.iter().filter(|f| f["type"] == "presence_join").collect();
    assert!(joins.iter().all(|f| f["user"] != "u4"), "no single joins above the limit: {joins:?}");

    // Nobody's typing in a room too large to list. A barrier: u1's typing in
    // a small room is written after the one in `big` would have been.
    watcher.join("small").await;
    let typist = &mut others[0];
    typist.join("small").await;
    typist.send(json!({"type": "typing", "room": "big"})).await;
    typist.send(json!({"type": "typing", "room": "small"})).await;
    watcher.wait_for(|f| f["type"] == "typing" && f["room"] == "small").await;
    assert!(watcher.seen.iter().all(|f| f["type"] != "typing" || f["room"] != "big"));
}

#[tokio::test]
async fn join_churn_on_one_replica_never_takes_another_replicas_user_for_gone() {
    // Fast heartbeats, so a heartbeat stalled behind the churn would take
    // this replica for dead within the test.
    let database = unique_database();
    let fast = [("presence.heartbeat_interval", "250ms"), ("presence.replica_timeout", "1s")];
    let busy = spawn_app().database(&database).set_all(&fast).process().await;
    let calm = spawn_app().database(&database).set_all(&fast).process().await;
    let mut carol = busy.client("carol").await;
    let mut dave = calm.client("dave").await;
    carol.join("lobby").await;
    dave.join("lobby").await;
    sees(&mut dave, "lobby", &["carol", "dave"]).await;

    // One user churns joins on carol's replica, within its limits, as fast
    // as they are answered, in bursts: three connections, each joining
    // twenty new rooms, closing and starting again, for four replica
    // timeouts.
    let port = busy.port;
    let churn = Instant::now() + Duration::from_secs(4);
    let churners: Vec<_> = (0..3)
        .map(|n| {
            tokio::spawn(async move {
                let mut round = 0;
                while Instant::now() < churn {
                    let mut churner = Client::connect(port, "churner").await;
                    for i in 0..20 {
                        churner.send(json!({"type": "join", "room": format!("c{n}-{round}-{i}")})).await;
                    }
                    churner.wait_for_count(20, |f| f["type"] == "joined").await;
                    round += 1;
                }
                round
            })
        })
        .collect();
    let mut rounds = 0;
    for churner in churners {
        rounds += churner.await.unwrap();
    }
    // Carol is still present for dave: a presence_join of someone who came
    // after the churn arrives, and no presence_leave of carol before it.
    let mut erin = busy.client("erin").await;
    erin.join("lobby").await;
    dave.wait_for(|f| f["type"] == "presence_join" && f["user"] == "erin").await;
    assert_eq!(count(&dave, "presence_leave", "carol"), 0, "carol was taken for gone while connected");
    assert_eq!(present(&dave, "lobby"), ["carol", "dave", "erin"].map(String::from).into());
    let removed = metric(&calm.metrics().await, "roomcast_presence_replicas_removed_total").unwrap_or(0.0);
    assert_eq!(removed, 0.0, "the calm replica never took the busy one for dead");
    eprintln!("presence: {} joins churned on one replica; its users stayed present on the other", rounds * 20);
}
