//! `plinth:database/email-verification` and `plinth:database/password-reset`:
//! two interfaces over one store implementation, told apart by [`TokenKind`].

use plinth_store::TokenKind;

use super::HostError;
use crate::bindings::Token;
use crate::bindings::database::plinth::database::{email_verification, password_reset};
use crate::grants::{Access, Interface};
use crate::state::CallState;

impl CallState {
    fn token_unit(
        &mut self,
        kind: TokenKind,
        access: Access,
    ) -> Result<&mut plinth_store::Unit, HostError> {
        let interface = match kind {
            TokenKind::EmailVerification => Interface::EmailVerification,
            TokenKind::PasswordReset => Interface::PasswordReset,
        };
        self.unit_for(interface, access)
    }

    fn create_token(
        &mut self,
        kind: TokenKind,
        token: &str,
        user_uuid: &str,
        ttl: u32,
    ) -> Result<Token, HostError> {
        let unit = self.token_unit(kind, Access::Write)?;
        Ok(unit.create_token(kind, token, user_uuid, ttl)?.into())
    }

    fn get_token(&mut self, kind: TokenKind, token: &str) -> Result<Token, HostError> {
        Ok(self
            .token_unit(kind, Access::Read)?
            .get_token(kind, token)?
            .into())
    }

    fn delete_token(&mut self, kind: TokenKind, token: &str) -> Result<bool, HostError> {
        Ok(self
            .token_unit(kind, Access::Write)?
            .delete_token(kind, token)?)
    }

    fn consume_token(&mut self, kind: TokenKind, token: &str) -> Result<Token, HostError> {
        Ok(self
            .token_unit(kind, Access::Write)?
            .consume_token(kind, token)?
            .into())
    }

    fn delete_user_tokens(&mut self, kind: TokenKind, user_uuid: &str) -> Result<u32, HostError> {
        Ok(self
            .token_unit(kind, Access::Write)?
            .delete_user_tokens(kind, user_uuid)?)
    }
}

impl email_verification::Host for CallState {
    fn create_email_verification_token(
        &mut self,
        token: String,
        user_uuid: String,
        ttl_seconds: u32,
    ) -> Result<Token, HostError> {
        self.create_token(
            TokenKind::EmailVerification,
            &token,
            &user_uuid,
            ttl_seconds,
        )
    }

    fn get_email_verification_token(&mut self, token: String) -> Result<Token, HostError> {
        self.get_token(TokenKind::EmailVerification, &token)
    }

    fn delete_email_verification_token(&mut self, token: String) -> Result<bool, HostError> {
        self.delete_token(TokenKind::EmailVerification, &token)
    }

    fn consume_email_verification_token(&mut self, token: String) -> Result<Token, HostError> {
        self.consume_token(TokenKind::EmailVerification, &token)
    }

    fn delete_user_email_verification_tokens(
        &mut self,
        user_uuid: String,
    ) -> Result<u32, HostError> {
        self.delete_user_tokens(TokenKind::EmailVerification, &user_uuid)
    }
}

impl password_reset::Host for CallState {
    fn create_password_reset_token(
        &mut self,
        token: String,
        user_uuid: String,
        ttl_seconds: u32,
    ) -> Result<Token, HostError> {
        self.create_token(TokenKind::PasswordReset, &token, &user_uuid, ttl_seconds)
    }

    fn get_password_reset_token(&mut self, token: String) -> Result<Token, HostError> {
        self.get_token(TokenKind::PasswordReset, &token)
    }

    fn delete_password_reset_token(&mut self, token: String) -> Result<bool, HostError> {
        self.delete_token(TokenKind::PasswordReset, &token)
    }

    fn consume_password_reset_token(&mut self, token: String) -> Result<Token, HostError> {
        self.consume_token(TokenKind::PasswordReset, &token)
    }

    fn delete_user_password_reset_tokens(&mut self, user_uuid: String) -> Result<u32, HostError> {
        self.delete_user_tokens(TokenKind::PasswordReset, &user_uuid)
    }
}

impl From<plinth_store::Token> for Token {
    fn from(t: plinth_store::Token) -> Self {
        Token {
            token: t.token,
            user_uuid: t.user_uuid,
            created_at: t.created_at,
            expires_at: t.expires_at,
        }
    }
}
