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
pub use error::{Error, Result};
pub use model::{
    FieldChange, NewUser, ProfileChanges, Session, Token, TokenKind, UniqueField, User,
};
pub use outbox::{Mail, OutboxMessage, TableCount};
pub use unit::Unit;

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
}

impl Default for Options {
    fn default() -> Self {
        Self {
            clock: Arc::new(Clock::system()),
            busy_timeout: Duration::from_secs(5),
            migrate: true,
            max_idle_connections: 16,
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
}

impl Db {
    /// Opens (creating if needed) the database at `path` with default
    /// [`Options`], applying pending migrations.
    ///
    /// # Errors
    /// [`Error::Open`] when the path cannot be opened or is not an SQLite
    /// database; the errors of applying the migrations (see
    /// [`migrations::migrate`]).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path, Options::default())
    }

    /// Opens the database at `path` with `options`.
    ///
    /// # Errors
    /// As [`Db::open`]; with `migrate: false`, [`Error::SchemaTooNew`] or
    /// [`Error::InvalidMigrations`] when the file's schema is not current.
    pub fn open_with(path: impl AsRef<Path>, options: Options) -> Result<Self> {
        let db = Db {
            inner: Arc::new(Inner {
                path: path.as_ref().to_path_buf(),
                idle: pool::Pool::new(options.max_idle_connections),
                options,
            }),
        };
        let mut conn = db.connect()?;
        let now = db.clock().now();
        if db.inner.options.migrate {
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
        db.release(conn);
        Ok(db)
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

    fn acquire(&self) -> Result<Connection> {
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
        // The first statement that reads the file: a non-database file fails here.
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get::<_, String>(0))
            .map_err(open_err)?;
        conn.execute_batch("PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;")
            .map_err(open_err)?;
        conn.set_prepared_statement_cache_capacity(64);
        Ok(conn)
    }
}
