//! Every statement of plinth's own tables, written once for every engine,
//! with the mapping of its rows: users, sessions, single-use tokens,
//! failure counters, the outbox, and what plugins keep (their migrations,
//! their keys and values, the bytes their data takes). Each runs through the
//! engine seam ([`Tx::execute`], [`Tx::query`], [`Tx::lock`]).

use std::ops::ControlFlow;

use crate::engine::{Access, Arg, Lock, Row, Sql, Tx, args, sql};
use crate::outbox::TABLES;
use crate::plugin::{AppliedMigration, PluginData, PluginMigration};
use crate::{
    DueMail, Error, Failures, FieldChange, Mail, MailStatus, OutboxMessage, Result, Session,
    TableCount, Timestamp, Token, TokenKind, User,
};

/// The unique column a user is looked up by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UserKey {
    Email,
    Uuid,
    Name,
}

/// The columns of a new user row.
#[derive(Debug)]
pub(crate) struct UserRow<'a> {
    pub uuid: &'a str,
    pub name: &'a str,
    pub name_key: &'a str,
    pub email: &'a str,
    pub now: Timestamp,
}

/// A profile update: `None` for a column to keep.
#[derive(Debug)]
pub(crate) struct ProfileRow<'a> {
    pub name: Option<(&'a str, &'a str)>,
    pub avatar: &'a FieldChange,
    pub bio: &'a FieldChange,
    pub now: Timestamp,
}

/// What queuing a message under a per-recipient limit did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailQueued {
    /// Queued under this outbox id.
    Queued(i64),
    /// Not queued: `recent` messages went to the recipient inside the
    /// window already, the oldest of them at `oldest`.
    Limited {
        /// Messages inside the window.
        recent: u32,
        /// When the oldest of them was queued.
        oldest: Option<Timestamp>,
    },
}

/// A profile field's change as (keep?, new value): keep leaves the column
/// alone, otherwise the column becomes the value (`None`: cleared).
pub(crate) fn keep_or_set(change: &FieldChange) -> (bool, Option<&str>) {
    match change {
        FieldChange::Keep => (true, None),
        FieldChange::Clear => (false, None),
        FieldChange::Set(v) => (false, Some(v)),
    }
}

macro_rules! user_columns {
    () => {
        "uuid, name, email, email_verified, avatar, bio, created_at, updated_at"
    };
}

fn user(r: &dyn Row) -> Result<User> {
    Ok(User {
        uuid: r.get(0)?,
        name: r.get(1)?,
        email: r.get(2)?,
        email_verified: r.get(3)?,
        avatar: r.get(4)?,
        bio: r.get(5)?,
        created_at: r.get(6)?,
        updated_at: r.get(7)?,
    })
}

/// The columns of a session and of a token, in this order.
fn session(r: &dyn Row) -> Result<Session> {
    Ok(Session {
        id: r.get(0)?,
        user_uuid: r.get(1)?,
        created_at: r.get(2)?,
        expires_at: r.get(3)?,
    })
}

fn token(r: &dyn Row) -> Result<Token> {
    Ok(Token {
        token: r.get(0)?,
        user_uuid: r.get(1)?,
        created_at: r.get(2)?,
        expires_at: r.get(3)?,
    })
}

fn failures(r: &dyn Row) -> Result<Failures> {
    Ok(Failures {
        count: r.get(0)?,
        last_at: r.get(1)?,
    })
}

fn first<T: crate::engine::Column>(r: &dyn Row) -> Result<T> {
    r.get(0)
}

/// The statements of one token table.
struct TokenSql {
    insert: Sql,
    get: Sql,
    delete: Sql,
    consume: Sql,
    delete_for_user: Sql,
    cleanup: Sql,
}

macro_rules! token_sql {
    ($table:literal) => {
        TokenSql {
            insert: sql!(concat!(
                "INSERT INTO ",
                $table,
                " (token, user_uuid, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)
                 RETURNING token, user_uuid, created_at, expires_at"
            )),
            get: sql!(concat!(
                "SELECT token, user_uuid, created_at, expires_at FROM ",
                $table,
                " WHERE token = ?1 AND expires_at > ?2"
            )),
            delete: sql!(concat!("DELETE FROM ", $table, " WHERE token = ?1")),
            consume: sql!(concat!(
                "DELETE FROM ",
                $table,
                " WHERE token = ?1 AND expires_at > ?2
                 RETURNING token, user_uuid, created_at, expires_at"
            )),
            delete_for_user: sql!(concat!("DELETE FROM ", $table, " WHERE user_uuid = ?1")),
            cleanup: sql!(concat!("DELETE FROM ", $table, " WHERE expires_at <= ?1")),
        }
    };
}

const EMAIL_VERIFICATION: TokenSql = token_sql!("email_verification_tokens");
const PASSWORD_RESET: TokenSql = token_sql!("password_reset_tokens");

fn tokens(kind: TokenKind) -> &'static TokenSql {
    match kind {
        TokenKind::EmailVerification => &EMAIL_VERIFICATION,
        TokenKind::PasswordReset => &PASSWORD_RESET,
    }
}

/// The row counts of [`TABLES`], in their order, in one statement.
const TABLE_COUNTS: Sql = sql!(
    "SELECT
        (SELECT COUNT(*) FROM users),
        (SELECT COUNT(*) FROM sessions),
        (SELECT COUNT(*) FROM email_verification_tokens),
        (SELECT COUNT(*) FROM password_reset_tokens),
        (SELECT COUNT(*) FROM outbox),
        (SELECT COUNT(*) FROM failed_attempts),
        (SELECT COUNT(*) FROM schema_version)"
);

const KV_GET: Sql =
    sql!("SELECT value FROM plugin_keyvalue WHERE plugin = ?1 AND bucket = ?2 AND key = ?3");

/// Running statements and reading their rows.
impl dyn Tx + '_ {
    /// The first row, mapped; [`Error::NotFound`] when there is none.
    fn one<T>(
        &mut self,
        sql: &Sql,
        args: &[Arg<'_>],
        access: Access,
        map: impl Fn(&dyn Row) -> Result<T>,
    ) -> Result<T> {
        self.optional(sql, args, access, map)?
            .ok_or(Error::NotFound)
    }

    /// The first row, mapped, if there is one.
    fn optional<T>(
        &mut self,
        sql: &Sql,
        args: &[Arg<'_>],
        access: Access,
        map: impl Fn(&dyn Row) -> Result<T>,
    ) -> Result<Option<T>> {
        let mut found = None;
        self.query(sql, args, access, &mut |r| {
            found = Some(map(r)?);
            Ok(ControlFlow::Break(()))
        })?;
        Ok(found)
    }

    /// Every row, mapped.
    fn all<T>(
        &mut self,
        sql: &Sql,
        args: &[Arg<'_>],
        access: Access,
        map: impl Fn(&dyn Row) -> Result<T>,
    ) -> Result<Vec<T>> {
        let mut rows = Vec::new();
        self.query(sql, args, access, &mut |r| {
            rows.push(map(r)?);
            Ok(ControlFlow::Continue(()))
        })?;
        Ok(rows)
    }
}

/// Users.
impl dyn Tx + '_ {
    pub(crate) fn insert_user(&mut self, row: &UserRow<'_>) -> Result<User> {
        const INSERT: Sql = sql!(concat!(
            "INSERT INTO users (uuid, name, name_key, email, password_hash, email_verified, created_at, updated_at)
             VALUES (?1, ?2, ?5, ?3, '', FALSE, ?4, ?4) RETURNING ",
            user_columns!()
        ));
        let args = args![row.uuid, row.name, row.email, row.now, row.name_key];
        self.one(&INSERT, args, Access::Write, user)
    }

    pub(crate) fn user(&mut self, key: UserKey, value: &str) -> Result<User> {
        macro_rules! by {
            ($column:literal) => {
                sql!(concat!(
                    "SELECT ",
                    user_columns!(),
                    " FROM users WHERE ",
                    $column,
                    " = ?1"
                ))
            };
        }
        const EMAIL: Sql = by!("email");
        const UUID: Sql = by!("uuid");
        const NAME: Sql = by!("name");
        let sql = match key {
            UserKey::Email => &EMAIL,
            UserKey::Uuid => &UUID,
            UserKey::Name => &NAME,
        };
        self.one(sql, args![value], Access::Read, user)
    }

    pub(crate) fn password_hash(&mut self, uuid: &str) -> Result<String> {
        // An empty hash is a user with no password yet.
        const GET: Sql =
            sql!("SELECT password_hash FROM users WHERE uuid = ?1 AND password_hash != ''");
        self.one(&GET, args![uuid], Access::Read, first)
    }

    pub(crate) fn set_password(&mut self, uuid: &str, hash: &str, now: Timestamp) -> Result<u64> {
        const SET: Sql =
            sql!("UPDATE users SET password_hash = ?2, updated_at = ?3 WHERE uuid = ?1");
        self.execute(&SET, args![uuid, hash, now])
    }

    pub(crate) fn set_email_verified(
        &mut self,
        uuid: &str,
        verified: bool,
        now: Timestamp,
    ) -> Result<User> {
        const SET: Sql = sql!(concat!(
            "UPDATE users SET email_verified = ?2, updated_at = ?3 WHERE uuid = ?1 RETURNING ",
            user_columns!()
        ));
        self.one(&SET, args![uuid, verified, now], Access::Write, user)
    }

    pub(crate) fn update_profile(&mut self, uuid: &str, row: &ProfileRow<'_>) -> Result<User> {
        const UPDATE: Sql = sql!(concat!(
            "UPDATE users SET
                name = COALESCE(?2, name),
                name_key = COALESCE(?8, name_key),
                avatar = CASE WHEN ?3 THEN avatar ELSE ?4 END,
                bio = CASE WHEN ?5 THEN bio ELSE ?6 END,
                updated_at = ?7
             WHERE uuid = ?1
             RETURNING ",
            user_columns!()
        ));
        let (keep_avatar, avatar) = keep_or_set(row.avatar);
        let (keep_bio, bio) = keep_or_set(row.bio);
        let (name, key) = row.name.unzip();
        let args = args![uuid, name, keep_avatar, avatar, keep_bio, bio, row.now, key];
        self.one(&UPDATE, args, Access::Write, user)
    }

    pub(crate) fn delete_user(&mut self, uuid: &str) -> Result<u64> {
        self.execute(&sql!("DELETE FROM users WHERE uuid = ?1"), args![uuid])
    }
}

/// Sessions.
impl dyn Tx + '_ {
    pub(crate) fn insert_session(
        &mut self,
        id: &str,
        user: &str,
        now: Timestamp,
        expires: Timestamp,
    ) -> Result<Session> {
        const INSERT: Sql = sql!(
            "INSERT INTO sessions (id, user_uuid, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)
             RETURNING id, user_uuid, created_at, expires_at"
        );
        self.one(
            &INSERT,
            args![id, user, now, expires],
            Access::Write,
            session,
        )
    }

    pub(crate) fn session(&mut self, id: &str, now: Timestamp) -> Result<Session> {
        const GET: Sql = sql!(
            "SELECT id, user_uuid, created_at, expires_at FROM sessions
             WHERE id = ?1 AND expires_at > ?2"
        );
        self.one(&GET, args![id, now], Access::Read, session)
    }

    pub(crate) fn extend_session(
        &mut self,
        id: &str,
        now: Timestamp,
        expires: Timestamp,
    ) -> Result<Session> {
        const EXTEND: Sql = sql!(
            "UPDATE sessions SET expires_at = ?3 WHERE id = ?1 AND expires_at > ?2
             RETURNING id, user_uuid, created_at, expires_at"
        );
        self.one(&EXTEND, args![id, now, expires], Access::Write, session)
    }

    pub(crate) fn delete_session(&mut self, id: &str) -> Result<u64> {
        self.execute(&sql!("DELETE FROM sessions WHERE id = ?1"), args![id])
    }

    pub(crate) fn delete_user_sessions(&mut self, user: &str) -> Result<u64> {
        self.execute(
            &sql!("DELETE FROM sessions WHERE user_uuid = ?1"),
            args![user],
        )
    }

    pub(crate) fn cleanup_sessions(&mut self, now: Timestamp) -> Result<u64> {
        self.execute(
            &sql!("DELETE FROM sessions WHERE expires_at <= ?1"),
            args![now],
        )
    }
}

/// Single-use tokens.
impl dyn Tx + '_ {
    pub(crate) fn insert_token(
        &mut self,
        kind: TokenKind,
        value: &str,
        user: &str,
        now: Timestamp,
        expires: Timestamp,
    ) -> Result<Token> {
        let args = args![value, user, now, expires];
        self.one(&tokens(kind).insert, args, Access::Write, token)
    }

    pub(crate) fn token(&mut self, kind: TokenKind, value: &str, now: Timestamp) -> Result<Token> {
        self.one(&tokens(kind).get, args![value, now], Access::Read, token)
    }

    pub(crate) fn delete_token(&mut self, kind: TokenKind, value: &str) -> Result<u64> {
        self.execute(&tokens(kind).delete, args![value])
    }

    /// Deletes and returns a live token in one statement.
    pub(crate) fn consume_token(
        &mut self,
        kind: TokenKind,
        value: &str,
        now: Timestamp,
    ) -> Result<Token> {
        self.one(
            &tokens(kind).consume,
            args![value, now],
            Access::Write,
            token,
        )
    }

    pub(crate) fn delete_user_tokens(&mut self, kind: TokenKind, user: &str) -> Result<u64> {
        self.execute(&tokens(kind).delete_for_user, args![user])
    }

    pub(crate) fn cleanup_tokens(&mut self, kind: TokenKind, now: Timestamp) -> Result<u64> {
        self.execute(&tokens(kind).cleanup, args![now])
    }
}

/// Failure counters.
impl dyn Tx + '_ {
    pub(crate) fn failures(&mut self, key: &str) -> Result<Option<Failures>> {
        const GET: Sql = sql!("SELECT count, last_at FROM failed_attempts WHERE key = ?1");
        self.optional(&GET, args![key], Access::Read, failures)
    }

    pub(crate) fn record_failure(&mut self, key: &str, now: Timestamp) -> Result<Failures> {
        const RECORD: Sql = sql!(
            "INSERT INTO failed_attempts (key, count, last_at) VALUES (?1, 1, ?2)
             ON CONFLICT (key) DO UPDATE
                 SET count = failed_attempts.count + 1, last_at = excluded.last_at
             RETURNING count, last_at"
        );
        self.one(&RECORD, args![key, now], Access::Write, failures)
    }

    /// Counts one more failure only if `expected` were counted: `None` when
    /// another unit counted first.
    ///
    /// No row is a count of 0 (clearing deletes the row). Two units racing:
    /// the second insert finds the row and does nothing (on PostgreSQL it
    /// waits for the first to commit); the second update no longer matches
    /// the count.
    pub(crate) fn reserve_failure(
        &mut self,
        key: &str,
        expected: u32,
        now: Timestamp,
    ) -> Result<Option<Failures>> {
        const FIRST: Sql = sql!(
            "INSERT INTO failed_attempts (key, count, last_at) VALUES (?1, 1, ?2)
             ON CONFLICT (key) DO NOTHING
             RETURNING count, last_at"
        );
        const NEXT: Sql = sql!(
            "UPDATE failed_attempts SET count = count + 1, last_at = ?2
             WHERE key = ?1 AND count = ?3
             RETURNING count, last_at"
        );
        if expected == 0 {
            self.optional(&FIRST, args![key, now], Access::Write, failures)
        } else {
            self.optional(&NEXT, args![key, now, expected], Access::Write, failures)
        }
    }

    pub(crate) fn clear_failures(&mut self, key: &str) -> Result<()> {
        self.execute(
            &sql!("DELETE FROM failed_attempts WHERE key = ?1"),
            args![key],
        )?;
        Ok(())
    }
}

/// The outbox.
impl dyn Tx + '_ {
    /// Queues `mail`. With a limit `(since, most)`, first counts what
    /// `mail.to` was sent after `since` and queues only below `most`,
    /// atomically against every other unit (on every host) queuing to the
    /// same recipient.
    pub(crate) fn queue_mail(
        &mut self,
        mail: &Mail,
        now: Timestamp,
        limit: Option<(Timestamp, u32)>,
    ) -> Result<MailQueued> {
        const QUEUE: Sql = sql!(
            "INSERT INTO outbox (recipient, subject, body, created_at, status, next_attempt_at)
             VALUES (?1, ?2, ?3, ?4, 'queued', ?4)
             RETURNING id"
        );
        if let Some((since, most)) = limit {
            // Every unit queuing to this recipient takes the same lock until
            // its commit: the count below sees all of their mail.
            self.lock(Lock::Recipient(&mail.to))?;
            let (recent, oldest) = self.mail_sent_since(&mail.to, since)?;
            if recent >= most {
                return Ok(MailQueued::Limited { recent, oldest });
            }
        }
        let args = args![&mail.to, &mail.subject, &mail.body, now];
        Ok(MailQueued::Queued(self.one(
            &QUEUE,
            args,
            Access::Write,
            first,
        )?))
    }

    pub(crate) fn mail_sent_since(
        &mut self,
        recipient: &str,
        since: Timestamp,
    ) -> Result<(u32, Option<Timestamp>)> {
        const SENT: Sql = sql!(
            "SELECT COUNT(*), MIN(created_at) FROM outbox WHERE recipient = ?1 AND created_at > ?2"
        );
        self.one(&SENT, args![recipient, since], Access::Read, |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
    }

    pub(crate) fn outbox(
        &mut self,
        recipient: Option<&str>,
        limit: u32,
    ) -> Result<Vec<OutboxMessage>> {
        const NEWEST: Sql = sql!(
            "SELECT id, recipient, subject, body, created_at, status, attempts, sent_at, last_error
             FROM (
                 SELECT * FROM outbox WHERE CAST(?1 AS TEXT) IS NULL OR recipient = ?1
                 ORDER BY id DESC LIMIT ?2
             ) AS newest ORDER BY id"
        );
        self.all(&NEWEST, args![recipient, limit], Access::Read, |r| {
            Ok(OutboxMessage {
                id: r.get(0)?,
                to: r.get(1)?,
                subject: r.get(2)?,
                body: r.get(3)?,
                created_at: r.get(4)?,
                status: MailStatus::parse(&r.get::<String>(5)?),
                attempts: r.get(6)?,
                sent_at: r.get(7)?,
                last_error: r.get(8)?,
            })
        })
    }

    pub(crate) fn due_mail(&mut self, now: Timestamp, limit: u32) -> Result<Vec<DueMail>> {
        const DUE: Sql = sql!(
            "SELECT id, recipient, subject, body, attempts FROM outbox
             WHERE status = 'queued' AND next_attempt_at <= ?1
             ORDER BY id LIMIT ?2"
        );
        self.all(&DUE, args![now, limit], Access::Read, |r| {
            Ok(DueMail {
                id: r.get(0)?,
                mail: Mail {
                    to: r.get(1)?,
                    subject: r.get(2)?,
                    body: r.get(3)?,
                },
                attempts: r.get(4)?,
            })
        })
    }

    /// Takes a due message for one sender: moves its next attempt to
    /// `until` if it is still queued and due at `now` (1 row), so that no
    /// other sender (on any host) takes it before then.
    pub(crate) fn claim_mail(&mut self, id: i64, now: Timestamp, until: Timestamp) -> Result<u64> {
        const CLAIM: Sql = sql!(
            "UPDATE outbox SET next_attempt_at = ?3
             WHERE id = ?1 AND status = 'queued' AND next_attempt_at <= ?2"
        );
        self.execute(&CLAIM, args![id, now, until])
    }

    /// How many messages are queued (due or waiting for a retry).
    pub(crate) fn mail_queued(&mut self) -> Result<u64> {
        const QUEUED: Sql = sql!("SELECT COUNT(*) FROM outbox WHERE status = 'queued'");
        self.one(&QUEUED, &[], Access::Read, first)
    }

    pub(crate) fn mark_sent(&mut self, id: i64, now: Timestamp) -> Result<u64> {
        const SENT: Sql = sql!(
            "UPDATE outbox SET status = 'sent', sent_at = ?2, body = '',
                 attempts = attempts + 1, last_error = NULL
             WHERE id = ?1 AND status = 'queued'"
        );
        self.execute(&SENT, args![id, now])
    }

    /// `retry_at: None` gives the message up.
    pub(crate) fn mark_failed(
        &mut self,
        id: i64,
        error: &str,
        retry_at: Option<Timestamp>,
    ) -> Result<u64> {
        const RETRY: Sql = sql!(
            "UPDATE outbox SET attempts = attempts + 1, last_error = ?2, next_attempt_at = ?3
             WHERE id = ?1 AND status = 'queued'"
        );
        const GIVE_UP: Sql = sql!(
            "UPDATE outbox SET status = 'failed', attempts = attempts + 1,
                 last_error = ?2, body = ''
             WHERE id = ?1 AND status = 'queued'"
        );
        match retry_at {
            Some(at) => self.execute(&RETRY, args![id, error, at]),
            None => self.execute(&GIVE_UP, args![id, error]),
        }
    }

    pub(crate) fn table_counts(&mut self) -> Result<Vec<TableCount>> {
        self.one(&TABLE_COUNTS, &[], Access::Read, |r| {
            TABLES
                .iter()
                .enumerate()
                .map(|(i, table)| {
                    Ok(TableCount {
                        table,
                        rows: r.get(i)?,
                    })
                })
                .collect()
        })
    }
}

/// What a plugin keeps: its migrations, its keys and values, the bytes its
/// data takes (see `crate::plugin`, `crate::quota`).
impl dyn Tx + '_ {
    /// Takes the plugin's schema lock for the rest of the unit (a write),
    /// then reads its applied migrations.
    pub(crate) fn lock_plugin_schema(&mut self, plugin: &str) -> Result<Vec<AppliedMigration>> {
        // Every unit migrating this plugin takes the same lock until its
        // commit, and then reads what the others applied.
        self.lock(Lock::PluginSchema(plugin))?;
        self.plugin_migrations(plugin)
    }

    pub(crate) fn plugin_migrations(&mut self, plugin: &str) -> Result<Vec<AppliedMigration>> {
        const APPLIED: Sql = sql!(
            "SELECT version, name, checksum, applied_at FROM plugin_migrations
             WHERE plugin = ?1 ORDER BY version"
        );
        self.all(&APPLIED, args![plugin], Access::Read, |r| {
            Ok(AppliedMigration {
                version: r.get(0)?,
                name: r.get(1)?,
                checksum: r.get(2)?,
                applied_at: r.get(3)?,
            })
        })
    }

    pub(crate) fn record_plugin_migration(
        &mut self,
        plugin: &str,
        m: &PluginMigration,
        now: Timestamp,
    ) -> Result<()> {
        const RECORD: Sql = sql!(
            "INSERT INTO plugin_migrations (plugin, version, name, checksum, applied_at)
             VALUES (?1, ?2, ?3, ?4, ?5)"
        );
        let checksum = m.checksum();
        self.execute(&RECORD, args![plugin, m.version, &m.name, &checksum, now])?;
        Ok(())
    }

    /// What each plugin (or only `plugin`) keeps: its recorded version, its
    /// keys and values, and its tables (as the engine stores them).
    pub(crate) fn plugin_data(&mut self, plugin: Option<&str>) -> Result<Vec<PluginData>> {
        // One plugin's rows only, when asked (a quota's first count).
        const VERSIONS: Sql = sql!(
            "SELECT plugin, MAX(version) FROM plugin_migrations
             WHERE CAST(?1 AS TEXT) IS NULL OR plugin = ?1 GROUP BY plugin"
        );
        const KEYS: Sql = sql!(
            "SELECT plugin, COUNT(*), COALESCE(SUM(octet_length(key) + octet_length(value)), 0)
             FROM plugin_keyvalue WHERE CAST(?1 AS TEXT) IS NULL OR plugin = ?1 GROUP BY plugin"
        );
        let versions = self.all(&VERSIONS, args![plugin], Access::Read, |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
        let keys = self.all(&KEYS, args![plugin], Access::Read, |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?;
        let objects = self.plugin_objects(plugin)?;
        Ok(crate::plugin::gather(plugin, versions, keys, objects))
    }

    /// The bytes recorded for `plugin` (counted and recorded when there is
    /// no record), read under the write lock (SQLite) or in the unit's
    /// transaction (PostgreSQL).
    pub(crate) fn plugin_bytes(&mut self, plugin: &str) -> Result<u64> {
        const RECORDED: Sql = sql!("SELECT bytes FROM plugin_usage WHERE plugin = ?1");
        // Two hosts may both count it: the first row stays.
        const RECORD: Sql = sql!(
            "INSERT INTO plugin_usage (plugin, bytes) VALUES (?1, ?2)
             ON CONFLICT (plugin) DO NOTHING"
        );
        if let Some(bytes) = self.optional(&RECORDED, args![plugin], Access::Lock, first)? {
            return Ok(bytes);
        }
        let bytes = self
            .plugin_data(Some(plugin))?
            .first()
            .map_or(0, PluginData::bytes);
        let stored = i64::try_from(bytes).unwrap_or(i64::MAX);
        self.execute(&RECORD, args![plugin, stored])?;
        Ok(bytes)
    }

    /// Adds `delta` to what is recorded for `plugin`.
    pub(crate) fn add_plugin_bytes(&mut self, plugin: &str, delta: i64) -> Result<()> {
        const ADD: Sql = sql!(
            "UPDATE plugin_usage
             SET bytes = CASE WHEN bytes + ?2 < 0 THEN 0 ELSE bytes + ?2 END
             WHERE plugin = ?1"
        );
        self.execute(&ADD, args![plugin, delta])?;
        Ok(())
    }

    /// Forgets what is recorded for `plugin` (counted again when next needed).
    pub(crate) fn forget_plugin_bytes(&mut self, plugin: &str) -> Result<()> {
        self.execute(
            &sql!("DELETE FROM plugin_usage WHERE plugin = ?1"),
            args![plugin],
        )?;
        Ok(())
    }

    pub(crate) fn kv_get(
        &mut self,
        plugin: &str,
        bucket: &str,
        key: &str,
    ) -> Result<Option<Vec<u8>>> {
        self.optional(&KV_GET, args![plugin, bucket, key], Access::Read, first)
    }

    /// The value, with the key locked until the unit ends (whether or not it
    /// has a row yet: two units incrementing a new key take turns).
    pub(crate) fn kv_get_for_update(
        &mut self,
        plugin: &str,
        bucket: &str,
        key: &str,
    ) -> Result<Option<Vec<u8>>> {
        self.lock(Lock::Key {
            plugin,
            bucket,
            key,
        })?;
        self.kv_get(plugin, bucket, key)
    }

    pub(crate) fn kv_set(
        &mut self,
        plugin: &str,
        bucket: &str,
        key: &str,
        value: &[u8],
    ) -> Result<()> {
        const SET: Sql = sql!(
            "INSERT INTO plugin_keyvalue (plugin, bucket, key, value) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (plugin, bucket, key) DO UPDATE SET value = excluded.value"
        );
        self.execute(&SET, args![plugin, bucket, key, value])?;
        Ok(())
    }

    pub(crate) fn kv_delete(&mut self, plugin: &str, bucket: &str, key: &str) -> Result<()> {
        const DELETE: Sql =
            sql!("DELETE FROM plugin_keyvalue WHERE plugin = ?1 AND bucket = ?2 AND key = ?3");
        self.execute(&DELETE, args![plugin, bucket, key])?;
        Ok(())
    }

    /// Keys in byte order (PostgreSQL's text order is the collation's; "C"
    /// is bytes).
    pub(crate) fn kv_keys(
        &mut self,
        plugin: &str,
        bucket: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>> {
        const KEYS: Sql = sql!(
            sqlite: "SELECT key FROM plugin_keyvalue
                     WHERE plugin = ?1 AND bucket = ?2 AND (?3 IS NULL OR key > ?3)
                     ORDER BY key LIMIT ?4",
            postgres: "SELECT key FROM plugin_keyvalue
                       WHERE plugin = $1 AND bucket = $2
                         AND ($3::text IS NULL OR key COLLATE \"C\" > $3)
                       ORDER BY key COLLATE \"C\" LIMIT $4",
        );
        self.all(
            &KEYS,
            args![plugin, bucket, after, limit],
            Access::Read,
            first,
        )
    }
}
