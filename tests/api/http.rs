//! The HTTP phase of a connection, before any upgrade, against clients that
//! stall: a request head sent in part, or nothing at all, is closed after
//! `server.header_timeout`; an idle kept-alive connection after
//! `server.keep_alive_timeout`; an answer its client does not read is
//! charged to the user until it is sent, and closed after
//! `server.write_timeout`; HTTP/2 is not served; and one address holds at
//! most `limits.http_connections_per_ip` such connections. These tests speak
//! the wire format themselves.

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::client::Conversation;
use crate::client::PATIENCE;
use crate::helpers::{http_get, mongo, spawn_app, unique_database};
use crate::operations::metric;

/// The first lines of a request head, and never the blank line that ends it.
const HALF_A_HEAD: &[u8] = b"GET /ws?user=x HTTP/1.1\r\nHost: x\r\n";

/// The 24-byte preface that opens an HTTP/2 connection.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Waits until the relay closes `stream`: a read ends the stream, or finds
/// it reset. Anything the relay writes first is skipped.
async fn closed_by_relay(stream: &mut TcpStream) {
    let mut buffer = [0_u8; 4096];
    let ended = tokio::time::timeout(PATIENCE, async {
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) => return Ok(()),
                Ok(_) => continue,
                Err(error) => return Err(error),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the relay kept the connection open for {PATIENCE:?}"));
    if let Err(error) = ended {
        assert_eq!(error.kind(), std::io::ErrorKind::ConnectionReset, "{error}");
    }
}

#[tokio::test]
async fn half_sent_requests_are_closed_after_the_header_timeout_while_others_chat() {
    let app = spawn_app().set("server.header_timeout", "1s").await;
    let mut stalled = Vec::new();
    for i in 0..50 {
        let mut stream = TcpStream::connect(("127.0.0.1", app.port)).await.unwrap();
        // Nothing at all, or half an HTTP/1.1 head.
        let sent = if i == 0 { &[][..] } else { HALF_A_HEAD };
        stream.write_all(sent).await.unwrap();
        stalled.push(stream);
    }

    let mut alice = app.client("alice").await;
    alice.join("calm").await;
    assert_eq!(alice.post("calm", "a1", json!("still here")).await["type"], "ack");
    alice.message("calm", 1).await;
    alice.ping().await;

    for stream in &mut stalled {
        closed_by_relay(stream).await;
    }
    let timeouts = metric(&http_get(app.port, "/metrics").await, "roomcast_http_header_timeouts_total");
    assert!(timeouts.is_some_and(|count| count >= 50.0), "counted: {timeouts:?}");
}

/// Reads one HTTP/1.1 response with a `content-length` off the front of
/// `buffer`, reading more from `stream` as needed; returns its head and body.
async fn take_response(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> (String, String) {
    loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buffer[..end]).to_string();
            let length: usize = head
                .lines()
                .find_map(|line| {
                    line.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string())
                })
                .expect("a content-length")
                .parse()
                .unwrap();
            if buffer.len() >= end + 4 + length {
                let body = String::from_utf8_lossy(&buffer[end + 4..end + 4 + length]).to_string();
                buffer.drain(..end + 4 + length);
                return (head, body);
            }
        }
        let mut chunk = [0_u8; 4096];
        let read = tokio::time::timeout(PATIENCE, stream.read(&mut chunk)).await.expect("an answer").unwrap();
        assert!(read > 0, "closed before answering; got {:?}", String::from_utf8_lossy(buffer));
        buffer.extend_from_slice(&chunk[..read]);
    }
}

#[tokio::test]
async fn idle_kept_alive_connections_are_closed_after_the_keep_alive_timeout() {
    // A header timeout beyond PATIENCE: only the keep-alive timeout can close it in time.
    let app = spawn_app().set("server.header_timeout", "300s").set("server.keep_alive_timeout", "1s").await;
    let mut http1 = TcpStream::connect(("127.0.0.1", app.port)).await.unwrap();
    // Two requests in one write: the second is answered on the same
    // connection, so it was kept alive after the first answer.
    let two = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    http1.write_all(two).await.unwrap();
    let mut buffer = Vec::new();
    for _ in 0..2 {
        let (head, _) = take_response(&mut http1, &mut buffer).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    }
    closed_by_relay(&mut http1).await;
}

#[tokio::test]
async fn http2_is_not_served_so_a_connection_holds_one_answer_at_a_time() {
    let app = spawn_app().await;
    // HTTP/2 with prior knowledge: the preface, empty SETTINGS, and a
    // request for a history page (HPACK: GET, http, :path, :authority).
    const SETTINGS: u8 = 0x4;
    const HEADERS: u8 = 0x1;
    let path = b"/v1/rooms/r/messages?user=mallory";
    let block: Vec<u8> = [&[0x82, 0x86, 0x44, path.len() as u8][..], path, &[0x41, 1], b"x"].concat();
    let mut opening = H2_PREFACE.to_vec();
    opening.extend_from_slice(&[0, 0, 0, SETTINGS, 0, 0, 0, 0, 0]);
    opening.extend_from_slice(&[0, 0, block.len() as u8, HEADERS, 0x5, 0, 0, 0, 1]);
    opening.extend_from_slice(&block);
    let mut stream = TcpStream::connect(("127.0.0.1", app.port)).await.unwrap();
    stream.write_all(&opening).await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(PATIENCE, stream.read_to_end(&mut answer)).await.expect("closed in time");
    assert!(read.is_ok() || answer.is_empty(), "{read:?}");
    // No HTTP/2 frame came back: at most an HTTP/1.1 refusal.
    let text = String::from_utf8_lossy(&answer);
    assert!(answer.is_empty() || text.starts_with("HTTP/1.1 4"), "answered: {text:?}");
}

/// Scrapes `/metrics` on a connection of its own until `series` satisfies `wanted`.
async fn metric_until(port: u16, series: &str, wanted: impl Fn(f64) -> bool) -> f64 {
    let waiting = async {
        loop {
            let value = metric(&http_get(port, "/metrics").await, series).unwrap_or(0.0);
            if wanted(value) {
                return value;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(PATIENCE, waiting).await.unwrap_or_else(|_| panic!("{series} never got there"))
}

#[tokio::test]
async fn an_http_answer_nobody_reads_is_charged_to_its_user_until_sent_and_closed_after_the_write_timeout() {
    // Pages of 8 MiB, more than the kernel's socket buffers take, so an
    // answer its client does not read stays in the relay; one user may
    // borrow 8 MiB of the pool in all.
    // A process of its own: the pool's gauge is the process's.
    let database = unique_database();
    let app = spawn_app()
        .database(&database)
        .set_all(&[
            ("limits.max_replay_bytes", "8388608"),
            ("limits.send_queue_bytes", "8388608"),
            ("limits.user_pool_bytes", "8388608"),
            ("server.write_timeout", "2s"),
            ("server.keep_alive_timeout", "2s"),
        ])
        .process()
        .await;
    let body = "z".repeat(40_000);
    let messages: Vec<bson::Document> = (1..=200)
        .map(|seq| bson::doc! {"room": "big", "seq": seq, "author": "bob", "body": &body, "sent_at": bson::DateTime::now()})
        .collect();
    mongo(&database).await.collection::<bson::Document>("messages").insert_many(messages).await.unwrap();
    let mut stalled = Vec::new();
    for _ in 0..4 {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let mut stream = socket.connect(([127, 0, 0, 1], app.port).into()).await.unwrap();
        let request = b"GET /v1/rooms/big/messages?user=mallory&limit=200 HTTP/1.1\r\nHost: x\r\n\r\n";
        stream.write_all(request).await.unwrap();
        stalled.push(stream);
    }
    // Held, charged to mallory, within her share of the pool.
    let held = metric_until(app.port, "roomcast_buffer_pool_bytes", |bytes| bytes >= 1_000_000.0).await;
    assert!(held <= 8_388_608.0, "mallory holds {held} bytes");
    // Meanwhile another user's page is whole.
    let (status, page) =
        crate::helpers::http_get_json(app.port, "/v1/rooms/big/messages?user=alice&limit=200", &[]).await;
    assert_eq!((status, page["messages"].as_array().map(Vec::len)), (200, Some(200)));
    // Unsent after the write timeout: closed, and the bytes given back (the
    // pages the kernel's buffers took whole were sent, and their connections
    // close after the keep-alive timeout).
    metric_until(app.port, "roomcast_http_answer_timeouts_total", |count| count >= 1.0).await;
    metric_until(app.port, "roomcast_buffer_pool_bytes", |bytes| bytes == 0.0).await;
    for stream in &mut stalled {
        closed_by_relay(stream).await;
    }
}

/// `GET /metrics` on a kept-alive connection: its body.
async fn scrape(stream: &mut TcpStream) -> String {
    stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let (head, body) = take_response(stream, &mut Vec::new()).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body
}

/// Scrapes over `stream` until the metric `name` has the value `wanted`.
async fn wait_for_metric(stream: &mut TcpStream, name: &str, wanted: f64) -> String {
    let waiting = async {
        loop {
            let body = scrape(stream).await;
            if metric(&body, name) == Some(wanted) {
                return body;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(PATIENCE, waiting).await.unwrap_or_else(|_| panic!("{name} never reached {wanted}"))
}

#[tokio::test]
async fn an_address_beyond_its_http_connections_is_closed_at_once_and_counted() {
    // In a process of its own, so the gauge counts this relay's connections
    // only; with a header timeout beyond PATIENCE, only the cap can close
    // a connection in time.
    let relay = spawn_app()
        .set("limits.http_connections_per_ip", "4")
        .set("server.header_timeout", "300s")
        .set("server.keep_alive_timeout", "300s")
        .process()
        .await;
    // The scraper is one of the 4, kept alive, so scraping opens nothing new.
    let mut scraper = TcpStream::connect(("127.0.0.1", relay.port)).await.unwrap();
    wait_for_metric(&mut scraper, "roomcast_http_connections", 1.0).await;
    let mut stalled = Vec::new();
    for _ in 0..3 {
        let mut stream = TcpStream::connect(("127.0.0.1", relay.port)).await.unwrap();
        stream.write_all(HALF_A_HEAD).await.unwrap();
        stalled.push(stream);
    }
    wait_for_metric(&mut scraper, "roomcast_http_connections", 4.0).await;

    // The fifth is closed before it could send anything.
    let mut fifth = TcpStream::connect(("127.0.0.1", relay.port)).await.unwrap();
    closed_by_relay(&mut fifth).await;
    for stream in &stalled {
        let still_open = stream.try_read(&mut [0_u8; 1]);
        assert_eq!(still_open.err().map(|e| e.kind()), Some(std::io::ErrorKind::WouldBlock), "the first 4 stay");
    }
    let body = scrape(&mut scraper).await;
    assert_eq!(metric(&body, "roomcast_http_connections"), Some(4.0));
    assert_eq!(metric(&body, r#"roomcast_http_refused_total{reason="too_many_per_ip"}"#), Some(1.0));
}

#[tokio::test]
async fn static_files_are_served_from_their_directory_only() {
    let app = spawn_app().with(|s| s.server.static_dir = Some(crate::project_dir().join("web"))).await;
    let page = http_get(app.port, "/index.html").await;
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    for escape in ["/../Cargo.toml", "/..%2fCargo.toml", "/%2e%2e/Cargo.toml", "/web/../../Cargo.toml"] {
        let response = http_get(app.port, escape).await;
        assert!(response.starts_with("HTTP/1.1 404") || response.starts_with("HTTP/1.1 400"), "{escape}: {response}");
        assert!(!response.contains("[package]"), "{escape} escaped the directory");
    }
}
