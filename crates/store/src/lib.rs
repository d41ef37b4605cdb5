//! plinth's store: connection setup, migrations and the typed operations
//! behind the `plinth:database` WIT interfaces, on SQLite (embedded, the
//! default) or PostgreSQL (several hosts on one server).
//!
//! This crate knows nothing of WebAssembly. The host runtime adapts its types
//! to the WIT ones; anything else (a CLI, a test) can use it directly.
//!
//! * [`Db`] is one database — a file ([`Db::open`]) or a PostgreSQL server
//!   ([`Db::connect`]): it applies [`migrations`] on open and keeps a pool
//!   of connections. Which engine is behind it is a detail of its
//!   construction; every operation, type and error is the same on both.
//! * [`Unit`] is one unit of work on one pooled connection: what it writes
//!   commits on [`Unit::commit`], and dropping the unit rolls it back.
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
mod domain;
mod engine;
mod error;
pub mod limits;
pub mod migrations;
mod model;
pub mod names;
mod outbox;
pub mod plugin;
pub mod pool;
#[cfg(feature = "postgres")]
mod postgres;
mod quota;
mod sessions;
pub mod sql;
mod sqlite;
mod tokens;
mod unit;
mod users;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub use attempts::Failures;
pub use clock::{Clock, Timestamp};
pub use domain::MailQueued;
pub use engine::PoolStatus;
pub use error::{EngineError, Error, Result};
pub use model::{
    FieldChange, NewUser, ProfileChanges, Session, Token, TokenKind, UniqueField, User,
};
pub use outbox::{DueMail, Mail, MailStatus, OutboxMessage, TableCount};
pub use sqlite::APPLICATION_ID;
pub use unit::Unit;

use engine::Backend;

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
    pub(crate) fn pragma(self) -> &'static str {
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
    /// How long a unit waits for a lock another holds (on PostgreSQL also
    /// for the server's answer) before [`Error::Busy`] (default 5 s). On
    /// SQLite, the writers of one process get the write lock in the order
    /// they asked for it; between processes SQLite's own wait decides,
    /// which favours none.
    pub busy_timeout: Duration,
    /// Whether [`Db::open_with`] applies pending migrations (default true).
    /// When false, opening a file whose schema is not current fails.
    pub migrate: bool,
    /// Most idle connections kept for reuse (default 16); on PostgreSQL,
    /// most connections open at once.
    pub max_idle_connections: usize,
    /// What a commit promises on SQLite (default [`Durability::Full`]); a
    /// PostgreSQL server's durability is its own configuration.
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

/// Settings of the PostgreSQL backend beyond [`Options`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PostgresOptions {
    /// How long connecting to the server may take (default 5 s).
    pub connect_timeout: Duration,
    /// Threads of the runtime that drives the pool's connections (default
    /// 1). They only move bytes between sockets and the calling threads,
    /// which run the statements; one keeps up with many connections, and a
    /// second made each round trip cost more CPU in wake-ups between the
    /// two than it saved (docs/BENCHMARKS.md).
    pub io_threads: usize,
    /// How long the server keeps a transaction that its host left idle —
    /// a host that died mid-call — before ending it and its locks (default
    /// 60 s).
    pub idle_transaction_timeout: Duration,
    /// Run even when plinth's database user is a superuser (default: such
    /// a user is refused). A superuser's session can do anything on the
    /// server — read and write its files, run programs as its OS user,
    /// become any role — so a fault anywhere in the plugin sandbox would
    /// hand all of that to a plugin. Plugin statements run in sessions of
    /// their own roles either way; this only says the operator accepts the
    /// risk for plinth's own sessions.
    pub allow_superuser: bool,
    /// Tests only: the process aborts, as a host killed there would, right
    /// after this step of a two-phase commit (`"decided"`: the plugin's
    /// transaction prepared and the decision row written, the host's
    /// transaction not committed; `"committed"`: the host's transaction
    /// committed, the plugin's still prepared).
    #[doc(hidden)]
    pub abort_commit_after: Option<&'static str>,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            io_threads: 1,
            idle_transaction_timeout: Duration::from_secs(60),
            allow_superuser: false,
            abort_commit_after: None,
        }
    }
}

/// Which SQL engine a database runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Dialect {
    /// An SQLite file, in this process.
    Sqlite,
    /// A PostgreSQL server, shared by every host connected to it.
    Postgres,
}

impl std::fmt::Display for Dialect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Dialect::Sqlite => "sqlite",
            Dialect::Postgres => "postgresql",
        })
    }
}

/// Where a database is: a file, or a server (its URL without the password).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Location {
    /// An SQLite file.
    File(std::path::PathBuf),
    /// A PostgreSQL server and database, as `postgres://user@host:port/db`;
    /// never with a password.
    Server(String),
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::File(path) => write!(f, "{}", path.display()),
            Location::Server(url) => f.write_str(url),
        }
    }
}

/// Whether `target` names a PostgreSQL server (`postgres://…` or
/// `postgresql://…`) rather than a file.
pub fn is_server_url(target: &str) -> bool {
    target.starts_with("postgres://") || target.starts_with("postgresql://")
}

/// One database and its connection pool. Cloning is cheap and shares both.
#[derive(Debug, Clone)]
pub struct Db {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    location: Location,
    dialect: Dialect,
    clock: Arc<Clock>,
    busy_timeout: Duration,
    backend: Box<dyn Backend>,
}

impl Db {
    fn new(
        location: Location,
        dialect: Dialect,
        options: &Options,
        backend: Box<dyn Backend>,
    ) -> Self {
        Db {
            inner: Arc::new(Inner {
                location,
                dialect,
                clock: options.clock.clone(),
                busy_timeout: options.busy_timeout,
                backend,
            }),
        }
    }

    /// Opens (creating if needed) the SQLite database at `path` with default
    /// [`Options`], applying pending migrations.
    ///
    /// A new or empty file becomes a plinth database; a plinth database is
    /// migrated; anything else is refused before anything is written to it.
    /// Unless the file is already current, what it holds is looked at under
    /// its write lock, kept until the schema is complete: processes opening
    /// one file at the same moment wait for each other, and each finds it
    /// new or whole.
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

    /// Opens the SQLite database at `path` with `options`.
    ///
    /// # Errors
    /// As [`Db::open`]; with `migrate: false`, [`Error::SchemaTooNew`] or
    /// [`Error::InvalidMigrations`] when the file's schema is not current.
    pub fn open_with(path: impl AsRef<Path>, options: Options) -> Result<Self> {
        let db = Self::deferred(path, options)?;
        db.ensure_open()?;
        Ok(db)
    }

    /// An SQLite database at `path` that is opened — created, checked,
    /// migrated — only when first used (or by
    /// [`ensure_open`](Self::ensure_open)): nothing touches the file before.
    /// For a tool that validates its input first and must write nothing
    /// when the input is wrong.
    ///
    /// # Errors
    /// [`Error::InvalidPath`] for a path that cannot persist (`:memory:`, a
    /// `file:` URI, an empty path); the file itself is not looked at.
    pub fn deferred(path: impl AsRef<Path>, options: Options) -> Result<Self> {
        let path = path.as_ref();
        let backend = sqlite::Sqlite::new(path, options.clone())?;
        Ok(Self::new(
            Location::File(path.to_path_buf()),
            Dialect::Sqlite,
            &options,
            Box::new(backend),
        ))
    }

    /// Connects to the PostgreSQL database at `url`
    /// (`postgres://user[:password]@host[:port]/dbname[?options]`, or a
    /// socket directory as `host=/run/postgresql` in the query), checks that
    /// it is empty or plinth's, and applies pending migrations — under an
    /// advisory lock, so that hosts starting at once apply each once.
    ///
    /// # Errors
    /// [`Error::Connect`] naming the URL (never its password) when the
    /// server cannot be reached or refuses the login; [`Error::NotPlinth`]
    /// for a database holding other tables; the errors of the migrations.
    pub fn connect(url: &str, options: Options) -> Result<Self> {
        let db = Self::connect_deferred(url, options, PostgresOptions::default())?;
        db.ensure_open()?;
        Ok(db)
    }

    /// A PostgreSQL database at `url` connected to only when first used (or
    /// by [`ensure_open`](Self::ensure_open)).
    ///
    /// # Errors
    /// [`Error::InvalidPath`] for a URL that does not parse.
    /// [`Error::InvalidPath`] too when this build has no PostgreSQL
    /// support (the `postgres` cargo feature, on by default).
    pub fn connect_deferred(url: &str, options: Options, pg: PostgresOptions) -> Result<Self> {
        #[cfg(feature = "postgres")]
        {
            let backend = postgres::Postgres::new(url, options.clone(), pg)?;
            Ok(Self::new(
                Location::Server(backend.display_url().to_string()),
                Dialect::Postgres,
                &options,
                Box::new(backend),
            ))
        }
        #[cfg(not(feature = "postgres"))]
        {
            let _ = (url, options, pg);
            Err(Error::InvalidPath {
                path: "postgres://…".into(),
                reason: "this build of plinth has no PostgreSQL support (the `postgres` feature)"
                    .into(),
            })
        }
    }

    /// A database named by `target`: a PostgreSQL URL (see
    /// [`is_server_url`]) or a file path; opened on first use.
    ///
    /// # Errors
    /// As [`Db::deferred`] or [`Db::connect_deferred`].
    pub fn at(target: &str, options: Options) -> Result<Self> {
        Self::at_with(target, options, PostgresOptions::default())
    }

    /// As [`Db::at`], with the PostgreSQL backend's settings (unused for a
    /// file).
    ///
    /// # Errors
    /// As [`Db::at`].
    pub fn at_with(target: &str, options: Options, pg: PostgresOptions) -> Result<Self> {
        if is_server_url(target) {
            Self::connect_deferred(target, options, pg)
        } else {
            Self::deferred(target, options)
        }
    }

    /// Opens the database now if it is not open yet: checks that it is
    /// plinth's (or new), and applies pending migrations. Every later use
    /// is a no-op.
    ///
    /// # Errors
    /// As [`Db::open_with`] or [`Db::connect`]. A failed open is tried again
    /// by the next use.
    pub fn ensure_open(&self) -> Result<()> {
        self.backend().ensure_open()
    }

    fn backend(&self) -> &dyn Backend {
        self.inner.backend.as_ref()
    }

    /// Where the database is.
    pub fn location(&self) -> &Location {
        &self.inner.location
    }

    /// The file, for an SQLite database.
    pub fn path(&self) -> Option<&Path> {
        match &self.inner.location {
            Location::File(path) => Some(path),
            Location::Server(_) => None,
        }
    }

    /// The SQL engine behind this database.
    pub fn dialect(&self) -> Dialect {
        self.inner.dialect
    }

    /// The longest a unit waits for a lock ([`Options::busy_timeout`]).
    pub fn busy_timeout(&self) -> Duration {
        self.inner.busy_timeout
    }

    /// The clock that stamps rows.
    pub fn clock(&self) -> &Arc<Clock> {
        &self.inner.clock
    }

    /// Starts a unit of work on a pooled connection.
    ///
    /// # Errors
    /// [`Error::Open`] or [`Error::Connect`] when the database cannot be
    /// opened or reached.
    pub fn unit(&self) -> Result<Unit> {
        let tx = self.backend().begin()?;
        Ok(Unit::new(self.clone(), tx))
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

    /// The connections kept for units of work, now (for monitoring).
    pub fn pool_status(&self) -> PoolStatus {
        self.backend().pool_status()
    }

    /// The schema version recorded in the database.
    ///
    /// # Errors
    /// [`Error::Engine`] when the database cannot be read.
    pub fn schema_version(&self) -> Result<u32> {
        self.backend().schema_version()
    }
}
