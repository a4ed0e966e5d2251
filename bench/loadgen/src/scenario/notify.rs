//! Scenario 3, notifications: U users with C connections each; a producer
//! (the official Rust driver, as any program would) inserts into
//! `notifications` at a fixed rate, round-robin over the users. Every
//! connection of the user should get each document.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Result;
use bson::doc;
use serde::Serialize;

use super::{producer, Ctx};
use crate::conn;
use crate::figures::{StepFigures, Window};
use crate::stats::{Latency, Stats};

#[derive(Debug, Serialize)]
pub struct NotifyRun {
    pub users: usize,
    pub connections_per_user: usize,
    pub figures: StepFigures,
    pub insert_commit_p50_ms: f64,
    pub closes: BTreeMap<String, u64>,
}

pub async fn run(ctx: &Ctx<'_>) -> Result<NotifyRun> {
    let scale = ctx.scale;
    let (users, per_user) = (scale.notify_users, scale.notify_conns_per_user);
    let stats = Arc::new(Stats::default());
    let readers =
        conn::open_readers(ctx.target, ctx.port, 0..users * per_user, &stats, |i| (user_name(i % users), vec![]))
            .await?;
    let notifications = producer::collection(ctx.mongo_uri, ctx.database, "notifications").await?;
    let window = Window::open(&stats, scale.timing);
    let end = window.end;
    let producing = {
        let stats = stats.clone();
        async move {
            producer::produce(&notifications, scale.notify_rate, end, &stats, |n, sent_at| {
                doc! { "user": user_name(n as usize % users), "kind": "bench", "bench_t": sent_at }
            })
            .await
        }
    };
    let (commits, before) = tokio::join!(producing, window.started(ctx.watched));
    let figures = window.finish(&stats, per_user as u64, Some(scale.notify_rate), ctx.watched, before?).await?;
    for reader in readers {
        reader.abort();
    }
    Ok(NotifyRun {
        users,
        connections_per_user: per_user,
        figures,
        insert_commit_p50_ms: Latency::of(&commits).p50_ms,
        closes: stats.closes(),
    })
}

fn user_name(index: usize) -> String {
    format!("nu-{index}")
}
