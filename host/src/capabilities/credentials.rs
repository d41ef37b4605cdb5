//! `plinth:database/credentials`: password hashes, apart from profiles so
//! that a plugin can be granted profiles without them.

use super::{Database, DbView, HostError};
use crate::bindings::plinth::database::credentials;
use crate::capability::{Capability, Function, Gate, Interface};
use crate::grants::Access;

/// `plinth:database/credentials`.
pub const CREDENTIALS: Interface = Interface {
    name: "plinth:database/credentials",
    version: "0.1.0",
    summary: "password hashes: read one, replace one",
    gate: Gate::Manifest,
    functions: &[
        Function::read("get-password-hash"),
        Function::write("update-user-password"),
    ],
};

/// The capability: links `plinth:database/credentials`.
pub const CAPABILITY: Capability = Capability {
    interfaces: &[CREDENTIALS],
    add_to_linker: |linker| {
        credentials::add_to_linker::<_, Database>(linker, |s| DbView::of(s, &CREDENTIALS))
    },
};

const GET_HASH: Access = CREDENTIALS.access("get-password-hash");
const UPDATE_PASSWORD: Access = CREDENTIALS.access("update-user-password");

impl credentials::Host for DbView<'_> {
    fn get_password_hash(&mut self, user_uuid: String) -> Result<String, HostError> {
        Ok(self.unit(GET_HASH)?.get_password_hash(&user_uuid)?)
    }

    fn update_user_password(
        &mut self,
        user_uuid: String,
        password_hash: String,
    ) -> Result<(), HostError> {
        let unit = self.unit(UPDATE_PASSWORD)?;
        Ok(unit.update_user_password(&user_uuid, &password_hash)?)
    }
}
