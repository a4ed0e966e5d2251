//! Checks of the settings that types alone cannot express. Each failure
//! names its key, in the same one-line form as a parse error.

use std::time::Duration;

use super::{AuthMode, Channel, ConfigError, Environment, KeyType, Operation, Settings};
use crate::collections::MESSAGES;

impl Settings {
    /// Checks what types alone cannot express.
    pub fn validate(&self, environment: Environment) -> Result<(), ConfigError> {
        if environment == Environment::Production && self.auth.mode == AuthMode::None {
            return Err(ConfigError::new(
                "auth.mode",
                "`none` is for local use only and is refused when ROOMCAST_ENV=production",
            ));
        }
        if !self.mongo.uri.starts_with("mongodb://") && !self.mongo.uri.starts_with("mongodb+srv://") {
            return Err(ConfigError::new("mongo.uri", "must start with mongodb:// or mongodb+srv://"));
        }
        if self.mongo.database.is_empty() || self.mongo.database.contains(['/', '.', ' ', '$']) {
            return Err(ConfigError::new("mongo.database", "must be a non-empty MongoDB database name"));
        }
        let positive = [
            ("limits.max_frame_bytes", self.limits.max_frame_bytes),
            ("limits.max_body_bytes", self.limits.max_body_bytes),
            ("limits.max_body_depth", self.limits.max_body_depth),
            ("limits.send_queue_frames", self.limits.send_queue_frames),
            ("limits.send_queue_bytes", self.limits.send_queue_bytes),
            ("limits.max_rooms_per_connection", self.limits.max_rooms_per_connection),
            ("limits.max_joined_rooms", self.limits.max_joined_rooms),
            ("limits.max_connections_per_user", self.limits.max_connections_per_user),
            ("limits.sends_per_second", self.limits.sends_per_second as usize),
            ("limits.send_burst", self.limits.send_burst as usize),
            ("limits.joins_per_second", self.limits.joins_per_second as usize),
            ("limits.join_burst", self.limits.join_burst as usize),
            ("limits.handshakes_per_second_per_ip", self.limits.handshakes_per_second_per_ip as usize),
            ("limits.handshake_burst_per_ip", self.limits.handshake_burst_per_ip as usize),
            ("limits.max_replay_bytes", self.limits.max_replay_bytes),
            ("limits.max_history_page", self.limits.max_history_page.max(0) as usize),
            ("limits.max_rooms_listed", self.limits.max_rooms_listed),
            ("limits.presence_max_listed", self.limits.presence_max_listed),
            ("limits.read_markers_per_second", self.limits.read_markers_per_second as usize),
            ("limits.read_marker_burst", self.limits.read_marker_burst as usize),
            ("limits.max_document_bytes", self.limits.max_document_bytes),
            ("limits.connection_reserve_bytes", self.limits.connection_reserve_bytes),
            ("limits.max_connections", self.limits.max_connections),
            ("recovery.max_bytes", self.recovery.max_bytes),
            ("limits.http_connections_per_ip", self.limits.http_connections_per_ip),
            ("limits.user_pool_bytes", self.limits.user_pool_bytes),
            ("mongo.max_pool_size", self.mongo.max_pool_size as usize),
        ];
        if let Some((key, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(ConfigError::new(*key, "must be greater than 0"));
        }
        self.validate_budgets()?;
        if environment == Environment::Production && self.auth.mode == AuthMode::Jwt {
            let jwt = &self.auth.jwt;
            if jwt.issuer.is_none() && !jwt.allow_any_issuer {
                return Err(ConfigError::new(
                    "auth.jwt.issuer",
                    "is required in production, so tokens minted for other applications are refused \
                     (or set auth.jwt.allow_any_issuer: true)",
                ));
            }
            if jwt.audience.is_none() && !jwt.allow_any_audience {
                return Err(ConfigError::new(
                    "auth.jwt.audience",
                    "is required in production, so tokens minted for other applications are refused \
                     (or set auth.jwt.allow_any_audience: true)",
                ));
            }
        }
        if self.presence.heartbeat_interval < Duration::from_millis(100)
            || self.presence.replica_timeout < self.presence.heartbeat_interval * 2
        {
            return Err(ConfigError::new(
                "presence.replica_timeout",
                "must be at least twice presence.heartbeat_interval, which must be at least 100ms",
            ));
        }
        if self.limits.typing_interval.is_zero() {
            return Err(ConfigError::new("limits.typing_interval", "must be longer than 0s"));
        }
        if self.limits.max_replay < 0 {
            return Err(ConfigError::new("limits.max_replay", "must not be negative"));
        }
        if self.relay.max_backoff < Duration::from_millis(100) {
            return Err(ConfigError::new("relay.max_backoff", "must be at least 100ms"));
        }
        if self.server.ping_interval.is_zero() || self.server.idle_timeout <= self.server.ping_interval {
            return Err(ConfigError::new(
                "server.idle_timeout",
                "must be longer than server.ping_interval, which must be above 0",
            ));
        }
        let timeouts = [
            ("server.header_timeout", self.server.header_timeout),
            ("server.keep_alive_timeout", self.server.keep_alive_timeout),
            ("server.write_timeout", self.server.write_timeout),
            ("mongo.query_timeout", self.mongo.query_timeout),
        ];
        if let Some((key, _)) = timeouts.iter().find(|(_, timeout)| timeout.is_zero()) {
            return Err(ConfigError::new(*key, "must be longer than 0s"));
        }
        self.validate_proxies()?;
        self.validate_routes()
    }

    /// Everything a connection holds must fit in its budget: a replay, the
    /// largest relayed frame, its reserve.
    fn validate_budgets(&self) -> Result<(), ConfigError> {
        let limits = &self.limits;
        let must_fit = [
            (
                "limits.connection_reserve_bytes",
                limits.connection_reserve_bytes,
                "limits.send_queue_bytes",
                limits.send_queue_bytes,
            ),
            ("limits.max_replay_bytes", limits.max_replay_bytes, "limits.send_queue_bytes", limits.send_queue_bytes),
            (
                "limits.max_document_bytes",
                limits.max_document_bytes,
                "limits.max_replay_bytes",
                limits.max_replay_bytes,
            ),
            ("limits.max_body_bytes", limits.max_body_bytes, "limits.max_document_bytes", limits.max_document_bytes),
            ("limits.user_pool_bytes", limits.user_pool_bytes, "limits.buffer_pool_bytes", limits.buffer_pool_bytes),
        ];
        for (key, value, bound_key, bound) in must_fit {
            if value > bound {
                return Err(ConfigError::new(key, format!("must not exceed {bound_key} ({bound})")));
            }
        }
        // A user's one connection may fill its own cap.
        let one_connection = limits.send_queue_bytes.saturating_sub(limits.connection_reserve_bytes);
        if limits.user_pool_bytes < one_connection {
            return Err(ConfigError::new(
                "limits.user_pool_bytes",
                format!(
                    "must be at least limits.send_queue_bytes - limits.connection_reserve_bytes ({one_connection}), \
                     what one connection may borrow"
                ),
            ));
        }
        Ok(())
    }

    fn validate_proxies(&self) -> Result<(), ConfigError> {
        let trusted = self.server.trusted_networks()?;
        // A forwarding header that no proxy of ours appends to holds only what
        // the client wrote: believing it would let anyone pick their address.
        if self.server.client_ip_header.is_some() && trusted.is_empty() {
            return Err(ConfigError::new(
                "server.trusted_proxies",
                "must list the proxies that append server.client_ip_header (their networks, e.g. 10.0.0.0/8)",
            ));
        }
        if let Some(header) = &self.server.client_ip_header {
            // RFC 9110's token: a header name with a space or a colon would never match.
            let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
            if header.is_empty() || !header.bytes().all(token) {
                return Err(ConfigError::new("server.client_ip_header", format!("`{header}` is not a header name")));
            }
        }
        Ok(())
    }

    fn validate_routes(&self) -> Result<(), ConfigError> {
        let mut names = std::collections::HashSet::new();
        let mut room_routes = 0;
        for (i, route) in self.routes.iter().enumerate() {
            let at = |field: &str| format!("routes[{i}].{field}");
            if route.name.is_empty() || !names.insert(route.name.as_str()) {
                return Err(ConfigError::new(at("name"), "must be non-empty and unique"));
            }
            if route.collection.is_empty() || route.collection.starts_with("system.") {
                return Err(ConfigError::new(at("collection"), "must name a user collection"));
            }
            if route.key.is_empty() || route.key.starts_with('$') {
                return Err(ConfigError::new(at("key"), "must name a document field"));
            }
            if route.operations.is_empty() {
                return Err(ConfigError::new(at("operations"), "must list at least one operation"));
            }
            if let Some(filter) = &route.filter {
                if let Err(e) = bson::to_document(filter) {
                    return Err(ConfigError::new(at("match"), e.to_string()));
                }
            }
            if route.channel == Channel::User && route.operations.contains(&Operation::Delete) {
                // A user is told of documents, not of their removal.
                return Err(ConfigError::new(at("operations"), "`delete` is for the room route only"));
            }
            if route.channel == Channel::Room {
                room_routes += 1;
                if route.key_type != KeyType::String {
                    return Err(ConfigError::new(at("key_type"), "a room route's key is the room name, a string"));
                }
                // Room fan-out promises one gap-free seq stream per room, which only
                // holds when a single route feeds rooms from the collection that
                // sends are written to and history is read from.
                if route.collection != MESSAGES {
                    return Err(ConfigError::new(at("collection"), format!("a room route must watch `{}`", MESSAGES)));
                }
                if route.key != "room" {
                    return Err(ConfigError::new(at("key"), "a room route's key must be `room`"));
                }
            }
        }
        if room_routes > 1 {
            return Err(ConfigError::new("routes", "at most one route may have channel `room`"));
        }
        Ok(())
    }
}
