//! The idle timeout needs a client that does not answer pings, which a
//! WebSocket library always does, so this test speaks the wire format itself.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::client::PATIENCE;
use crate::helpers::spawn_app;

async fn read_frame(stream: &mut TcpStream) -> (u8, Vec<u8>) {
    let mut header = [0_u8; 2];
    stream.read_exact(&mut header).await.unwrap();
    let opcode = header[0] & 0x0f;
    let length = match header[1] & 0x7f {
        126 => u64::from(stream.read_u16().await.unwrap()),
        127 => stream.read_u64().await.unwrap(),
        short => u64::from(short),
    };
    let mut payload = vec![0_u8; length as usize];
    stream.read_exact(&mut payload).await.unwrap();
    (opcode, payload)
}

#[tokio::test]
async fn a_silent_client_is_pinged_then_closed_with_4000() {
    let app = spawn_app()
        .with(|settings| {
            settings.server.ping_interval = Duration::from_millis(100);
            settings.server.idle_timeout = Duration::from_millis(400);
        })
        .await;
    let mut stream = TcpStream::connect(("127.0.0.1", app.port)).await.unwrap();
    let request = "GET /ws?user=quiet HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                   Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    while !response.ends_with(b"\r\n\r\n") {
        response.push(stream.read_u8().await.unwrap());
    }
    assert!(response.starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&response));

    let mut pings = 0;
    let close = tokio::time::timeout(PATIENCE, async {
        loop {
            match read_frame(&mut stream).await {
                (0x9, _) => pings += 1,
                (0x8, payload) => return payload,
                (opcode, _) => panic!("unexpected opcode {opcode}"),
            }
        }
    })
    .await
    .expect("closed within patience");
    assert!(pings >= 1, "the server pings before giving up");
    assert_eq!(u16::from_be_bytes([close[0], close[1]]), 4000);
    assert_eq!(&close[2..], b"idle timeout");
}
