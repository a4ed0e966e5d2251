//! The SSE transport, for networks that break WebSocket upgrades: a
//! session whose frames go down one long HTTP answer (`GET /sse`,
//! `text/event-stream`, one `data:` event per frame, `stream`) and come up
//! in POSTs (`POST /sse/{session}`, one frame or an array of them, read by
//! `reader`). The session is the same as over a WebSocket; only its two
//! ends differ. The stream's pieces and the POSTs' bodies meet the session
//! through its `link`; the replica's open streams are found by id in
//! `streams`.

mod link;
mod reader;
mod stream;
mod streams;
mod writer;

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;

pub use self::link::{Ended, Link, PostTurn, Proof};
use self::reader::PostReader;
pub use self::stream::EventStream;
pub use self::streams::{StreamSlot, Streams};
use self::writer::StreamWriter;
use crate::session::{self, Context, Opening};

/// The first event of every stream, which only SSE has: the id that
/// the client's POSTs name.
pub fn session_event(id: &str) -> Bytes {
    let frame = serde_json::json!({ "type": "session", "session": id });
    Bytes::from(format!("data: {frame}\n\n"))
}

/// Runs a session over the stream of `link` until either side ends it,
/// then ends the stream and calls `ended` (which releases what the HTTP
/// side held for the stream). (Not an `async fn`, for the reason
/// `websocket::serve` gives: the future keeps one copy of its arguments.)
#[allow(clippy::manual_async_fn)]
pub fn serve(
    link: Arc<Link>,
    context: Arc<Context>,
    opening: Box<Opening>,
    ended: impl FnOnce() + Send,
) -> impl Future<Output = ()> + Send {
    async move {
        let mut reader = PostReader::new(&link);
        let mut writer = StreamWriter::new(&link, context.server.write_timeout);
        session::serve(&mut reader, &mut writer, &context, opening).await;
        link.end();
        ended();
    }
}
