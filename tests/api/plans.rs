//! Every query a client's request can cause is bounded by the page it
//! answers, not by the size of the room or of the user's history, and has
//! a time limit. The relay runs against a database whose profiler records
//! every command it sends; for each kind of request, each `find` it caused
//! is run again under `explain`, and the documents it examined are held
//! against the request's page. A client request never causes an
//! aggregation or a count.
//!
//! On MongoDB and secantusd-rs, a scan stops at the query's limit, so every
//! query is held to its page. The pip build of the development database
//! reads the whole range a filter's index bounds whatever the limit: there,
//! the queries shaped as a range of seqs (replays, history pages with
//! `before`, which read the seqs just below it first) are still held to
//! their page, and the others to their equality range (the room, or the
//! user's own documents), never the collection; docs/design.md ("Query
//! bounds") records that gap with its measured cost.

use bson::{doc, Bson, Document};
use futures::TryStreamExt;
use roomcast::settings::RoomPolicy;
use serde_json::json;

use crate::client::Conversation;
use crate::db::stops_scans_at_limits;
use crate::helpers::{http_get_json, spawn_app};

/// The big room's size: every bound below is far under it.
const ROOM_SIZE: i64 = 3000;
/// Seqs removed from the big room by another program: a hole a history
/// page has to read past.
const HOLE: std::ops::RangeInclusive<i64> = 2901..=2950;

/// What the profiler recorded: the commands of one request.
struct Recorded {
    finds: Vec<Document>,
    /// Commands that are neither finds nor the relay's change streams.
    other_reads: Vec<Document>,
}

/// Turns the profiler on: every command on the database is recorded.
async fn record(db: &mongodb::Database) {
    db.run_command(doc! {"profile": 2}).await.unwrap();
}

/// Reads the profiler's entries after the first `seen`, once a marker
/// command sent after the request's answer is among them (so every command
/// the request caused is too), and turns the profiler off.
async fn recorded_since(db: &mongodb::Database, seen: &mut usize, marker: i64) -> Recorded {
    db.collection::<Document>("profile_marker").find_one(doc! {"marker": marker}).await.unwrap();
    let profile = db.collection::<Document>("system.profile");
    let entries = loop {
        let entries: Vec<Document> = profile.find(doc! {}).await.unwrap().try_collect().await.unwrap();
        let marked = entries[*seen..].iter().any(|entry| {
            entry.get_document("command").is_ok_and(|c| c.get_document("filter").ok() == Some(&doc! {"marker": marker}))
        });
        if marked {
            break entries;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    // The test's own reads of what was recorded are not the relay's.
    db.run_command(doc! {"profile": 0}).await.unwrap();
    let new = entries[*seen..].to_vec();
    *seen = entries.len();
    let mut recorded = Recorded { finds: Vec::new(), other_reads: Vec::new() };
    for entry in new {
        let Ok(command) = entry.get_document("command") else { continue };
        let collection = entry.get_str("ns").unwrap_or("").split_once('.').map_or("", |(_, c)| c);
        // The heartbeats' own reads go on whatever clients do.
        if collection == "profile_marker" || collection == "presence_replicas" || collection.starts_with("system.") {
            continue;
        }
        if command.contains_key("find") {
            recorded.finds.push(command.clone());
        } else if command.contains_key("count") || command.contains_key("distinct") {
            recorded.other_reads.push(command.clone());
        } else if let Ok(pipeline) = command.get_array("pipeline") {
            let stream = pipeline.first().and_then(Bson::as_document).is_some_and(|s| s.contains_key("$changeStream"));
            if !stream {
                recorded.other_reads.push(command.clone());
            }
        }
    }
    recorded
}

/// The documents `find` examines, as the server reports it.
async fn examined(db: &mongodb::Database, find: &Document) -> i64 {
    let mut command = Document::new();
    for (key, value) in find {
        if !key.starts_with('$') && key != "lsid" && key != "maxTimeMS" {
            command.insert(key, value.clone());
        }
    }
    let explained = db.run_command(doc! {"explain": command, "verbosity": "executionStats"}).await.unwrap();
    let stats = explained.get_document("executionStats").unwrap_or_else(|_| panic!("no stats: {explained}"));
    let docs = stats.get("totalDocsExamined").unwrap_or_else(|| panic!("no totalDocsExamined: {explained}"));
    docs.as_i64().or_else(|| docs.as_i32().map(i64::from)).unwrap()
}

/// How many seqs the find's filter allows, when it bounds `seq` from both
/// sides: a range that holds no more keys than that, on any server.
fn seq_range(find: &Document) -> Option<i64> {
    let seq = find.get_document("filter").unwrap().get_document("seq").ok()?;
    let bound = |key| seq.get(key).and_then(|b| b.as_i64().or_else(|| b.as_i32().map(i64::from)));
    Some(bound("$lte")?.saturating_sub(bound("$gt")?))
}

/// Checks each find a request caused against `page`, the most documents
/// its answer needs, and returns the gaps: finds that examined more on a
/// server that does not stop scans at limits.
async fn check(db: &mongodb::Database, request: &str, recorded: Recorded, page: i64) -> Vec<String> {
    assert!(recorded.other_reads.is_empty(), "{request} caused reads that are not finds: {:?}", recorded.other_reads);
    assert!(!recorded.finds.is_empty(), "{request} caused no find at all");
    let mut gaps = Vec::new();
    for find in recorded.finds {
        assert!(find.contains_key("maxTimeMS"), "{request}: a find without maxTimeMS: {find}");
        if find.get_str("find") == Ok("presence") {
            // A room's presence, read once per replica by its first local
            // member: the snapshot needs every present user, so its bound is
            // the room's presence, on the `room` index.
            let filter = find.get_document("filter").unwrap().clone();
            let present = db.collection::<Document>("presence").count_documents(filter).await.unwrap() as i64;
            assert!(examined(db, &find).await <= present, "{request}: more than the room's presence: {find}");
            continue;
        }
        let limit = find.get("limit").and_then(|l| l.as_i64().or_else(|| l.as_i32().map(i64::from)));
        let limit = limit.unwrap_or_else(|| panic!("{request}: a find without a limit: {find}"));
        assert!(limit <= page, "{request}: a limit of {limit} for a page of {page}: {find}");
        let docs = examined(db, &find).await;
        if stops_scans_at_limits() || seq_range(&find).is_some_and(|seqs| seqs <= page) {
            assert!(docs <= page, "{request} examined {docs} documents for a page of {page}: {find}");
        } else {
            // The equality range: what the filter matches without a limit.
            let collection = find.get_str("find").unwrap();
            let filter = find.get_document("filter").unwrap().clone();
            let range = db.collection::<Document>(collection).count_documents(filter).await.unwrap() as i64;
            assert!(
                docs <= range.max(page),
                "{request} examined {docs}, more than its filter matches ({range}): {find}"
            );
            if docs > page {
                gaps.push(format!("{request}: {docs} examined for a page of {page} ({find})"));
            }
        }
    }
    gaps
}

#[tokio::test]
async fn every_query_a_request_causes_is_bounded_by_its_page_and_has_a_time_limit() {
    let app = spawn_app()
        .set("limits.max_replay", "100")
        .set("limits.max_rooms_listed", "20")
        .with(|s| s.auth.room_policy = RoomPolicy::Membership)
        .await;
    let db = &app.database;
    // A big room with a hole near its top, a user with many markers,
    // memberships and notifications, and other users with more.
    let messages: Vec<Document> = (1..=ROOM_SIZE)
        .filter(|seq| !HOLE.contains(seq))
        .map(|seq| doc! {"room": "big", "seq": seq, "author": "bob", "body": {"n": seq}, "sent_at": bson::DateTime::now()})
        .collect();
    db.collection::<Document>("messages").insert_many(messages).await.unwrap();
    let members: Vec<Document> = (0..300)
        .map(|i| doc! {"room": format!("m{i}"), "user": "alice"})
        .chain((0..3000).map(|i| doc! {"room": format!("m{}", i % 300), "user": format!("u{i}")}))
        .chain([doc! {"room": "big", "user": "alice"}, doc! {"room": "probe", "user": "alice"}])
        .collect();
    db.collection::<Document>("room_members").insert_many(members).await.unwrap();
    let markers: Vec<Document> = (0..300)
        .map(|i| {
            let at = bson::DateTime::from_millis(1_000_000 + i);
            doc! {"_id": {"user": "alice", "room": format!("m{i}")}, "user": "alice", "room": format!("m{i}"), "seq": 0, "at": at}
        })
        .collect();
    db.collection::<Document>("read_markers").insert_many(markers).await.unwrap();
    let notes: Vec<Document> = (0..300)
        .map(|n| doc! {"user": "alice", "n": n})
        .chain((0..1000).map(|n| doc! {"user": "bob", "n": n}))
        .collect();
    db.collection::<Document>("notifications").insert_many(notes).await.unwrap();
    let mut alice = app.client("alice").await;
    // The relay's stream has gone past the seeded messages once a message
    // written after them arrives: none of them comes to alice live.
    alice.join("probe").await;
    db.collection::<Document>("messages").insert_one(doc! {"room": "probe", "seq": 1, "author": "bob"}).await.unwrap();
    alice.message("probe", 1).await;

    let mut seen = 0;
    let mut gaps = Vec::new();
    let mut markers = 1..;

    record(db).await;
    alice.send(json!({"type": "join", "room": "big", "since": 0})).await;
    let joined = alice.wait_for(|f| f["type"] == "joined").await;
    assert_eq!((joined["seq"].as_i64(), joined["recovered"].as_bool()), (Some(ROOM_SIZE), Some(false)), "{joined}");
    alice.wait_for(|f| f["type"] == "presence" && f["room"] == "big").await;
    let recorded = recorded_since(db, &mut seen, markers.next().unwrap()).await;
    gaps.extend(check(db, "a join with since: 0", recorded, 100).await);
    assert_eq!(alice.seqs("big"), (2901..=3000).filter(|s| !HOLE.contains(s)).collect::<Vec<_>>());

    for (request, page) in [
        (json!({"type": "history", "room": "big"}), 51),
        (json!({"type": "history", "room": "big", "before": 2951, "limit": 50}), 51),
        (json!({"type": "history", "room": "big", "before": 1000, "limit": 30}), 31),
    ] {
        record(db).await;
        alice.send(request.clone()).await;
        let answer = alice.wait_for(|f| f["type"] == "history").await;
        let recorded = recorded_since(db, &mut seen, markers.next().unwrap()).await;
        gaps.extend(check(db, &request.to_string(), recorded, page).await);
        let seqs: Vec<i64> =
            answer["messages"].as_array().unwrap().iter().map(|m| m["seq"].as_i64().unwrap()).collect();
        let upto = request["before"].as_i64().map_or(ROOM_SIZE, |before| before - 1);
        let mut wanted: Vec<i64> = (1..=upto).rev().filter(|s| !HOLE.contains(s)).take(page as usize - 1).collect();
        wanted.reverse();
        assert_eq!(seqs, wanted, "{request}");
    }

    record(db).await;
    alice.send(json!({"type": "rooms"})).await;
    let rooms = alice.wait_for(|f| f["type"] == "rooms").await;
    assert_eq!(rooms["rooms"].as_array().unwrap().len(), 20, "{rooms}");
    let recorded = recorded_since(db, &mut seen, markers.next().unwrap()).await;
    gaps.extend(check(db, "rooms", recorded, 20).await);

    record(db).await;
    alice.send(json!({"type": "read", "room": "big", "seq": 2990})).await;
    alice.wait_for(|f| f["type"] == "read_marker" && f["room"] == "big" && f["seq"] == 2990).await;
    let recorded = recorded_since(db, &mut seen, markers.next().unwrap()).await;
    gaps.extend(check(db, "read", recorded, 1).await);

    record(db).await;
    alice.send(json!({"type": "notifications", "route": "notifications", "limit": 20})).await;
    let page = alice.wait_for(|f| f["type"] == "notifications").await;
    assert_eq!(page["items"].as_array().unwrap().len(), 20);
    let recorded = recorded_since(db, &mut seen, markers.next().unwrap()).await;
    gaps.extend(check(db, "notifications", recorded, 21).await);

    record(db).await;
    let (status, body) = http_get_json(app.port, "/v1/rooms/big/messages?user=alice&before=2000&limit=30", &[]).await;
    assert_eq!((status, body["messages"].as_array().map(Vec::len)), (200, Some(30)), "{body}");
    let recorded = recorded_since(db, &mut seen, markers.next().unwrap()).await;
    gaps.extend(check(db, "GET /v1/rooms/big/messages", recorded, 31).await);

    // A resend finds its original by the idempotency index.
    record(db).await;
    let ack = alice.post("big", "c1", json!("hi")).await;
    assert_eq!(alice.post("big", "c1", json!("hi")).await, ack);
    let recorded = recorded_since(db, &mut seen, markers.next().unwrap()).await;
    gaps.extend(check(db, "a send and its resend", recorded, 1).await);

    if stops_scans_at_limits() {
        assert!(gaps.is_empty(), "{gaps:#?}");
    } else {
        eprintln!("queries this server does not stop at their limit (docs/design.md, \"Query bounds\"):");
        for gap in &gaps {
            eprintln!("  {gap}");
        }
    }
}

fn assert_uses(plan: &str, index: &str) {
    assert!(plan.contains("IXSCAN") || plan.contains("DISTINCT_SCAN"), "not an index read: {plan}");
    assert!(plan.contains(index), "not the `{index}` index: {plan}");
    assert!(!plan.contains("COLLSCAN"), "a collection scan: {plan}");
}

#[tokio::test]
async fn the_resend_lookup_reads_the_room_author_client_id_index() {
    let app = spawn_app().await;
    let mut alice = app.client("alice").await;
    alice.join("r").await;
    alice.join("s").await;
    // The same client_id in another room, and another client_id in this
    // one: an index without the room, or a range over it, would read them.
    alice.post("r", "c1", json!("hello")).await;
    alice.post("s", "c1", json!("elsewhere")).await;
    alice.post("r", "c2", json!("again")).await;
    // The query the relay runs to find a resend's original, as the server runs it.
    let find = doc! {
        "find": "messages",
        "filter": roomcast::store::resend_filter("r", "alice", "c1"),
        "hint": roomcast::collections::CLIENT_ID_INDEX,
    };
    let explained = app.database.run_command(doc! {"explain": find, "verbosity": "executionStats"}).await.unwrap();
    let winning = explained.get_document("queryPlanner").unwrap().get_document("winningPlan").unwrap();
    assert_eq!(roomcast::collections::CLIENT_ID_INDEX, "room_author_client_id");
    assert_uses(&winning.to_string(), "room_author_client_id");
    // One key and one document read: a point lookup on all three fields.
    let stats = explained.get_document("executionStats").unwrap();
    let examined =
        |field: &str| stats.get(field).and_then(Bson::as_i64).or_else(|| stats.get_i32(field).ok().map(i64::from));
    assert_eq!((examined("totalKeysExamined"), examined("totalDocsExamined")), (Some(1), Some(1)), "{explained}");
    // Where the server reports the scan's bounds (MongoDB does), they are
    // the three values, the room first.
    if let Some(bounds) = index_bounds(winning) {
        let point = |value: &str| vec![Bson::String(format!("[\"{value}\", \"{value}\"]"))];
        assert_eq!(bounds.keys().collect::<Vec<_>>(), ["room", "author", "client_id"], "{winning}");
        assert_eq!(bounds.get_array("room").unwrap(), &point("r"), "{winning}");
        assert_eq!(bounds.get_array("author").unwrap(), &point("alice"), "{winning}");
        assert_eq!(bounds.get_array("client_id").unwrap(), &point("c1"), "{winning}");
    }
    eprintln!("a resend's original: {winning}");
    // And the resend itself still finds the original.
    assert_eq!(alice.post("r", "c1", json!("hello")).await["seq"], 1);
}

/// The bounds of the index scan in a plan, wherever it nests.
fn index_bounds(stage: &Document) -> Option<&Document> {
    if let Ok(bounds) = stage.get_document("indexBounds") {
        return Some(bounds);
    }
    stage.values().filter_map(|value| value.as_document()).find_map(index_bounds)
}
