//! The deadline of a connection that still speaks HTTP. Its first request
//! must arrive complete within `server.header_timeout` of the accept, and
//! each later one within `server.keep_alive_timeout` of the previous answer;
//! while a request is being answered, no deadline runs. Past it, the server
//! closes the connection.
//!
//! hyper's own `header_read_timeout` cannot do this alone. It starts only
//! once hyper-util has told HTTP/1 from HTTP/2 by the first bytes, so a
//! connection that sends nothing, or half the HTTP/2 preface, is never timed;
//! HTTP/2 has no such timeout at all; and on a kept-alive HTTP/1 connection
//! it runs from the previous answer, idle wait included, so one value would
//! have to be both timeouts.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

/// When a connection in its HTTP phase has waited too long for a request.
pub struct HttpDeadline {
    state: watch::Sender<Waiting>,
    header_timeout: Duration,
    keep_alive_timeout: Duration,
}

/// What the connection waits for, and since when.
#[derive(Clone, Copy)]
struct Waiting {
    /// Requests received and not yet answered.
    answering: usize,
    /// Whether any request arrived: the next wait is a keep-alive's.
    answered_one: bool,
    /// When the connection last had no request to answer.
    since: Instant,
}

/// Why a connection's deadline passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expired {
    /// No complete request head within `server.header_timeout` of the accept.
    Header,
    /// No next request within `server.keep_alive_timeout` of an answer.
    KeepAlive,
}

/// A request being answered: the deadline waits until it is dropped.
pub struct Answering(Arc<HttpDeadline>);

impl HttpDeadline {
    /// A deadline for a connection accepted now.
    pub fn new(header_timeout: Duration, keep_alive_timeout: Duration) -> Arc<Self> {
        let waiting = Waiting { answering: 0, answered_one: false, since: Instant::now() };
        Arc::new(HttpDeadline { state: watch::Sender::new(waiting), header_timeout, keep_alive_timeout })
    }

    /// A request's head arrived complete; its answer is ready when the
    /// returned guard is dropped.
    pub fn answering(self: &Arc<Self>) -> Answering {
        self.state.send_modify(|waiting| {
            waiting.answering += 1;
            waiting.answered_one = true;
        });
        Answering(self.clone())
    }

    /// Completes once the connection has waited too long for a request.
    pub async fn expired(&self) -> Expired {
        let mut changes = self.state.subscribe();
        loop {
            let waiting = *changes.borrow_and_update();
            if waiting.answering > 0 {
                // The sender lives in `self`, so the channel cannot close here.
                let _ = changes.changed().await;
                continue;
            }
            let (limit, why) = if waiting.answered_one {
                (self.keep_alive_timeout, Expired::KeepAlive)
            } else {
                (self.header_timeout, Expired::Header)
            };
            tokio::select! {
                () = tokio::time::sleep_until(waiting.since + limit) => return why,
                _ = changes.changed() => {}
            }
        }
    }
}

impl Drop for Answering {
    fn drop(&mut self) {
        self.0.state.send_modify(|waiting| {
            waiting.answering -= 1;
            if waiting.answering == 0 {
                waiting.since = Instant::now();
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: Duration = Duration::from_secs(10);
    const KEEP_ALIVE: Duration = Duration::from_secs(30);

    #[tokio::test(start_paused = true)]
    async fn a_connection_without_a_request_expires_after_the_header_timeout() {
        let started = Instant::now();
        let deadline = HttpDeadline::new(HEADER, KEEP_ALIVE);
        assert_eq!(deadline.expired().await, Expired::Header);
        assert_eq!(started.elapsed(), HEADER);
    }

    #[tokio::test(start_paused = true)]
    async fn no_deadline_runs_while_a_request_is_answered_then_the_keep_alive_one_does() {
        let deadline = HttpDeadline::new(HEADER, KEEP_ALIVE);
        let answering = deadline.answering();
        let waited = tokio::time::timeout(HEADER + KEEP_ALIVE * 2, deadline.expired()).await;
        assert!(waited.is_err(), "no deadline while answering");
        let answered_at = Instant::now();
        drop(answering);
        assert_eq!(deadline.expired().await, Expired::KeepAlive);
        assert_eq!(answered_at.elapsed(), KEEP_ALIVE);
    }
}
