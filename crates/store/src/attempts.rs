//! Counters of consecutive failures, for throttling.

use crate::limits::{MAX_ATTEMPT_KEY_BYTES, check_len};
use crate::{Result, Timestamp, Unit};

/// Consecutive failures under one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Failures {
    /// How many, since the last clear.
    pub count: u32,
    /// When the last was recorded (0 when none).
    pub last_at: Timestamp,
}

impl Unit {
    /// The failures recorded under `key`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) for an empty or oversized key.
    pub fn get_failures(&mut self, key: &str) -> Result<Failures> {
        check_len("key", key, MAX_ATTEMPT_KEY_BYTES, true)?;
        Ok(self.tx().failures(key)?.unwrap_or_default())
    }

    /// Records one more failure under `key`, stamped now.
    ///
    /// # Errors
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) for an empty or oversized key.
    pub fn record_failure(&mut self, key: &str) -> Result<Failures> {
        check_len("key", key, MAX_ATTEMPT_KEY_BYTES, true)?;
        let now = self.now();
        self.tx().record_failure(key, now)
    }

    /// Records one more failure under `key` only if its count is still
    /// `expected`; `None` when another unit (on any host) changed it first.
    /// The check and the increment are one statement.
    ///
    /// # Errors
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) for an empty or oversized key.
    pub fn reserve_failure(&mut self, key: &str, expected: u32) -> Result<Option<Failures>> {
        check_len("key", key, MAX_ATTEMPT_KEY_BYTES, true)?;
        let now = self.now();
        self.tx().reserve_failure(key, expected, now)
    }

    /// Forgets the failures under `key`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) for an empty or oversized key.
    pub fn clear_failures(&mut self, key: &str) -> Result<()> {
        check_len("key", key, MAX_ATTEMPT_KEY_BYTES, true)?;
        self.tx().clear_failures(key)
    }
}
