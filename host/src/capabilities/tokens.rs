//! What `email-verification` and `password-reset` share: one store
//! implementation told apart by [`TokenKind`], and the function names each
//! interface gives it. Not a capability itself.

use plinth_store::TokenKind;

use super::{DbView, HostError};
use crate::bindings::Token;
use crate::capability::{Function, Interface};
use crate::grants::Access;

/// The functions of a token interface, in the order [`functions`] lists them.
pub(super) const fn functions(names: &'static [&'static str; 5]) -> [Function; 5] {
    [
        Function::write(names[0]),
        Function::read(names[1]),
        Function::write(names[2]),
        Function::write(names[3]),
        Function::write(names[4]),
    ]
}

/// The access each operation needs in `interface`, read from its registry
/// entry at compile time.
pub(super) struct Ops {
    kind: TokenKind,
    create: Access,
    get: Access,
    delete: Access,
    consume: Access,
    delete_for_user: Access,
}

impl Ops {
    pub(super) const fn new(
        kind: TokenKind,
        interface: &Interface,
        names: &'static [&'static str; 5],
    ) -> Self {
        Self {
            kind,
            create: interface.access(names[0]),
            get: interface.access(names[1]),
            delete: interface.access(names[2]),
            consume: interface.access(names[3]),
            delete_for_user: interface.access(names[4]),
        }
    }
}

impl DbView<'_> {
    pub(super) fn create_token(
        &mut self,
        ops: &Ops,
        token: &str,
        user_uuid: &str,
        ttl: u32,
    ) -> Result<Token, HostError> {
        let unit = self.unit(ops.create)?;
        Ok(unit.create_token(ops.kind, token, user_uuid, ttl)?.into())
    }

    pub(super) fn get_token(&mut self, ops: &Ops, token: &str) -> Result<Token, HostError> {
        Ok(self.unit(ops.get)?.get_token(ops.kind, token)?.into())
    }

    pub(super) fn delete_token(&mut self, ops: &Ops, token: &str) -> Result<bool, HostError> {
        Ok(self.unit(ops.delete)?.delete_token(ops.kind, token)?)
    }

    pub(super) fn consume_token(&mut self, ops: &Ops, token: &str) -> Result<Token, HostError> {
        Ok(self
            .unit(ops.consume)?
            .consume_token(ops.kind, token)?
            .into())
    }

    pub(super) fn delete_user_tokens(
        &mut self,
        ops: &Ops,
        user_uuid: &str,
    ) -> Result<u32, HostError> {
        let unit = self.unit(ops.delete_for_user)?;
        Ok(unit.delete_user_tokens(ops.kind, user_uuid)?)
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
