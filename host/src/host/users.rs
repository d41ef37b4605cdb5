//! `plinth:database/users`.

use super::HostError;
use crate::bindings::database::plinth::database::users::Host;
use crate::bindings::{FieldChange, NewUser, ProfileChanges, User};
use crate::grants::{Access, Interface};
use crate::state::CallState;

const I: Interface = Interface::Users;

impl Host for CallState {
    fn create_user(&mut self, new: NewUser) -> Result<User, HostError> {
        let new = plinth_store::NewUser {
            name: new.name,
            email: new.email,
            password_hash: new.password_hash,
        };
        Ok(self.unit_for(I, Access::Write)?.create_user(&new)?.into())
    }

    fn get_user_by_email(&mut self, email: String) -> Result<User, HostError> {
        Ok(self
            .unit_for(I, Access::Read)?
            .get_user_by_email(&email)?
            .into())
    }

    fn get_user_by_uuid(&mut self, uuid: String) -> Result<User, HostError> {
        Ok(self
            .unit_for(I, Access::Read)?
            .get_user_by_uuid(&uuid)?
            .into())
    }

    fn get_user_by_name(&mut self, name: String) -> Result<User, HostError> {
        Ok(self
            .unit_for(I, Access::Read)?
            .get_user_by_name(&name)?
            .into())
    }

    fn update_user_email_verified(
        &mut self,
        uuid: String,
        verified: bool,
    ) -> Result<User, HostError> {
        let unit = self.unit_for(I, Access::Write)?;
        Ok(unit.update_user_email_verified(&uuid, verified)?.into())
    }

    fn update_user_profile(
        &mut self,
        uuid: String,
        changes: ProfileChanges,
    ) -> Result<User, HostError> {
        let changes = plinth_store::ProfileChanges {
            name: changes.name,
            avatar: field_change(changes.avatar),
            bio: field_change(changes.bio),
        };
        let unit = self.unit_for(I, Access::Write)?;
        Ok(unit.update_user_profile(&uuid, &changes)?.into())
    }

    fn delete_user(&mut self, uuid: String) -> Result<(), HostError> {
        Ok(self.unit_for(I, Access::Write)?.delete_user(&uuid)?)
    }
}

fn field_change(change: FieldChange) -> plinth_store::FieldChange {
    match change {
        FieldChange::Keep => plinth_store::FieldChange::Keep,
        FieldChange::Clear => plinth_store::FieldChange::Clear,
        FieldChange::Set(v) => plinth_store::FieldChange::Set(v),
    }
}

impl From<plinth_store::User> for User {
    fn from(u: plinth_store::User) -> Self {
        User {
            uuid: u.uuid,
            name: u.name,
            email: u.email,
            email_verified: u.email_verified,
            avatar: u.avatar,
            bio: u.bio,
            created_at: u.created_at,
            updated_at: u.updated_at,
        }
    }
}
