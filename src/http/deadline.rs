//! The deadline of a connection that still speaks HTTP. Its first request
//! must arrive complete within `server.header_timeout` of the accept, each
//! answer must be sent within `server.write_timeout` of its request's head,
//! and each later request must arrive within `server.keep_alive_timeout` of
//! the previous answer's last byte. Past any of them, the server closes the
//! connection.
//!
//! hyper's own `header_read_timeout` cannot do this alone: on a kept-alive
//! connection it runs from the previous answer, idle wait included, so one
//! value would have to be both timeouts, and nothing in hyper times an
//! answer its client does not read.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

/// When a connection in its HTTP phase has waited too long for a request.
pub struct HttpDeadline {
    state: watch::Sender<Waiting>,
    header_timeout: Duration,
    keep_alive_timeout: Duration,
    answer_timeout: Duration,
}

/// What the connection waits for, and since when.
#[derive(Clone, Copy)]
struct Waiting {
    /// Requests received and not yet answered.
    answering: usize,
    /// Answers streaming for a live session: no deadline runs meanwhile.
    streaming: usize,
    /// Whether any request arrived: the next wait is a keep-alive's.
    answered_one: bool,
    /// When the connection last had no request to answer, or, while it
    /// has, when the first of them arrived.
    since: Instant,
}

/// Why a connection's deadline passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expired {
    /// No complete request head within `server.header_timeout` of the accept.
    Header,
    /// No next request within `server.keep_alive_timeout` of an answer.
    KeepAlive,
    /// An answer not sent within `server.write_timeout` of its request.
    Answer,
}

/// A request being answered: its answer's deadline runs until it is
/// dropped, once the answer's last byte is written.
pub struct Answering(Arc<HttpDeadline>);

impl HttpDeadline {
    /// A deadline for a connection accepted now.
    pub fn new(header_timeout: Duration, keep_alive_timeout: Duration, answer_timeout: Duration) -> Arc<Self> {
        let waiting = Waiting { answering: 0, streaming: 0, answered_one: false, since: Instant::now() };
        let state = watch::Sender::new(waiting);
        Arc::new(HttpDeadline { state, header_timeout, keep_alive_timeout, answer_timeout })
    }

    /// A request's head arrived complete; its answer is sent when the
    /// returned guard is dropped.
    pub fn answering(self: &Arc<Self>) -> Answering {
        self.state.send_modify(|waiting| {
            if waiting.answering == 0 {
                waiting.since = Instant::now();
            }
            waiting.answering += 1;
            waiting.answered_one = true;
        });
        Answering(self.clone())
    }

    /// An answer streams for a live session: no deadline runs until the
    /// guard is dropped, and the answer's own starts again then.
    pub fn streaming(self: &Arc<Self>) -> Streaming {
        self.state.send_modify(|waiting| waiting.streaming += 1);
        Streaming(self.clone())
    }

    /// Whether a request is being answered now.
    pub fn is_answering(&self) -> bool {
        self.state.borrow().answering > 0
    }

    /// Completes once the connection has waited too long for a request.
    pub async fn expired(&self) -> Expired {
        let mut changes = self.state.subscribe();
        loop {
            let waiting = *changes.borrow_and_update();
            if waiting.streaming > 0 {
                // The sender lives in `self`, so the channel cannot close here.
                let _ = changes.changed().await;
                continue;
            }
            let (limit, why) = if waiting.answering > 0 {
                (self.answer_timeout, Expired::Answer)
            } else if waiting.answered_one {
                (self.keep_alive_timeout, Expired::KeepAlive)
            } else {
                (self.header_timeout, Expired::Header)
            };
            tokio::select! {
                () = tokio::time::sleep_until(waiting.since + limit) => return why,
                // The sender lives in `self`, so the channel cannot close here.
                _ = changes.changed() => {}
            }
        }
    }
}

/// An answer streaming for a live session; see `HttpDeadline::streaming`.
pub struct Streaming(Arc<HttpDeadline>);

impl Drop for Streaming {
    fn drop(&mut self) {
        self.0.state.send_modify(|waiting| {
            waiting.streaming -= 1;
            waiting.since = Instant::now();
        });
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
    const ANSWER: Duration = Duration::from_secs(20);

    #[tokio::test(start_paused = true)]
    async fn a_connection_without_a_request_expires_after_the_header_timeout() {
        let started = Instant::now();
        let deadline = HttpDeadline::new(HEADER, KEEP_ALIVE, ANSWER);
        assert_eq!(deadline.expired().await, Expired::Header);
        assert_eq!(started.elapsed(), HEADER);
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_is_timed_until_sent_then_the_keep_alive_wait_is() {
        let deadline = HttpDeadline::new(HEADER, KEEP_ALIVE, ANSWER);
        let answering = deadline.answering();
        tokio::time::advance(ANSWER / 2).await;
        let answered_at = Instant::now();
        drop(answering);
        assert_eq!(deadline.expired().await, Expired::KeepAlive);
        assert_eq!(answered_at.elapsed(), KEEP_ALIVE);
    }

    #[tokio::test(start_paused = true)]
    async fn a_streaming_answer_has_no_deadline_until_its_session_ends() {
        let deadline = HttpDeadline::new(HEADER, KEEP_ALIVE, ANSWER);
        let _answering = deadline.answering();
        let streaming = deadline.streaming();
        let expired = tokio::time::timeout(ANSWER * 10, deadline.expired()).await;
        assert!(expired.is_err(), "a live stream has no deadline");
        let ended_at = Instant::now();
        drop(streaming);
        assert_eq!(deadline.expired().await, Expired::Answer);
        assert_eq!(ended_at.elapsed(), ANSWER, "the rest of the stream has the answer's timeout");
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_not_sent_in_time_expires() {
        let deadline = HttpDeadline::new(HEADER, KEEP_ALIVE, ANSWER);
        let started = Instant::now();
        let _answering = deadline.answering();
        assert_eq!(deadline.expired().await, Expired::Answer);
        assert_eq!(started.elapsed(), ANSWER);
    }
}
