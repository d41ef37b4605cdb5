//! Versioned, transactional migrations.
//!
//! The lists are append-only: a shipped migration is never edited, a
//! change to the schema is a new entry. The pending migrations run in one
//! immediate transaction, taken before the version is read and kept until
//! the last step: two processes opening the same file at once do not both
//! apply a step, and neither sees the other's schema half made (the second
//! waits for the write lock, then finds every step applied). Each step is a
//! savepoint of its own, so that a failing step is rolled back alone. The
//! applied versions are rows of `schema_version`, as in the seed schema.
//!
//! [`SQLITE`] is SQLite's list, [`POSTGRES`] PostgreSQL's: the same
//! versions, the same descriptions, each step in its engine's dialect. On
//! PostgreSQL the steps run under an advisory lock, so that hosts starting
//! at once apply each step once.

use std::path::Path;

use crate::{Error, Result};

/// One step of the schema.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// 1, 2, 3, … in order.
    pub version: u32,
    /// What the step does, for `db status` and logs.
    pub description: &'static str,
    /// The SQL, run as one batch inside the migration's transaction.
    pub sql: &'static str,
}

/// What each version does, the same on both engines.
const STEPS: [&str; 6] = [
    "users, sessions, email verification and password reset tokens",
    "mail outbox and failure counters",
    "the outbox becomes a delivery queue; delivered bodies are scrubbed",
    "a unique name key: names that differ only in case or form are one name",
    "plugins' schema versions and key-value buckets",
    "plugins' own database roles and two-phase commits (PostgreSQL)",
];

/// The steps of one engine's schema, from the files `v1.sql`, `v2.sql`, …
/// of its folder.
macro_rules! steps {
    ($dir:literal) => {
        &[
            step!($dir, 1),
            step!($dir, 2),
            step!($dir, 3),
            step!($dir, 4),
            step!($dir, 5),
            step!($dir, 6),
        ]
    };
}

macro_rules! step {
    ($dir:literal, $version:literal) => {
        Migration {
            version: $version,
            description: STEPS[$version - 1],
            sql: include_str!(concat!($dir, "/migrations/v", $version, ".sql")),
        }
    };
}

/// The schema of this build on SQLite, oldest first.
pub const SQLITE: &[Migration] = steps!("sqlite");

/// The same schema on PostgreSQL: the same versions, each doing what its
/// SQLite namesake does, in PostgreSQL's types.
pub const POSTGRES: &[Migration] = steps!("postgres");

/// The newest schema version this build knows.
pub fn latest_version() -> u32 {
    SQLITE.last().map_or(0, |m| m.version)
}

/// Checks that `migrations` are numbered 1, 2, 3, … with no gap.
///
/// # Errors
/// [`Error::InvalidMigrations`] naming the first entry out of place.
pub fn validate(migrations: &[Migration]) -> Result<()> {
    for (i, m) in migrations.iter().enumerate() {
        let expected = u32::try_from(i + 1).unwrap_or(u32::MAX);
        if m.version != expected {
            return Err(Error::InvalidMigrations(format!(
                "entry {i} has version {}, expected {expected}",
                m.version
            )));
        }
    }
    Ok(())
}

/// The version recorded in the database file at `path`; 0 for a file never
/// migrated.
///
/// # Errors
/// [`Error::Open`] when the file cannot be opened; [`Error::Engine`] when it
/// cannot be read.
pub fn schema_version(path: impl AsRef<Path>) -> Result<u32> {
    crate::sqlite::migrations::schema_version(path.as_ref())
}

/// Applies every migration of `migrations` newer than the version of the
/// database file at `path` (created if missing); returns the version
/// reached. Re-running is a no-op. [`Db::open`](crate::Db::open) does this
/// with [`SQLITE`]; this form takes any list, for tests of a migration
/// and for tools.
///
/// # Errors
/// [`Error::Open`] when the file cannot be opened, and the errors of
/// applying: [`Error::InvalidMigrations`] for a badly numbered list;
/// [`Error::SchemaTooNew`] when the file is ahead of the list;
/// [`Error::Migration`] when a step fails (that step is rolled back, earlier
/// steps stay); [`Error::Busy`] when another writer holds the file.
pub fn migrate(path: impl AsRef<Path>, migrations: &[Migration], now: i64) -> Result<u32> {
    crate::sqlite::migrations::migrate(path.as_ref(), migrations, now)
}
