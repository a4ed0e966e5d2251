//! One route's change stream: the loop that follows it and reopens it from
//! the last resume token after any error, with backoff and jitter, for as
//! long as it takes. The stream is the `$changeStream` aggregation read a
//! batch at a time (the driver's raw batch cursor): every `getMore` reply
//! comes back whole, its events are read where they lie in it, and the
//! reply's post-batch token, which moves on even when nothing matched, is
//! where the next stream resumes. Without a token (the first start, or
//! after the history was lost) the stream starts at an operation time read
//! just before, so the relay knows exactly where it begins.

use std::sync::Arc;
use std::time::Duration;

use bson::raw::RawDocumentBuf;
use bson::{doc, Bson, Document, Timestamp};
use futures::StreamExt;
use mongodb::raw_batch_cursor::{RawBatch, RawBatchCursor};
use mongodb::{Collection, Database};
use tokio_util::sync::CancellationToken;

use super::dispatch::Dispatcher;
use super::event::{scan, Elements, Event, Operation};
use super::route::Route;
use crate::health::RouteHealth;
use crate::prometheus;

/// How long an idle `getMore` waits; also bounds how long shutdown waits for a route.
const MAX_AWAIT: Duration = Duration::from_millis(500);
/// Events asked for per `getMore`. A `getMore` costs the relay about as much
/// as reading a hundred events, so under load a batch should be large; some
/// MongoDB-compatible servers cap a batch at 101 events unless asked for
/// more. MongoDB itself caps a reply at 16 MiB whatever this says, which
/// stays the bound on what one reply holds.
const BATCH_EVENTS: u32 = 1000;
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
/// ChangeStreamHistoryLost: the resume point has left the oplog.
const HISTORY_LOST: i32 = 286;

/// A route's stream: its replies, a batch of events each.
type Events = RawBatchCursor;

/// One route's change stream, and where to resume it.
pub struct RouteStream {
    name: String,
    database: Database,
    collection: Collection<RawDocumentBuf>,
    pipeline: Vec<Document>,
    lookup: bool,
    pre_images: bool,
    max_backoff: Duration,
    health: Arc<RouteHealth>,
    events: ::metrics::Counter,
    /// Where the stream resumes: the last batch's post-batch token, or its
    /// last event's `_id`.
    token: Option<Bson>,
    /// The last stream's history was lost: the next start must re-fill.
    lost: bool,
}

/// An open stream, and where it started if it did not resume.
pub struct Opened {
    events: Events,
    fresh_start: Option<Timestamp>,
}

impl RouteStream {
    pub fn new(route: &Route, database: &Database, max_backoff: Duration, health: Arc<RouteHealth>) -> Self {
        RouteStream {
            name: route.name.clone(),
            database: database.clone(),
            collection: database.collection(&route.collection),
            pipeline: route.pipeline(),
            lookup: route.lookup,
            pre_images: route.pre_images,
            max_backoff,
            events: ::metrics::counter!(prometheus::ROUTE_EVENTS, "route" => route.name.clone()),
            health,
            token: None,
            lost: false,
        }
    }

    /// Opens the stream where the last one left off, or at the current
    /// operation time when there is nothing to resume from.
    #[tracing::instrument(skip(self), fields(route = %self.name, resuming = self.token.is_some()))]
    pub async fn open(&self) -> Result<Opened, mongodb::error::Error> {
        let mut stage = Document::new();
        if self.lookup {
            stage.insert("fullDocument", "updateLookup");
        }
        if self.pre_images {
            stage.insert("fullDocumentBeforeChange", "whenAvailable");
        }
        let fresh_start = match &self.token {
            Some(token) => {
                stage.insert("startAfter", token.clone());
                None
            }
            None => {
                // Strictly after the time read: the events at that time happened
                // before this start. Starting *at* it (the option is inclusive)
                // would replay a `drop` that caused the restart, and loop.
                let start = self.operation_time().await?;
                let after = match start.increment.checked_add(1) {
                    Some(increment) => Timestamp { time: start.time, increment },
                    None => Timestamp { time: start.time + 1, increment: 0 },
                };
                stage.insert("startAtOperationTime", after);
                Some(start)
            }
        };
        let pipeline = std::iter::once(doc! { "$changeStream": stage }).chain(self.pipeline.iter().cloned());
        let events =
            self.collection.aggregate(pipeline).max_await_time(MAX_AWAIT).batch_size(BATCH_EVENTS).batch().await?;
        Ok(Opened { events, fresh_start })
    }

    /// The cluster's current operation time, from a round trip.
    async fn operation_time(&self) -> Result<Timestamp, mongodb::error::Error> {
        let reply = self.database.run_command(doc! { "ping": 1 }).await?;
        let time = reply
            .get_timestamp("operationTime")
            .or_else(|_| reply.get_document("$clusterTime").and_then(|c| c.get_timestamp("clusterTime")));
        time.map_err(|_| {
            mongodb::error::Error::custom("the server reported no operationTime; change streams need a replica set")
        })
    }

    fn forget_position(&mut self) {
        self.token = None;
        self.lost = true;
        ::metrics::counter!(prometheus::ROUTE_HISTORY_LOST, "route" => self.name.clone()).increment(1);
    }

    /// Opening or reading failed: a lost resume point restarts from now (and
    /// re-fills); anything else is retried from the token.
    fn failed(&mut self, error: &mongodb::error::Error, retry: &str) {
        let history_lost = matches!(&*error.kind, mongodb::error::ErrorKind::Command(e) if e.code == HISTORY_LOST);
        if history_lost {
            tracing::error!(route = %self.name, %error, "resume point lost; restarting from now");
            self.forget_position();
        } else {
            tracing::warn!(route = %self.name, %error, "{retry}");
        }
    }
}

/// Follows the route until shutdown, reopening it after every failure.
pub async fn follow(mut route: RouteStream, opened: Opened, mut dispatcher: Dispatcher, shutdown: CancellationToken) {
    let mut next = Some(opened);
    let mut backoff = BACKOFF_FIRST;
    while !shutdown.is_cancelled() {
        let first = next.is_some();
        let resumed = !first && route.token.is_some();
        let opened = match next.take() {
            Some(opened) => Ok(opened),
            None => route.open().await,
        };
        let started = match opened {
            Ok(opened) => match opened.fresh_start {
                None => Ok(opened.events),
                Some(start) => dispatcher.started_at(start, route.lost).await.map(|()| opened.events).map_err(|e| {
                    tracing::warn!(route = %route.name, error = %e, "cannot re-fill after lost history");
                }),
            },
            Err(error) => {
                route.failed(&error, "cannot open change stream; retrying");
                Err(())
            }
        };
        let Ok(events) = started else {
            route.health.set_open(false);
            tokio::select! {
                _ = tokio::time::sleep(jitter(backoff)) => {}
                _ = shutdown.cancelled() => return,
            }
            backoff = (backoff * 2).min(route.max_backoff);
            continue;
        };
        if resumed {
            ::metrics::counter!(prometheus::ROUTE_RESUMES, "route" => route.name.clone()).increment(1);
        }
        if backoff > BACKOFF_FIRST {
            tracing::info!(route = %route.name, "change stream reopened");
        }
        backoff = BACKOFF_FIRST;
        route.lost = false;
        route.health.set_open(true);
        drain(&mut route, events, &mut dispatcher, &shutdown).await;
        route.health.set_open(false);
    }
}

/// Reads until the stream fails, ends or shutdown is requested: a batch at
/// a time, so the clock, the metrics and the lag are taken once per batch,
/// not once per event.
async fn drain(route: &mut RouteStream, mut stream: Events, dispatcher: &mut Dispatcher, shutdown: &CancellationToken) {
    loop {
        let next = tokio::select! {
            biased;
            _ = shutdown.cancelled() => return,
            next = stream.next() => next,
        };
        let batch = match next {
            Some(Ok(batch)) => batch,
            Some(Err(error)) => return route.failed(&error, "change stream failed; resuming"),
            // The server closed the cursor (after an invalidate): start again.
            None => return,
        };
        if relay_batch(route, &batch, dispatcher) == Ended::CollectionGone {
            return;
        }
    }
}

#[derive(PartialEq, Eq)]
enum Ended {
    Batch,
    CollectionGone,
}

/// Hands each event of one `getMore` reply to the dispatcher, then moves
/// the resume point past the batch.
fn relay_batch(route: &mut RouteStream, batch: &RawBatch, dispatcher: &mut Dispatcher) -> Ended {
    let received = std::time::Instant::now();
    let (mut count, mut last) = (0, None);
    // The batch's events are walked where they lie, as the bytes of one
    // array: each is read by routing alone, and validated only as far as
    // what is read of it needs.
    let events = batch.doc_slices().map(|events| events.as_bytes()).unwrap_or_default();
    for raw in Elements::of(events).filter_map(|element| element.value.document_bytes()) {
        let event = Event::read(raw);
        count += 1;
        if event.operation() == Operation::Lifecycle {
            // The collection was dropped or renamed. MongoDB then invalidates
            // the stream, and some servers end it without saying so; either
            // way, restart from now, re-fill rooms and tell users to resync.
            tracing::warn!(route = %route.name, event = event.operation_name(), "collection went away; restarting from now");
            route.events.increment(count);
            route.forget_position();
            return Ended::CollectionGone;
        }
        dispatcher.dispatch(&event, received);
        last = Some(event);
    }
    // The lag is the newest event's: taken once per batch.
    route.health.answered(last.and_then(|event| event.wall_time()).map(|at| at.to_system_time()));
    route.events.increment(count);
    // The reply's post-batch token is past every event in it, and past what
    // the filter skipped; without one, the last event's `_id`.
    let reply = batch.as_raw_document();
    let [cursor] = scan(reply.as_bytes(), [b"cursor"]);
    let post_batch = cursor.and_then(|cursor| scan(cursor.document()?.as_bytes(), [b"postBatchResumeToken"])[0]);
    if let Some(token) = post_batch.and_then(|token| token.to_bson()).or_else(|| last?.resume_token()) {
        route.token = Some(token);
    }
    Ended::Batch
}

/// Spreads reconnects of many replicas over the interval.
fn jitter(backoff: Duration) -> Duration {
    backoff / 2 + backoff.mul_f64(fastrand::f64() / 2.0)
}
