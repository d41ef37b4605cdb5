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
        match stmt.query_row([key], failures) {
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
        Ok(stmt.query_row((key, now), failures)?)
    }

    /// Records one more failure under `key` only if its count is still
    /// `expected`; `None` when another unit changed it first. The check and
    /// the increment are one statement, run under the write lock.
    ///
    /// # Errors
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) for an empty or oversized key.
    pub fn reserve_failure(&mut self, key: &str, expected: u32) -> Result<Option<Failures>> {
        check_len("key", key, MAX_ATTEMPT_KEY_BYTES, true)?;
        let now = self.now();
        // No row is a count of 0 (clearing deletes the row).
        let sql = if expected == 0 {
            "INSERT INTO failed_attempts (key, count, last_at) VALUES (?1, 1, ?2)
             ON CONFLICT (key) DO NOTHING
             RETURNING count, last_at"
        } else {
            "UPDATE failed_attempts SET count = count + 1, last_at = ?2
             WHERE key = ?1 AND count = ?3
             RETURNING count, last_at"
        };
        let conn = self.write()?;
        let mut stmt = conn.prepare_cached(sql)?;
        let row = if expected == 0 {
            stmt.query_row((key, now), failures)
        } else {
            stmt.query_row((key, now, expected), failures)
        };
        match row {
            Ok(f) => Ok(Some(f)),
            Err(rusqlite::Error::QueryReturnedNoRows) => Ok(None),
            Err(e) => Err(e.into()),
        }
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

fn failures(r: &rusqlite::Row<'_>) -> rusqlite::Result<Failures> {
    Ok(Failures {
        count: r.get(0)?,
        last_at: r.get(1)?,
    })
}
