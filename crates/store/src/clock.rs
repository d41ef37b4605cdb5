//! The store's clock. The database, not its callers, stamps every row, and
//! tests move this clock instead of sleeping.

use std::sync::atomic::{AtomicI64, Ordering};

/// Unix time in seconds.
pub type Timestamp = i64;

/// A clock that reads the system time (or a fixed start) plus an offset that
/// can only move forward.
#[derive(Debug, Default)]
pub struct Clock {
    fixed: Option<Timestamp>,
    offset: AtomicI64,
}

impl Clock {
    /// The system's UTC clock.
    pub fn system() -> Self {
        Self::default()
    }

    /// A clock frozen at `start` until [`advance`](Self::advance) moves it.
    pub fn fixed(start: Timestamp) -> Self {
        Self {
            fixed: Some(start),
            offset: AtomicI64::new(0),
        }
    }

    /// Now, in Unix seconds.
    pub fn now(&self) -> Timestamp {
        let base = self.fixed.unwrap_or_else(|| chrono::Utc::now().timestamp());
        base.saturating_add(self.offset.load(Ordering::Relaxed))
    }

    /// Moves the clock forward by `seconds`.
    pub fn advance(&self, seconds: u32) {
        self.offset.fetch_add(i64::from(seconds), Ordering::Relaxed);
    }
}
