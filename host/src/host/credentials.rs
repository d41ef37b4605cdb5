//! `plinth:database/credentials`.

use super::HostError;
use crate::bindings::database::plinth::database::credentials::Host;
use crate::grants::{Access, Interface};
use crate::state::CallState;

const I: Interface = Interface::Credentials;

impl Host for CallState {
    fn get_password_hash(&mut self, user_uuid: String) -> Result<String, HostError> {
        Ok(self
            .unit_for(I, Access::Read)?
            .get_password_hash(&user_uuid)?)
    }

    fn update_user_password(
        &mut self,
        user_uuid: String,
        password_hash: String,
    ) -> Result<(), HostError> {
        let unit = self.unit_for(I, Access::Write)?;
        Ok(unit.update_user_password(&user_uuid, &password_hash)?)
    }
}
