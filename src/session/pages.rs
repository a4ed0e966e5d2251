//! Pages read from MongoDB for a client: a room's history and a user's
//! documents of a user route. Both read newest first, a batch at a time, and
//! stop at the page's `limit`, at `limits.max_replay_bytes` of frames, or
//! when `take` refuses the next frame's bytes (the connection's budget);
//! they then say that more exist.

use bson::oid::ObjectId;
use bson::Bson;

use super::context::Context;
use crate::collections::{id_string, parse_id};
use crate::protocol::{self, Frame, MessageDoc, Refusal};
use crate::settings::KeyType;
use crate::store::Order;

/// Messages per page when the client names no `limit`.
const DEFAULT_PAGE: i64 = 50;

/// A page's frames, oldest first for history, newest first for documents,
/// and whether more exist beyond it.
pub struct Page {
    pub frames: Vec<Frame>,
    pub more: bool,
}

/// The page size a client asked for, capped by `limits.max_history_page`.
fn page_size(context: &Context, limit: Option<i64>) -> i64 {
    limit.unwrap_or(DEFAULT_PAGE).min(context.limits.max_history_page)
}

/// The room's newest messages with `seq < before`, oldest first. The seqs
/// just below `before` (or, without it, just below the newest seq the
/// stream showed) are read first, a range that holds no more keys than the
/// page, so even a server that does not stop an index scan at its limit
/// reads only the page; only holes in seq (messages other programs removed)
/// send the read further down, for what is left of the page.
pub async fn history(
    context: &Context,
    room: &str,
    before: Option<i64>,
    limit: Option<i64>,
    mut take: impl FnMut(usize) -> bool,
) -> Result<Page, Refusal> {
    let limits = &context.limits;
    let limit = page_size(context, limit);
    // `limit + 1` messages: the last one read only tells that more exist.
    // They are read from a seq known to be at or below the newest: `before`,
    // or, without it, the newest seq the stream showed for the room.
    let upto = before.map_or(i64::MAX, |before| before - 1);
    let ranges = match before.map(|before| before - 1).or_else(|| context.store.head(room)) {
        Some(anchor) => {
            let window = anchor.saturating_sub(limit + 1);
            // Seqs start at 1: below the window there may be nothing to read.
            let below = (window >= 1).then_some((i64::MIN, window));
            std::iter::once((window, upto)).chain(below).collect()
        }
        None => vec![(i64::MIN, i64::MAX)],
    };
    let (mut frames, mut bytes, mut more) = (Vec::new(), 0, false);
    'ranges: for (after, upto) in ranges {
        let wanted = limit + 1 - frames.len() as i64;
        let order = Order::NewestFirst;
        let max_document = limits.max_document_bytes;
        let mut cursor = context.store.messages_in(room, after, upto, order, Some(wanted), max_document).await?;
        while let Some(document) = cursor.next().await? {
            let message = match MessageDoc::from_read(&document) {
                Ok(message) => message,
                Err(why) => {
                    tracing::warn!(room, why, "stored document is not a message; not shown in history");
                    continue;
                }
            };
            let (frame, _) = protocol::message(message, max_document);
            if frames.len() as i64 == limit || bytes + frame.len() > limits.max_replay_bytes || !take(frame.len()) {
                more = true;
                break 'ranges;
            }
            bytes += frame.len();
            frames.push(frame);
        }
    }
    frames.reverse();
    Ok(Page { frames, more })
}

/// The user's documents of a user route with an `_id` before `before`,
/// newest first, each shaped like a `notification` frame without a cursor.
pub(crate) async fn user_documents(
    context: &Context,
    route: &str,
    user: &str,
    before: Option<&str>,
    limit: Option<i64>,
    mut take: impl FnMut(usize) -> bool,
) -> Result<Page, Refusal> {
    let Some((collection, key, key_type)) = context.user_route(route) else {
        let message = format!("`{route}` is not a user route");
        return Err(Refusal::new(protocol::ErrorCode::InvalidField, message));
    };
    let user = match key_type {
        KeyType::String => Bson::String(user.to_string()),
        KeyType::ObjectId => match ObjectId::parse_str(user) {
            Ok(id) => Bson::ObjectId(id),
            // No document can be keyed by this user.
            Err(_) => return Ok(Page { frames: Vec::new(), more: false }),
        },
    };
    let limits = &context.limits;
    let limit = page_size(context, limit);
    let before = before.map(parse_id);
    let max_document = limits.max_document_bytes;
    let store = &context.store;
    let mut cursor = store.user_documents(collection, key, user, before, limit + 1, max_document).await?;
    let (mut frames, mut bytes, mut more) = (Vec::new(), 0, false);
    while let Some(mut found) = cursor.next().await? {
        let frame = match found.remove("document") {
            Some(Bson::Document(document)) => protocol::notification(route, None, document, max_document).0,
            // Left behind by the database: over `max_document_bytes`.
            _ => {
                let id = found.get("_id").map(id_string).unwrap_or_default();
                protocol::notification_stub(route, None, &id)
            }
        };
        if frames.len() as i64 == limit || bytes + frame.len() > limits.max_replay_bytes || !take(frame.len()) {
            more = true;
            break;
        }
        bytes += frame.len();
        frames.push(frame);
    }
    Ok(Page { frames, more })
}
