//! Users and their password hashes.

use rusqlite::Row;

use crate::limits::{
    MAX_AVATAR_BYTES, MAX_BIO_BYTES, MAX_EMAIL_BYTES, MAX_NAME_BYTES, MAX_PASSWORD_HASH_BYTES,
    check_id, check_len,
};
use crate::{Error, FieldChange, NewUser, ProfileChanges, Result, Unit, User};

macro_rules! user_columns {
    () => {
        "uuid, name, email, email_verified, avatar, bio, created_at, updated_at"
    };
}
const USER_COLUMNS: &str = user_columns!();

/// `SELECT <user columns> FROM users WHERE <column> = ?1`, as a literal so that
/// the statement cache keys on one string per lookup.
macro_rules! concat_user_select {
    ($column:literal) => {
        concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE ",
            $column,
            " = ?1"
        )
    };
}

fn user_from_row(row: &Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        uuid: row.get(0)?,
        name: row.get(1)?,
        email: row.get(2)?,
        email_verified: row.get(3)?,
        avatar: row.get(4)?,
        bio: row.get(5)?,
        created_at: row.get(6)?,
        updated_at: row.get(7)?,
    })
}

/// The unique columns a user can be looked up by.
#[derive(Clone, Copy)]
enum UserKey {
    Email,
    Uuid,
    Name,
}

fn check_field_change(what: &str, change: &FieldChange, max: usize) -> Result<()> {
    match change {
        FieldChange::Set(value) => check_len(what, value, max, false),
        FieldChange::Keep | FieldChange::Clear => Ok(()),
    }
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
        let key = crate::names::name_key(&new.name)?;
        let uuid = uuid::Uuid::new_v4().hyphenated().to_string();
        let now = self.now();
        let conn = self.write()?;
        let mut stmt = conn.prepare_cached(&format!(
            "INSERT INTO users (uuid, name, name_key, email, password_hash, email_verified, created_at, updated_at)
             VALUES (?1, ?2, ?5, ?3, '', 0, ?4, ?4) RETURNING {USER_COLUMNS}"
        ))?;
        Ok(stmt.query_row((&uuid, &new.name, &new.email, now, &key), user_from_row)?)
    }

    /// Finds a user by exact email.
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::InvalidInput`] for an empty or oversized email.
    pub fn get_user_by_email(&self, email: &str) -> Result<User> {
        check_len("email", email, MAX_EMAIL_BYTES, true)?;
        self.user_where(UserKey::Email, email)
    }

    /// Finds a user by UUID.
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::InvalidInput`] for an empty or oversized UUID.
    pub fn get_user_by_uuid(&self, uuid: &str) -> Result<User> {
        check_id("uuid", uuid)?;
        self.user_where(UserKey::Uuid, uuid)
    }

    /// Finds a user by exact name.
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::InvalidInput`] for an empty or oversized name.
    pub fn get_user_by_name(&self, name: &str) -> Result<User> {
        check_len("name", name, MAX_NAME_BYTES, true)?;
        self.user_where(UserKey::Name, name)
    }

    fn user_where(&self, key: UserKey, value: &str) -> Result<User> {
        let sql = match key {
            UserKey::Email => concat_user_select!("email"),
            UserKey::Uuid => concat_user_select!("uuid"),
            UserKey::Name => concat_user_select!("name"),
        };
        let mut stmt = self.read()?.prepare_cached(sql)?;
        Ok(stmt.query_row([value], user_from_row)?)
    }

    /// Returns a user's stored password hash.
    ///
    /// # Errors
    /// [`Error::NotFound`] for no such user or one with no password yet;
    /// [`Error::InvalidInput`] for a bad UUID.
    pub fn get_password_hash(&self, user_uuid: &str) -> Result<String> {
        check_id("user uuid", user_uuid)?;
        let mut stmt = self
            .read()?
            // An empty hash is a user with no password yet (`create_user`).
            .prepare_cached(
                "SELECT password_hash FROM users WHERE uuid = ?1 AND password_hash != ''",
            )?;
        Ok(stmt.query_row([user_uuid], |r| r.get(0))?)
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
        let changed = self
            .write()?
            .prepare_cached("UPDATE users SET password_hash = ?2, updated_at = ?3 WHERE uuid = ?1")?
            .execute((user_uuid, password_hash, now))?;
        if changed == 0 {
            return Err(Error::NotFound);
        }
        Ok(())
    }

    /// Sets whether a user's email is verified; returns the updated user.
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::InvalidInput`] for a bad UUID.
    pub fn update_user_email_verified(&mut self, uuid: &str, verified: bool) -> Result<User> {
        check_id("uuid", uuid)?;
        let now = self.now();
        let mut stmt = self.write()?.prepare_cached(&format!(
            "UPDATE users SET email_verified = ?2, updated_at = ?3 WHERE uuid = ?1
             RETURNING {USER_COLUMNS}"
        ))?;
        Ok(stmt.query_row((uuid, verified, now), user_from_row)?)
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
        // Each optional field is (keep?, new value): keep leaves the column alone.
        let split = |c: &FieldChange| match c {
            FieldChange::Keep => (true, None),
            FieldChange::Clear => (false, None),
            FieldChange::Set(v) => (false, Some(v.clone())),
        };
        let (keep_avatar, avatar) = split(&changes.avatar);
        let (keep_bio, bio) = split(&changes.bio);
        let now = self.now();
        let mut stmt = self.write()?.prepare_cached(&format!(
            "UPDATE users SET
                name = COALESCE(?2, name),
                name_key = COALESCE(?8, name_key),
                avatar = CASE WHEN ?3 THEN avatar ELSE ?4 END,
                bio = CASE WHEN ?5 THEN bio ELSE ?6 END,
                updated_at = ?7
             WHERE uuid = ?1
             RETURNING {USER_COLUMNS}"
        ))?;
        Ok(stmt.query_row(
            (
                uuid,
                changes.name.as_deref(),
                keep_avatar,
                avatar,
                keep_bio,
                bio,
                now,
                key,
            ),
            user_from_row,
        )?)
    }

    /// Deletes a user; its sessions and tokens go with it (ON DELETE CASCADE).
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::InvalidInput`] for a bad UUID.
    pub fn delete_user(&mut self, uuid: &str) -> Result<()> {
        check_id("uuid", uuid)?;
        let changed = self
            .write()?
            .prepare_cached("DELETE FROM users WHERE uuid = ?1")?
            .execute([uuid])?;
        if changed == 0 {
            return Err(Error::NotFound);
        }
        Ok(())
    }
}
