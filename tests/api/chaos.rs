//! Randomized fault rounds, for `scripts/chaos`: relay kills and restarts,
//! database kills and restarts, and slow readers, each round with random
//! sizes and timing, each checked for the same promises as the tests: every
//! client holds exactly seq 1..N, the database holds one message per send.
//! Ignored by `cargo test` alone: `scripts/test` runs it for about 30 s
//! after the suite (every kind of round at least once), and `scripts/chaos`
//! for as long as asked. `CHAOS_SECONDS` sets the duration.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bson::doc;
use futures::TryStreamExt;

use crate::chatter::Chatter;
use crate::client::Client;
use crate::client::Conversation;
use crate::db::{DbOptions, DbServer};
use crate::helpers::{mongo_at, spawn_app, unique_database, RelayProcess, RECOVER_FAST};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long-running; run it with scripts/chaos"]
async fn chaos() {
    let seconds: u64 = std::env::var("CHAOS_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(60);
    let seed: u64 = std::env::var("CHAOS_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| fastrand::u64(..));
    println!("chaos: {seconds} s, seed {seed}");
    let mut rng = fastrand::Rng::with_seed(seed);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let (mut passed, mut failed) = (0, 0);
    // Each kind of round once, in a random order, then kinds at random: a
    // short run still exercises every kind.
    let kinds = ["relay kill", "database restart", "slow reader"];
    let mut first = kinds.to_vec();
    rng.shuffle(&mut first);
    let mut rounds = 0;
    while rounds < kinds.len() || Instant::now() < deadline {
        let name = first.get(rounds).copied().unwrap_or_else(|| kinds[rng.usize(0..kinds.len())]);
        rounds += 1;
        let round_seed = rng.u64(..);
        let started = Instant::now();
        let outcome = tokio::spawn(async move {
            let mut rng = fastrand::Rng::with_seed(round_seed);
            match name {
                "relay kill" => relay_kill(&mut rng).await,
                "database restart" => database_restart(&mut rng).await,
                _ => slow_reader(&mut rng).await,
            }
        })
        .await;
        match outcome {
            Ok(summary) => {
                passed += 1;
                println!("round {}: {name} passed in {:?}: {summary}", passed + failed, started.elapsed());
            }
            Err(error) => {
                failed += 1;
                println!("round {}: {name} FAILED (seed {round_seed}): {error}", passed + failed);
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    assert_eq!(failed, 0);
}

struct Load {
    chatters: usize,
    each: usize,
    window: usize,
}

impl Load {
    fn random(rng: &mut fastrand::Rng) -> Load {
        Load { chatters: rng.usize(2..=5), each: rng.usize(30..=250), window: rng.usize(1..=8) }
    }

    fn total(&self) -> i64 {
        (self.chatters * self.each) as i64
    }
}

async fn start_chatters(
    load: &Load,
    ports: &[u16],
    rng: &mut fastrand::Rng,
    acks: &Arc<AtomicUsize>,
) -> Vec<tokio::task::JoinHandle<Chatter>> {
    let mut tasks = Vec::new();
    for i in 0..load.chatters {
        let mut order = ports.to_vec();
        rng.shuffle(&mut order);
        let chatter = Chatter::connect(order, &format!("user{i}"), "room").await;
        tasks.push(tokio::spawn(chatter.run(load.each, load.window, load.total(), acks.clone())));
    }
    tasks
}

/// Waits until `count` sends were acked; a round whose clients stopped making
/// progress fails here instead of hanging the run.
async fn wait_for_acks(acks: &AtomicUsize, count: usize) {
    let waiting = async {
        while acks.load(Ordering::SeqCst) < count {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    let bound = Duration::from_secs(60);
    tokio::time::timeout(bound, waiting).await.unwrap_or_else(|_| panic!("fewer than {count} acks within {bound:?}"));
}

/// Checks every promise about the room against what clients hold and what is stored.
async fn verify(uri: &str, database: &str, chatters: Vec<tokio::task::JoinHandle<Chatter>>, total: i64) -> String {
    let all: Vec<i64> = (1..=total).collect();
    let mut reconnects = 0;
    for task in chatters {
        let chatter = task.await.unwrap();
        assert_eq!(chatter.received(), all, "{} holds exactly 1..N", chatter.user);
        reconnects += chatter.reconnects;
    }
    let messages = mongo_at(uri, database).await.collection::<bson::Document>("messages");
    let stored: Vec<bson::Document> =
        messages.find(doc! {}).sort(doc! {"seq": 1}).await.unwrap().try_collect().await.unwrap();
    let seqs: Vec<i64> = stored.iter().map(|d| d.get_i64("seq").unwrap()).collect();
    assert_eq!(seqs, all, "stored seqs are 1..N");
    let keys: HashSet<String> = stored.iter().map(|d| d.get_str("client_id").unwrap().to_string()).collect();
    assert_eq!(keys.len(), total as usize, "one stored message per send");
    format!("{total} messages, {reconnects} reconnects")
}

async fn relay_kill(rng: &mut fastrand::Rng) -> String {
    let uri = crate::db::uri();
    let database = unique_database();
    let mut replicas: Vec<RelayProcess> = Vec::new();
    for _ in 0..2 {
        replicas.push(spawn_app().at(&uri).database(&database).process().await);
    }
    let ports: Vec<u16> = replicas.iter().map(|r| r.port).collect();
    let load = Load::random(rng);
    let acks = Arc::new(AtomicUsize::new(0));
    let chatters = start_chatters(&load, &ports, rng, &acks).await;
    wait_for_acks(&acks, rng.usize(1..load.total() as usize)).await;
    let victim = rng.usize(0..2);
    replicas[victim].kill().await;
    // The killed replica comes back on its port while its clients move.
    replicas[victim] = spawn_app().at(&uri).database(&database).port(ports[victim]).process().await;
    verify(&uri, &database, chatters, load.total()).await
}

async fn database_restart(rng: &mut fastrand::Rng) -> String {
    // Private storage, kept across the restart and removed when `db` drops, even on a panic.
    let mut db = DbServer::start(DbOptions::default());
    let database = unique_database();
    let mut replicas = Vec::new();
    for _ in 0..2 {
        replicas.push(spawn_app().at(&db.uri).database(&database).set_all(&RECOVER_FAST).process().await);
    }
    let ports: Vec<u16> = replicas.iter().map(|r| r.port).collect();
    let load = Load::random(rng);
    let acks = Arc::new(AtomicUsize::new(0));
    let chatters = start_chatters(&load, &ports, rng, &acks).await;
    wait_for_acks(&acks, rng.usize(1..load.total() as usize)).await;
    let outage = Duration::from_millis(rng.u64(0..1500));
    db = tokio::task::spawn_blocking(move || {
        db.stop(libc::SIGKILL);
        // The outage itself: how long the database stays down is what this round varies.
        std::thread::sleep(outage);
        db.restart();
        db
    })
    .await
    .unwrap();
    let summary = verify(&db.uri, &database, chatters, load.total()).await;
    drop(replicas);
    drop(db);
    format!("{summary}, database down {outage:?}")
}

async fn slow_reader(rng: &mut fastrand::Rng) -> String {
    let uri = crate::db::uri();
    let database = unique_database();
    // A queue short in frames, so the stalled client overflows it; bytes
    // and a replay large enough that whoever reconnects catches up on
    // everything in one join (as in `slow::a_slow_consumer_is_closed_with_4008_and_the_others_keep_up`).
    let small_queue = [
        ("limits.send_queue_frames", "64"),
        ("limits.send_queue_bytes", "8388608"),
        ("limits.max_replay_bytes", "8388608"),
        // Closed by the queue's overflow, whatever the database's speed.
        ("server.write_timeout", "600s"),
    ];
    let relay = spawn_app().at(&uri).database(&database).set_all(&small_queue).process().await;
    let mut stalled = Client::connect_stingy(relay.port, "stalled").await;
    stalled.join("room").await;
    let load = Load { chatters: rng.usize(2..=4), each: 0, window: rng.usize(1..=8) };
    let load = Load { each: 400 / load.chatters, ..load };
    let acks = Arc::new(AtomicUsize::new(0));
    let mut chatters = Vec::new();
    for i in 0..load.chatters {
        let mut chatter = Chatter::connect(vec![relay.port], &format!("user{i}"), "room").await;
        chatter.padding = 16 * 1024;
        chatters.push(tokio::spawn(chatter.run(load.each, load.window, load.total(), acks.clone())));
    }
    let summary = verify(&uri, &database, chatters, load.total()).await;
    let (code, _) = stalled.closed().await;
    assert_eq!(code, 4008);
    let held = stalled.seqs("room");
    let prefix: Vec<i64> = (1..=held.len() as i64).collect();
    assert_eq!(held, prefix, "the stalled client got a gap-free prefix");
    let last = *held.last().unwrap_or(&0);
    let mut back = relay.client("stalled").await;
    back.join_since("room", last).await;
    back.message("room", load.total()).await;
    let rest: Vec<i64> = (last + 1..=load.total()).collect();
    assert_eq!(back.seqs("room"), rest);
    format!("{summary}, the stalled client was closed after {} messages and caught up", held.len())
}
