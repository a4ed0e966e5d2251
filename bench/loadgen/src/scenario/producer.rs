//! A notification producer as any program would write one: the official
//! Rust driver inserting documents with write concern majority, at a fixed
//! rate with a bounded number of inserts in flight.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use bson::Document;
use mongodb::options::{CollectionOptions, WriteConcern};
use mongodb::{Client, Collection};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::clock::now_micros;
use crate::stats::Stats;

const MAX_IN_FLIGHT: usize = 64;

pub async fn collection(uri: &str, database: &str, name: &str) -> Result<Collection<Document>> {
    let client = Client::with_uri_str(uri).await?;
    let options = CollectionOptions::builder().write_concern(WriteConcern::majority()).build();
    Ok(client.database(database).collection_with_options(name, options))
}

/// Inserts `make(sequence, send time in µs)` at `rate` per second until
/// `until`; an insert that would exceed the in-flight bound is skipped and
/// counted. Returns the insert (commit) latencies in µs of the window.
pub async fn produce(
    collection: &Collection<Document>,
    rate: f64,
    until: Instant,
    stats: &Arc<Stats>,
    make: impl Fn(u64, i64) -> Document,
) -> Vec<u64> {
    let permits = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let period = Duration::from_secs_f64(1.0 / rate.max(0.001));
    let (tx, mut commits) = tokio::sync::mpsc::unbounded_channel::<u64>();
    let mut next = Instant::now();
    let mut sequence = 0;
    while next < until {
        tokio::time::sleep_until(next).await;
        next += period;
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            stats.skipped.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            continue;
        };
        sequence += 1;
        let sent_at = now_micros();
        stats.record_send(sent_at);
        let document = make(sequence, sent_at);
        let (collection, stats, tx) = (collection.clone(), stats.clone(), tx.clone());
        tokio::spawn(async move {
            let result = collection.insert_one(document).await;
            drop(permit);
            match result {
                Ok(_) if stats.in_window(sent_at) => {
                    let _ = tx.send((now_micros() - sent_at).max(0) as u64);
                }
                Ok(_) => {}
                Err(_) => {
                    stats.refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
        });
    }
    // Wait for the inserts still in flight.
    let _ = permits.acquire_many(MAX_IN_FLIGHT as u32).await;
    drop(tx);
    let mut latencies = Vec::new();
    while let Some(latency) = commits.recv().await {
        latencies.push(latency);
    }
    latencies
}
