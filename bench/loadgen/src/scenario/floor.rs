//! The floor: the database's own insert → change-event latency, measured with
//! a bare driver client (one change stream with `$match` on inserts, inserts
//! with write concern majority) and no relay in between. Neither server can
//! deliver faster than this.

use std::sync::Arc;

use anyhow::Result;
use bson::{doc, Document};
use futures::StreamExt;
use mongodb::change_stream::event::ChangeStreamEvent;
use serde::Serialize;

use super::producer;
use crate::dialect::TIME_KEY;
use crate::figures::Timing;
use crate::stats::{Latency, Stats};

#[derive(Debug, Serialize)]
pub struct FloorRun {
    pub rate: f64,
    pub events: u64,
    pub insert_to_event: Latency,
    pub insert_commit: Latency,
}

pub async fn run(mongo_uri: &str, database: &str, rate: f64, timing: Timing) -> Result<FloorRun> {
    let collection = producer::collection(mongo_uri, database, "floor").await?;
    let mut events = collection.watch().pipeline([doc! { "$match": { "operationType": "insert" } }]).await?;
    let stats = Arc::new(Stats::default());
    let key = TIME_KEY.trim_matches(|c| c == '"' || c == ':');
    let reader = tokio::spawn({
        let stats = stats.clone();
        async move {
            while let Some(Ok(event)) = events.next().await {
                let event: ChangeStreamEvent<Document> = event;
                if let Some(sent_at) = event.full_document.as_ref().and_then(|d| d.get_i64(key).ok()) {
                    stats.record_delivery(0, sent_at);
                }
            }
        }
    });
    let window = crate::figures::Window::open(&stats, timing);
    let commits =
        producer::produce(&collection, rate, window.end, &stats, |n, sent_at| doc! { "n": n as i64, key: sent_at })
            .await;
    let expected = stats.sent.load(std::sync::atomic::Ordering::Relaxed);
    let deadline = tokio::time::Instant::now() + timing.drain;
    while stats.delivered.load(std::sync::atomic::Ordering::Relaxed) < expected
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    reader.abort();
    let _ = collection.drop().await;
    Ok(FloorRun {
        rate,
        events: stats.delivered.load(std::sync::atomic::Ordering::Relaxed),
        insert_to_event: stats.latency(),
        insert_commit: Latency::of(&commits),
    })
}
