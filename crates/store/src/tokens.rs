//! Email verification and password reset tokens: one implementation, two tables.

use crate::engine::saturating_u32;
use crate::limits::{check_id, check_ttl};
use crate::{Result, Token, TokenKind, Unit};

impl TokenKind {
    /// The table holding tokens of this kind.
    pub fn table(self) -> &'static str {
        match self {
            TokenKind::EmailVerification => "email_verification_tokens",
            TokenKind::PasswordReset => "password_reset_tokens",
        }
    }
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
        self.tx()
            .insert_token(kind, token, user_uuid, now, now + i64::from(ttl_seconds))
    }

    /// Returns a token of `kind` that has not expired.
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound), also when expired;
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) for a bad token.
    pub fn get_token(&mut self, kind: TokenKind, token: &str) -> Result<Token> {
        check_id("token", token)?;
        let now = self.now();
        self.tx().token(kind, token, now)
    }

    /// Deletes a token; returns whether it existed.
    ///
    /// # Errors
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) for a bad token.
    pub fn delete_token(&mut self, kind: TokenKind, token: &str) -> Result<bool> {
        check_id("token", token)?;
        Ok(self.tx().delete_token(kind, token)? > 0)
    }

    /// Deletes and returns a live token in one statement: of two callers
    /// racing on one token, on one host or several, exactly one gets it.
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound), also when expired or
    /// already consumed; [`Error::InvalidInput`](crate::Error::InvalidInput).
    pub fn consume_token(&mut self, kind: TokenKind, token: &str) -> Result<Token> {
        check_id("token", token)?;
        let now = self.now();
        self.tx().consume_token(kind, token, now)
    }

    /// Deletes every token of `kind` that belongs to a user; returns how many.
    ///
    /// # Errors
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) for a bad UUID.
    pub fn delete_user_tokens(&mut self, kind: TokenKind, user_uuid: &str) -> Result<u32> {
        check_id("user uuid", user_uuid)?;
        Ok(saturating_u32(
            self.tx().delete_user_tokens(kind, user_uuid)?,
        ))
    }

    /// Deletes every expired token of `kind`; returns how many.
    ///
    /// # Errors
    /// [`Error::Busy`](crate::Error::Busy) or [`Error::Engine`](crate::Error::Engine).
    pub fn cleanup_expired_tokens(&mut self, kind: TokenKind) -> Result<u32> {
        let now = self.now();
        Ok(saturating_u32(self.tx().cleanup_tokens(kind, now)?))
    }
}
