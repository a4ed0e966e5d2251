//! Notification recovery at connect time: each `since_cursor` names a user
//! route and a position in its stream. The routes to recover are held
//! before the connection is registered for its user, and released once the
//! route's ring was read, as a join does for a room. A recovery is charged
//! to the connection like a replay; one that does not fit says
//! `recovered: false`.

use super::outbound::Outbound;
use super::Session;
use crate::protocol::{self, ErrorCode, Frame, Refusal, ServerFrame};
use crate::recovery::Position;

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
            // Charged like a join's replay, within limits.max_replay_bytes and
            // without waiting; a recovery that does not fit is refused whole,
            // never cut silently.
            let mut reservation = self.connection.empty_reservation();
            let max = self.context.limits.max_replay_bytes;
            let missed = replay.frames.filter(|frames| {
                let bytes: usize = frames.iter().map(Frame::len).sum();
                bytes <= max && reservation.try_grow(bytes)
            });
            let answer = ServerFrame::Recovery { route: &route, recovered: missed.is_some() }.encode();
            let Some(for_answer) = self.connection.reserve(answer.len()).await else { return };
            reservation.absorb(for_answer);
            let frames = std::iter::once(answer).chain(missed.unwrap_or_default()).collect();
            let item = Outbound::RecoveryReady { route, frames, high_water: replay.high_water };
            self.connection.queue_reserved(item, reservation).await;
        }
    }
}
