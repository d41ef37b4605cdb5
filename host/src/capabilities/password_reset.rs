//! `plinth:database/password-reset`: single-use reset tokens, stored as
//! their SHA-256.

use plinth_store::TokenKind;

use super::tokens::{Ops, functions};
use super::{Database, DbView, HostError};
use crate::bindings::Token;
use crate::bindings::plinth::database::password_reset;
use crate::capability::{Capability, Function, Gate, Interface};

const NAMES: [&str; 5] = [
    "create-password-reset-token",
    "get-password-reset-token",
    "delete-password-reset-token",
    "consume-password-reset-token",
    "delete-user-password-reset-tokens",
];
const FUNCTIONS: [Function; 5] = functions(&NAMES);

/// `plinth:database/password-reset`.
pub const PASSWORD_RESET: Interface = Interface {
    name: "plinth:database/password-reset",
    version: "0.1.0",
    summary: "password reset tokens: issue, read, consume once, revoke",
    gate: Gate::Manifest,
    functions: &FUNCTIONS,
};

/// The capability: links `plinth:database/password-reset`.
pub const CAPABILITY: Capability = Capability {
    interfaces: &[PASSWORD_RESET],
    add_to_linker: |linker| {
        password_reset::add_to_linker::<_, Database>(linker, |s| DbView::of(s, &PASSWORD_RESET))
    },
};

const OPS: Ops = Ops::new(TokenKind::PasswordReset, &PASSWORD_RESET, &NAMES);

impl password_reset::Host for DbView<'_> {
    fn create_password_reset_token(
        &mut self,
        token: String,
        user_uuid: String,
        ttl_seconds: u32,
    ) -> Result<Token, HostError> {
        self.create_token(&OPS, &token, &user_uuid, ttl_seconds)
    }

    fn get_password_reset_token(&mut self, token: String) -> Result<Token, HostError> {
        self.get_token(&OPS, &token)
    }

    fn delete_password_reset_token(&mut self, token: String) -> Result<bool, HostError> {
        self.delete_token(&OPS, &token)
    }

    fn consume_password_reset_token(&mut self, token: String) -> Result<Token, HostError> {
        self.consume_token(&OPS, &token)
    }

    fn delete_user_password_reset_tokens(&mut self, user_uuid: String) -> Result<u32, HostError> {
        self.delete_user_tokens(&OPS, &user_uuid)
    }
}
