//! `mongo.create_indexes: false`: start-up creates nothing and only checks
//! that the database has what roomcast needs; the first thing missing
//! stops it with one line naming it, and exit code 2.

use bson::{doc, Document};
use mongodb::options::IndexOptions;
use mongodb::IndexModel;
use serde_json::json;

use crate::client::Conversation;
use crate::helpers::{mongo, spawn_app, unique_database};
use crate::migration::listed_indexes;

const CHECK_ONLY: (&str, &str) = ("mongo.create_indexes", "false");
const FIX: &str = "run deploy/mongodb/setup.js or set mongo.create_indexes: true";

/// A database prepared by a relay in create mode, which is then stopped.
async fn prepared() -> String {
    let database = unique_database();
    let app = spawn_app().database(&database).await;
    drop(app);
    database
}

/// Starts a check-only relay on `database`, which must stop at start-up
/// with exit code 2 and one line on stderr: that line.
async fn refusal(database: &str) -> String {
    let (code, stderr) = spawn_app().database(database).set(CHECK_ONLY.0, CHECK_ONLY.1).exits().await;
    assert_eq!(code, Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    stderr
}

#[tokio::test]
async fn check_only_on_an_empty_database_stops_naming_the_first_missing_index_and_creates_nothing() {
    let database = unique_database();
    let line = refusal(&database).await;
    assert_eq!(
        line,
        format!("roomcast: missing index room_seq {{room: 1, seq: 1}} (unique) on {database}.messages: {FIX}")
    );
    let collections = mongo(&database).await.list_collection_names().await.unwrap();
    assert!(collections.is_empty(), "check-only created {collections:?}");
}

#[tokio::test]
async fn check_only_on_a_database_prepared_by_create_mode_starts_and_serves() {
    let database = unique_database();
    let mut creator = spawn_app().database(&database).process().await;
    assert_eq!(creator.terminate().await.0, Some(0));
    let before = listed_indexes(&database, "messages").await;

    let relay = spawn_app().database(&database).set(CHECK_ONLY.0, CHECK_ONLY.1).process().await;
    let mut alice = relay.client("alice").await;
    alice.join("r").await;
    assert_eq!(alice.post("r", "c1", json!("hi")).await["seq"], 1);
    assert_eq!(alice.message("r", 1).await["body"], "hi");
    assert_eq!(alice.post("r", "c1", json!("again")).await["seq"], 1, "resends stay idempotent");
    assert_eq!(listed_indexes(&database, "messages").await, before);
}

#[tokio::test]
async fn check_only_names_the_one_index_missing_or_in_the_way() {
    let database = prepared().await;
    let typing = mongo(&database).await.collection::<Document>("typing");
    typing.drop_index("at_ttl").await.unwrap();
    let line = refusal(&database).await;
    assert_eq!(line, format!("roomcast: missing index at_ttl {{at: 1}} (TTL 60 s) on {database}.typing: {FIX}"));

    // The same name with another definition is in its way, and named too.
    let longer = IndexOptions::builder().name("at_ttl".to_string()).expire_after(std::time::Duration::from_secs(120));
    typing.create_index(IndexModel::builder().keys(doc! {"at": 1}).options(longer.build()).build()).await.unwrap();
    let line = refusal(&database).await;
    assert!(line.contains(&format!("missing index at_ttl {{at: 1}} (TTL 60 s) on {database}.typing")), "{line}");
    assert!(line.contains("(in its way: at_ttl {at: 1} (TTL 120 s); drop that first)"), "{line}");
}

#[tokio::test]
async fn check_only_names_what_its_configuration_needs_beyond_what_was_created() {
    // Created under the default room policy, checked under `membership`,
    // which needs an index of `room_members` that nothing created.
    let database = prepared().await;
    let (code, line) =
        spawn_app().database(&database).set_all(&[CHECK_ONLY, ("auth.room_policy", "membership")]).exits().await;
    assert_eq!(code, Some(2));
    let expected = format!("missing index room_user {{room: 1, user: 1}} (unique) on {database}.room_members");
    assert!(line.contains(&expected), "{line}");
    let collections = mongo(&database).await.list_collection_names().await.unwrap();
    assert!(!collections.contains(&"room_members".to_string()), "check-only created room_members");

    // The join's index alone is not enough: the room list reads a user's
    // memberships by `{user, room}`, which would otherwise scan everyone's.
    let members = mongo(&database).await.collection::<Document>("room_members");
    let unique = IndexOptions::builder().name("room_user".to_string()).unique(true).build();
    members
        .create_index(IndexModel::builder().keys(doc! {"room": 1, "user": 1}).options(unique).build())
        .await
        .unwrap();
    let (code, line) =
        spawn_app().database(&database).set_all(&[CHECK_ONLY, ("auth.room_policy", "membership")]).exits().await;
    assert_eq!(code, Some(2));
    let expected = format!("missing index user_room {{user: 1, room: 1}} on {database}.room_members");
    assert!(line.contains(&expected), "{line}");
}

#[tokio::test]
async fn check_only_stops_without_pre_images_on_messages() {
    let database = prepared().await;
    let db = mongo(&database).await;
    db.run_command(doc! {"collMod": "messages", "changeStreamPreAndPostImages": {"enabled": false}}).await.unwrap();
    let line = refusal(&database).await;
    assert_eq!(
        line,
        format!(
            "roomcast: change stream pre-images are off on {database}.messages (changeStreamPreAndPostImages), \
             so hard deletes cannot be relayed: {FIX}"
        )
    );
}

#[tokio::test]
async fn check_only_stops_while_the_old_client_id_index_is_there() {
    let database = prepared().await;
    let messages = mongo(&database).await.collection::<Document>("messages");
    let old = IndexOptions::builder()
        .name("author_client_id".to_string())
        .unique(true)
        .partial_filter_expression(doc! {"client_id": {"$type": "string"}})
        .build();
    messages
        .create_index(IndexModel::builder().keys(doc! {"author": 1, "client_id": 1}).options(old).build())
        .await
        .unwrap();
    let line = refusal(&database).await;
    assert_eq!(
        line,
        format!(
            "roomcast: obsolete index author_client_id on {database}.messages must be dropped, \
             as it would refuse a client_id reused in another room: {FIX}"
        )
    );
}
