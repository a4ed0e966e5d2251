//! A chat client that behaves as docs/protocol.md asks a real one to: it keeps
//! a window of sends in flight, and when its connection breaks it reconnects
//! (to the first replica that answers), re-joins with `since` = the last seq
//! it holds and resends every unacknowledged send with its `client_id`.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::client::PATIENCE;

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub struct Chatter {
    pub user: String,
    room: String,
    ports: Vec<u16>,
    socket: Option<Socket>,
    /// The room's seqs received on each connection, in arrival order.
    pub connections: Vec<Vec<i64>>,
    pub last_seq: i64,
    /// Sent and not acknowledged yet: client_id → body.
    unacked: BTreeMap<String, Value>,
    /// client_id → seq, from acks.
    pub acked: HashMap<String, i64>,
    pub reconnects: usize,
    /// The longest time between two acks of this client.
    pub worst_pause: Duration,
    last_ack: Option<Instant>,
    /// When a message or an ack last arrived; pings do not count, or a
    /// server that keeps pinging would keep a stuck client waiting forever.
    last_progress: Instant,
    pub errors: Vec<Value>,
    /// Bytes of filler in each body, to make messages heavy.
    pub padding: usize,
    /// The current connection re-joined after a failed join: the replay may
    /// repeat what was already in flight, which the protocol says to drop by seq.
    rejoined_live: bool,
}

/// What a frame asks the client to do next.
enum Next {
    Nothing,
    Resend(String, Value),
    /// The join failed (the database was unreachable): join again, then resend.
    Rejoin(Option<(String, Value)>),
}

impl Chatter {
    pub async fn connect(ports: Vec<u16>, user: &str, room: &str) -> Chatter {
        let mut chatter = Chatter {
            user: user.to_string(),
            room: room.to_string(),
            ports,
            socket: None,
            connections: Vec::new(),
            last_seq: 0,
            unacked: BTreeMap::new(),
            acked: HashMap::new(),
            reconnects: 0,
            worst_pause: Duration::ZERO,
            last_ack: None,
            last_progress: Instant::now(),
            errors: Vec::new(),
            padding: 0,
            rejoined_live: false,
        };
        chatter.reconnect().await;
        chatter.reconnects = 0;
        chatter
    }

    /// Connects to the first replica that accepts, joins with `since`, resends.
    async fn reconnect(&mut self) {
        self.reconnects += 1;
        let deadline = Instant::now() + PATIENCE;
        let mut socket = loop {
            let mut connected = None;
            for port in &self.ports {
                let url = format!("ws://127.0.0.1:{port}/ws?user={}", self.user);
                if let Ok((socket, _)) = tokio_tungstenite::connect_async(url).await {
                    connected = Some(socket);
                    break;
                }
            }
            if let Some(socket) = connected {
                break socket;
            }
            assert!(Instant::now() < deadline, "{}: no replica accepted a connection", self.user);
            // Nobody is listening yet: back off a little before trying again.
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let join = json!({"type": "join", "room": self.room, "since": self.last_seq});
        socket.send(Message::text(join.to_string())).await.expect("send join");
        self.connections.push(Vec::new());
        self.socket = Some(socket);
        self.rejoined_live = false;
        self.last_progress = Instant::now();
        let unacked: Vec<(String, Value)> = self.unacked.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        for (client_id, body) in unacked {
            if !self.transmit(&client_id, &body).await {
                return;
            }
        }
    }

    async fn rejoin(&mut self) {
        let join = json!({"type": "join", "room": self.room, "since": self.last_seq});
        if let Some(socket) = self.socket.as_mut() {
            let _ = socket.send(Message::text(join.to_string())).await;
            self.rejoined_live = true;
        }
    }

    async fn transmit(&mut self, client_id: &str, body: &Value) -> bool {
        let frame = json!({"type": "send", "room": self.room, "client_id": client_id, "body": body});
        match self.socket.as_mut() {
            Some(socket) => socket.send(Message::text(frame.to_string())).await.is_ok(),
            None => false,
        }
    }

    /// Sends `count` messages with at most `window` unacknowledged, then reads
    /// until the room has reached `until_seq`. `acks` counts every ack of every
    /// chatter, so a test can strike at a chosen moment.
    pub async fn run(mut self, count: usize, window: usize, until_seq: i64, acks: Arc<AtomicUsize>) -> Chatter {
        let mut next = 0;
        while next < count || !self.unacked.is_empty() || self.last_seq < until_seq {
            while next < count && self.unacked.len() < window {
                let client_id = format!("{}-{next}", self.user);
                let body = json!({"from": self.user, "i": next, "pad": "x".repeat(self.padding)});
                self.unacked.insert(client_id.clone(), body.clone());
                next += 1;
                if !self.transmit(&client_id, &body).await {
                    break;
                }
            }
            match self.read().await {
                Some(frame) => match self.absorb(frame, &acks) {
                    Next::Nothing => {}
                    Next::Resend(client_id, body) => {
                        self.transmit(&client_id, &body).await;
                    }
                    Next::Rejoin(resend) => {
                        self.rejoin().await;
                        if let Some((client_id, body)) = resend {
                            self.transmit(&client_id, &body).await;
                        }
                    }
                },
                None => self.reconnect().await,
            }
        }
        self
    }

    async fn read(&mut self) -> Option<Value> {
        let socket = self.socket.as_mut()?;
        loop {
            let deadline = tokio::time::Instant::from_std(self.last_progress + PATIENCE);
            let message = tokio::time::timeout_at(deadline, socket.next())
                .await
                .unwrap_or_else(|_| panic!("{}: no message or ack for {PATIENCE:?}", self.user));
            match message {
                Some(Ok(Message::Text(text))) => return Some(serde_json::from_str(&text).unwrap()),
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                    self.socket = None;
                    return None;
                }
                Some(Ok(_)) => continue,
            }
        }
    }

    /// Takes in one frame, and says what to do about it.
    fn absorb(&mut self, frame: Value, acks: &AtomicUsize) -> Next {
        match frame["type"].as_str().unwrap_or("") {
            "message" if frame["room"] == self.room.as_str() => {
                let seq = frame["seq"].as_i64().unwrap();
                self.last_progress = Instant::now();
                if self.rejoined_live && seq <= self.last_seq {
                    return Next::Nothing;
                }
                self.connections.last_mut().unwrap().push(seq);
                self.last_seq = self.last_seq.max(seq);
            }
            "ack" => {
                self.last_progress = Instant::now();
                let client_id = frame["client_id"].as_str().unwrap().to_string();
                if self.unacked.remove(&client_id).is_some() {
                    acks.fetch_add(1, Ordering::SeqCst);
                }
                let seq = frame["seq"].as_i64().unwrap();
                if let Some(previous) = self.acked.insert(client_id.clone(), seq) {
                    assert_eq!(previous, seq, "{client_id} acked twice with different seqs");
                }
                let now = Instant::now();
                if let Some(last) = self.last_ack {
                    self.worst_pause = self.worst_pause.max(now - last);
                }
                self.last_ack = Some(now);
            }
            "error" => {
                let code = frame["code"].as_str().unwrap_or("").to_string();
                let client_id = frame["ref"]["client_id"].as_str().map(str::to_string);
                let pending =
                    client_id.as_ref().and_then(|id| self.unacked.get(id).map(|body| (id.clone(), body.clone())));
                self.errors.push(frame);
                return match (code.as_str(), client_id, pending) {
                    // A failed join (no client_id): the database was unreachable; join again.
                    ("db_unavailable", None, _) => Next::Rejoin(None),
                    // Each refusal took the server's database timeout, which paces these retries.
                    ("db_unavailable" | "pending", Some(_), Some(send)) => Next::Resend(send.0, send.1),
                    // The join behind this send had failed: join again, then resend it.
                    ("not_joined", Some(_), Some(send)) => Next::Rejoin(Some(send)),
                    (_, Some(id), Some(_)) => {
                        // Any other refusal of a send is a broken promise, not something to wait out.
                        panic!("{}: send {id} refused with {code}: {:?}", self.user, self.errors.last())
                    }
                    _ => Next::Nothing,
                };
            }
            _ => {}
        }
        Next::Nothing
    }

    /// Every seq this client received, across its connections, in order.
    pub fn received(&self) -> Vec<i64> {
        self.connections.iter().flatten().copied().collect()
    }
}
