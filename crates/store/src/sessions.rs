//! Sessions.

use crate::engine::saturating_u32;
use crate::limits::{check_id, check_ttl};
use crate::{Result, Session, Unit};

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
        self.tx()
            .insert_session(id, user_uuid, now, now + i64::from(ttl_seconds))
    }

    /// Returns a session that has not expired.
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound), also for an expired session;
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) for a bad id.
    pub fn get_session(&mut self, id: &str) -> Result<Session> {
        check_id("session id", id)?;
        let now = self.now();
        self.tx().session(id, now)
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
        self.tx()
            .extend_session(id, now, now + i64::from(ttl_seconds))
    }

    /// Deletes one session; returns whether it existed.
    ///
    /// # Errors
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) for a bad id.
    pub fn delete_session(&mut self, id: &str) -> Result<bool> {
        check_id("session id", id)?;
        Ok(self.tx().delete_session(id)? > 0)
    }

    /// Deletes every session of a user; returns how many.
    ///
    /// # Errors
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) for a bad UUID.
    pub fn delete_user_sessions(&mut self, user_uuid: &str) -> Result<u32> {
        check_id("user uuid", user_uuid)?;
        Ok(saturating_u32(self.tx().delete_user_sessions(user_uuid)?))
    }

    /// Deletes every expired session; returns how many.
    ///
    /// # Errors
    /// [`Error::Busy`](crate::Error::Busy) or [`Error::Engine`](crate::Error::Engine).
    pub fn cleanup_expired_sessions(&mut self) -> Result<u32> {
        let now = self.now();
        Ok(saturating_u32(self.tx().cleanup_sessions(now)?))
    }
}
