//! Notification recovery at connect time: each `since_cursor` names a user
//! route and a position in its stream. The routes to recover are held
//! before the connection is registered for its user, and released once the
//! route's ring was read, as a join does for a room.

use super::session::Session;
use crate::fanout::Outbound;
use crate::protocol::{self, ErrorCode, Refusal, ServerFrame};
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
        self.context.registry.add_user(&self.connection);
        for (route, after) in recoveries {
            let replay = self.context.rings[&route].replay(&self.connection.user, after);
            let recovered = replay.frames.is_some();
            let mut frames = vec![ServerFrame::Recovery { route: &route, recovered }.encode()];
            frames.extend(replay.frames.unwrap_or_default());
            self.connection.reply(Outbound::RecoveryReady { route, frames, high_water: replay.high_water }).await;
        }
    }
}
