//! The whole benchmark in one run: the floor, then every scenario against
//! both servers. The order of the two servers alternates from one run to the
//! next so that any drift of the shared machine or database (caches, oplog
//! growth, another job) does not always favour the same side. Every run gets
//! a fresh server process and a fresh database, dropped afterwards.

use std::time::Instant;

use anyhow::Result;
use serde::Serialize;
use serde_json::{json, Value};

use crate::dialect::{Target, Transport};
use crate::figures::Watched;
use crate::scale::Scale;
use crate::scenario::{self, Ctx};
use crate::servers::{Server, Setup};

pub struct Suite {
    pub setup: Setup,
    pub db_pid: Option<u32>,
    pub scale: Scale,
    pub scenarios: Vec<String>,
    /// The servers to run, normally both; one alone is handy while debugging.
    pub targets: Vec<Target>,
    pub stamp: String,
}

#[derive(Debug, Clone, Copy)]
enum Job {
    Fanout,
    FanoutSse,
    Wide,
    Idle,
    IdleSse,
    Notify,
    History,
    Presence,
    Typing,
    Growth { rooms: usize, subs_per_room: usize },
}

impl Job {
    fn name(self) -> String {
        match self {
            Job::Fanout => "fanout".into(),
            Job::FanoutSse => "fanout_sse".into(),
            Job::Wide => "wide".into(),
            Job::Idle => "idle".into(),
            Job::IdleSse => "idle_sse".into(),
            Job::Notify => "notify".into(),
            Job::History => "history".into(),
            Job::Presence => "presence".into(),
            Job::Typing => "typing".into(),
            Job::Growth { rooms, subs_per_room } => format!("growth_{rooms}x{subs_per_room}"),
        }
    }

    /// The peer has no SSE transport: the fan-out with SSE subscribers and
    /// the idle SSE streams run against roomcast only.
    fn serves(self, target: Target) -> bool {
        target == Target::Roomcast || !matches!(self, Job::FanoutSse | Job::IdleSse)
    }
}

impl Suite {
    fn wants(&self, scenario: &str) -> bool {
        self.scenarios.iter().any(|s| s == "all" || s == scenario)
    }

    pub async fn run(&self) -> Result<Value> {
        let began = Instant::now();
        let admin = mongodb::Client::with_uri_str(&self.setup.mongo_uri).await?;
        let mut out = json!({
            "stamp": self.stamp,
            "scale": self.scale,
            "machine": crate::machine::describe(),
            "roomcast_send_queue_frames": self.setup.send_queue_frames,
            "roomcast_send_queue_bytes": self.setup.send_queue_bytes,
        });
        if self.wants("floor") {
            let database = format!("bench_{}_floor", self.stamp_key());
            eprintln!("bench: the floor (bare driver insert -> change event)");
            let floor =
                scenario::floor::run(&self.setup.mongo_uri, &database, self.scale.floor_rate, self.scale.timing).await;
            out["floor"] = as_value(floor);
            let _ = admin.database(&database).drop().await;
        }
        let mut turn = 0usize;
        let jobs = [
            ("fanout", Job::Fanout),
            ("fanout-sse", Job::FanoutSse),
            ("wide", Job::Wide),
            ("idle", Job::Idle),
            ("idle-sse", Job::IdleSse),
            ("notify", Job::Notify),
            ("history", Job::History),
            ("presence", Job::Presence),
            ("typing", Job::Typing),
        ];
        for (key, job) in jobs {
            if self.wants(key) && self.targets.iter().any(|t| job.serves(*t)) {
                out[key] = self.both(job, &admin, &mut turn).await;
            }
        }
        if self.wants("growth") {
            let mut points = Vec::new();
            for (rooms, subs_per_room) in self.scale.growth_points() {
                let mut point = self.both(Job::Growth { rooms, subs_per_room }, &admin, &mut turn).await;
                point["rooms"] = json!(rooms);
                point["subs_per_room"] = json!(subs_per_room);
                points.push(point);
            }
            out["growth"] = Value::Array(points);
        }
        out["elapsed_s"] = json!(began.elapsed().as_secs_f64());
        Ok(out)
    }

    fn stamp_key(&self) -> String {
        self.stamp.chars().filter(|c| c.is_ascii_alphanumeric()).collect()
    }

    /// Runs `job` against both servers, in alternating order.
    async fn both(&self, job: Job, admin: &mongodb::Client, turn: &mut usize) -> Value {
        let order = if (*turn).is_multiple_of(2) { Target::BOTH } else { [Target::SocketIo, Target::Roomcast] };
        // A job for one server alone leaves the alternation of the others as it was.
        if Target::BOTH.iter().all(|t| job.serves(*t)) {
            *turn += 1;
        }
        let mut out = json!({});
        for target in order.into_iter().filter(|t| self.targets.contains(t) && job.serves(*t)) {
            let database = format!("bench_{}_{}_{}", self.stamp_key(), job.name(), target.name().replace('.', ""));
            eprintln!("bench: {} against {}", job.name(), target.name());
            let result = self.once(job, target, &database).await;
            if let Err(error) = &result {
                eprintln!("bench: {} against {} failed: {error:#}", job.name(), target.name());
            }
            out[target.name()] = result.unwrap_or_else(|e| json!({ "error": format!("{e:#}") }));
            let _ = admin.database(&database).drop().await;
        }
        out
    }

    async fn once(&self, job: Job, target: Target, database: &str) -> Result<Value> {
        let saturating = matches!(job, Job::Fanout | Job::FanoutSse | Job::Wide | Job::Growth { .. });
        if let Job::History = job {
            // Before the server starts, so its change stream never sees the fill.
            scenario::history::seed(&self.setup.mongo_uri, database, &self.scale).await?;
        }
        let server = Server::start(target, &self.setup, database, saturating).await?;
        let ctx = Ctx {
            target,
            port: server.port,
            watched: Watched {
                server: server.pid,
                db: self.db_pid,
                metrics_port: (target == Target::Roomcast).then_some(server.port),
            },
            scale: &self.scale,
            mongo_uri: &self.setup.mongo_uri,
            database,
        };
        let result = match job {
            Job::Fanout => scenario::fanout::run(&ctx).await.map(to_value),
            Job::Wide => scenario::fanout::run_wide(&ctx).await.map(to_value),
            Job::FanoutSse => scenario::fanout::run_transports(&ctx).await.map(to_value),
            Job::Idle => scenario::idle::run(&ctx, Transport::WebSocket).await.map(to_value),
            Job::IdleSse => scenario::idle::run(&ctx, Transport::Sse).await.map(to_value),
            Job::Notify => scenario::notify::run(&ctx).await.map(to_value),
            Job::History => scenario::history::run(&ctx).await.map(to_value),
            Job::Presence => scenario::presence::run(&ctx).await.map(to_value),
            Job::Typing => scenario::typing::run(&ctx).await.map(to_value),
            Job::Growth { rooms, subs_per_room } => {
                scenario::growth::run(&ctx, rooms, subs_per_room).await.map(to_value)
            }
        };
        server.stop().await;
        result
    }
}

fn to_value(result: impl Serialize) -> Value {
    serde_json::to_value(result).unwrap_or_else(|e| json!({ "error": e.to_string() }))
}

fn as_value(result: Result<impl Serialize>) -> Value {
    match result {
        Ok(value) => to_value(value),
        Err(error) => json!({ "error": format!("{error:#}") }),
    }
}
