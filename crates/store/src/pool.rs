//! A pool of idle things (connections, live plugin instances) that hands a
//! thread back what it returned last.
//!
//! One `Mutex<Vec<T>>` shared by every thread makes each item wander: two
//! threads taking turns take each other's items, so the memory behind an
//! item (a connection's page cache and prepared statements, an instance's
//! linear memory) moves between cores on most calls, and the two threads
//! queue on one lock. Here the pool is split into shards, each thread
//! returns to and takes from its own shard first, and takes from another
//! shard only when its own is empty. Most takes and puts then lock a mutex
//! no other thread is holding.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// A bounded pool of idle `T`s, sharded by thread.
#[derive(Debug)]
pub struct Pool<T> {
    shards: Box<[Shard<T>]>,
    /// Most items one shard keeps; `shards.len() * per_shard` never exceeds
    /// the capacity the pool was made with.
    per_shard: usize,
}

impl<T> Pool<T> {
    /// A pool keeping at most `capacity` idle items (none when 0).
    pub fn new(capacity: usize) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        // Two shards per core, so that a few more threads than cores rarely
        // share one; never more shards than items to keep.
        let shards = (2 * cores).min(capacity).max(1);
        Self {
            shards: (0..shards).map(|_| Shard(Mutex::new(Vec::new()))).collect(),
            per_shard: capacity / shards,
        }
    }

    /// An idle item, preferably one this thread put back.
    pub fn take(&self) -> Option<T> {
        let own = self.own();
        if let Some(item) = lock(&self.shards[own].0).pop() {
            return Some(item);
        }
        let n = self.shards.len();
        (1..n).find_map(|step| lock(&self.shards[(own + step) % n].0).pop())
    }

    /// Keeps `item` for a later [`take`](Self::take), or hands it back when
    /// this thread's shard is full (the caller drops it, outside any lock).
    pub fn put(&self, item: T) -> Option<T> {
        let mut shard = lock(&self.shards[self.own()].0);
        if shard.len() < self.per_shard {
            shard.push(item);
            None
        } else {
            Some(item)
        }
    }

    /// How many items are idle.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(&s.0).len()).sum()
    }

    /// Whether no item is idle.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// This thread's shard.
    fn own(&self) -> usize {
        thread_number() % self.shards.len()
    }
}

/// One thread's share, on cache lines of its own: two shards on one line
/// would make the threads that own them contend for it anyway.
#[derive(Debug)]
#[repr(align(128))]
struct Shard<T>(Mutex<Vec<T>>);

/// Pushes and pops cannot leave a shard half changed, so a lock poisoned by
/// a panic elsewhere is used as it is.
fn lock<T>(shard: &Mutex<Vec<T>>) -> MutexGuard<'_, Vec<T>> {
    shard.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A number for the calling thread, given out in order on first use, so that
/// threads spread evenly over the shards.
fn thread_number() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static NUMBER: usize = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    NUMBER.with(|n| *n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_takes_back_what_it_put_and_the_capacity_holds() {
        let pool = Pool::new(4);
        assert_eq!(pool.put(1), None);
        assert_eq!(pool.take(), Some(1));
        // Fill past the capacity: the surplus comes back to the caller.
        let surplus: Vec<_> = (10..20).filter_map(|i| pool.put(i)).collect();
        assert!(pool.len() <= 4, "{}", pool.len());
        assert_eq!(pool.len() + surplus.len(), 10);
        while pool.take().is_some() {}
        assert!(pool.is_empty());
        assert_eq!(pool.take(), None);
    }

    #[test]
    fn a_thread_with_an_empty_shard_takes_from_another() -> std::thread::Result<()> {
        let pool = std::sync::Arc::new(Pool::new(64));
        let other = pool.clone();
        let kept = std::thread::spawn(move || (0..3).filter(|&i| other.put(i).is_none()).count())
            .join()?;
        assert!(kept >= 1);
        let taken: Vec<_> = std::iter::from_fn(|| pool.take()).collect();
        assert_eq!(taken.len(), kept);
        Ok(())
    }

    #[test]
    fn a_pool_of_nothing_keeps_nothing() {
        let pool = Pool::new(0);
        assert_eq!(pool.put("x"), Some("x"));
        assert_eq!(pool.take(), None);
    }
}
