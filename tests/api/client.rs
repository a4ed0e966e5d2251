//! A real WebSocket client (tokio-tungstenite) that keeps every frame it
//! received, in order, so tests can wait for one frame and still assert on
//! everything that came before it.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Upper bound on waiting for a frame that must come; reaching it fails the test.
pub const PATIENCE: Duration = Duration::from_secs(30);

pub struct Client {
    pub socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// Every text frame received, in order of arrival.
    pub seen: Vec<Value>,
    /// Which frames of `seen` a `wait_for` already returned.
    claimed: Vec<bool>,
}

impl Client {
    pub async fn connect(port: u16, user: &str) -> Client {
        Client::connect_query(port, &format!("user={user}")).await
    }

    /// Connects with a raw query string, e.g. `user=bob&since_cursor=...`.
    pub async fn connect_query(port: u16, query: &str) -> Client {
        let url = format!("ws://127.0.0.1:{port}/ws?{query}");
        let (socket, _) = tokio_tungstenite::connect_async(url).await.expect("websocket handshake");
        Client { socket, seen: Vec::new(), claimed: Vec::new() }
    }

    /// A handshake to `/ws{query}` with extra request headers: the client, or
    /// the HTTP status it was refused with.
    pub async fn handshake(port: u16, query: &str, headers: &[(&str, &str)]) -> Result<Client, u16> {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        use tokio_tungstenite::tungstenite::http::HeaderName;
        let mut request = format!("ws://127.0.0.1:{port}/ws{query}").into_client_request().unwrap();
        for (name, value) in headers {
            request.headers_mut().insert(HeaderName::from_bytes(name.as_bytes()).unwrap(), value.parse().unwrap());
        }
        match tokio_tungstenite::connect_async(request).await {
            Ok((socket, _)) => Ok(Client::from_socket(socket)),
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => Err(response.status().as_u16()),
            Err(other) => panic!("{other}"),
        }
    }

    pub fn from_socket(socket: WebSocketStream<MaybeTlsStream<TcpStream>>) -> Client {
        Client { socket, seen: Vec::new(), claimed: Vec::new() }
    }

    /// A client whose socket buffers almost nothing, so a client that stops
    /// reading is really stuck after a few frames rather than after megabytes.
    pub async fn connect_stingy(port: u16, user: &str) -> Client {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let stream = socket.connect(([127, 0, 0, 1], port).into()).await.unwrap();
        let url = format!("ws://127.0.0.1:{port}/ws?user={user}");
        let (socket, _) = tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(stream)).await.unwrap();
        Client { socket, seen: Vec::new(), claimed: Vec::new() }
    }

    /// Every notification frame seen so far, in arrival order.
    pub fn notifications(&self) -> Vec<&Value> {
        self.seen.iter().filter(|f| f["type"] == "notification").collect()
    }

    pub async fn send(&mut self, frame: Value) {
        self.send_text(frame.to_string()).await;
    }

    pub async fn send_text(&mut self, text: String) {
        self.socket.send(Message::text(text)).await.expect("send frame");
    }

    /// Reads one more text frame from the socket into `seen`, failing at
    /// `deadline`: WebSocket pings and unrelated frames do not extend it.
    async fn receive_by(&mut self, deadline: tokio::time::Instant) -> Value {
        loop {
            let message = tokio::time::timeout_at(deadline, self.socket.next())
                .await
                .unwrap_or_else(|_| panic!("no frame within {PATIENCE:?}; seen so far: {:#?}", self.seen))
                .expect("socket ended")
                .expect("socket error");
            match message {
                Message::Text(text) => {
                    let frame: Value = serde_json::from_str(&text).expect("server frames are JSON");
                    self.seen.push(frame.clone());
                    self.claimed.push(false);
                    return frame;
                }
                Message::Close(close) => panic!("closed by server: {close:?}; seen: {:#?}", self.seen),
                _ => continue,
            }
        }
    }

    /// Returns the earliest frame that matches and no earlier `wait_for`
    /// returned, receiving more frames until one does. Frames arrive in any
    /// interleaving (an ack may precede or follow the echo), so this never
    /// skips past a frame a later call may want.
    pub async fn wait_for(&mut self, matches: impl Fn(&Value) -> bool) -> Value {
        if let Some(index) = (0..self.seen.len()).find(|&i| !self.claimed[i] && matches(&self.seen[i])) {
            self.claimed[index] = true;
            return self.seen[index].clone();
        }
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let frame = self.receive_by(deadline).await;
            if matches(&frame) {
                *self.claimed.last_mut().unwrap() = true;
                return frame;
            }
        }
    }

    /// Reads until `count` frames matching `matches` have been seen in all.
    pub async fn wait_for_count(&mut self, count: usize, matches: impl Fn(&Value) -> bool) {
        let mut deadline = tokio::time::Instant::now() + PATIENCE;
        let mut have = self.seen.iter().filter(|f| matches(f)).count();
        while have < count {
            let frame = self.receive_by(deadline).await;
            if matches(&frame) {
                // Progress: each matching frame gives the next one PATIENCE.
                have += 1;
                deadline = tokio::time::Instant::now() + PATIENCE;
            }
        }
    }

    /// Waits for the close frame and returns its code and reason.
    pub async fn closed(&mut self) -> (u16, String) {
        loop {
            let message = tokio::time::timeout(PATIENCE, self.socket.next()).await.expect("no close within patience");
            match message {
                Some(Ok(Message::Close(Some(frame)))) => return (frame.code.into(), frame.reason.to_string()),
                Some(Ok(Message::Close(None))) | None => panic!("closed without a code"),
                Some(Ok(Message::Text(text))) => {
                    self.seen.push(serde_json::from_str(&text).unwrap());
                    self.claimed.push(false);
                }
                Some(Ok(_)) => {}
                Some(Err(error)) => panic!("socket error before close: {error}"),
            }
        }
    }

    /// Every message frame of a room seen so far, in arrival order.
    pub fn messages(&self, room: &str) -> Vec<&Value> {
        self.seen.iter().filter(|f| f["type"] == "message" && f["room"] == room).collect()
    }

    /// The seqs of a room's message frames seen so far, in arrival order.
    pub fn seqs(&self, room: &str) -> Vec<i64> {
        self.messages(room).iter().map(|f| f["seq"].as_i64().unwrap()).collect()
    }

    /// A round trip: every frame the server queued before the pong was seen.
    pub async fn ping(&mut self) {
        self.send(json!({"type": "ping"})).await;
        self.wait_for(|f| f["type"] == "pong").await;
    }
}

/// What a test says to the relay and waits to hear back, over whichever
/// transport: the shared steps of a conversation, in terms of the two
/// things each client does its own way.
#[allow(async_fn_in_trait)] // used by the tests alone, never as `dyn`
pub trait Conversation {
    async fn send(&mut self, frame: Value);

    /// The earliest frame that matches and no earlier call returned.
    async fn wait_for(&mut self, matches: impl Fn(&Value) -> bool) -> Value;

    async fn join(&mut self, room: &str) -> Value {
        self.send(json!({"type": "join", "room": room})).await;
        self.wait_for(|f| f["type"] == "joined" && f["room"] == room).await
    }

    async fn join_since(&mut self, room: &str, since: i64) -> Value {
        self.send(json!({"type": "join", "room": room, "since": since})).await;
        self.wait_for(|f| f["type"] == "joined" && f["room"] == room).await
    }

    /// Sends a message and returns its ack.
    async fn post(&mut self, room: &str, client_id: &str, body: Value) -> Value {
        self.send(json!({"type": "send", "room": room, "client_id": client_id, "body": body})).await;
        self.wait_for(|f| (f["type"] == "ack" || f["type"] == "error") && f_ref_client(f) == client_id).await
    }

    /// Waits for the message frame of a room with the given seq.
    async fn message(&mut self, room: &str, seq: i64) -> Value {
        self.wait_for(|f| f["type"] == "message" && f["room"] == room && f["seq"] == seq).await
    }

    /// Waits for the error frame that answers the last request.
    async fn error(&mut self) -> Value {
        self.wait_for(|f| f["type"] == "error").await
    }
}

impl Conversation for Client {
    async fn send(&mut self, frame: Value) {
        Client::send(self, frame).await
    }

    async fn wait_for(&mut self, matches: impl Fn(&Value) -> bool) -> Value {
        Client::wait_for(self, matches).await
    }
}

/// The client_id an ack or error frame answers.
pub fn f_ref_client(frame: &Value) -> &str {
    frame["client_id"].as_str().or_else(|| frame["ref"]["client_id"].as_str()).unwrap_or("")
}
