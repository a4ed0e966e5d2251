//! The replica's one keep-alive clock. Rather than a timer per connection
//! (a timer is a hundred bytes of every idle connection's task, and a wake
//! of its own), one task ticks a few times per ping interval and visits
//! every connection: a token that expired closes with 4001, a client silent
//! for `server.idle_timeout` with 4000, and a connection due for a
//! keep-alive has its writer woken to send one. Each deadline is met within
//! a tick.

use std::sync::Arc;
use std::time::Duration;

use super::context::Context;

/// How often the clock ticks: often enough for each deadline to be met
/// within a quarter of the shortest interval, never more than once per
/// second for the usual intervals of seconds, nor more than a hundred times.
pub fn tick_interval(ping_interval: Duration, idle_timeout: Duration) -> Duration {
    (ping_interval.min(idle_timeout) / 4).clamp(Duration::from_millis(10), Duration::from_secs(1))
}

/// Ticks until the replica shuts down.
pub async fn keep_alive(context: Arc<Context>) {
    let period = tick_interval(context.server.ping_interval, context.server.idle_timeout);
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = context.shutdown.cancelled() => return,
        }
        let now = tokio::time::Instant::now();
        context.registry.each_connection(|connection| connection.tick(now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_ticks_a_few_times_per_interval_and_at_most_once_a_second() {
        let ms = Duration::from_millis;
        assert_eq!(tick_interval(ms(20_000), ms(60_000)), ms(1000));
        assert_eq!(tick_interval(ms(100), ms(400)), ms(25));
        assert_eq!(tick_interval(ms(1), ms(1)), ms(10));
    }
}
