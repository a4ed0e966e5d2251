//! Byte budgets for what connections make the relay hold. Every connection
//! may hold up to its reserve (`limits.connection_reserve_bytes`) on its
//! own; beyond that it borrows from one pool shared by the whole process
//! (`limits.buffer_pool_bytes`), and never holds more than its cap
//! (`limits.send_queue_bytes`). What one user borrows, over all their
//! connections and HTTP answers on the replica, is capped too
//! (`limits.user_pool_bytes`: the user's `Share`). So the bytes all
//! connections hold together never exceed `connections × reserve + pool`, a
//! connection within its reserve is never refused because of others, and
//! one user's connections that stop reading can take only their share of the
//! pool, never the whole of it.

use foldhash::{HashMap, HashMapExt};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

/// The bytes shared by every connection of a process beyond their reserves.
#[derive(Debug)]
pub struct Pool {
    used: AtomicUsize,
    limit: usize,
    /// Most one user may borrow.
    user_limit: usize,
    /// Each user's share, while the user holds one.
    shares: Mutex<HashMap<String, Weak<Share>>>,
}

impl Pool {
    pub fn new(limit: usize, user_limit: usize) -> Arc<Pool> {
        Arc::new(Pool { used: AtomicUsize::new(0), limit, user_limit, shares: Mutex::new(HashMap::new()) })
    }

    /// Bytes currently borrowed from the pool.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }

    /// The share of `user`: the same one for all their connections and HTTP
    /// answers while any holds it.
    pub fn share(self: &Arc<Self>, user: &str) -> Arc<Share> {
        let mut shares = self.shares();
        if let Some(share) = shares.get(user).and_then(Weak::upgrade) {
            return share;
        }
        let share = Arc::new(Share { user: user.to_string(), used: AtomicUsize::new(0), pool: self.clone() });
        shares.insert(user.to_string(), Arc::downgrade(&share));
        share
    }

    fn shares(&self) -> std::sync::MutexGuard<'_, HashMap<String, Weak<Share>>> {
        self.shares.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn take(&self, bytes: usize) -> bool {
        take_within(&self.used, bytes, self.limit)
    }

    fn give_back(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::AcqRel);
    }
}

/// Adds `bytes` to `counter` if the sum stays within `limit`.
fn take_within(counter: &AtomicUsize, bytes: usize, limit: usize) -> bool {
    let mut used = counter.load(Ordering::Acquire);
    loop {
        if used + bytes > limit {
            return false;
        }
        match counter.compare_exchange_weak(used, used + bytes, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return true,
            Err(now) => used = now,
        }
    }
}

/// What one user borrowed from the pool, over all their connections and
/// HTTP answers on this replica, within `limits.user_pool_bytes`.
#[derive(Debug)]
pub struct Share {
    user: String,
    used: AtomicUsize,
    pool: Arc<Pool>,
}

impl Drop for Share {
    /// The user's last holder is gone: the pool forgets the user, unless a
    /// new share of theirs already took the place.
    fn drop(&mut self) {
        let mut shares = self.pool.shares();
        if shares.get(&self.user).is_some_and(|share| share.strong_count() == 0) {
            shares.remove(&self.user);
        }
    }
}

impl Share {
    /// Borrows `bytes` if both the user's share and the pool have them.
    pub fn take(&self, bytes: usize) -> bool {
        if !take_within(&self.used, bytes, self.pool.user_limit) {
            return false;
        }
        if self.pool.take(bytes) {
            return true;
        }
        self.used.fetch_sub(bytes, Ordering::AcqRel);
        false
    }

    pub fn give_back(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::AcqRel);
        self.pool.give_back(bytes);
    }

    /// Bytes the user borrows now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }
}

/// Bytes borrowed through a user's share for something no connection holds
/// (an HTTP answer), given back when dropped.
#[derive(Debug)]
pub struct Loan {
    share: Arc<Share>,
    bytes: usize,
}

impl Loan {
    pub fn new(share: Arc<Share>) -> Loan {
        Loan { share, bytes: 0 }
    }

    /// Borrows `bytes` more if the user's share and the pool have them.
    pub fn try_grow(&mut self, bytes: usize) -> bool {
        let grown = self.share.take(bytes);
        if grown {
            self.bytes += bytes;
        }
        grown
    }
}

impl Drop for Loan {
    fn drop(&mut self) {
        if self.bytes > 0 {
            self.share.give_back(self.bytes);
        }
    }
}

/// The bytes one connection holds: its queue, held events, replays and the
/// bodies of its pending sends.
#[derive(Debug)]
pub struct Budget {
    used: AtomicUsize,
    reserve: usize,
    cap: usize,
    share: Arc<Share>,
}

impl Budget {
    /// A connection's budget, borrowing beyond `reserve` through its user's `share`.
    pub fn new(reserve: usize, cap: usize, share: Arc<Share>) -> Budget {
        Budget { used: AtomicUsize::new(0), reserve, cap, share }
    }

    /// The part of `used` bytes that is borrowed from the pool.
    fn borrowed(&self, used: usize) -> usize {
        used.saturating_sub(self.reserve)
    }

    /// Takes `bytes` if they fit under the cap and, beyond the reserve, in
    /// the user's share of the pool.
    pub fn try_charge(&self, bytes: usize) -> bool {
        let mut used = self.used.load(Ordering::Acquire);
        loop {
            let after = used + bytes;
            if after > self.cap {
                return false;
            }
            let borrow = self.borrowed(after) - self.borrowed(used);
            if borrow > 0 && !self.share.take(borrow) {
                return false;
            }
            match self.used.compare_exchange_weak(used, after, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return true,
                Err(now) => {
                    if borrow > 0 {
                        self.share.give_back(borrow);
                    }
                    used = now;
                }
            }
        }
    }

    /// Gives `bytes` back, returning to the pool what was borrowed.
    pub fn release(&self, bytes: usize) {
        if bytes == 0 {
            return;
        }
        let before = self.used.fetch_sub(bytes, Ordering::AcqRel);
        let returned = self.borrowed(before) - self.borrowed(before - bytes);
        if returned > 0 {
            self.share.give_back(returned);
        }
    }

    /// Whether `bytes` could ever fit: the cap and the user's share, not
    /// what is free now.
    pub fn could_fit(&self, bytes: usize) -> bool {
        bytes <= self.cap && self.borrowed(bytes) <= self.share.pool.user_limit
    }

    pub fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }
}

impl Drop for Budget {
    /// A connection that ends with bytes still charged (frames never
    /// written, events still held) gives back what it borrowed.
    fn drop(&mut self) {
        let used = *self.used.get_mut();
        let borrowed = self.borrowed(used);
        if borrowed > 0 {
            self.share.give_back(borrowed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_borrows_beyond_its_reserve_and_gives_it_back() {
        let pool = Pool::new(100, 100);
        let budget = Budget::new(10, 60, pool.share("u"));
        assert!(budget.try_charge(10));
        assert_eq!(pool.used(), 0, "within the reserve");
        assert!(budget.try_charge(40));
        assert_eq!(pool.used(), 40);
        assert!(!budget.try_charge(11), "over the cap");
        budget.release(45);
        assert_eq!((budget.used(), pool.used()), (5, 0));
    }

    #[test]
    fn a_connection_that_ends_gives_back_what_it_borrowed() {
        let pool = Pool::new(100, 100);
        let budget = Budget::new(10, 60, pool.share("u"));
        assert!(budget.try_charge(50));
        assert_eq!(pool.used(), 40);
        drop(budget);
        assert_eq!(pool.used(), 0);
    }

    #[test]
    fn an_exhausted_pool_refuses_only_what_needs_it() {
        let pool = Pool::new(30, 30);
        let greedy = Budget::new(10, 100, pool.share("greedy"));
        let modest = Budget::new(10, 100, pool.share("modest"));
        assert!(greedy.try_charge(40));
        assert!(!greedy.try_charge(1), "the pool is spent");
        assert!(modest.try_charge(10), "a reserve is never taken by others");
        assert!(!modest.try_charge(1));
        greedy.release(40);
        assert!(modest.try_charge(30));
        assert_eq!(pool.used(), 30);
    }

    #[test]
    fn concurrent_charges_and_releases_keep_the_pool_exact() {
        let pool = Pool::new(1 << 20, 1 << 20);
        let budgets: Vec<Arc<Budget>> =
            (0..2).map(|i| Arc::new(Budget::new(100, 1 << 20, pool.share(&i.to_string())))).collect();
        // Two threads per budget, as the relay's offers and a writer's releases race.
        let threads: Vec<_> = (0..4)
            .map(|i| budgets[i % 2].clone())
            .map(|budget| {
                std::thread::spawn(move || {
                    for i in 0..10_000 {
                        let bytes = 1 + i % 97;
                        if budget.try_charge(bytes) {
                            budget.release(bytes);
                        }
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(pool.used(), 0);
        assert!(budgets.iter().all(|b| b.used() == 0));
    }

    #[test]
    fn one_users_connections_borrow_at_most_the_users_share() {
        let pool = Pool::new(1000, 100);
        let first = Budget::new(10, 1000, pool.share("mallory"));
        let second = Budget::new(10, 1000, pool.share("mallory"));
        assert!(first.try_charge(10 + 80));
        assert!(!second.try_charge(10 + 30), "80 + 30 is over mallory's share");
        assert!(second.try_charge(10 + 20));
        assert_eq!(pool.used(), 100);
        let other = Budget::new(10, 1000, pool.share("alice"));
        assert!(other.try_charge(10 + 100), "another user's share is whole");
        drop(first);
        assert!(second.try_charge(80), "what mallory gave back she may borrow again");
        assert_eq!(pool.share("mallory").used(), 100);
        drop((second, other));
        assert!(pool.shares().is_empty(), "users who hold nothing are forgotten");
    }
}
