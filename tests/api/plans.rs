//! The reads of the chat's read side are index reads: each query the relay
//! runs, as built by `roomcast::store::queries`, is explained by the
//! database, and its plan must scan the index meant for it, never the
//! collection.

use bson::{doc, Bson, Document};
use mongodb::Database;
use roomcast::store::{queries, Order};
use serde_json::json;

use crate::helpers::spawn_app;

/// The database's plan for `command` (a `find` or an `aggregate`), as text.
async fn plan(database: &Database, command: Document) -> String {
    let explained = database.run_command(doc! {"explain": command, "verbosity": "queryPlanner"}).await.unwrap();
    explained.to_string()
}

fn assert_uses(plan: &str, index: &str) {
    assert!(plan.contains("IXSCAN") || plan.contains("DISTINCT_SCAN"), "not an index read: {plan}");
    assert!(plan.contains(index), "not the `{index}` index: {plan}");
    assert!(!plan.contains("COLLSCAN"), "a collection scan: {plan}");
}

#[tokio::test]
async fn history_pages_the_room_list_and_notification_pages_read_indexes() {
    let app = spawn_app().await;
    let mut alice = app.client("alice").await;
    for room in ["a", "b"] {
        alice.join(room).await;
        for i in 1..=3 {
            alice.post(room, &format!("{room}{i}"), json!(i)).await;
        }
    }
    alice.send(json!({"type": "read", "room": "a", "seq": 2})).await;
    alice.wait_for(|f| f["type"] == "read_marker").await;
    for n in 1..=3 {
        app.notifications().insert_one(doc! {"user": "alice", "n": n}).await.unwrap();
    }
    let db = &app.database;
    let aggregate =
        |collection: &str, pipeline: Vec<Document>| doc! {"aggregate": collection, "pipeline": pipeline, "cursor": {}};

    let page = queries::messages_between("a", i64::MIN, 2, Order::NewestFirst, Some(51), 1 << 18);
    let history = plan(db, aggregate("messages", page)).await;
    assert_uses(&history, "room_seq");
    eprintln!("history page: {history}");

    let newest = queries::newest_messages(&["a".to_string(), "b".to_string()], 10_000);
    let rooms = plan(db, aggregate("messages", newest)).await;
    assert_uses(&rooms, "room_seq");
    eprintln!("newest message per room: {rooms}");

    let (filter, order) = queries::read_markers_of("alice");
    let markers = plan(db, doc! {"find": "read_markers", "filter": filter, "sort": order, "limit": 100}).await;
    assert_uses(&markers, "user_at");
    eprintln!("a user's read markers: {markers}");

    let before = Some(Bson::ObjectId(bson::oid::ObjectId::new()));
    let documents = queries::user_documents("user", Bson::String("alice".into()), before, 51, 1 << 18);
    let notifications = plan(db, aggregate("notifications", documents)).await;
    assert_uses(&notifications, "user_1__id_-1");
    eprintln!("a user's notifications: {notifications}");
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
