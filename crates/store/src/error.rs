//! The store's error type.

use crate::model::UniqueField;

/// A `Result` whose error defaults to the store's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a store operation failed.
///
/// The first four variants are expected outcomes a caller branches on; they map
/// one to one onto the WIT `error` cases. The rest are faults of the database
/// file or of this build. The enum is `#[non_exhaustive]`: later versions add
/// cases (a second backend brings its own faults), so a `match` needs a
/// catch-all arm.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The row asked for does not exist, or has expired.
    #[error("not found")]
    NotFound,
    /// A unique field already holds the value written.
    #[error("{0} is already taken")]
    Conflict(UniqueField),
    /// An argument broke a documented limit (see [`crate::limits`]).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// Other connections held the write lock past the busy timeout.
    #[error("the database is busy")]
    Busy,
    /// The database rolled back the unit's whole transaction on its own (a
    /// write stopped at the deadline, a full disk): nothing of the unit is
    /// kept, and nothing more can be done in it.
    #[error("the unit of work was rolled back by the database; nothing of it is kept")]
    UnitLost,
    /// The file was migrated by a newer build than this one.
    #[error("the database schema is at version {found}, newer than the {known} this build knows")]
    SchemaTooNew {
        /// The version recorded in the file.
        found: u32,
        /// The newest version this build has.
        known: u32,
    },
    /// A migration failed; its transaction was rolled back.
    #[error("migration to version {version} failed")]
    Migration {
        /// The version that failed to apply.
        version: u32,
        /// What the database engine reported.
        #[source]
        source: EngineError,
    },
    /// The database records a newer schema for a plugin than the plugin
    /// ships: an older build of the plugin, refused.
    #[error(
        "{plugin}: the database has its schema at version {found}; this build of the plugin ships {shipped}"
    )]
    PluginSchemaTooNew {
        /// The plugin.
        plugin: String,
        /// The version recorded.
        found: u32,
        /// The newest migration the plugin ships.
        shipped: u32,
    },
    /// A plugin's migration failed; nothing of that load was kept.
    #[error("{plugin}: migration {version} ({name}) failed: {error}")]
    PluginMigration {
        /// The plugin.
        plugin: String,
        /// The migration's version.
        version: u32,
        /// Its name.
        name: String,
        /// What the statement met.
        #[source]
        error: crate::sql::SqlError,
    },
    /// A plugin's migration was applied with other SQL than it has now.
    #[error(
        "{plugin}: migration {version} ({name}) was changed after it was applied; a change is a new migration"
    )]
    PluginMigrationChanged {
        /// The plugin.
        plugin: String,
        /// The migration's version.
        version: u32,
        /// Its name.
        name: String,
    },
    /// A migration list is not numbered 1, 2, 3, … in order.
    #[error("invalid migration list: {0}")]
    InvalidMigrations(String),
    /// The path given is not a database, or cannot be opened.
    #[error("cannot open database {path}")]
    Open {
        /// The path that was opened.
        path: std::path::PathBuf,
        /// What the database engine reported.
        #[source]
        source: EngineError,
    },
    /// The file is a database of another application (or of a kind plinth
    /// does not know): plinth refuses it before writing anything to it.
    #[error("{path} is not a plinth database ({reason}); refusing to change it")]
    NotPlinth {
        /// The file.
        path: std::path::PathBuf,
        /// What gave it away.
        reason: String,
    },
    /// The path cannot hold a database that persists: `:memory:`, a `file:`
    /// URI, something that is not a regular file.
    #[error("{path}: {reason}")]
    InvalidPath {
        /// The path as given.
        path: std::path::PathBuf,
        /// Why it is refused.
        reason: String,
    },
    /// The file can only be read (its permissions, a read-only mount):
    /// plugins could read but every write would fail.
    #[error("{path} is read-only; plinth needs to write to its database")]
    ReadOnly {
        /// The file.
        path: std::path::PathBuf,
    },
    /// The PostgreSQL server is not set up as plinth needs it — its user is
    /// a superuser (refused unless allowed), lacks `CREATEROLE`, prepared
    /// transactions are off, or a plugin's role or schema exists that
    /// plinth did not make; the message names what.
    #[error("{0}")]
    ServerSetup(String),
    /// The database server cannot be reached: a connection could not be
    /// made (the server is down, refuses the login, the URL is wrong).
    #[error("cannot connect to {url}")]
    Connect {
        /// The server's URL, without its password.
        url: String,
        /// What the client reported.
        #[source]
        source: EngineError,
    },
    /// The connection to the database server was lost during the unit of
    /// work: what it wrote was rolled back by the server. The next unit
    /// gets a new connection.
    #[error("the database connection was lost")]
    Unavailable(#[source] EngineError),
    /// Any other failure of the database engine.
    #[error("database: {0}")]
    Engine(#[source] EngineError),
}

/// A failure the database engine reported, kept opaque: its message, and the
/// engine's own error as the [`source`](std::error::Error::source) for logs.
/// No engine type appears in this crate's API, so a caller cannot come to
/// depend on one backend's errors.
#[derive(Debug)]
pub struct EngineError {
    message: String,
    source: Box<dyn std::error::Error + Send + Sync + 'static>,
}

impl EngineError {
    pub(crate) fn new(source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self {
            message: source.to_string(),
            source: Box::new(source),
        }
    }

    /// An engine error described by `message` (what the server said, where
    /// the error's own text says less).
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(crate) fn described(
        message: String,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self {
            message,
            source: Box::new(source),
        }
    }

    /// An error that is only a message (no engine error behind it).
    pub(crate) fn from_message(message: &str) -> Self {
        #[derive(Debug)]
        struct Message(String);
        impl std::fmt::Display for Message {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl std::error::Error for Message {}
        Self::new(Message(message.to_string()))
    }

    /// What the engine said.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl std::fmt::Display for EngineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for EngineError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.source.as_ref())
    }
}

impl Error {
    pub(crate) fn invalid(msg: impl Into<String>) -> Self {
        Error::InvalidInput(msg.into())
    }
}
