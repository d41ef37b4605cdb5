//! Versioned, transactional migrations.
//!
//! [`MIGRATIONS`] is append-only: a shipped migration is never edited, a
//! change to the schema is a new entry. The pending migrations run in one
//! immediate transaction, taken before the version is read and kept until
//! the last step: two processes opening the same file at once do not both
//! apply a step, and neither sees the other's schema half made (the second
//! waits for the write lock, then finds every step applied). Each step is a
//! savepoint of its own, so that a failing step is rolled back alone. The
//! applied versions are rows of `schema_version`, as in the seed schema.
//!
//! [`MIGRATIONS`] is SQLite's list, [`POSTGRES`] PostgreSQL's: the same
//! versions, the same descriptions, each step in its engine's dialect. On
//! PostgreSQL the steps run under an advisory lock, so that hosts starting
//! at once apply each step once.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

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

/// The schema of this build, oldest first.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: STEPS[0],
        sql: include_str!("sql/v1.sql"),
    },
    Migration {
        version: 2,
        description: STEPS[1],
        sql: include_str!("sql/v2.sql"),
    },
    Migration {
        version: 3,
        description: STEPS[2],
        sql: include_str!("sql/v3.sql"),
    },
    Migration {
        version: 4,
        description: STEPS[3],
        sql: include_str!("sql/v4.sql"),
    },
    Migration {
        version: 5,
        description: STEPS[4],
        sql: include_str!("sql/v5.sql"),
    },
    Migration {
        version: 6,
        description: STEPS[5],
        sql: include_str!("sql/v6.sql"),
    },
];

/// The same schema on PostgreSQL: the same versions, each doing what its
/// SQLite namesake does, in PostgreSQL's types.
pub const POSTGRES: &[Migration] = &[
    Migration {
        version: 1,
        description: STEPS[0],
        sql: include_str!("sql/postgres/v1.sql"),
    },
    Migration {
        version: 2,
        description: STEPS[1],
        sql: include_str!("sql/postgres/v2.sql"),
    },
    Migration {
        version: 3,
        description: STEPS[2],
        sql: include_str!("sql/postgres/v3.sql"),
    },
    Migration {
        version: 4,
        description: STEPS[3],
        sql: include_str!("sql/postgres/v4.sql"),
    },
    Migration {
        version: 5,
        description: STEPS[4],
        sql: include_str!("sql/postgres/v5.sql"),
    },
    Migration {
        version: 6,
        description: STEPS[5],
        sql: include_str!("sql/postgres/v6.sql"),
    },
];

/// The newest schema version this build knows.
pub fn latest_version() -> u32 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

const BOOTSTRAP: &str = "CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER PRIMARY KEY,
    applied_at INTEGER NOT NULL
);";

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
    version_of(&open(path.as_ref())?)
}

/// Applies every migration of `migrations` newer than the version of the
/// database file at `path` (created if missing); returns the version
/// reached. Re-running is a no-op. [`Db::open`](crate::Db::open) does this
/// with [`MIGRATIONS`]; this form takes any list, for tests of a migration
/// and for tools.
///
/// # Errors
/// [`Error::Open`] when the file cannot be opened, and the errors of
/// applying: [`Error::InvalidMigrations`] for a badly numbered list;
/// [`Error::SchemaTooNew`] when the file is ahead of the list;
/// [`Error::Migration`] when a step fails (that step is rolled back, earlier
/// steps stay); [`Error::Busy`] when another writer holds the file.
pub fn migrate(path: impl AsRef<Path>, migrations: &[Migration], now: i64) -> Result<u32> {
    let mut conn = open(path.as_ref())?;
    conn.execute_batch("PRAGMA foreign_keys = ON")?;
    apply(&mut conn, migrations, now)
}

fn open(path: &Path) -> Result<Connection> {
    Connection::open(path).map_err(|e| Error::Open {
        path: path.to_path_buf(),
        source: e.into(),
    })
}

/// The version recorded through `conn`; 0 for a file never migrated.
pub(crate) fn version_of(conn: &Connection) -> Result<u32> {
    let exists: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version')",
        [],
        |r| r.get(0),
    )?;
    if !exists {
        return Ok(0);
    }
    let v: Option<u32> = conn
        .query_row("SELECT MAX(version) FROM schema_version", [], |r| r.get(0))
        .optional()?
        .flatten();
    Ok(v.unwrap_or(0))
}

/// Applies every migration of `migrations` newer than the version recorded
/// through `conn`; returns the version reached (see [`migrate`]). The write
/// lock is taken first (waiting up to the connection's busy timeout) and
/// kept through every step.
pub(crate) fn apply(conn: &mut Connection, migrations: &[Migration], now: i64) -> Result<u32> {
    validate(migrations)?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let applied = apply_locked(&tx, migrations, now);
    // The steps before a failing one stay.
    tx.commit()?;
    applied
}

/// Applies every migration of `migrations` newer than the version recorded
/// through `conn`, in the write transaction the caller holds (so that no
/// other connection can look at or change the schema meanwhile); returns
/// the version reached. Each step runs in a savepoint: a failing step is
/// rolled back alone and its error returned, leaving the steps before it
/// in the transaction for the caller to commit.
pub(crate) fn apply_locked(conn: &Connection, migrations: &[Migration], now: i64) -> Result<u32> {
    validate(migrations)?;
    conn.execute_batch(BOOTSTRAP)?;
    let known = migrations.last().map_or(0, |m| m.version);
    let current = version_of(conn)?;
    if current > known {
        return Err(Error::SchemaTooNew {
            found: current,
            known,
        });
    }
    for m in migrations.iter().filter(|m| m.version > current) {
        conn.execute_batch("SAVEPOINT migration")?;
        let step = conn
            .execute_batch(m.sql)
            .map_err(|source| Error::Migration {
                version: m.version,
                source: source.into(),
            })
            .and_then(|()| {
                conn.execute(
                    "INSERT INTO schema_version (version, applied_at) VALUES (?1, ?2)",
                    (m.version, now),
                )?;
                Ok(())
            });
        if let Err(e) = step {
            conn.execute_batch("ROLLBACK TO migration; RELEASE migration")?;
            return Err(e);
        }
        conn.execute_batch("RELEASE migration")?;
    }
    version_of(conn)
}
