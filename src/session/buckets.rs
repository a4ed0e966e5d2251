//! The token buckets that limit what a user asks of the relay, kept per
//! user on the replica rather than per connection: a reconnect, or a
//! second connection, gets the bucket the user already drained. Three
//! buckets: sends (send, edit, delete), joins (join, and the pages that
//! cost the database about what a join's replay does: `history`, `rooms`,
//! `notifications` and the HTTP history), and reads (`read`, `typing`).
//! Before the user is known, the per-address handshake bucket of
//! `handshake` applies.

use crate::auth::Identity;
use crate::protocol::Refusal;
use crate::settings::LimitSettings;

use super::refusals::rate_limited;

type Keyed = governor::DefaultKeyedRateLimiter<String>;

/// A token bucket: `per_second` sustained, `burst` at once.
pub fn quota(per_second: u32, burst: u32) -> governor::Quota {
    let at_least_one = |n: u32| std::num::NonZeroU32::new(n.max(1)).expect("not zero");
    governor::Quota::per_second(at_least_one(per_second)).allow_burst(at_least_one(burst))
}

/// Which bucket a request draws on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    Sends,
    Joins,
    Reads,
}

/// Every user's buckets on this replica.
pub struct UserBuckets {
    sends: Keyed,
    joins: Keyed,
    reads: Keyed,
}

impl UserBuckets {
    pub fn new(limits: &LimitSettings) -> Self {
        UserBuckets {
            sends: governor::RateLimiter::keyed(quota(limits.sends_per_second, limits.send_burst)),
            joins: governor::RateLimiter::keyed(quota(limits.joins_per_second, limits.join_burst)),
            reads: governor::RateLimiter::keyed(quota(limits.read_markers_per_second, limits.read_marker_burst)),
        }
    }

    /// Takes a token of `bucket` from the user, or refuses with `rate_limited`
    /// naming `what`.
    pub fn take(&self, bucket: Bucket, identity: &Identity, what: &str) -> Result<(), Refusal> {
        if self.has_token(bucket, identity) {
            Ok(())
        } else {
            Err(rate_limited(what))
        }
    }

    /// Takes a token of `bucket` from the user if there is one.
    pub fn has_token(&self, bucket: Bucket, identity: &Identity) -> bool {
        let limiter = match bucket {
            Bucket::Sends => &self.sends,
            Bucket::Joins => &self.joins,
            Bucket::Reads => &self.reads,
        };
        limiter.check_key(&identity.user).is_ok()
    }

    /// Forgets users whose buckets are full again, so the maps hold only
    /// users active lately; called every minute.
    pub fn forget_idle(&self) {
        for limiter in [&self.sends, &self.joins, &self.reads] {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}
