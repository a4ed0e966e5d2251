//! Notification recovery at connect time: each `since_cursor` names a user
//! route and a position in its stream. The routes to recover are held
//! before the connection is registered for its user, and released once
//! what was missed is read, as a join does for a room: from the route's
//! ring, or, for a cursor the ring does not cover, from MongoDB's own
//! history (`relay::Recall`), within `recovery.max_scans` at once and
//! `recovery.max_scan_span` back. A recovery is charged to the connection
//! like a replay; one that does not fit, or that neither can answer, says
//! `recovered: false`.

use super::outbound::Outbound;
use super::Session;
use crate::prometheus;
use crate::protocol::{self, ErrorCode, Frame, Refusal, ServerFrame};
use crate::recovery::{Position, Replay};
use crate::relay::{Recall, Unrecovered};

impl Session {
    /// Registers the connection for its user's notifications, recovering what
    /// it missed after each cursor.
    pub(super) async fn recover_notifications(&mut self, cursors: &[String]) {
        let mut recoveries: Vec<(String, Position)> = Vec::new();
        for cursor in cursors {
            match Position::parse_cursor(cursor) {
                Some((route, position)) if self.context.rings.contains_key(route) => {
                    if !recoveries.iter().any(|(known, _)| known == route) {
                        recoveries.push((route.to_string(), position));
                    }
                }
                _ => {
                    let refusal = Refusal::new(ErrorCode::InvalidField, "since_cursor is not a cursor of a user route");
                    self.reply(protocol::error(&refusal, Some(&serde_json::json!({ "since_cursor": cursor })))).await;
                }
            }
        }
        for (route, _) in &recoveries {
            self.connection.reply(Outbound::RecoveryStarted(route.clone())).await;
        }
        self.context.registry.add_user(&self.listener());
        // A shutdown that began before the registration did not find this
        // connection among those it told to go away.
        if self.context.shutdown.is_cancelled() {
            self.connection.go_away();
        }
        for (route, after) in recoveries {
            let replay = self.context.rings[&route].replay(&self.connection.user, after);
            let high_water = replay.high_water;
            let missed = match replay.frames {
                Some(frames) => Some(frames),
                // Boxed: it runs once, and its state would sit in every task.
                None => Box::pin(self.recall(&route, after, &replay)).await,
            };
            // Charged like a join's replay, within limits.max_replay_bytes and
            // without waiting; a recovery that does not fit is refused whole,
            // never cut silently.
            let mut reservation = self.connection.empty_reservation();
            let max = self.context.limits.max_replay_bytes;
            let missed = missed.filter(|frames| {
                let bytes: usize = frames.iter().map(Frame::len).sum();
                bytes <= max && reservation.try_grow(bytes)
            });
            let answer = ServerFrame::Recovery { route: &route, recovered: missed.is_some() }.encode();
            let Some(for_answer) = self.connection.reserve(answer.len()).await else { return };
            reservation.absorb(for_answer);
            let frames = std::iter::once(answer).chain(missed.unwrap_or_default()).collect();
            let item = Outbound::RecoveryReady { route, frames, high_water };
            self.connection.queue_reserved(item, reservation).await;
        }
    }

    /// What the ring does not hold, read from MongoDB's history: `None`
    /// when the cursor is older than `recovery.max_scan_span`, the replica
    /// reads `recovery.max_scans` histories already, or the history cannot
    /// answer in `recovery.scan_timeout` or within the replay's bytes.
    async fn recall(&self, route: &str, after: Position, replay: &Replay) -> Option<Vec<Frame>> {
        let settings = &self.context.recovery;
        let outcome = |result: &'static str| {
            ::metrics::counter!(prometheus::RECOVERY_SCANS, "result" => result).increment(1);
        };
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let age = now.saturating_sub(std::time::Duration::from_secs(after.time.into()));
        if !replay.started || age >= settings.max_scan_span {
            outcome("too_old");
            return None;
        }
        let Ok(permit) = self.context.scans.try_acquire() else {
            outcome("busy");
            return None;
        };
        self.context.count_scans();
        let recall = Recall {
            route: self.context.user_routes.get(route)?,
            user: &self.connection.user,
            after,
            until: replay.high_water,
            max_bytes: self.context.limits.max_replay_bytes,
            max_document_bytes: self.context.limits.max_document_bytes,
        };
        let read = tokio::time::timeout(settings.scan_timeout, recall.read(self.context.store.database())).await;
        let result = match read {
            Ok(Ok(frames)) => {
                outcome("recovered");
                Some(frames)
            }
            Ok(Err(Unrecovered::HistoryLost)) => {
                outcome("history_lost");
                None
            }
            Ok(Err(Unrecovered::TooLarge)) => {
                outcome("too_large");
                None
            }
            Ok(Err(error)) => {
                tracing::warn!(route, %error, "cannot recover notifications from the history");
                outcome("failed");
                None
            }
            Err(_) => {
                outcome("timed_out");
                None
            }
        };
        drop(permit);
        self.context.count_scans();
        result
    }
}
