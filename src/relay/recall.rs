//! One user's notifications read back from MongoDB's own history, for a
//! cursor the route's ring does not cover (the replica started after it,
//! or it is older than `recovery.window`). A change stream on the route's
//! collection starts at the cursor's cluster time, narrowed to the user
//! (`Route::history_pipeline`), and is read until it passes `until`, the
//! newest position the ring holds: everything after that reaches the
//! connection live. Events are numbered as the route's own stream numbers
//! them, so each frame carries the cursor it would have had live.
//!
//! It ends at the first event past `until`, or at the first `getMore`
//! that finds nothing: a change stream's `getMore` reads the history to
//! its end before it waits (`maxAwaitTimeMS`) and answers empty.

use std::time::Duration;

use bson::oid::ObjectId;
use bson::raw::RawDocumentBuf;
use bson::{doc, Bson, Document, Timestamp};
use futures::StreamExt;

use super::event::{scan, Elements, Event};
use super::route::{Audience, Route};
use super::users::{notification_frame, user_of};
use crate::protocol::Frame;
use crate::recovery::{Position, Positions};
use crate::settings::KeyType;

/// How long a `getMore` at the end of the history waits before it answers
/// empty, which ends the read.
const AT_THE_END: Duration = Duration::from_millis(100);
/// ChangeStreamHistoryLost: the cursor's time has left the oplog.
const HISTORY_LOST: i32 = 286;

/// Why the history did not answer.
#[derive(Debug, thiserror::Error)]
pub enum Unrecovered {
    #[error("the oplog no longer holds the cursor")]
    HistoryLost,
    #[error("what was missed is over the replay's byte bound")]
    TooLarge,
    #[error("not a user route, or a user the route cannot name")]
    NotAUser,
    #[error("reading the history failed: {0}")]
    Failed(#[from] mongodb::error::Error),
}

/// What the history must answer: whose notifications, after which
/// position, up to which.
pub struct Recall<'a> {
    pub route: &'a Route,
    pub user: &'a str,
    pub after: Position,
    pub until: Position,
    /// The most bytes of frames the answer may hold.
    pub max_bytes: usize,
    pub max_document_bytes: usize,
}

fn timestamp(position: Position) -> Timestamp {
    Timestamp { time: position.time, increment: position.increment }
}

impl Recall<'_> {
    /// The user's notifications after `after`, up to `until`, in stream order.
    pub async fn read(&self, database: &mongodb::Database) -> Result<Vec<Frame>, Unrecovered> {
        let Audience::User { key, key_type } = &self.route.audience else { return Err(Unrecovered::NotAUser) };
        let user = match key_type {
            KeyType::String => Bson::String(self.user.to_string()),
            KeyType::ObjectId => Bson::ObjectId(ObjectId::parse_str(self.user).map_err(|_| Unrecovered::NotAUser)?),
        };
        let until = timestamp(self.until);
        let pipeline = self.route.history_pipeline(user, until).ok_or(Unrecovered::NotAUser)?;
        let mut stage = doc! { "startAtOperationTime": timestamp(self.after) };
        if self.route.lookup {
            stage.insert("fullDocument", "updateLookup");
        }
        let pipeline: Vec<Document> = std::iter::once(doc! { "$changeStream": stage }).chain(pipeline).collect();
        let collection = database.collection::<RawDocumentBuf>(&self.route.collection);
        let opened = collection.aggregate(pipeline).max_await_time(AT_THE_END).batch_size(1000).batch().await;
        let mut batches = opened.map_err(|error| match &*error.kind {
            mongodb::error::ErrorKind::Command(e) if e.code == HISTORY_LOST => Unrecovered::HistoryLost,
            _ => Unrecovered::Failed(error),
        })?;
        let mut answer = Answer { frames: Vec::new(), bytes: 0, positions: Positions::default() };
        let mut first = true;
        while let Some(batch) = batches.next().await {
            let batch = batch?;
            let events = batch.doc_slices().map(|events| events.as_bytes()).unwrap_or_default();
            let mut count = 0;
            for raw in Elements::of(events).filter_map(|element| element.value.document_bytes()) {
                count += 1;
                if self.take(&Event::read(raw), key, *key_type, &mut answer)? == Read::Past {
                    return Ok(answer.frames);
                }
            }
            // The first answer may be empty before anything was read; a
            // `getMore` is empty only at the end of the history, which a
            // MongoDB token also shows (a sharded cluster's router may answer
            // empty while a shard is behind).
            if count == 0 && !first && token_time(&batch).is_none_or(|time| time >= (until.time, until.increment)) {
                return Ok(answer.frames);
            }
            first = false;
        }
        Err(Unrecovered::Failed(mongodb::error::Error::custom("the change stream ended")))
    }

    /// Numbers one event, and keeps it if it is the user's and after the cursor.
    fn take(&self, event: &Event<'_>, key: &str, key_type: KeyType, answer: &mut Answer) -> Result<Read, Unrecovered> {
        let Some(cluster_time) = event.cluster_time() else { return Ok(Read::On) };
        if (cluster_time.time, cluster_time.increment) > (self.until.time, self.until.increment) {
            return Ok(Read::Past);
        }
        let Some(document) = event.full_document() else { return Ok(Read::On) };
        // The route's stream numbers only documents that have its key.
        let Some(owner) = user_of(document, key, key_type) else { return Ok(Read::On) };
        let position = answer.positions.next(cluster_time);
        if position > self.until {
            return Ok(Read::Past);
        }
        if position <= self.after || owner != self.user {
            return Ok(Read::On);
        }
        let cursor = position.cursor(&self.route.name);
        if let Some((frame, _)) = notification_frame(&self.route.name, document, &cursor, self.max_document_bytes) {
            answer.bytes += frame.len();
            if answer.bytes > self.max_bytes {
                return Err(Unrecovered::TooLarge);
            }
            answer.frames.push(frame);
        }
        Ok(Read::On)
    }
}

/// The cluster time of a reply's post-batch resume token, where the token
/// is MongoDB's: its `_data` is hex, a timestamp first (type byte `82`,
/// then seconds and increment, big-endian). Other servers' tokens say
/// nothing here.
fn token_time(batch: &mongodb::raw_batch_cursor::RawBatch) -> Option<(u32, u32)> {
    let [cursor] = scan(batch.as_raw_document().as_bytes(), [b"cursor"]);
    let [token] = scan(cursor?.document()?.as_bytes(), [b"postBatchResumeToken"]);
    time_of_token(token?.document()?.get_str("_data").ok()?)
}

/// The cluster time at the head of a MongoDB resume token's `_data`.
fn time_of_token(data: &str) -> Option<(u32, u32)> {
    let hex = data.strip_prefix("82")?;
    let time = u32::from_str_radix(hex.get(..8)?, 16).ok()?;
    let increment = u32::from_str_radix(hex.get(8..16)?, 16).ok()?;
    Some((time, increment))
}

struct Answer {
    frames: Vec<Frame>,
    bytes: usize,
    positions: Positions,
}

#[derive(PartialEq, Eq)]
enum Read {
    On,
    /// Past `until`: the rest comes live.
    Past,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mongodb_token_starts_with_its_cluster_time_and_others_say_nothing() {
        let token = "826357B1C2000000012B022C0100296E5A10046F3F";
        assert_eq!(time_of_token(token), Some((0x6357_B1C2, 1)));
        assert_eq!(time_of_token("2B000000127300060000000000000011"), None, "not MongoDB's format");
        assert_eq!(time_of_token("8263"), None, "too short");
    }
}
