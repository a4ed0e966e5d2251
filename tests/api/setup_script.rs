//! deploy/mongodb/setup.js, run by a real mongosh, prepares a database on
//! which a relay with `mongo.create_indexes: false` starts: the script and
//! the relay agree on what roomcast needs. (shard.js needs a sharded
//! cluster, which the development database is not.) mongosh is the one on PATH, or
//! the one scripts/install-mongosh puts in `.dev/` (scripts/test runs it).

use bson::{doc, Document};
use mongodb::options::IndexOptions;
use mongodb::IndexModel;
use serde_json::json;

use crate::client::Conversation;
use crate::helpers::{mongo, spawn_app, unique_database};
use crate::migration::listed_indexes;

const CHECK_ONLY: (&str, &str) = ("mongo.create_indexes", "false");

fn mongosh() -> std::path::PathBuf {
    let on_path = std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|dir| dir.join("mongosh")).find(|path| path.is_file()));
    let installed = crate::project_dir().join(".dev/mongosh/bin/mongosh");
    on_path.or_else(|| installed.is_file().then_some(installed)).unwrap_or_else(|| {
        panic!("no mongosh found: run scripts/install-mongosh (scripts/test does), or put mongosh on PATH")
    })
}

/// Runs setup.js with these variables set before it: the exit code and
/// everything it printed.
async fn setup(variables: &str) -> (Option<i32>, String) {
    mongosh_script("deploy/mongodb/setup.js", variables).await
}

/// Runs a script against the test database server with these variables
/// set before it: the exit code and everything it printed.
async fn mongosh_script(script: &str, variables: &str) -> (Option<i32>, String) {
    let output = tokio::process::Command::new(mongosh())
        .current_dir(crate::project_dir())
        .args(["--quiet", &crate::db::uri(), "--eval", variables, script])
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(std::time::Duration::from_secs(120), output)
        .await
        .expect("mongosh finished within 2 minutes")
        .expect("run mongosh");
    let printed = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.code(), printed)
}

#[tokio::test]
async fn setup_js_prepares_what_a_check_only_relay_needs_and_drops_the_old_index() {
    let database = unique_database();
    // As an older roomcast left it: the old client_id index.
    let old = IndexOptions::builder()
        .name("author_client_id".to_string())
        .unique(true)
        .partial_filter_expression(doc! {"client_id": {"$type": "string"}})
        .build();
    let messages = mongo(&database).await.collection::<Document>("messages");
    messages
        .create_index(IndexModel::builder().keys(doc! {"author": 1, "client_id": 1}).options(old).build())
        .await
        .unwrap();

    let variables = format!("var database = {database:?}");
    let (code, printed) = setup(&variables).await;
    assert_eq!(code, Some(0), "{printed}");
    assert!(printed.contains("dropped the obsolete index"), "{printed}");
    // Again: nothing to do, and no error.
    let (code, printed) = setup(&variables).await;
    assert_eq!(code, Some(0), "{printed}");
    let names: Vec<String> =
        listed_indexes(&database, "messages").await.iter().map(|i| i.get_str("name").unwrap().to_string()).collect();
    assert_eq!(names.iter().filter(|n| *n == "author_client_id").count(), 0, "{names:?}");

    let relay = spawn_app().database(&database).set(CHECK_ONLY.0, CHECK_ONLY.1).process().await;
    let mut alice = relay.client("alice").await;
    alice.join("r").await;
    let ack = alice.post("r", "c1", json!("hi")).await;
    assert_eq!(ack["seq"], 1, "{ack}");
    assert_eq!(alice.message("r", 1).await["body"], "hi");
    assert_eq!(alice.post("r", "c1", json!("again")).await, ack);
}

#[tokio::test]
async fn setup_js_with_membership_prepares_what_a_check_only_relay_under_membership_needs() {
    let database = unique_database();
    let (code, printed) = setup(&format!("var database = {database:?}; var membership = true")).await;
    assert_eq!(code, Some(0), "{printed}");
    let relay =
        spawn_app().database(&database).set_all(&[CHECK_ONLY, ("auth.room_policy", "membership")]).process().await;
    let members = mongo(&database).await.collection::<Document>("room_members");
    members.insert_one(doc! {"room": "r", "user": "alice"}).await.unwrap();
    let mut alice = relay.client("alice").await;
    alice.join("r").await;
    assert_eq!(alice.post("r", "c1", json!("member")).await["seq"], 1);
}

#[tokio::test]
async fn setup_js_without_a_database_name_stops() {
    let (code, printed) = setup("var unrelated = 1").await;
    assert_eq!(code, Some(2), "{printed}");
    assert!(printed.contains("name the database first"), "{printed}");
}

#[tokio::test]
async fn shard_js_stops_unless_it_talks_to_a_mongos() {
    // The development database has no sharding: all that can be run here is
    // the script's own check, which also shows it parses and runs.
    let hello = mongo("admin").await.run_command(doc! {"hello": 1}).await.unwrap();
    if hello.get_str("msg") == Ok("isdbgrid") {
        eprintln!("skipped: the test database is a mongos");
        return;
    }
    let database = unique_database();
    let (code, printed) = mongosh_script("deploy/mongodb/shard.js", &format!("var database = {database:?}")).await;
    assert_eq!(code, Some(2), "{printed}");
    assert!(printed.contains("connect to a mongos"), "{printed}");
}
