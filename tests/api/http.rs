//! The HTTP phase of a connection, before any upgrade, against clients that
//! stall: a request head sent in part, or nothing at all, is closed after
//! `server.header_timeout`; an idle kept-alive connection after
//! `server.keep_alive_timeout`; and one address holds at most
//! `limits.http_connections_per_ip` such connections. These tests speak the
//! wire format themselves.

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::client::PATIENCE;
use crate::helpers::{http_get, spawn_app};
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
        // Nothing at all, half the HTTP/2 preface, or half an HTTP/1.1 head.
        let sent = match i {
            0 => &[][..],
            1 => &H2_PREFACE[..16],
            _ => HALF_A_HEAD,
        };
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

/// One HTTP/2 frame: its type, flags, stream and payload.
async fn read_h2_frame(stream: &mut TcpStream) -> (u8, u8, u32, Vec<u8>) {
    let mut head = [0_u8; 9];
    tokio::time::timeout(PATIENCE, stream.read_exact(&mut head)).await.expect("a frame").unwrap();
    let length = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
    let stream_id = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
    let mut payload = vec![0_u8; length];
    stream.read_exact(&mut payload).await.unwrap();
    (head[3], head[4], stream_id, payload)
}

/// `GET /healthz` over HTTP/2 with prior knowledge, then nothing: returns
/// once the answer's HEADERS frame arrived.
async fn h2_healthz_then_idle(stream: &mut TcpStream) {
    const SETTINGS: u8 = 0x4;
    const HEADERS: u8 = 0x1;
    // HPACK: :method GET, :scheme http (static table), :path and :authority as literals.
    let block: Vec<u8> = [&[0x82, 0x86, 0x44, 8][..], b"/healthz", &[0x41, 1], b"x"].concat();
    let mut opening = H2_PREFACE.to_vec();
    opening.extend_from_slice(&[0, 0, 0, SETTINGS, 0, 0, 0, 0, 0]);
    // END_STREAM | END_HEADERS, stream 1.
    opening.extend_from_slice(&[0, 0, block.len() as u8, HEADERS, 0x5, 0, 0, 0, 1]);
    opening.extend_from_slice(&block);
    stream.write_all(&opening).await.unwrap();
    loop {
        match read_h2_frame(stream).await {
            (SETTINGS, 0, 0, _) => stream.write_all(&[0, 0, 0, SETTINGS, 0x1, 0, 0, 0, 0]).await.unwrap(),
            (HEADERS, _, 1, _) => return,
            _ => {}
        }
    }
}

#[tokio::test]
async fn idle_kept_alive_connections_are_closed_after_the_keep_alive_timeout() {
    // A header timeout beyond PATIENCE: only the keep-alive timeout can close them in time.
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

    let mut http2 = TcpStream::connect(("127.0.0.1", app.port)).await.unwrap();
    h2_healthz_then_idle(&mut http2).await;

    closed_by_relay(&mut http1).await;
    closed_by_relay(&mut http2).await;
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
