//! The two wire protocols under test. roomcast speaks JSON objects with a
//! `type`; the peer speaks socket.io 4 over engine.io 4's websocket transport
//! (`0` open, `40` connect, `2`/`3` ping/pong, `42[event,…]`, `43<id>[…]`
//! acks). Both are classified by prefix so that reading a frame costs the same
//! small amount on both sides; the send time is found by one substring search.

use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    Roomcast,
    #[serde(rename = "socket.io")]
    SocketIo,
}

/// How subscribers reach the server: roomcast serves both; the peer only
/// WebSocket (socket.io's websocket transport).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    WebSocket,
    /// roomcast's `GET /sse` stream, frames up in `POST /sse/{session}`.
    Sse,
}

/// What a received text frame means to the load generator.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming {
    /// engine.io handshake: answer with the namespace connect.
    Open,
    /// The session is usable (socket.io namespace connected).
    Connected,
    Joined,
    Ack,
    /// A page of a room's history (`history` frame, or the peer's ack holding `messages`).
    History,
    /// A refused request; the text names why.
    Refused,
    /// A room message; the send time from its body when present.
    Message(Option<i64>),
    /// Who is present in a room, sent after a join.
    Presence,
    /// A user's first connection joined a room.
    PresenceJoin,
    /// A user's last connection left a room.
    PresenceLeave,
    /// A large room's count, instead of its joins and leaves.
    Occupancy,
    /// Another member is typing.
    Typing,
    Notification(Option<i64>),
    /// engine.io ping: must be answered with a pong to stay connected.
    Ping,
    Other,
}

/// The key in every benchmark body and notification holding the send time in µs.
pub const TIME_KEY: &str = "\"bench_t\":";
/// The key naming the publisher that sent a message.
pub const SOURCE_KEY: &str = "\"src\":";
/// The key naming the user of a presence or typing frame (both servers).
pub const USER_KEY: &str = "\"user\":\"";
/// The key of a message's seq: in a history page, its first occurrence is the
/// oldest message's (both servers put `seq` before the body).
pub const SEQ_KEY: &str = "\"seq\":";

impl Target {
    pub const BOTH: [Target; 2] = [Target::Roomcast, Target::SocketIo];

    pub fn name(self) -> &'static str {
        match self {
            Target::Roomcast => "roomcast",
            Target::SocketIo => "socket.io",
        }
    }

    pub fn url(self, port: u16, user: &str) -> String {
        match self {
            Target::Roomcast => format!("ws://127.0.0.1:{port}/ws?user={user}"),
            Target::SocketIo => format!("ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket&user={user}"),
        }
    }

    /// True when the connection needs the engine.io/socket.io handshake first.
    pub fn needs_handshake(self) -> bool {
        self == Target::SocketIo
    }

    pub fn join_frame(self, room: &str, ack_id: u64) -> String {
        match self {
            Target::Roomcast => format!(r#"{{"type":"join","room":"{room}"}}"#),
            Target::SocketIo => format!(r#"42{ack_id}["join","{room}"]"#),
        }
    }

    /// `body` is already serialized JSON.
    pub fn send_frame(self, room: &str, client_id: &str, ack_id: u64, body: &str) -> String {
        match self {
            Target::Roomcast => {
                format!(r#"{{"type":"send","room":"{room}","client_id":"{client_id}","body":{body}}}"#)
            }
            Target::SocketIo => {
                format!(r#"42{ack_id}["send_message",{{"room":"{room}","client_id":"{client_id}","body":{body}}}]"#)
            }
        }
    }

    /// A request for the room's newest `limit` messages with `seq < before`
    /// (the newest messages when `before` is `None`).
    pub fn history_frame(self, room: &str, before: Option<i64>, limit: usize, ack_id: u64) -> String {
        let before = before.map(|b| format!(r#","before":{b}"#)).unwrap_or_default();
        match self {
            Target::Roomcast => format!(r#"{{"type":"history","room":"{room}"{before},"limit":{limit}}}"#),
            Target::SocketIo => format!(r#"42{ack_id}["history",{{"room":"{room}"{before},"limit":{limit}}}]"#),
        }
    }

    /// The user is typing in `room`; neither server answers it.
    pub fn typing_frame(self, room: &str) -> String {
        match self {
            Target::Roomcast => format!(r#"{{"type":"typing","room":"{room}"}}"#),
            Target::SocketIo => format!(r#"42["typing","{room}"]"#),
        }
    }

    /// The frame that answers `Incoming::Ping` or completes `Incoming::Open`.
    pub fn reply(self, incoming: &Incoming) -> Option<&'static str> {
        match (self, incoming) {
            (Target::SocketIo, Incoming::Ping) => Some("3"),
            (Target::SocketIo, Incoming::Open) => Some("40"),
            _ => None,
        }
    }

    pub fn classify(self, text: &str) -> Incoming {
        match self {
            Target::Roomcast => classify_roomcast(text),
            Target::SocketIo => classify_socketio(text),
        }
    }
}

fn classify_roomcast(text: &str) -> Incoming {
    // roomcast serializes `type` first in every server frame.
    let Some(rest) = text.strip_prefix(r#"{"type":""#) else { return Incoming::Other };
    if rest.starts_with("message\"") {
        Incoming::Message(send_time(text))
    } else if rest.starts_with("notification\"") {
        Incoming::Notification(send_time(text))
    } else if rest.starts_with("ack\"") {
        Incoming::Ack
    } else if rest.starts_with("joined\"") {
        Incoming::Joined
    } else if rest.starts_with("history\"") {
        Incoming::History
    } else if rest.starts_with("error\"") {
        Incoming::Refused
    } else {
        ephemeral(rest)
    }
}

/// Presence and typing, named alike by both servers (`rest` starts with the name).
fn ephemeral(rest: &str) -> Incoming {
    if rest.starts_with("typing\"") {
        Incoming::Typing
    } else if rest.starts_with("presence_join\"") {
        Incoming::PresenceJoin
    } else if rest.starts_with("presence_leave\"") {
        Incoming::PresenceLeave
    } else if rest.starts_with("presence\"") {
        Incoming::Presence
    } else if rest.starts_with("occupancy\"") {
        Incoming::Occupancy
    } else {
        Incoming::Other
    }
}

fn classify_socketio(text: &str) -> Incoming {
    if let Some(event) = text.strip_prefix("42[\"") {
        if event.starts_with("message\"") {
            return Incoming::Message(send_time(text));
        }
        if event.starts_with("notification\"") {
            return Incoming::Notification(send_time(text));
        }
        return ephemeral(event);
    }
    if let Some(ack) = text.strip_prefix("43") {
        let payload = ack.trim_start_matches(|c: char| c.is_ascii_digit());
        return if payload.starts_with(r#"[{"room""#) {
            Incoming::Joined
        } else if payload.starts_with(r#"[{"id""#) {
            Incoming::Ack
        } else if payload.starts_with(r#"[{"messages""#) {
            Incoming::History
        } else {
            Incoming::Refused
        };
    }
    match text.as_bytes() {
        [b'0', ..] => Incoming::Open,
        [b'2'] => Incoming::Ping,
        [b'4', b'0', ..] => Incoming::Connected,
        [b'4', b'4', ..] => Incoming::Refused,
        _ => Incoming::Other,
    }
}

/// The integer after the first `"bench_t":` in the frame.
pub fn send_time(text: &str) -> Option<i64> {
    integer_after(text, TIME_KEY)
}

/// A history page's oldest seq (`None` for an empty page) and its `more`
/// flag, which both servers write after the messages: found from the end,
/// so no message body is searched.
pub fn page_summary(text: &str) -> (Option<i64>, bool) {
    let more = text.rfind(r#""more":"#).is_some_and(|at| text[at + 7..].starts_with("true"));
    (integer_after(text, SEQ_KEY), more)
}

/// The number in a user name `<prefix><n>` named by a presence or typing
/// frame; `None` for any other user.
pub fn user_number(text: &str, prefix: &str) -> Option<usize> {
    let start = text.find(USER_KEY)? + USER_KEY.len();
    let name = text[start..].strip_prefix(prefix)?;
    let end = name.find(|c: char| !c.is_ascii_digit()).unwrap_or(name.len());
    name[..end].parse().ok()
}

pub fn integer_after(text: &str, key: &str) -> Option<i64> {
    let start = text.find(key)? + key.len();
    let digits = &text[start..];
    let end = digits.find(|c: char| !c.is_ascii_digit()).unwrap_or(digits.len());
    digits[..end].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_roomcast_frames() {
        let t = Target::Roomcast;
        let message = r#"{"type":"message","room":"r","seq":1,"body":{"bench_t":1234,"src":7,"pad":"x"}}"#;
        assert_eq!(t.classify(message), Incoming::Message(Some(1234)));
        assert_eq!(t.classify(r#"{"type":"ack","client_id":"c"}"#), Incoming::Ack);
        assert_eq!(t.classify(r#"{"type":"joined","room":"r","seq":0}"#), Incoming::Joined);
        assert_eq!(t.classify(r#"{"type":"error","code":"x"}"#), Incoming::Refused);
        let note = r#"{"type":"notification","data":{"user":"u","bench_t":99}}"#;
        assert_eq!(t.classify(note), Incoming::Notification(Some(99)));
    }

    #[test]
    fn classifies_socketio_packets() {
        let t = Target::SocketIo;
        assert_eq!(t.classify(r#"0{"sid":"a","pingInterval":25000}"#), Incoming::Open);
        assert_eq!(t.classify(r#"40{"sid":"b"}"#), Incoming::Connected);
        assert_eq!(t.classify("2"), Incoming::Ping);
        assert_eq!(t.classify(r#"4312[{"room":"r"}]"#), Incoming::Joined);
        assert_eq!(t.classify(r#"437[{"id":"65a"}]"#), Incoming::Ack);
        assert_eq!(t.classify(r#"437[{"error":"not_joined"}]"#), Incoming::Refused);
        let message = r#"42["message",{"_id":"x","room":"r","body":{"bench_t":55,"src":1}}]"#;
        assert_eq!(t.classify(message), Incoming::Message(Some(55)));
    }

    #[test]
    fn reads_history_pages_of_both() {
        let page = r#"{"type":"history","room":"h","messages":[{"type":"message","room":"h","seq":7,"id":"a","author":"x","body":{"text":"seq"}},{"type":"message","room":"h","seq":8}],"more":true}"#;
        assert_eq!(Target::Roomcast.classify(page), Incoming::History);
        assert_eq!(page_summary(page), (Some(7), true));
        let page = r#"4312[{"messages":[{"_id":"6a","room":"h","seq":3,"author":"x"}],"more":false}]"#;
        assert_eq!(Target::SocketIo.classify(page), Incoming::History);
        assert_eq!(page_summary(page), (Some(3), false));
        assert_eq!(page_summary(r#"{"type":"history","room":"h","messages":[],"more":false}"#), (None, false));
        assert_eq!(Target::Roomcast.history_frame("h", None, 50, 1), r#"{"type":"history","room":"h","limit":50}"#);
        let frame = Target::SocketIo.history_frame("h", Some(120), 50, 4);
        assert_eq!(frame, r#"424["history",{"room":"h","before":120,"limit":50}]"#);
    }

    #[test]
    fn classifies_presence_and_typing_of_both() {
        let r = Target::Roomcast;
        assert_eq!(r.classify(r#"{"type":"presence","room":"p","users":["a"],"count":1}"#), Incoming::Presence);
        let join = r#"{"type":"presence_join","room":"p","user":"ch-42"}"#;
        assert_eq!(r.classify(join), Incoming::PresenceJoin);
        assert_eq!(user_number(join, "ch-"), Some(42));
        assert_eq!(user_number(join, "ty-"), None);
        assert_eq!(r.classify(r#"{"type":"presence_leave","room":"p","user":"u"}"#), Incoming::PresenceLeave);
        assert_eq!(r.classify(r#"{"type":"occupancy","room":"p","count":1001}"#), Incoming::Occupancy);
        assert_eq!(r.classify(r#"{"type":"typing","room":"p","user":"ty-3"}"#), Incoming::Typing);
        let s = Target::SocketIo;
        assert_eq!(s.classify(r#"42["presence",{"room":"p","users":[],"count":0}]"#), Incoming::Presence);
        assert_eq!(s.classify(r#"42["presence_join",{"room":"p","user":"ch-7"}]"#), Incoming::PresenceJoin);
        assert_eq!(s.classify(r#"42["presence_leave",{"room":"p","user":"ch-7"}]"#), Incoming::PresenceLeave);
        let typing = r#"42["typing",{"room":"p","user":"ty-12"}]"#;
        assert_eq!(s.classify(typing), Incoming::Typing);
        assert_eq!(user_number(typing, "ty-"), Some(12));
        assert_eq!(r.typing_frame("p"), r#"{"type":"typing","room":"p"}"#);
        assert_eq!(s.typing_frame("p"), r#"42["typing","p"]"#);
    }

    #[test]
    fn frames_carry_the_body_verbatim() {
        let body = r#"{"bench_t":1,"src":2}"#;
        let frame = Target::SocketIo.send_frame("r", "c-1", 3, body);
        assert_eq!(frame, r#"423["send_message",{"room":"r","client_id":"c-1","body":{"bench_t":1,"src":2}}]"#);
        assert_eq!(integer_after(&frame, SOURCE_KEY), Some(2));
    }
}
