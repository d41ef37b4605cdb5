//! SQLite's side of the migrations: applying a list to a file.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use crate::migrations::{Migration, validate};
use crate::{Error, Result};

const BOOTSTRAP: &str = "CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER PRIMARY KEY,
    applied_at INTEGER NOT NULL
);";

/// See [`crate::migrations::schema_version`].
pub(crate) fn schema_version(path: &Path) -> Result<u32> {
    version_of(&open(path)?)
}

/// See [`crate::migrations::migrate`].
pub(crate) fn migrate(path: &Path, migrations: &[Migration], now: i64) -> Result<u32> {
    let mut conn = open(path)?;
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
/// through `conn`; returns the version reached (see
/// [`crate::migrations::migrate`]). The write
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
