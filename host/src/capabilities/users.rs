//! `plinth:database/users`: profiles, with no secrets in them.

use super::{Database, DbView, HostError};
use crate::bindings::plinth::database::users;
use crate::bindings::{FieldChange, NewUser, ProfileChanges, User};
use crate::capability::{Capability, Function, Gate, Interface};
use crate::grants::Access;

/// `plinth:database/users`.
pub const USERS: Interface = Interface {
    name: "plinth:database/users",
    version: "0.1.0",
    summary: "profiles: create, look up, update, delete (no password hashes)",
    gate: Gate::Manifest,
    functions: &[
        Function::write("create-user"),
        Function::read("get-user-by-email"),
        Function::read("get-user-by-uuid"),
        Function::read("get-user-by-name"),
        Function::write("update-user-email-verified"),
        Function::write("update-user-profile"),
        Function::write("delete-user"),
    ],
};

/// The capability: links `plinth:database/users`.
pub const CAPABILITY: Capability = Capability {
    interfaces: &[USERS],
    add_to_linker: |linker| users::add_to_linker::<_, Database>(linker, |s| DbView::of(s, &USERS)),
};

const CREATE: Access = USERS.access("create-user");
const GET_BY_EMAIL: Access = USERS.access("get-user-by-email");
const GET_BY_UUID: Access = USERS.access("get-user-by-uuid");
const GET_BY_NAME: Access = USERS.access("get-user-by-name");
const SET_VERIFIED: Access = USERS.access("update-user-email-verified");
const UPDATE_PROFILE: Access = USERS.access("update-user-profile");
const DELETE: Access = USERS.access("delete-user");

impl users::Host for DbView<'_> {
    fn create_user(&mut self, new: NewUser) -> Result<User, HostError> {
        let new = plinth_store::NewUser {
            name: new.name,
            email: new.email,
        };
        Ok(self.unit(CREATE)?.create_user(&new)?.into())
    }

    fn get_user_by_email(&mut self, email: String) -> Result<User, HostError> {
        Ok(self.unit(GET_BY_EMAIL)?.get_user_by_email(&email)?.into())
    }

    fn get_user_by_uuid(&mut self, uuid: String) -> Result<User, HostError> {
        Ok(self.unit(GET_BY_UUID)?.get_user_by_uuid(&uuid)?.into())
    }

    fn get_user_by_name(&mut self, name: String) -> Result<User, HostError> {
        Ok(self.unit(GET_BY_NAME)?.get_user_by_name(&name)?.into())
    }

    fn update_user_email_verified(
        &mut self,
        uuid: String,
        verified: bool,
    ) -> Result<User, HostError> {
        let unit = self.unit(SET_VERIFIED)?;
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
        let unit = self.unit(UPDATE_PROFILE)?;
        Ok(unit.update_user_profile(&uuid, &changes)?.into())
    }

    fn delete_user(&mut self, uuid: String) -> Result<(), HostError> {
        Ok(self.unit(DELETE)?.delete_user(&uuid)?)
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
