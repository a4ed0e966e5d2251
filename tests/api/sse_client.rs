//! A real SSE client over a plain TCP socket: it sends `GET /sse`, decodes
//! the chunked answer and its events itself (so a test sees exactly the
//! bytes the relay sent), and sends its frames in `POST /sse/{session}`
//! requests on connections of their own. Like the WebSocket client, it
//! keeps every frame it received, in order.

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::client::{Conversation, PATIENCE};

pub struct SseClient {
    port: u16,
    /// The query and headers every request of this client carries.
    query: String,
    headers: Vec<(String, String)>,
    stream: TcpStream,
    /// Bytes read and not yet decoded (chunked framing).
    raw: Vec<u8>,
    /// The body's bytes not yet parsed into events.
    body: Vec<u8>,
    /// The stream ended (its last chunk, or the socket closed).
    ended: bool,
    pub session: String,
    /// Every frame received, in order.
    pub seen: Vec<Value>,
    claimed: Vec<bool>,
    /// Keep-alive comments received.
    pub comments: usize,
    /// The answer's head, lower-cased.
    pub head: String,
}

/// A response: status and body.
pub struct Answer {
    pub status: u16,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

impl SseClient {
    pub async fn connect(port: u16, user: &str) -> SseClient {
        SseClient::open(port, &format!("user={user}"), &[]).await.unwrap_or_else(|a| panic!("refused: {}", a.body))
    }

    /// A client whose socket buffers almost nothing, so a client that stops
    /// reading is really stuck after a few events rather than after megabytes.
    pub async fn connect_stingy(port: u16, user: &str) -> SseClient {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let stream = socket.connect(([127, 0, 0, 1], port).into()).await.unwrap();
        SseClient::open_on(stream, port, &format!("user={user}"), &[]).await.unwrap_or_else(|a| panic!("{}", a.body))
    }

    /// Opens a stream with a query string and extra headers; the refusal if
    /// it is not `200`.
    pub async fn open(port: u16, query: &str, headers: &[(&str, &str)]) -> Result<SseClient, Answer> {
        let stream = TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
        SseClient::open_on(stream, port, query, headers).await
    }

    async fn open_on(
        mut stream: TcpStream,
        port: u16,
        query: &str,
        headers: &[(&str, &str)],
    ) -> Result<SseClient, Answer> {
        stream.write_all(request("GET", port, &format!("/sse?{query}"), headers, None).as_bytes()).await.unwrap();
        let headers = headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect();
        let mut client = SseClient {
            port,
            query: query.to_string(),
            headers,
            stream,
            raw: Vec::new(),
            body: Vec::new(),
            ended: false,
            session: String::new(),
            seen: Vec::new(),
            claimed: Vec::new(),
            comments: 0,
            head: String::new(),
        };
        let (status, head) = client.read_head().await;
        client.head = head;
        if status != 200 {
            let body = String::from_utf8_lossy(&client.raw).to_string();
            return Err(Answer { status, body });
        }
        let first = client.next_frame().await.expect("a first event");
        assert_eq!(first["type"], "session", "the first event names the session");
        client.session = first["session"].as_str().unwrap().to_string();
        Ok(client)
    }

    async fn read_head(&mut self) -> (u16, String) {
        loop {
            if let Some(end) = find(&self.raw, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.raw[..end]).to_lowercase();
                self.raw.drain(..end + 4);
                let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("a status line");
                if status != 200 {
                    // A refusal's body: read to its end (the relay closes or sends its length).
                    let length = header(&head, "content-length").and_then(|v| v.parse::<usize>().ok());
                    while length.is_none_or(|n| self.raw.len() < n) {
                        if self.fill().await == 0 {
                            break;
                        }
                    }
                }
                return (status, head);
            }
            assert!(self.fill().await > 0, "the relay closed before answering");
        }
    }

    async fn fill(&mut self) -> usize {
        let mut buffer = [0u8; 8192];
        let read = tokio::time::timeout(PATIENCE, self.stream.read(&mut buffer))
            .await
            .unwrap_or_else(|_| panic!("nothing within {PATIENCE:?}; seen so far: {:#?}", self.seen))
            .unwrap_or(0);
        self.raw.extend_from_slice(&buffer[..read]);
        read
    }

    /// Decodes the chunks read so far into `body`.
    fn decode_chunks(&mut self) {
        while let Some(line_end) = find(&self.raw, b"\r\n") {
            let size = usize::from_str_radix(std::str::from_utf8(&self.raw[..line_end]).unwrap().trim(), 16)
                .expect("a chunk size");
            if size == 0 {
                self.ended = true;
                return;
            }
            if self.raw.len() < line_end + 2 + size + 2 {
                return;
            }
            self.body.extend_from_slice(&self.raw[line_end + 2..line_end + 2 + size]);
            self.raw.drain(..line_end + 2 + size + 2);
        }
    }

    /// The next event's frame; `None` once the stream ended. Comments are counted.
    pub async fn next_frame(&mut self) -> Option<Value> {
        self.next_event(false).await
    }

    /// Reads until `count` keep-alives were received in all, failing on a close.
    pub async fn keep_alives(&mut self, count: usize) {
        while self.comments < count {
            let event = tokio::time::timeout(PATIENCE, self.next_event(true)).await.expect("keep-alives");
            if let Some(frame) = event.filter(|f| !f.is_null()) {
                assert_ne!(frame["type"], "close", "closed: {frame}");
                self.seen.push(frame);
                self.claimed.push(false);
            }
        }
    }

    /// The next event's frame, or `Value::Null` for a comment if `comments`.
    async fn next_event(&mut self, comments: bool) -> Option<Value> {
        loop {
            while let Some(end) = find(&self.body, b"\n\n") {
                let event: Vec<u8> = self.body.drain(..end + 2).collect();
                let event = String::from_utf8(event).expect("events are UTF-8");
                let mut data = None;
                for line in event.lines() {
                    if line.starts_with(':') {
                        self.comments += 1;
                    } else if let Some(text) = line.strip_prefix("data: ") {
                        assert!(data.is_none(), "one data line per event: {event:?}");
                        data = Some(serde_json::from_str::<Value>(text).expect("data is JSON"));
                    } else if !line.is_empty() {
                        panic!("an unexpected line: {line:?}");
                    }
                }
                if let Some(frame) = data {
                    return Some(frame);
                }
                if comments {
                    return Some(Value::Null);
                }
            }
            self.decode_chunks();
            if find(&self.body, b"\n\n").is_some() {
                continue;
            }
            if self.ended || self.fill().await == 0 {
                self.ended = true;
                self.decode_chunks();
                find(&self.body, b"\n\n")?;
            }
        }
    }

    async fn receive(&mut self, deadline: tokio::time::Instant) -> Value {
        let frame = tokio::time::timeout_at(deadline, self.next_frame())
            .await
            .unwrap_or_else(|_| panic!("no frame within {PATIENCE:?}; seen so far: {:#?}", self.seen))
            .unwrap_or_else(|| panic!("the stream ended; seen: {:#?}", self.seen));
        assert_ne!(frame["type"], "close", "closed by the server: {frame}; seen: {:#?}", self.seen);
        self.seen.push(frame.clone());
        self.claimed.push(false);
        frame
    }

    /// The earliest frame that matches and no earlier call returned.
    async fn find(&mut self, matches: impl Fn(&Value) -> bool) -> Value {
        if let Some(index) = (0..self.seen.len()).find(|&i| !self.claimed[i] && matches(&self.seen[i])) {
            self.claimed[index] = true;
            return self.seen[index].clone();
        }
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let frame = self.receive(deadline).await;
            if matches(&frame) {
                *self.claimed.last_mut().unwrap() = true;
                return frame;
            }
        }
    }

    /// Waits for the `close` event, then for the stream's end: its code and reason.
    pub async fn closed(&mut self) -> (u16, String) {
        loop {
            let frame = tokio::time::timeout(PATIENCE, self.next_frame()).await.expect("no close within patience");
            match frame {
                Some(frame) if frame["type"] == "close" => {
                    let ended =
                        tokio::time::timeout(PATIENCE, self.next_frame()).await.expect("no end after the close");
                    assert_eq!(ended, None, "nothing follows the close");
                    return (frame["code"].as_u64().unwrap() as u16, frame["reason"].as_str().unwrap().to_string());
                }
                Some(frame) => {
                    self.seen.push(frame);
                    self.claimed.push(false);
                }
                None => panic!("the stream ended without a close; seen: {:#?}", self.seen),
            }
        }
    }

    /// `POST /sse/{session}` with this client's query and headers, and a JSON body.
    pub async fn post_body(&self, body: &str) -> Answer {
        let mut headers: Vec<(&str, &str)> = self.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        headers.push(("Content-Type", "application/json"));
        post(self.port, &format!("/sse/{}?{}", self.session, self.query), &headers, body.as_bytes()).await
    }

    pub fn seqs(&self, room: &str) -> Vec<i64> {
        let messages = self.seen.iter().filter(|f| f["type"] == "message" && f["room"] == room);
        messages.map(|f| f["seq"].as_i64().unwrap()).collect()
    }

    /// Ends the stream from the client's side.
    pub async fn hang_up(self) {
        drop(self.stream);
    }
}

fn request(method: &str, port: u16, path: &str, headers: &[(&str, &str)], body: Option<&[u8]>) -> String {
    let mut text = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n");
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(body) = body {
        text.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    text.push_str("Connection: close\r\n\r\n");
    text
}

/// A POST on a connection of its own; `headers` may set Content-Length
/// themselves (then none is added).
pub async fn post(port: u16, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Answer {
    let sets_length = headers.iter().any(|(name, _)| name.eq_ignore_ascii_case("content-length"));
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
    let head = request("POST", port, path, headers, (!sets_length).then_some(body));
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(PATIENCE, stream.read_to_end(&mut response)).await.expect("an answer").unwrap();
    let response = String::from_utf8_lossy(&response).to_string();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("a status line");
    Answer { status, body: body.to_string() }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|window| window == needle)
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(':')).map(str::trim)
}

impl Conversation for SseClient {
    /// One frame in one POST, which must be taken.
    async fn send(&mut self, frame: Value) {
        let answer = self.post_body(&frame.to_string()).await;
        assert_eq!(answer.status, 204, "POST refused: {}", answer.body);
    }

    async fn wait_for(&mut self, matches: impl Fn(&Value) -> bool) -> Value {
        self.find(matches).await
    }
}
