//! `plinth:database/email-verification`: single-use tokens that prove an
//! address, stored as their SHA-256.

use plinth_store::TokenKind;

use super::tokens::{Ops, functions};
use super::{Database, DbView, HostError};
use crate::bindings::Token;
use crate::bindings::plinth::database::email_verification;
use crate::capability::{Capability, Function, Gate, Interface};

const NAMES: [&str; 5] = [
    "create-email-verification-token",
    "get-email-verification-token",
    "delete-email-verification-token",
    "consume-email-verification-token",
    "delete-user-email-verification-tokens",
];
const FUNCTIONS: [Function; 5] = functions(&NAMES);

/// `plinth:database/email-verification`.
pub const EMAIL_VERIFICATION: Interface = Interface {
    name: "plinth:database/email-verification",
    version: "0.1.0",
    summary: "email verification tokens: issue, read, consume once, revoke",
    gate: Gate::Manifest,
    functions: &FUNCTIONS,
};

/// The capability: links `plinth:database/email-verification`.
pub const CAPABILITY: Capability = Capability {
    interfaces: &[EMAIL_VERIFICATION],
    add_to_linker: |linker| {
        email_verification::add_to_linker::<_, Database>(linker, |s| {
            DbView::of(s, &EMAIL_VERIFICATION)
        })
    },
};

const OPS: Ops = Ops::new(TokenKind::EmailVerification, &EMAIL_VERIFICATION, &NAMES);

impl email_verification::Host for DbView<'_> {
    fn create_email_verification_token(
        &mut self,
        token: String,
        user_uuid: String,
        ttl_seconds: u32,
    ) -> Result<Token, HostError> {
        self.create_token(&OPS, &token, &user_uuid, ttl_seconds)
    }

    fn get_email_verification_token(&mut self, token: String) -> Result<Token, HostError> {
        self.get_token(&OPS, &token)
    }

    fn delete_email_verification_token(&mut self, token: String) -> Result<bool, HostError> {
        self.delete_token(&OPS, &token)
    }

    fn consume_email_verification_token(&mut self, token: String) -> Result<Token, HostError> {
        self.consume_token(&OPS, &token)
    }

    fn delete_user_email_verification_tokens(
        &mut self,
        user_uuid: String,
    ) -> Result<u32, HostError> {
        self.delete_user_tokens(&OPS, &user_uuid)
    }
}
