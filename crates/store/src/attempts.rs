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
    pub fn get_failures(&self, key: &str) -> Result<Failures> {
        check_len("key", key, MAX_ATTEMPT_KEY_BYTES, true)?;
        let mut stmt = self
            .read()?
            .prepare_cached("SELECT count, last_at FROM failed_attempts WHERE key = ?1")?;
        match stmt.query_row([key], |r| {
            Ok(Failures {
                count: r.get(0)?,
                last_at: r.get(1)?,
            })
        }) {
            Ok(f) => Ok(f),
            Err(rusqlite::Error::QueryReturnedNoRows) => Ok(Failures::default()),
            Err(e) => Err(e.into()),
        }
    }

    /// Records one more failure under `key`, stamped now.
    ///
    /// # Errors
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) for an empty or oversized key.
    pub fn record_failure(&mut self, key: &str) -> Result<Failures> {
        check_len("key", key, MAX_ATTEMPT_KEY_BYTES, true)?;
        let now = self.now();
        let mut stmt = self.write()?.prepare_cached(
            "INSERT INTO failed_attempts (key, count, last_at) VALUES (?1, 1, ?2)
             ON CONFLICT (key) DO UPDATE SET count = count + 1, last_at = excluded.last_at
             RETURNING count, last_at",
        )?;
        Ok(stmt.query_row((key, now), |r| {
            Ok(Failures {
                count: r.get(0)?,
                last_at: r.get(1)?,
            })
        })?)
    }

    /// Forgets the failures under `key`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) for an empty or oversized key.
    pub fn clear_failures(&mut self, key: &str) -> Result<()> {
        check_len("key", key, MAX_ATTEMPT_KEY_BYTES, true)?;
        self.write()?
            .prepare_cached("DELETE FROM failed_attempts WHERE key = ?1")?
            .execute([key])?;
        Ok(())
    }
}
