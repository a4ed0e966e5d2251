//! A client that stops reading, among clients that keep up.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;

use crate::client::Client;
use crate::client::Conversation;
use crate::helpers::{spawn_app, wait_for_http};

fn now_micros() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_micros() as i64
}

/// Reads the room until `last`, noting each message's delivery latency.
async fn keep_up(mut client: Client, last: i64) -> (Client, Vec<(i64, Duration)>) {
    let mut latencies = Vec::new();
    for seq in 1..=last {
        let frame = client.message("r", seq).await;
        let sent = frame["body"]["sent"].as_i64().unwrap();
        latencies.push((seq, Duration::from_micros((now_micros() - sent).max(0) as u64)));
    }
    (client, latencies)
}

fn percentile(latencies: &mut [Duration], p: f64) -> Duration {
    latencies.sort();
    latencies[((latencies.len() - 1) as f64 * p) as usize]
}

#[tokio::test]
async fn a_slow_consumer_is_closed_with_4008_and_the_others_keep_up() {
    let app = spawn_app()
        .with(|settings| {
            // The queue overflows by frames; its bytes and a replay leave room
            // for the reconnect below to catch up on everything in one join.
            settings.limits.send_queue_frames = 64;
            settings.limits.send_queue_bytes = 8 << 20;
            settings.limits.max_replay_bytes = 8 << 20;
            // The queue's overflow is what this test is about: not the
            // socket that took nothing for a while, however slow the database.
            settings.server.write_timeout = Duration::from_secs(600);
        })
        .await;
    let total: i64 = 400;
    let mut readers = Vec::new();
    for user in ["fast1", "fast2"] {
        let mut client = app.client(user).await;
        client.join("r").await;
        readers.push(tokio::spawn(keep_up(client, total)));
    }
    let mut slow = Client::connect_stingy(app.port, "slow").await;
    slow.join("r").await;
    let mut sender = app.client("sender").await;
    sender.join("r").await;
    let padding = "x".repeat(16 * 1024);
    for i in 1..=total {
        let ack = sender.post("r", &format!("m{i}"), json!({"sent": now_micros(), "pad": padding})).await;
        assert_eq!(ack["seq"], i);
    }

    // The slow client's memory is released: only the three others remain.
    wait_for_http(app.port, "/healthz", r#""connections":3"#).await;
    let (code, reason) = slow.closed().await;
    assert_eq!((code, reason.as_str()), (4008, "slow consumer: send queue overflow"));
    let got = slow.seqs("r");
    let prefix: Vec<i64> = (1..=got.len() as i64).collect();
    assert_eq!(got, prefix, "what it did get is a gap-free prefix");
    assert!((got.len() as i64) < total);

    for reader in readers {
        let (client, latencies) = reader.await.unwrap();
        let everything: Vec<i64> = (1..=total).collect();
        assert_eq!(client.seqs("r"), everything, "the fast clients got everything, once, in order");
        // Reported, not asserted: speed belongs to the benchmarks.
        let split = got.len().clamp(1, latencies.len() - 1);
        let (before, during) = latencies.split_at(split);
        let mut before: Vec<Duration> = before.iter().map(|(_, l)| *l).collect();
        let mut during: Vec<Duration> = during.iter().map(|(_, l)| *l).collect();
        eprintln!(
            "slow-consumer latency at a fast client: before p50 {:?} p99 {:?}; after the slow one stalled p50 {:?} p99 {:?}",
            percentile(&mut before, 0.5),
            percentile(&mut before, 0.99),
            percentile(&mut during, 0.5),
            percentile(&mut during, 0.99)
        );
    }

    // It reconnects with `since` and gets the rest, exactly.
    let last_seen = *got.last().unwrap_or(&0);
    let mut back = app.client("slow").await;
    back.join_since("r", last_seen).await;
    back.message("r", total).await;
    let rest: Vec<i64> = (last_seen + 1..=total).collect();
    assert_eq!(back.seqs("r"), rest);
}
