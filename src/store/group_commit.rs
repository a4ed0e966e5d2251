//! Sends, committed in groups. Concurrent sends to one room inside this
//! process queue on the room's writer; one task at a time takes the queue and
//! writes it as one ordered insert at seqs last + 1, last + 2, … with write
//! concern majority. An ordered insert stops at its first failure, so what it
//! wrote is always a contiguous run of seqs after the room's maximum: each
//! document keeps the single-insert argument for gap-free seqs
//! (docs/design.md), and a busy room pays one commit round trip per group
//! instead of one per send. The unique (room, seq) index still arbitrates
//! between processes. Each writer also keeps a hint of its room's last
//! committed seq; the hint is only a guess, the index is what decides.

use std::collections::VecDeque;

use foldhash::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bson::oid::ObjectId;
use bson::raw::{RawBson, RawDocumentBuf};
use bson::{doc, DateTime, Document};
use mongodb::options::Hint;
use mongodb::Collection;
use tokio::sync::oneshot;
use tracing::Instrument;

use super::error::{duplicate_index, first_refused, StoreError};
use super::heads::Heads;
use super::lookups::{ack_from, max_seq};
use super::queries::resend_filter;
use crate::collections::{CLIENT_ID_INDEX, LEGACY_CLIENT_ID_INDEX};
use crate::prometheus;
use crate::protocol::Ack;

/// First pause when a retry would collide again; it doubles up to the cap.
const CONFLICT_PAUSE: Duration = Duration::from_millis(1);
const CONFLICT_PAUSE_MAX: Duration = Duration::from_millis(50);
/// Sends written by one insert at most: with the largest bodies a few MiB,
/// so the driver never splits the group into several commands.
const MAX_GROUP: usize = 64;

/// A send waiting for its room's next group.
struct QueuedSend {
    author: String,
    client_id: String,
    /// Encoded once, when the send was checked: a group's insert only copies it.
    body: RawBson,
    reply: oneshot::Sender<Result<Ack, StoreError>>,
    /// Whatever the caller keeps alive while the body is held here (the
    /// bytes charged to its connection), dropped with the send once answered.
    _lease: Lease,
}

/// Kept by a queued send until it is answered, then dropped.
pub type Lease = Box<dyn std::any::Any + Send>;

impl QueuedSend {
    fn answer(self, result: Result<Ack, StoreError>) {
        // The sender may have gone away; the write stands, and a resend finds it.
        let _ = self.reply.send(result);
    }
}

fn answer_all(queue: VecDeque<QueuedSend>, error: StoreError) {
    for send in queue {
        send.answer(Err(error.clone()));
    }
}

/// The outcome of a queued send: its ack once majority-committed, or why not.
pub struct PendingAck {
    room: String,
    outcome: oneshot::Receiver<Result<Ack, StoreError>>,
}

impl std::future::Future for PendingAck {
    type Output = Result<Ack, StoreError>;

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Self::Output> {
        let this = &mut *self;
        std::pin::Pin::new(&mut this.outcome).poll(cx).map(|outcome| {
            // Only a panic in the group's task drops the reply unanswered.
            outcome.unwrap_or_else(|_| Err(StoreError::Busy(this.room.clone())))
        })
    }
}

/// The group commits of one process: the `messages` collection with write
/// concern majority, and a writer per room.
#[derive(Clone)]
pub(super) struct GroupCommit {
    /// Read concern majority: an original ack is read from here.
    messages: Collection<Document>,
    /// The same, for inserting documents built from already-encoded bodies.
    raw_messages: Collection<RawDocumentBuf>,
    /// Read concern `local`, for the seq lookup: see docs/design.md ("Why
    /// local is safe for the seq lookup").
    messages_local: Collection<Document>,
    writers: RoomWriters,
    /// The newest seq the stream showed per room, where a room's first
    /// seq lookup starts.
    heads: Arc<Heads>,
    /// How long a send may keep retrying a contended seq.
    timeout: Duration,
}

impl GroupCommit {
    pub fn new(
        messages: Collection<Document>,
        messages_local: Collection<Document>,
        heads: Arc<Heads>,
        timeout: Duration,
    ) -> Self {
        let raw_messages = messages.clone_with_type();
        GroupCommit { messages, raw_messages, messages_local, writers: RoomWriters::default(), heads, timeout }
    }

    /// Records a seq the change stream reported, so the next send to that room
    /// usually needs no lookup.
    pub fn observe(&self, room: &[u8], seq: i64) {
        self.writers.observe(room, seq);
    }

    /// A removed seq: the room's next send here goes above it, whether or
    /// not this process wrote to the room before.
    pub fn hold(&self, room: &str, seq: i64) {
        self.writers.writer(room).raise(seq);
    }

    /// Queues a message for the room's next group commit, at the room's next
    /// seq, and returns its answer. The queue position is taken now, so one
    /// caller's sends to a room get increasing seqs in call order. A repeated
    /// (room, author, client_id) is answered with the original ack.
    #[tracing::instrument(skip(self, body, lease))]
    pub fn queue(&self, room: &str, author: &str, client_id: &str, body: RawBson, lease: Lease) -> PendingAck {
        let writer = self.writers.writer(room);
        let (reply, outcome) = oneshot::channel();
        let (author, client_id) = (author.to_string(), client_id.to_string());
        writer.enqueue(QueuedSend { author, client_id, body, reply, _lease: lease });
        // Its own task: a group must not be abandoned halfway because the
        // connection that happened to lead it went away.
        let (commits, room_name) = (self.clone(), room.to_string());
        tokio::spawn(async move { commits.commit_queued(&room_name, &writer).await }.in_current_span());
        PendingAck { room: room.to_string(), outcome }
    }

    /// Commits whatever is queued for the room, one group at a time.
    async fn commit_queued(&self, room: &str, writer: &RoomWriter) {
        let _serialized = writer.lock.lock().await;
        loop {
            let group = writer.take_queued(MAX_GROUP);
            if group.is_empty() {
                return;
            }
            ::metrics::histogram!(prometheus::SEND_GROUP_SIZE).record(group.len() as f64);
            self.commit_group(room, writer, group.into()).await;
        }
    }

    async fn commit_group(&self, room: &str, writer: &RoomWriter, mut queue: VecDeque<QueuedSend>) {
        let mut last = match writer.last_seq() {
            Some(seq) => seq,
            None => {
                match max_seq(&self.messages_local, room, self.heads.at_least(room).unwrap_or(i64::MIN), self.timeout)
                    .await
                {
                    Ok(seq) => seq,
                    Err(error) => return answer_all(queue, error),
                }
            }
        };
        // The unique index can refuse seq k while the insert holding k is still
        // in flight elsewhere and not yet visible to the read: retrying at once
        // would spin. Pause, with jitter, whenever the re-read shows no progress,
        // and give up (nothing written) after the database timeout.
        let deadline = tokio::time::Instant::now() + self.timeout;
        let mut pause = CONFLICT_PAUSE;
        while !queue.is_empty() {
            if tokio::time::Instant::now() >= deadline {
                return answer_all(queue, StoreError::Busy(room.to_string()));
            }
            let sent_at = DateTime::now();
            let ids: Vec<ObjectId> = queue.iter().map(|_| ObjectId::new()).collect();
            let documents = queue.iter().zip(&ids).zip(last + 1..).map(|((send, id), seq)| {
                let mut document = RawDocumentBuf::new();
                document.append("_id", *id);
                document.append("room", room);
                document.append("seq", seq);
                document.append("author", send.author.as_str());
                document.append("client_id", send.client_id.as_str());
                document.append("body", send.body.clone());
                document.append("sent_at", sent_at);
                document
            });
            let (written, failure) = match self.raw_messages.insert_many(documents).ordered(true).await {
                Ok(_) => (queue.len(), None),
                Err(error) => match first_write_failure(&error) {
                    Some(index) => (index, Some(error)),
                    None => return self.answer_unattributed(room, writer, queue, error).await,
                },
            };
            for ((send, id), seq) in queue.drain(..written).zip(&ids).zip(last + 1..) {
                send.answer(Ok(Ack { room: room.to_string(), seq, id: id.to_hex() }));
            }
            last += written as i64;
            writer.raise(last);
            let Some(error) = failure else { return };
            let refused = queue.pop_front().expect("the refused send is still queued");
            match duplicate_index(&error).as_deref() {
                // The legacy index only exists while a rolling upgrade drops
                // it (docs/design.md): a collision there is a repeated
                // client_id too, and the lookup below finds its original in
                // this room, or answers `pending` until the index is gone.
                Some(CLIENT_ID_INDEX | LEGACY_CLIENT_ID_INDEX) => {
                    let original = self.original_ack(room, &refused.author, &refused.client_id).await;
                    refused.answer(original);
                }
                Some(_) => {
                    // Another writer took seq last + 1: learn the real maximum and retry.
                    queue.push_front(refused);
                    // At least `last`, which is committed: only the seqs
                    // another writer took since are read.
                    let seen = match max_seq(&self.messages_local, room, last, self.timeout).await {
                        Ok(seen) => seen,
                        Err(error) => return answer_all(queue, error),
                    };
                    if seen <= last {
                        tokio::time::sleep(pause.mul_f64(0.5 + fastrand::f64())).await;
                        pause = (pause * 2).min(CONFLICT_PAUSE_MAX);
                    }
                    last = seen.max(last);
                    writer.reset(last);
                }
                // This document alone was refused; the rest get their own try.
                None => refused.answer(Err(StoreError::from_driver(error))),
            }
        }
    }

    /// A group's insert failed without naming a document. When the database
    /// was unavailable, it is unknown what was written: every sender gets
    /// `db_unavailable` and retries with its client_id, which finds what was.
    /// Any other failure refused the command as a whole, so nothing was
    /// written: each send then gets a try of its own, and one bad document
    /// answers only its own send.
    async fn answer_unattributed(
        &self,
        room: &str,
        writer: &RoomWriter,
        queue: VecDeque<QueuedSend>,
        error: mongodb::error::Error,
    ) {
        let error = StoreError::from_driver(error);
        if queue.len() == 1 || matches!(error, StoreError::Unavailable(_)) {
            return answer_all(queue, error);
        }
        tracing::warn!(room, %error, sends = queue.len(), "a group insert was refused as a whole; committing its sends one by one");
        for send in queue {
            Box::pin(self.commit_group(room, writer, VecDeque::from([send]))).await;
        }
    }

    /// The ack of the message an earlier send with this `client_id` wrote
    /// to this room.
    async fn original_ack(&self, room: &str, author: &str, client_id: &str) -> Result<Ack, StoreError> {
        // Majority read: the original may exist locally but not be committed yet,
        // and an ack must never precede the commit. The filter and the hint
        // make it an index lookup, and the time limit keeps a slow one from
        // stalling the room's writer.
        let original = self
            .messages
            .find_one(resend_filter(room, author, client_id))
            .hint(Hint::Name(CLIENT_ID_INDEX.to_string()))
            .max_time(self.timeout)
            .projection(doc! { "room": 1, "seq": 1 })
            .await
            .map_err(StoreError::from_driver)?;
        original.as_ref().map(ack_from).unwrap_or(Err(StoreError::Pending))
    }
}

/// The index of the first document an ordered insert refused, when the
/// documents before it are known to be committed (no write concern error).
fn first_write_failure(error: &mongodb::error::Error) -> Option<usize> {
    match &*error.kind {
        mongodb::error::ErrorKind::InsertMany(failure) if failure.write_concern_error.is_none() => {
            first_refused(error).map(|e| e.index)
        }
        _ => None,
    }
}

/// Room writers kept before idle ones are dropped; a dropped hint costs one indexed read.
const MAX_IDLE_WRITERS: usize = 10_000;
const UNKNOWN: i64 = -1;

/// One room's writer state in this process: its queue of sends, the lock
/// that lets one group at a time be written, and its last-seq hint.
struct RoomWriter {
    lock: tokio::sync::Mutex<()>,
    queued: Mutex<VecDeque<QueuedSend>>,
    last_seq: AtomicI64,
}

impl RoomWriter {
    fn new() -> Self {
        RoomWriter {
            lock: tokio::sync::Mutex::new(()),
            queued: Mutex::new(VecDeque::new()),
            last_seq: AtomicI64::new(UNKNOWN),
        }
    }

    fn enqueue(&self, send: QueuedSend) {
        self.queued.lock().expect("send queue poisoned").push_back(send);
    }

    /// Up to `max` queued sends, oldest first.
    fn take_queued(&self, max: usize) -> Vec<QueuedSend> {
        let mut queued = self.queued.lock().expect("send queue poisoned");
        let count = queued.len().min(max);
        queued.drain(..count).collect()
    }

    /// The last seq known to be committed, if any is known.
    fn last_seq(&self) -> Option<i64> {
        Some(self.last_seq.load(Ordering::Acquire)).filter(|s| *s != UNKNOWN)
    }

    fn raise(&self, seq: i64) {
        self.last_seq.fetch_max(seq, Ordering::AcqRel);
    }

    /// Replaces the hint with an authoritative reading of the room's maximum.
    fn reset(&self, seq: i64) {
        self.last_seq.store(seq, Ordering::Release);
    }
}

type WritersByRoom = HashMap<Box<[u8]>, Arc<RoomWriter>>;

/// The room writers of this process, by room.
#[derive(Clone, Default)]
struct RoomWriters {
    /// Keyed by the name's bytes, so that the change stream can look a room
    /// up before its name is checked to be UTF-8.
    rooms: Arc<Mutex<WritersByRoom>>,
}

impl RoomWriters {
    fn writer(&self, room: &str) -> Arc<RoomWriter> {
        let mut rooms = self.rooms.lock().expect("seq writers poisoned");
        if let Some(writer) = rooms.get(room.as_bytes()) {
            return writer.clone();
        }
        if rooms.len() >= MAX_IDLE_WRITERS {
            rooms.retain(|_, w| Arc::strong_count(w) > 1);
        }
        let writer = Arc::new(RoomWriter::new());
        rooms.insert(room.as_bytes().into(), writer.clone());
        writer
    }

    /// Raises the hint of a room this process writes to; other rooms are ignored
    /// so the map grows with rooms written here, not with all rooms.
    fn observe(&self, room: &[u8], seq: i64) {
        let rooms = self.rooms.lock().expect("seq writers poisoned");
        if let Some(writer) = rooms.get(room) {
            writer.raise(seq);
        }
    }
}
