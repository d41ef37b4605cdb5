//! Email verification and password reset tokens: one implementation, two tables.

use rusqlite::Row;

use crate::limits::{check_id, check_ttl};
use crate::sessions::saturating_u32;
use crate::{Result, Token, TokenKind, Unit};

/// The statements of one token table, as literals for the statement cache.
struct TokenSql {
    insert: &'static str,
    get: &'static str,
    delete: &'static str,
    consume: &'static str,
    delete_for_user: &'static str,
    cleanup: &'static str,
}

macro_rules! token_sql {
    ($table:literal) => {
        TokenSql {
            insert: concat!(
                "INSERT INTO ",
                $table,
                " (token, user_uuid, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)
                 RETURNING token, user_uuid, created_at, expires_at"
            ),
            get: concat!(
                "SELECT token, user_uuid, created_at, expires_at FROM ",
                $table,
                " WHERE token = ?1 AND expires_at > ?2"
            ),
            delete: concat!("DELETE FROM ", $table, " WHERE token = ?1"),
            consume: concat!(
                "DELETE FROM ",
                $table,
                " WHERE token = ?1 AND expires_at > ?2
                 RETURNING token, user_uuid, created_at, expires_at"
            ),
            delete_for_user: concat!("DELETE FROM ", $table, " WHERE user_uuid = ?1"),
            cleanup: concat!("DELETE FROM ", $table, " WHERE expires_at <= ?1"),
        }
    };
}

const EMAIL_VERIFICATION: TokenSql = token_sql!("email_verification_tokens");
const PASSWORD_RESET: TokenSql = token_sql!("password_reset_tokens");

impl TokenKind {
    fn sql(self) -> &'static TokenSql {
        match self {
            TokenKind::EmailVerification => &EMAIL_VERIFICATION,
            TokenKind::PasswordReset => &PASSWORD_RESET,
        }
    }
}

fn token_from_row(row: &Row<'_>) -> rusqlite::Result<Token> {
    Ok(Token {
        token: row.get(0)?,
        user_uuid: row.get(1)?,
        created_at: row.get(2)?,
        expires_at: row.get(3)?,
    })
}

impl Unit {
    /// Stores a token of `kind` for `user_uuid` that expires `ttl_seconds` from now.
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound) when the user does not exist;
    /// [`Error::Conflict`](crate::Error::Conflict) naming the token;
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) for a bad token, UUID or TTL.
    pub fn create_token(
        &mut self,
        kind: TokenKind,
        token: &str,
        user_uuid: &str,
        ttl_seconds: u32,
    ) -> Result<Token> {
        check_id("token", token)?;
        check_id("user uuid", user_uuid)?;
        check_ttl(ttl_seconds)?;
        let now = self.now();
        let mut stmt = self.write()?.prepare_cached(kind.sql().insert)?;
        Ok(stmt.query_row(
            (token, user_uuid, now, now + i64::from(ttl_seconds)),
            token_from_row,
        )?)
    }

    /// Returns a token of `kind` that has not expired.
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound), also when expired;
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) for a bad token.
    pub fn get_token(&self, kind: TokenKind, token: &str) -> Result<Token> {
        check_id("token", token)?;
        let mut stmt = self.read()?.prepare_cached(kind.sql().get)?;
        Ok(stmt.query_row((token, self.now()), token_from_row)?)
    }

    /// Deletes a token; returns whether it existed.
    ///
    /// # Errors
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) for a bad token.
    pub fn delete_token(&mut self, kind: TokenKind, token: &str) -> Result<bool> {
        check_id("token", token)?;
        let n = self
            .write()?
            .prepare_cached(kind.sql().delete)?
            .execute([token])?;
        Ok(n > 0)
    }

    /// Deletes and returns a live token in one statement: of two callers
    /// racing on one token, exactly one gets it.
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound), also when expired or
    /// already consumed; [`Error::InvalidInput`](crate::Error::InvalidInput).
    pub fn consume_token(&mut self, kind: TokenKind, token: &str) -> Result<Token> {
        check_id("token", token)?;
        let now = self.now();
        let mut stmt = self.write()?.prepare_cached(kind.sql().consume)?;
        Ok(stmt.query_row((token, now), token_from_row)?)
    }

    /// Deletes every token of `kind` that belongs to a user; returns how many.
    ///
    /// # Errors
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) for a bad UUID.
    pub fn delete_user_tokens(&mut self, kind: TokenKind, user_uuid: &str) -> Result<u32> {
        check_id("user uuid", user_uuid)?;
        let n = self
            .write()?
            .prepare_cached(kind.sql().delete_for_user)?
            .execute([user_uuid])?;
        Ok(saturating_u32(n))
    }

    /// Deletes every expired token of `kind`; returns how many.
    ///
    /// # Errors
    /// [`Error::Busy`](crate::Error::Busy) or [`Error::Engine`](crate::Error::Engine).
    pub fn cleanup_expired_tokens(&mut self, kind: TokenKind) -> Result<u32> {
        let now = self.now();
        let n = self
            .write()?
            .prepare_cached(kind.sql().cleanup)?
            .execute([now])?;
        Ok(saturating_u32(n))
    }
}
