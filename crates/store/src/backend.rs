//! The seam between the store's public API and a database engine.
//!
//! [`Db`](crate::Db) and [`Unit`](crate::Unit) validate every argument,
//! stamp times and generate identifiers; a backend only runs statements. A
//! backend receives arguments already checked against [`crate::limits`],
//! and answers in the store's own types and [`Error`](crate::Error)s: no
//! engine type crosses this seam, so the public API names neither rusqlite
//! nor postgres.
//!
//! Two implement it: [`crate::sqlite`] (the embedded default) and
//! [`crate::postgres`] (several hosts on one server).

use std::fmt::Debug;
use std::time::{Duration, Instant};

use crate::plugin::{AppliedMigration, PluginData, PluginMigration};
use crate::{
    DueMail, Failures, FieldChange, Mail, OutboxMessage, Result, Session, TableCount, Timestamp,
    Token, TokenKind, User,
};

/// A database engine behind [`Db`](crate::Db).
pub(crate) trait Backend: Debug + Send + Sync {
    /// Connects, checks that the database is plinth's (or new) and applies
    /// or checks the migrations. Every later call is a no-op; a failed one
    /// is tried again by the next.
    fn ensure_open(&self) -> Result<()>;
    /// A unit of work on a connection of its own (lazily: a backend may
    /// take the connection only at the unit's first statement).
    fn begin(&self) -> Result<Box<dyn Tx>>;
    /// The version recorded in the database.
    fn schema_version(&self) -> Result<u32>;
    /// Makes what was scrubbed unreadable from the engine's logs, where
    /// that is the engine's job (SQLite's write-ahead log); best effort.
    fn checkpoint(&self) {}
    /// Whether the database may hold anything yet, known without creating
    /// it: false only for an SQLite file neither opened nor on disk.
    fn may_hold_data(&self) -> bool {
        true
    }
    /// The connections the backend keeps for units of work, now.
    fn pool_status(&self) -> PoolStatus;
}

/// The connections a [`Db`](crate::Db) keeps for units of work.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStatus {
    /// Open and waiting for a unit.
    pub idle: usize,
    /// Open in all: in use by units, and idle. (SQLite opens one per unit
    /// that finds none idle; this counts the idle ones and those in use
    /// are not tracked, so it equals `idle`.)
    pub open: usize,
    /// The most it keeps (idle, for SQLite; open, for PostgreSQL).
    pub max: usize,
    /// Units waiting for a connection (PostgreSQL's pool).
    pub waiting: usize,
}

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

/// One unit of work on one connection. Reads and writes run in it; it
/// commits only on [`commit`](Tx::commit); dropping it rolls back and hands
/// the connection back (or closes one whose state is unknown).
pub(crate) trait Tx: Debug + Send {
    /// Bounds the unit's waits on the database (for locks, for the server)
    /// by `deadline`, keeping a margin for the caller to answer.
    fn set_deadline(&mut self, deadline: Instant);
    /// Rows inserted, updated or deleted so far.
    fn rows_written(&self) -> u64;
    /// Whether the unit has written.
    fn is_writing(&self) -> bool;
    /// Commits.
    fn commit(self: Box<Self>) -> Result<()>;

    // Users.
    fn insert_user(&mut self, row: &UserRow<'_>) -> Result<User>;
    fn user(&mut self, key: UserKey, value: &str) -> Result<User>;
    fn password_hash(&mut self, uuid: &str) -> Result<String>;
    fn set_password(&mut self, uuid: &str, hash: &str, now: Timestamp) -> Result<u64>;
    fn set_email_verified(&mut self, uuid: &str, verified: bool, now: Timestamp) -> Result<User>;
    fn update_profile(&mut self, uuid: &str, row: &ProfileRow<'_>) -> Result<User>;
    fn delete_user(&mut self, uuid: &str) -> Result<u64>;

    // Sessions.
    fn insert_session(
        &mut self,
        id: &str,
        user: &str,
        now: Timestamp,
        expires: Timestamp,
    ) -> Result<Session>;
    fn session(&mut self, id: &str, now: Timestamp) -> Result<Session>;
    fn extend_session(&mut self, id: &str, now: Timestamp, expires: Timestamp) -> Result<Session>;
    fn delete_session(&mut self, id: &str) -> Result<u64>;
    fn delete_user_sessions(&mut self, user: &str) -> Result<u64>;
    fn cleanup_sessions(&mut self, now: Timestamp) -> Result<u64>;

    // Single-use tokens.
    fn insert_token(
        &mut self,
        kind: TokenKind,
        token: &str,
        user: &str,
        now: Timestamp,
        expires: Timestamp,
    ) -> Result<Token>;
    fn token(&mut self, kind: TokenKind, token: &str, now: Timestamp) -> Result<Token>;
    fn delete_token(&mut self, kind: TokenKind, token: &str) -> Result<u64>;
    /// Deletes and returns a live token in one statement.
    fn consume_token(&mut self, kind: TokenKind, token: &str, now: Timestamp) -> Result<Token>;
    fn delete_user_tokens(&mut self, kind: TokenKind, user: &str) -> Result<u64>;
    fn cleanup_tokens(&mut self, kind: TokenKind, now: Timestamp) -> Result<u64>;

    // Failure counters.
    fn failures(&mut self, key: &str) -> Result<Option<Failures>>;
    fn record_failure(&mut self, key: &str, now: Timestamp) -> Result<Failures>;
    fn reserve_failure(
        &mut self,
        key: &str,
        expected: u32,
        now: Timestamp,
    ) -> Result<Option<Failures>>;
    fn clear_failures(&mut self, key: &str) -> Result<()>;

    // The outbox.
    /// Queues `mail`. With a limit `(since, most)`, first counts what
    /// `mail.to` was sent after `since` and queues only below `most`,
    /// atomically against every other unit (on every host) queuing to the
    /// same recipient.
    fn queue_mail(
        &mut self,
        mail: &Mail,
        now: Timestamp,
        limit: Option<(Timestamp, u32)>,
    ) -> Result<MailQueued>;
    fn mail_sent_since(
        &mut self,
        recipient: &str,
        since: Timestamp,
    ) -> Result<(u32, Option<Timestamp>)>;
    fn outbox(&mut self, recipient: Option<&str>, limit: u32) -> Result<Vec<OutboxMessage>>;
    fn due_mail(&mut self, now: Timestamp, limit: u32) -> Result<Vec<DueMail>>;
    /// Takes a due message for one sender: moves its next attempt to
    /// `until` if it is still queued and due at `now` (1 row), so that no
    /// other sender (on any host) takes it before then.
    fn claim_mail(&mut self, id: i64, now: Timestamp, until: Timestamp) -> Result<u64>;
    /// How many messages are queued (due or waiting for a retry).
    fn mail_queued(&mut self) -> Result<u64>;
    fn mark_sent(&mut self, id: i64, now: Timestamp) -> Result<u64>;
    /// `retry_at: None` gives the message up.
    fn mark_failed(&mut self, id: i64, error: &str, retry_at: Option<Timestamp>) -> Result<u64>;
    fn table_counts(&mut self) -> Result<Vec<TableCount>>;

    // A plugin's own SQL (see `crate::sql`), run once per parameter list of
    // `each` (a batch: all or nothing). Under a quota (`ns.quota()`),
    // a statement that writes is undone if it takes the plugin's data past
    // it; `used` is the bytes the plugin's data takes, computed by the
    // first such statement and kept up to date.
    fn plugin_sql(
        &mut self,
        ns: &crate::sql::Namespace,
        sql: &str,
        each: &[&[crate::sql::SqlValue]],
        want: crate::sql::Want,
        used: &mut Option<crate::unit::Usage>,
    ) -> std::result::Result<crate::sql::Answers, crate::sql::SqlError>;
    /// Runs a plugin's migration script (statements separated by `;`), each
    /// statement through the sandbox, under the namespace's quota (`used`
    /// as for `plugin_sql`).
    fn plugin_script(
        &mut self,
        ns: &crate::sql::Namespace,
        script: &str,
        used: &mut Option<crate::unit::Usage>,
    ) -> std::result::Result<(), crate::sql::SqlError>;

    // What a plugin keeps (see `crate::plugin`).
    /// Takes the plugin's schema lock for the rest of the unit (a write),
    /// then reads its applied migrations.
    fn lock_plugin_schema(&mut self, plugin: &str) -> Result<Vec<AppliedMigration>>;
    fn plugin_migrations(&mut self, plugin: &str) -> Result<Vec<AppliedMigration>>;
    fn record_plugin_migration(
        &mut self,
        plugin: &str,
        m: &PluginMigration,
        now: Timestamp,
    ) -> Result<()>;
    /// What each plugin (or only `plugin`) keeps.
    fn plugin_data(&mut self, plugin: Option<&str>) -> Result<Vec<PluginData>>;
    /// The bytes recorded for `plugin` (counted and recorded when there is
    /// no record). Takes the write lock.
    fn plugin_bytes(&mut self, plugin: &str) -> Result<u64>;
    /// Adds `delta` to what is recorded for `plugin`.
    fn add_plugin_bytes(&mut self, plugin: &str, delta: i64) -> Result<()>;
    /// Forgets what is recorded for `plugin` (counted again when next needed).
    fn forget_plugin_bytes(&mut self, plugin: &str) -> Result<()>;
    fn kv_get(&mut self, plugin: &str, bucket: &str, key: &str) -> Result<Option<Vec<u8>>>;
    /// The value, with the row locked (or the write lock held) until the
    /// unit ends.
    fn kv_get_for_update(
        &mut self,
        plugin: &str,
        bucket: &str,
        key: &str,
    ) -> Result<Option<Vec<u8>>>;
    fn kv_set(&mut self, plugin: &str, bucket: &str, key: &str, value: &[u8]) -> Result<()>;
    fn kv_delete(&mut self, plugin: &str, bucket: &str, key: &str) -> Result<()>;
    fn kv_keys(
        &mut self,
        plugin: &str,
        bucket: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>>;
}

/// The statements of one token table, as literals for the statement cache.
#[derive(Debug)]
pub(crate) struct TokenSql {
    pub insert: &'static str,
    pub get: &'static str,
    pub delete: &'static str,
    pub consume: &'static str,
    pub delete_for_user: &'static str,
    pub cleanup: &'static str,
}

/// The [`TokenSql`] of one table in one dialect: the engines differ only
/// in how a parameter is written (`?1` or `$1`).
macro_rules! token_sql {
    ($table:literal, $p1:literal, $p2:literal, $p3:literal, $p4:literal) => {
        $crate::backend::TokenSql {
            insert: concat!(
                "INSERT INTO ",
                $table,
                " (token, user_uuid, created_at, expires_at) VALUES (",
                $p1,
                ", ",
                $p2,
                ", ",
                $p3,
                ", ",
                $p4,
                ") RETURNING token, user_uuid, created_at, expires_at"
            ),
            get: concat!(
                "SELECT token, user_uuid, created_at, expires_at FROM ",
                $table,
                " WHERE token = ",
                $p1,
                " AND expires_at > ",
                $p2
            ),
            delete: concat!("DELETE FROM ", $table, " WHERE token = ", $p1),
            consume: concat!(
                "DELETE FROM ",
                $table,
                " WHERE token = ",
                $p1,
                " AND expires_at > ",
                $p2,
                " RETURNING token, user_uuid, created_at, expires_at"
            ),
            delete_for_user: concat!("DELETE FROM ", $table, " WHERE user_uuid = ", $p1),
            cleanup: concat!("DELETE FROM ", $table, " WHERE expires_at <= ", $p1),
        }
    };
}
pub(crate) use token_sql;

/// A profile field's change as (keep?, new value): keep leaves the column
/// alone, otherwise the column becomes the value (`None`: cleared).
pub(crate) fn keep_or_set(change: &FieldChange) -> (bool, Option<&str>) {
    match change {
        FieldChange::Keep => (true, None),
        FieldChange::Clear => (false, None),
        FieldChange::Set(v) => (false, Some(v)),
    }
}

/// The tables of a plinth database at schema v1: a database holding other
/// tables but not all of these is not plinth's.
pub(crate) const V1_TABLES: [&str; 5] = [
    "email_verification_tokens",
    "password_reset_tokens",
    "schema_version",
    "sessions",
    "users",
];

/// A database's opening (checks, migrations), done once: callers that
/// race wait for the first; a failed open is tried again by the next.
#[derive(Debug, Default)]
pub(crate) struct OpenOnce {
    opened: std::sync::OnceLock<()>,
    opening: std::sync::Mutex<()>,
}

impl OpenOnce {
    /// Whether it was opened.
    pub(crate) fn is_open(&self) -> bool {
        self.opened.get().is_some()
    }

    pub(crate) fn get_or_open(&self, open: impl FnOnce() -> Result<()>) -> Result<()> {
        if self.opened.get().is_some() {
            return Ok(());
        }
        let _one_at_a_time = self
            .opening
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if self.opened.get().is_some() {
            return Ok(());
        }
        open()?;
        let _ = self.opened.set(());
        Ok(())
    }
}

/// Checks the version `found` in a database that is not to be migrated:
/// it must be this build's.
pub(crate) fn require_current(found: u32) -> Result<()> {
    let known = crate::migrations::latest_version();
    if found > known {
        return Err(crate::Error::SchemaTooNew { found, known });
    }
    if found < known {
        return Err(crate::Error::InvalidMigrations(format!(
            "the database is at version {found}; version {known} is needed (run the migrations)"
        )));
    }
    Ok(())
}

/// How long a unit may wait now for the database: until a little before
/// `deadline` (a tenth of the time left, at most 100 ms, is kept for the
/// caller to answer), never longer than `most`.
pub(crate) fn wait_budget(deadline: Option<Instant>, most: Duration) -> Duration {
    match deadline {
        None => most,
        Some(deadline) => {
            let left = deadline.saturating_duration_since(Instant::now());
            let answer = (left / 10).min(Duration::from_millis(100));
            left.saturating_sub(answer).min(most)
        }
    }
}

/// A count of rows as the WIT's `u32`, saturating.
pub(crate) fn saturating_u32(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}
