//! Sessions.

use rusqlite::Row;

use crate::limits::{check_id, check_ttl};
use crate::{Result, Session, Unit};

fn session_from_row(row: &Row<'_>) -> rusqlite::Result<Session> {
    Ok(Session {
        id: row.get(0)?,
        user_uuid: row.get(1)?,
        created_at: row.get(2)?,
        expires_at: row.get(3)?,
    })
}

impl Unit {
    /// Stores a session for `user_uuid` that expires `ttl_seconds` from now.
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound) when the user does not exist;
    /// [`Error::Conflict`](crate::Error::Conflict) naming the session id;
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) for a bad id or TTL.
    pub fn create_session(
        &mut self,
        id: &str,
        user_uuid: &str,
        ttl_seconds: u32,
    ) -> Result<Session> {
        check_id("session id", id)?;
        check_id("user uuid", user_uuid)?;
        check_ttl(ttl_seconds)?;
        let now = self.now();
        let mut stmt = self.write()?.prepare_cached(
            "INSERT INTO sessions (id, user_uuid, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)
             RETURNING id, user_uuid, created_at, expires_at",
        )?;
        Ok(stmt.query_row(
            (id, user_uuid, now, now + i64::from(ttl_seconds)),
            session_from_row,
        )?)
    }

    /// Returns a session that has not expired.
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound), also for an expired session;
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) for a bad id.
    pub fn get_session(&self, id: &str) -> Result<Session> {
        check_id("session id", id)?;
        let mut stmt = self.read()?.prepare_cached(
            "SELECT id, user_uuid, created_at, expires_at FROM sessions
             WHERE id = ?1 AND expires_at > ?2",
        )?;
        Ok(stmt.query_row((id, self.now()), session_from_row)?)
    }

    /// Moves a live session's expiry to `ttl_seconds` from now.
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound), also for an expired session;
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) for a bad id or TTL.
    pub fn extend_session(&mut self, id: &str, ttl_seconds: u32) -> Result<Session> {
        check_id("session id", id)?;
        check_ttl(ttl_seconds)?;
        let now = self.now();
        let mut stmt = self.write()?.prepare_cached(
            "UPDATE sessions SET expires_at = ?3 WHERE id = ?1 AND expires_at > ?2
             RETURNING id, user_uuid, created_at, expires_at",
        )?;
        Ok(stmt.query_row((id, now, now + i64::from(ttl_seconds)), session_from_row)?)
    }

    /// Deletes one session; returns whether it existed.
    ///
    /// # Errors
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) for a bad id.
    pub fn delete_session(&mut self, id: &str) -> Result<bool> {
        check_id("session id", id)?;
        let n = self
            .write()?
            .prepare_cached("DELETE FROM sessions WHERE id = ?1")?
            .execute([id])?;
        Ok(n > 0)
    }

    /// Deletes every session of a user; returns how many.
    ///
    /// # Errors
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) for a bad UUID.
    pub fn delete_user_sessions(&mut self, user_uuid: &str) -> Result<u32> {
        check_id("user uuid", user_uuid)?;
        let n = self
            .write()?
            .prepare_cached("DELETE FROM sessions WHERE user_uuid = ?1")?
            .execute([user_uuid])?;
        Ok(saturating_u32(n))
    }

    /// Deletes every expired session; returns how many.
    ///
    /// # Errors
    /// [`Error::Busy`](crate::Error::Busy) or [`Error::Engine`](crate::Error::Engine).
    pub fn cleanup_expired_sessions(&mut self) -> Result<u32> {
        let now = self.now();
        let n = self
            .write()?
            .prepare_cached("DELETE FROM sessions WHERE expires_at <= ?1")?
            .execute([now])?;
        Ok(saturating_u32(n))
    }
}

pub(crate) fn saturating_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}
