//! Byte budgets for what connections make the relay hold. Every connection
//! may hold up to its reserve (`limits.connection_reserve_bytes`) on its
//! own; beyond that it borrows from one pool shared by the whole process
//! (`limits.buffer_pool_bytes`), and never holds more than its cap
//! (`limits.send_queue_bytes`). So the bytes all connections hold together
//! never exceed `connections × reserve + pool`, a connection within its
//! reserve is never refused because of others, and a few connections that
//! stop reading can only exhaust the pool, not the process's memory.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// The bytes shared by every connection of a process beyond their reserves.
#[derive(Debug)]
pub struct Pool {
    used: AtomicUsize,
    limit: usize,
}

impl Pool {
    pub fn new(limit: usize) -> Arc<Pool> {
        Arc::new(Pool { used: AtomicUsize::new(0), limit })
    }

    /// Bytes currently borrowed from the pool.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }

    fn take(&self, bytes: usize) -> bool {
        let mut used = self.used.load(Ordering::Acquire);
        loop {
            if used + bytes > self.limit {
                return false;
            }
            match self.used.compare_exchange_weak(used, used + bytes, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return true,
                Err(now) => used = now,
            }
        }
    }

    fn give_back(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::AcqRel);
    }
}

/// The bytes one connection holds: its queue, held events, replays and the
/// bodies of its pending sends.
#[derive(Debug)]
pub struct Budget {
    used: AtomicUsize,
    reserve: usize,
    cap: usize,
    pool: Arc<Pool>,
}

impl Budget {
    pub fn new(reserve: usize, cap: usize, pool: Arc<Pool>) -> Budget {
        Budget { used: AtomicUsize::new(0), reserve, cap, pool }
    }

    /// The part of `used` bytes that is borrowed from the pool.
    fn borrowed(&self, used: usize) -> usize {
        used.saturating_sub(self.reserve)
    }

    /// Takes `bytes` if they fit under the cap and, beyond the reserve, in the pool.
    pub fn try_charge(&self, bytes: usize) -> bool {
        let mut used = self.used.load(Ordering::Acquire);
        loop {
            let after = used + bytes;
            if after > self.cap {
                return false;
            }
            let borrow = self.borrowed(after) - self.borrowed(used);
            if borrow > 0 && !self.pool.take(borrow) {
                return false;
            }
            match self.used.compare_exchange_weak(used, after, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return true,
                Err(now) => {
                    if borrow > 0 {
                        self.pool.give_back(borrow);
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
            self.pool.give_back(returned);
        }
    }

    /// Whether `bytes` could ever fit: the cap, not what is free now.
    pub fn could_fit(&self, bytes: usize) -> bool {
        bytes <= self.cap
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
            self.pool.give_back(borrowed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_borrows_beyond_its_reserve_and_gives_it_back() {
        let pool = Pool::new(100);
        let budget = Budget::new(10, 60, pool.clone());
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
        let pool = Pool::new(100);
        let budget = Budget::new(10, 60, pool.clone());
        assert!(budget.try_charge(50));
        assert_eq!(pool.used(), 40);
        drop(budget);
        assert_eq!(pool.used(), 0);
    }

    #[test]
    fn an_exhausted_pool_refuses_only_what_needs_it() {
        let pool = Pool::new(30);
        let greedy = Budget::new(10, 100, pool.clone());
        let modest = Budget::new(10, 100, pool.clone());
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
        let pool = Pool::new(1 << 20);
        let budgets: Vec<Arc<Budget>> = (0..2).map(|_| Arc::new(Budget::new(100, 1 << 20, pool.clone()))).collect();
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
}
