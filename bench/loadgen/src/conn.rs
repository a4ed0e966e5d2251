//! One client connection: TCP from a spread of loopback source addresses (so
//! tens of thousands of sockets never run out of ephemeral ports), the
//! WebSocket upgrade, the socket.io handshake where needed, and room joins.
//! Every step is bounded in time.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use futures::{stream, SinkExt, StreamExt, TryStreamExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::dialect::{Incoming, Target, Transport};
use crate::sse;
use crate::stats::Stats;

pub type Ws = WebSocketStream<TcpStream>;

/// Connections opened at once; more would overflow the servers' accept backlogs.
pub const CONNECT_CONCURRENCY: usize = 64;

/// Loopback source addresses 127.0.0.2 ..= 127.0.0.(1 + SOURCES), all on this machine.
const SOURCES: usize = 8;
pub const STEP_TIMEOUT: Duration = Duration::from_secs(20);

static NEXT_SOURCE: AtomicUsize = AtomicUsize::new(0);

/// Small buffers: the load generator holds up to 20k sockets, and its own
/// memory is not what is measured.
fn client_config() -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(8 * 1024).write_buffer_size(0)
}

/// Connects `user`, completes the handshake and joins `rooms`.
pub async fn open(target: Target, port: u16, user: &str, rooms: &[String]) -> Result<Ws> {
    tokio::time::timeout(STEP_TIMEOUT, async {
        let mut ws = connect(target, port, user).await?;
        for (ack_id, room) in rooms.iter().enumerate() {
            ws.send(Message::text(target.join_frame(room, ack_id as u64 + 1))).await?;
        }
        await_reply(&mut ws, target, rooms.len(), |i| *i == Incoming::Joined).await.context("join")?;
        Ok(ws)
    })
    .await
    .with_context(|| format!("{} connection of {user} timed out", target.name()))?
}

/// Connects `user` and completes the handshake, joining nothing (callers
/// bound it in time, as `open` does).
pub async fn connect(target: Target, port: u16, user: &str) -> Result<Ws> {
    let mut ws = upgrade(target, port, user).await?;
    if target.needs_handshake() {
        await_reply(&mut ws, target, 1, |i| *i == Incoming::Connected).await.context("socket.io handshake")?;
    }
    Ok(ws)
}

async fn upgrade(target: Target, port: u16, user: &str) -> Result<Ws> {
    let stream = tcp(port).await?;
    let (ws, _) = tokio_tungstenite::client_async_with_config(target.url(port, user), stream, Some(client_config()))
        .await
        .with_context(|| format!("upgrade of {user}"))?;
    Ok(ws)
}

/// A TCP connection to the server from the next source address, Nagle off.
pub async fn tcp(port: u16) -> Result<TcpStream> {
    let source = 2 + NEXT_SOURCE.fetch_add(1, Ordering::Relaxed) % SOURCES;
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((Ipv4Addr::new(127, 0, 0, source as u8), 0)))?;
    let stream = socket.connect(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Reads until `count` frames matched `wanted`, answering pings and the
/// engine.io open on the way.
pub async fn await_reply(ws: &mut Ws, target: Target, count: usize, wanted: impl Fn(&Incoming) -> bool) -> Result<()> {
    let mut seen = 0;
    while seen < count {
        let Some(frame) = ws.next().await else { bail!("closed by the server") };
        let text = match frame? {
            Message::Text(text) => text,
            Message::Close(close) => bail!("closed by the server: {close:?}"),
            _ => continue,
        };
        let incoming = target.classify(&text);
        if let Some(reply) = target.reply(&incoming) {
            ws.send(Message::text(reply)).await?;
        }
        if wanted(&incoming) {
            seen += 1;
        } else if incoming == Incoming::Refused {
            bail!("refused: {text}");
        }
    }
    Ok(())
}

/// Opens reading connections `indices`, a bounded number at a time; `who(i)`
/// gives connection i's user and rooms. Each gets a task running
/// `read_deliveries`.
pub async fn open_readers(
    target: Target,
    port: u16,
    indices: std::ops::Range<usize>,
    stats: &Arc<Stats>,
    who: impl Fn(usize) -> (String, Vec<String>),
) -> Result<Vec<JoinHandle<()>>> {
    open_each(target, port, indices, who, |i, ws| tokio::spawn(read_deliveries(ws, target, i, stats.clone()))).await
}

/// `open_readers` over `transport`: WebSockets, or SSE streams (roomcast only).
pub async fn open_subscribers(
    transport: Transport,
    target: Target,
    port: u16,
    indices: std::ops::Range<usize>,
    stats: &Arc<Stats>,
    who: impl Fn(usize) -> (String, Vec<String>),
) -> Result<Vec<JoinHandle<()>>> {
    match transport {
        Transport::WebSocket => open_readers(target, port, indices, stats, who).await,
        Transport::Sse if target == Target::Roomcast => sse::open_readers(port, indices, stats, who).await,
        Transport::Sse => bail!("{} serves no SSE", target.name()),
    }
}

/// Opens connections `indices` as `open_readers` does, and hands each to
/// `start` as soon as it is open (so it reads, and answers the peer's
/// pings, while the others open).
pub async fn open_each(
    target: Target,
    port: u16,
    indices: std::ops::Range<usize>,
    who: impl Fn(usize) -> (String, Vec<String>),
    start: impl Fn(usize, Ws) -> JoinHandle<()>,
) -> Result<Vec<JoinHandle<()>>> {
    let start = &start;
    stream::iter(indices)
        .map(|i| {
            let (user, rooms) = who(i);
            async move { anyhow::Ok(start(i, open(target, port, &user, &rooms).await?)) }
        })
        .buffer_unordered(CONNECT_CONCURRENCY)
        .try_collect()
        .await
}

/// Reads a subscriber's frames as fast as they come until the task is
/// aborted, recording every delivery; reports how the connection ended.
pub async fn read_deliveries(mut ws: Ws, target: Target, conn: usize, stats: Arc<Stats>) {
    while let Some(frame) = ws.next().await {
        match frame {
            Ok(Message::Text(text)) => match target.classify(&text) {
                Incoming::Message(Some(sent_at)) | Incoming::Notification(Some(sent_at)) => {
                    stats.record_delivery(conn, sent_at)
                }
                incoming => {
                    if let Some(reply) = target.reply(&incoming) {
                        if ws.send(Message::text(reply)).await.is_err() {
                            break;
                        }
                    }
                }
            },
            Ok(Message::Close(close)) => {
                stats.record_close(close_reason(close.map(|c| u16::from(c.code))));
                return;
            }
            Ok(_) => {}
            Err(error) => {
                stats.record_close(format!("error: {error}"));
                return;
            }
        }
    }
    stats.record_close("eof".to_string());
}

pub fn close_reason(code: Option<u16>) -> String {
    match code {
        Some(4008) => "4008 slow consumer".to_string(),
        Some(code) => format!("close {code}"),
        None => "close".to_string(),
    }
}
