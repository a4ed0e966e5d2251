//! The replica's open event streams, by session id, so a POST finds its
//! session; at most `limits.max_sse_streams` at once, because each holds
//! the HTTP server's buffers besides its session (docs/operations.md,
//! "Memory").

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use base64::Engine;

use super::link::{Link, Proof};

pub struct Streams {
    open: Mutex<HashMap<String, Arc<Link>>>,
    max: usize,
}

/// A stream's place among the open ones, given back when dropped.
pub struct StreamSlot {
    streams: Arc<Streams>,
    id: String,
}

impl Streams {
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Streams { open: Mutex::new(HashMap::new()), max })
    }

    fn open_streams(&self) -> MutexGuard<'_, HashMap<String, Arc<Link>>> {
        self.open.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A new stream for `user`, with an id nobody can guess, unless the
    /// replica holds as many as it may.
    pub fn open(self: &Arc<Self>, user: &str, proof: Proof) -> Option<(Arc<Link>, StreamSlot)> {
        let mut open = self.open_streams();
        if open.len() >= self.max {
            return None;
        }
        let mut random = [0u8; 16];
        getrandom::fill(&mut random).expect("the system's random source");
        let id = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random);
        let link = Link::new(id.clone(), user.to_string(), proof);
        open.insert(id.clone(), link.clone());
        ::metrics::gauge!(crate::prometheus::SSE_STREAMS).set(open.len() as f64);
        Some((link, StreamSlot { streams: self.clone(), id }))
    }

    /// The open stream with this id.
    pub fn find(&self, id: &str) -> Option<Arc<Link>> {
        self.open_streams().get(id).cloned()
    }

    pub fn max(&self) -> usize {
        self.max
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self.streams.open_streams();
        open.remove(&self.id);
        ::metrics::gauge!(crate::prometheus::SSE_STREAMS).set(open.len() as f64);
    }
}
