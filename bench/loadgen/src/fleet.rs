//! A fan-out fleet: R rooms × S subscribers plus P publishers, connected once
//! and then driven through one or more measured steps. Subscribers only read;
//! publishers join their rooms and send.

use std::sync::Arc;

use anyhow::Result;
use futures::{stream, StreamExt, TryStreamExt};
use serde::Serialize;
use tokio::task::JoinHandle;

use crate::conn;
use crate::dialect::{Target, Transport};
use crate::figures::{StepFigures, Timing, Watched, Window};
use crate::publisher::{Pace, Publisher};
use crate::stats::Stats;

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Shape {
    pub rooms: usize,
    pub subs_per_room: usize,
    pub publishers: usize,
    pub payload_bytes: usize,
}

pub struct Fleet {
    shape: Shape,
    stats: Arc<Stats>,
    readers: Vec<JoinHandle<()>>,
    publishers: Vec<Arc<Publisher>>,
}

pub fn room_name(index: usize) -> String {
    format!("room-{index}")
}

impl Fleet {
    pub async fn connect(target: Target, port: u16, shape: Shape) -> Result<Fleet> {
        Fleet::connect_via(Transport::WebSocket, target, port, shape).await
    }

    /// A fleet whose subscribers come over `transport`; publishers are
    /// WebSockets whatever it is.
    pub async fn connect_via(transport: Transport, target: Target, port: u16, shape: Shape) -> Result<Fleet> {
        let stats = Arc::new(Stats::default());
        let subscribers = shape.rooms * shape.subs_per_room;
        // Users of their own per transport, so a fleet that follows another
        // on one server meets none of its presence.
        let prefix = match transport {
            Transport::WebSocket => "sub",
            Transport::Sse => "sse-sub",
        };
        let readers = conn::open_subscribers(transport, target, port, 0..subscribers, &stats, |i| {
            (format!("{prefix}-{i}"), vec![room_name(i % shape.rooms)])
        })
        .await?;
        let publishers = stream::iter(0..shape.publishers)
            .map(|p| {
                let stats = stats.clone();
                async move {
                    let rooms = publisher_rooms(p, shape.publishers, shape.rooms);
                    Publisher::connect(target, port, p as u64, rooms, shape.payload_bytes, stats).await.map(Arc::new)
                }
            })
            .buffer_unordered(conn::CONNECT_CONCURRENCY)
            .try_collect::<Vec<_>>()
            .await?;
        Ok(Fleet { shape, stats, readers, publishers })
    }

    /// One measured step: `pace` for every publisher, a warm-up, the window, then the drain.
    pub async fn step(&self, pace: Pace, timing: Timing, watched: Watched) -> Result<StepFigures> {
        let window = Window::open(&self.stats, timing);
        let senders: Vec<_> = self
            .publishers
            .iter()
            .map(|publisher| {
                let (publisher, stats, end) = (publisher.clone(), self.stats.clone(), window.end);
                tokio::spawn(async move { publisher.run(pace, end, &stats).await })
            })
            .collect();
        let before = window.started(watched).await?;
        for sender in senders {
            let _ = sender.await;
        }
        let offered = pace.rate.map(|r| r * self.shape.publishers as f64);
        window.finish(&self.stats, self.shape.subs_per_room as u64, offered, watched, before).await
    }

    pub fn closes(&self) -> std::collections::BTreeMap<String, u64> {
        self.stats.closes()
    }

    pub fn close(self) {
        for reader in self.readers {
            reader.abort();
        }
        for publisher in self.publishers {
            if let Ok(publisher) = Arc::try_unwrap(publisher) {
                publisher.close();
            }
        }
    }

    /// As `close`, returning once every subscriber's task is gone, and
    /// with it its socket.
    pub async fn closed(mut self) {
        let readers = std::mem::take(&mut self.readers);
        self.close();
        for reader in readers {
            reader.abort();
            let _ = reader.await;
        }
    }
}

/// Rooms are dealt to publishers round-robin; with more publishers than
/// rooms, several publishers share a room.
fn publisher_rooms(publisher: usize, publishers: usize, rooms: usize) -> Vec<String> {
    if publishers >= rooms {
        return vec![room_name(publisher % rooms)];
    }
    (publisher..rooms).step_by(publishers).map(room_name).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_room_has_a_publisher() {
        let rooms: Vec<String> = (0..3).flat_map(|p| publisher_rooms(p, 3, 7)).collect();
        assert_eq!(rooms.len(), 7);
        assert_eq!(publisher_rooms(5, 6, 4), vec![room_name(1)]);
    }
}
