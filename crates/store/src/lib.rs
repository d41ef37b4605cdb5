//! plinth's SQLite store: connection setup, migrations and the typed
//! operations behind the `plinth:database` WIT interfaces.
//!
//! This crate knows nothing of WebAssembly. The host runtime adapts its types
//! to the WIT ones; anything else (a CLI, a test) can use it directly.
//!
//! * [`Db`] owns the file: it applies [`migrations`] on open and keeps a small
//!   pool of connections, so that readers run in parallel beside the one
//!   writer WAL allows.
//! * [`Unit`] is one unit of work on one pooled connection. Its reads share
//!   one read transaction; the first write ends it and opens an immediate
//!   transaction, which [`Unit::commit`] commits and dropping the unit rolls
//!   back.
//! * The [`Clock`] stamps every row; tests move it instead of sleeping.
//!
//! ```
//! use plinth_store::{Db, NewUser};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let db = Db::open(dir.path().join("app.db"))?;
//! let user = db.with_unit(|unit| {
//!     unit.create_user(&NewUser {
//!         name: "ada".into(),
//!         email: "ada@example.com".into(),
//!     })
//! })?;
//! let found = db.unit()?.get_user_by_email("ada@example.com")?;
//! assert_eq!(found.uuid, user.uuid);
//! # Ok(())
//! # }
//! ```

mod attempts;
mod clock;
mod error;
pub mod limits;
pub mod migrations;
mod model;
pub mod names;
mod outbox;
pub mod pool;
mod sessions;
mod tokens;
mod unit;
mod users;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

pub use attempts::Failures;
pub use clock::{Clock, Timestamp};
pub use error::{EngineError, Error, Result};
pub use model::{
    FieldChange, NewUser, ProfileChanges, Session, Token, TokenKind, UniqueField, User,
};
pub use outbox::{DueMail, Mail, MailStatus, OutboxMessage, TableCount};
pub use unit::Unit;

/// `PRAGMA application_id` of a plinth database: `plnt` in ASCII. SQLite's
/// own way of saying which application a file belongs to.
pub const APPLICATION_ID: i32 = 0x706c_6e74;

/// The tables of a plinth database from before [`APPLICATION_ID`] was set
/// (schema v1): a file holding all of them is taken as plinth's.
const V1_TABLES: [&str; 5] = [
    "email_verification_tokens",
    "password_reset_tokens",
    "schema_version",
    "sessions",
    "users",
];

/// What a commit promises once it has returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Durability {
    /// A committed unit survives a crash of the process, of the operating
    /// system and a loss of power: SQLite syncs the write-ahead log at every
    /// commit (`synchronous = FULL`). The default: accounts, sessions and
    /// tokens are not data to lose quietly.
    #[default]
    Full,
    /// A committed unit survives a crash of the process, but the last
    /// commits before an operating-system crash or a power loss may be lost
    /// (the database stays consistent): the log is synced only at
    /// checkpoints (`synchronous = NORMAL`). Faster writes, for data that
    /// can be recreated.
    Normal,
}

impl Durability {
    fn pragma(self) -> &'static str {
        match self {
            Durability::Full => "FULL",
            Durability::Normal => "NORMAL",
        }
    }
}

/// How to open a database.
#[derive(Debug, Clone)]
pub struct Options {
    /// The clock that stamps rows (default: the system clock).
    pub clock: Arc<Clock>,
    /// How long a writer waits for the lock before [`Error::Busy`] (default 5 s).
    pub busy_timeout: Duration,
    /// Whether [`Db::open_with`] applies pending migrations (default true).
    /// When false, opening a file whose schema is not current fails.
    pub migrate: bool,
    /// Most idle connections kept for reuse (default 16).
    pub max_idle_connections: usize,
    /// What a commit promises (default [`Durability::Full`]).
    pub durability: Durability,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            clock: Arc::new(Clock::system()),
            busy_timeout: Duration::from_secs(5),
            migrate: true,
            max_idle_connections: 16,
            durability: Durability::default(),
        }
    }
}

/// A database file and its connection pool. Cloning is cheap and shares both.
#[derive(Debug, Clone)]
pub struct Db {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    options: Options,
    idle: pool::Pool<Connection>,
    /// Set once the file is open (checked, migrated).
    opened: std::sync::OnceLock<()>,
    /// Held while the file is being opened.
    opening: std::sync::Mutex<()>,
}

impl Db {
    /// Opens (creating if needed) the database at `path` with default
    /// [`Options`], applying pending migrations.
    ///
    /// A new or empty file becomes a plinth database; a plinth database is
    /// migrated; anything else is refused before anything is written to it.
    ///
    /// # Errors
    /// [`Error::InvalidPath`] for a path that cannot persist (`:memory:`, a
    /// `file:` URI, not a regular file); [`Error::NotPlinth`] for another
    /// application's database; [`Error::ReadOnly`]; [`Error::Open`] when the
    /// path cannot be opened or is not an SQLite database; the errors of
    /// applying the migrations (see [`migrations::migrate`]).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path, Options::default())
    }

    /// Opens the database at `path` with `options`.
    ///
    /// # Errors
    /// As [`Db::open`]; with `migrate: false`, [`Error::SchemaTooNew`] or
    /// [`Error::InvalidMigrations`] when the file's schema is not current.
    pub fn open_with(path: impl AsRef<Path>, options: Options) -> Result<Self> {
        let db = Self::deferred(path, options)?;
        db.ensure_open()?;
        Ok(db)
    }

    /// A database at `path` that is opened — created, checked, migrated —
    /// only when first used (or by [`ensure_open`](Self::ensure_open)):
    /// nothing touches the file before. For a tool that validates its input
    /// first and must write nothing when the input is wrong.
    ///
    /// # Errors
    /// [`Error::InvalidPath`] for a path that cannot persist (`:memory:`, a
    /// `file:` URI, an empty path); the file itself is not looked at.
    pub fn deferred(path: impl AsRef<Path>, options: Options) -> Result<Self> {
        check_path(path.as_ref())?;
        Ok(Db {
            inner: Arc::new(Inner {
                path: path.as_ref().to_path_buf(),
                idle: pool::Pool::new(options.max_idle_connections),
                options,
                opened: std::sync::OnceLock::new(),
                opening: std::sync::Mutex::new(()),
            }),
        })
    }

    /// Opens the file now if it is not open yet: checks that it is plinth's
    /// (or new), and applies pending migrations. Every later use is a no-op.
    ///
    /// # Errors
    /// As [`Db::open_with`]. A failed open is tried again by the next use.
    pub fn ensure_open(&self) -> Result<()> {
        if self.inner.opened.get().is_some() {
            return Ok(());
        }
        let _one_at_a_time = self
            .inner
            .opening
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if self.inner.opened.get().is_some() {
            return Ok(());
        }
        check_owner(&self.inner.path)?;
        let mut conn = self.connect()?;
        let now = self.clock().now();
        if self.inner.options.migrate {
            migrations::apply(&mut conn, migrations::MIGRATIONS, now)?;
        } else {
            let found = migrations::version_of(&conn)?;
            let known = migrations::latest_version();
            if found > known {
                return Err(Error::SchemaTooNew { found, known });
            }
            if found < known {
                return Err(Error::InvalidMigrations(format!(
                    "the database is at version {found}; version {known} is needed (run the migrations)"
                )));
            }
        }
        let id: i32 = conn.pragma_query_value(None, "application_id", |r| r.get(0))?;
        if id != APPLICATION_ID {
            conn.pragma_update(None, "application_id", APPLICATION_ID)?;
        }
        self.release(conn);
        let _ = self.inner.opened.set(());
        Ok(())
    }

    /// The file this database lives in.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The longest a unit waits for the write lock ([`Options::busy_timeout`]).
    pub fn busy_timeout(&self) -> Duration {
        self.inner.options.busy_timeout
    }

    /// The clock that stamps rows.
    pub fn clock(&self) -> &Arc<Clock> {
        &self.inner.options.clock
    }

    /// Starts a unit of work on a pooled connection.
    ///
    /// # Errors
    /// [`Error::Open`] when a new connection is needed and cannot be opened.
    pub fn unit(&self) -> Result<Unit> {
        let conn = self.acquire()?;
        Ok(Unit::new(self.clone(), conn))
    }

    /// Runs `f` in a unit of work, committing when it returns `Ok` and rolling
    /// back when it returns `Err`.
    ///
    /// # Errors
    /// Whatever `f` returns, or the commit's [`Error::Busy`] / [`Error::Engine`].
    pub fn with_unit<T>(&self, f: impl FnOnce(&mut Unit) -> Result<T>) -> Result<T> {
        let mut unit = self.unit()?;
        let value = f(&mut unit)?;
        unit.commit()?;
        Ok(value)
    }

    /// The schema version recorded in the file.
    ///
    /// # Errors
    /// [`Error::Engine`] when the file cannot be read.
    pub fn schema_version(&self) -> Result<u32> {
        let conn = self.acquire()?;
        let v = migrations::version_of(&conn);
        self.release(conn);
        v
    }

    pub(crate) fn acquire(&self) -> Result<Connection> {
        self.ensure_open()?;
        match self.inner.idle.take() {
            Some(conn) => Ok(conn),
            None => self.connect(),
        }
    }

    /// Returns a connection to the pool (to the calling thread's share of
    /// it, so that its page cache stays on this thread), or closes it when
    /// the pool is full.
    pub(crate) fn release(&self, conn: Connection) {
        drop(self.inner.idle.put(conn));
    }

    fn connect(&self) -> Result<Connection> {
        let path = &self.inner.path;
        let open_err = |source: rusqlite::Error| Error::Open {
            path: path.clone(),
            source: source.into(),
        };
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(open_err)?;
        conn.busy_timeout(self.inner.options.busy_timeout)
            .map_err(open_err)?;
        if conn.is_readonly(rusqlite::MAIN_DB).map_err(open_err)? {
            return Err(Error::ReadOnly { path: path.clone() });
        }
        // The first statement that reads the file: a non-database file fails here.
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get::<_, String>(0))
            .map_err(open_err)?;
        // secure_delete = FAST: content a statement removes (a scrubbed mail
        // body, a deleted token hash) is zeroed in the pages it rewrites
        // anyway, rather than left in free space for a reader of the file.
        conn.execute_batch(&format!(
            "PRAGMA foreign_keys = ON; PRAGMA synchronous = {}; PRAGMA secure_delete = FAST;",
            self.inner.options.durability.pragma()
        ))
        .map_err(open_err)?;
        conn.set_prepared_statement_cache_capacity(64);
        Ok(conn)
    }
}

/// Refuses a path that names no file: SQLite's in-memory database and URIs.
fn check_path(path: &Path) -> Result<()> {
    let text = path.to_string_lossy();
    if text.is_empty() || text == ":memory:" || text.starts_with("file:") {
        return Err(Error::InvalidPath {
            path: path.to_path_buf(),
            reason: "not a database file: an in-memory database or a URI keeps nothing plinth can find again".into(),
        });
    }
    Ok(())
}

/// Refuses, before anything is written, a path that cannot hold a lasting
/// database and a file that is not plinth's. A missing or empty file is
/// fine: it becomes a plinth database.
fn check_owner(path: &Path) -> Result<()> {
    check_path(path)?;
    let invalid = |reason: &str| Error::InvalidPath {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    };
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(invalid(&e.to_string())),
    };
    if !meta.is_file() {
        return Err(invalid("not a regular file"));
    }
    if meta.len() == 0 {
        return Ok(());
    }
    let open_err = |source: rusqlite::Error| Error::Open {
        path: path.to_path_buf(),
        source: source.into(),
    };
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(open_err)?;
    let not_plinth = |reason: String| Error::NotPlinth {
        path: path.to_path_buf(),
        reason,
    };
    // The first read of the file: one that is not SQLite fails here.
    let id: i32 = conn
        .pragma_query_value(None, "application_id", |r| r.get(0))
        .map_err(open_err)?;
    if id == APPLICATION_ID {
        return Ok(());
    }
    if id != 0 {
        return Err(not_plinth(format!("its application id is {id:#x}")));
    }
    let mut stmt = conn
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
        .map_err(open_err)?;
    let tables: Vec<String> = stmt
        .query_map([], |r| r.get(0))
        .and_then(|rows| rows.collect())
        .map_err(open_err)?;
    if tables.is_empty() || V1_TABLES.iter().all(|t| tables.iter().any(|n| n == t)) {
        return Ok(());
    }
    Err(not_plinth(format!(
        "it holds tables plinth did not make: {}",
        tables.join(", ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn synchronous(options: Options) -> Result<i64> {
        let dir = tempfile::tempdir().map_err(|e| Error::invalid(e.to_string()))?;
        let db = Db::open_with(dir.path().join("d.db"), options)?;
        let conn = db.acquire()?;
        let level = conn.pragma_query_value(None, "synchronous", |r| r.get(0))?;
        db.release(conn);
        Ok(level)
    }

    #[test]
    fn commits_are_synced_in_full_unless_asked_otherwise() -> Result<()> {
        // 2 is FULL, 1 is NORMAL.
        assert_eq!(synchronous(Options::default())?, 2);
        let normal = Options {
            durability: Durability::Normal,
            ..Options::default()
        };
        assert_eq!(synchronous(normal)?, 1);
        Ok(())
    }
}
