//! Users and their password hashes.

use crate::domain::{ProfileRow, UserKey, UserRow};
use crate::limits::{
    MAX_AVATAR_BYTES, MAX_BIO_BYTES, MAX_EMAIL_BYTES, MAX_NAME_BYTES, MAX_PASSWORD_HASH_BYTES,
    check_id, check_len,
};
use crate::{Error, FieldChange, NewUser, ProfileChanges, Result, Unit, User};

fn check_field_change(what: &str, change: &FieldChange, max: usize) -> Result<()> {
    match change {
        FieldChange::Set(value) => check_len(what, value, max, false),
        FieldChange::Keep | FieldChange::Clear => Ok(()),
    }
}

/// `NotFound` when a statement that must change one row changed none.
fn one(changed: u64) -> Result<()> {
    if changed == 0 {
        return Err(Error::NotFound);
    }
    Ok(())
}

impl Unit {
    /// Creates a user with a fresh UUID, unverified, stamped now, and with no
    /// password: one is set only through [`Unit::update_user_password`] (the
    /// `credentials` interface), so whoever may create profiles cannot by
    /// that choose a password anyone signs in with.
    ///
    /// # Errors
    /// [`Error::Conflict`] naming `name` or `email` when taken;
    /// [`Error::InvalidInput`] when a field is empty or over its limit.
    pub fn create_user(&mut self, new: &NewUser) -> Result<User> {
        check_len("name", &new.name, MAX_NAME_BYTES, true)?;
        check_len("email", &new.email, MAX_EMAIL_BYTES, true)?;
        let name_key = crate::names::name_key(&new.name)?;
        let uuid = uuid::Uuid::new_v4().hyphenated().to_string();
        let now = self.now();
        self.tx().insert_user(&UserRow {
            uuid: &uuid,
            name: &new.name,
            name_key: &name_key,
            email: &new.email,
            now,
        })
    }

    /// Finds a user by exact email.
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::InvalidInput`] for an empty or oversized email.
    pub fn get_user_by_email(&mut self, email: &str) -> Result<User> {
        check_len("email", email, MAX_EMAIL_BYTES, true)?;
        self.tx().user(UserKey::Email, email)
    }

    /// Finds a user by UUID.
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::InvalidInput`] for an empty or oversized UUID.
    pub fn get_user_by_uuid(&mut self, uuid: &str) -> Result<User> {
        check_id("uuid", uuid)?;
        self.tx().user(UserKey::Uuid, uuid)
    }

    /// Finds a user by exact name.
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::InvalidInput`] for an empty or oversized name.
    pub fn get_user_by_name(&mut self, name: &str) -> Result<User> {
        check_len("name", name, MAX_NAME_BYTES, true)?;
        self.tx().user(UserKey::Name, name)
    }

    /// Returns a user's stored password hash.
    ///
    /// # Errors
    /// [`Error::NotFound`] for no such user or one with no password yet;
    /// [`Error::InvalidInput`] for a bad UUID.
    pub fn get_password_hash(&mut self, user_uuid: &str) -> Result<String> {
        check_id("user uuid", user_uuid)?;
        self.tx().password_hash(user_uuid)
    }

    /// Replaces a user's password hash.
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::InvalidInput`] for a bad UUID or hash.
    pub fn update_user_password(&mut self, user_uuid: &str, password_hash: &str) -> Result<()> {
        check_id("user uuid", user_uuid)?;
        check_len(
            "password hash",
            password_hash,
            MAX_PASSWORD_HASH_BYTES,
            true,
        )?;
        let now = self.now();
        one(self.tx().set_password(user_uuid, password_hash, now)?)
    }

    /// Sets whether a user's email is verified; returns the updated user.
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::InvalidInput`] for a bad UUID.
    pub fn update_user_email_verified(&mut self, uuid: &str, verified: bool) -> Result<User> {
        check_id("uuid", uuid)?;
        let now = self.now();
        self.tx().set_email_verified(uuid, verified, now)
    }

    /// Applies profile changes; returns the updated user.
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::Conflict`] naming `name`;
    /// [`Error::InvalidInput`] when a field is over its limit or the name is empty.
    pub fn update_user_profile(&mut self, uuid: &str, changes: &ProfileChanges) -> Result<User> {
        check_id("uuid", uuid)?;
        let key = match &changes.name {
            Some(name) => {
                check_len("name", name, MAX_NAME_BYTES, true)?;
                Some(crate::names::name_key(name)?)
            }
            None => None,
        };
        check_field_change("avatar", &changes.avatar, MAX_AVATAR_BYTES)?;
        check_field_change("bio", &changes.bio, MAX_BIO_BYTES)?;
        let now = self.now();
        let name = changes.name.as_deref().zip(key.as_deref());
        self.tx().update_profile(
            uuid,
            &ProfileRow {
                name,
                avatar: &changes.avatar,
                bio: &changes.bio,
                now,
            },
        )
    }

    /// Deletes a user; its sessions and tokens go with it (ON DELETE CASCADE).
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::InvalidInput`] for a bad UUID.
    pub fn delete_user(&mut self, uuid: &str) -> Result<()> {
        check_id("uuid", uuid)?;
        one(self.tx().delete_user(uuid)?)
    }
}
