//! What the commands share: the global options (`--db`, `--plugins`,
//! `--cache-dir`), the data directory they default into, opening the
//! database and the runtime, finding and loading plugins, and the
//! [`Failure`] a command ends with.

use std::path::{Path, PathBuf};

use anyhow::Context;
use plinth_host::{Plugin, Runtime, RuntimeOptions};
use plinth_store::Db;

use crate::mail;
use crate::plugins::{self, Source};

// The options every command takes (`global`: before or after its name).
#[derive(clap::Args)]
pub struct Options {
    /// The database: an SQLite file, created and migrated on first use, or a
    /// PostgreSQL server as postgres://user[:password]@host:port/dbname
    /// (migrated on first use; set it in PLINTH_DB to keep a password off
    /// the command line).
    /// [default: plinth.db in the data directory: $PLINTH_DATA_DIR, else
    /// $XDG_DATA_HOME/plinth, else ~/.local/share/plinth]
    #[arg(
        long,
        global = true,
        value_name = "PATH|URL",
        env = "PLINTH_DB",
        hide_env_values = true
    )]
    db: Option<String>,
    /// Where installed plugins (`name.wasm` + `name.toml`) live.
    /// [default: plugins/ in the data directory]
    #[arg(long, global = true, value_name = "DIR")]
    plugins: Option<PathBuf>,
    /// Where compiled plugins are cached (writable by this user only).
    /// [default: cache/ in the data directory]
    #[arg(long, global = true, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
}

/// A failure and its exit code.
pub struct Failure {
    pub(crate) code: u8,
    pub(crate) error: anyhow::Error,
}

impl Failure {
    /// A mistake in the command (exit 2).
    pub fn usage(msg: impl std::fmt::Display) -> Self {
        Self {
            code: 2,
            error: anyhow::anyhow!("{msg}"),
        }
    }

    /// Something failed while doing what was asked (exit 1).
    pub fn runtime(e: impl Into<anyhow::Error>) -> Self {
        Self {
            code: 1,
            error: e.into(),
        }
    }
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure::runtime(e)
    }
}

pub type Result<T, E = Failure> = std::result::Result<T, E>;

/// The data directory: `$PLINTH_DATA_DIR`, else `$XDG_DATA_HOME/plinth`,
/// else `~/.local/share/plinth`. None when none of them is set: plinth then
/// keeps no files of its own (no cache, no default database) rather than
/// writing into whatever directory it was started in.
fn data_dir() -> Option<PathBuf> {
    let set = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(d) = set("PLINTH_DATA_DIR") {
        Some(PathBuf::from(d))
    } else if let Some(d) = set("XDG_DATA_HOME") {
        Some(PathBuf::from(d).join("plinth"))
    } else {
        set("HOME").map(|home| PathBuf::from(home).join(".local/share/plinth"))
    }
}

pub(crate) struct Ctx {
    /// Where mail goes.
    pub(crate) delivery: mail::Delivery,
    /// The database, if one was named or a data directory gives the default.
    /// A file path or a PostgreSQL URL.
    db_target: Option<String>,
    pub(crate) plugins_dir: Option<PathBuf>,
    /// The compile cache; none without a data directory.
    pub(crate) cache_dir: Option<PathBuf>,
}

impl Ctx {
    /// The options as given, the data directory filling in what was not.
    pub(crate) fn new(options: Options) -> Result<Self> {
        let data = data_dir();
        Ok(Ctx {
            db_target: options.db.or_else(|| {
                data.as_ref()
                    .map(|d| d.join("plinth.db").to_string_lossy().into_owned())
            }),
            plugins_dir: options
                .plugins
                .or_else(|| data.as_ref().map(|d| d.join("plugins"))),
            cache_dir: options
                .cache_dir
                .or_else(|| data.as_ref().map(|d| d.join("cache"))),
            delivery: mail::Delivery::from_env(data.as_deref()).map_err(Failure::usage)?,
        })
    }

    pub(crate) fn db(&self) -> Result<Db> {
        let db = self.deferred_db()?;
        self.open_now(&db)?;
        Ok(db)
    }

    pub(crate) fn runtime(&self) -> Result<Runtime> {
        self.runtime_over(self.db()?, false)
    }

    /// A runtime over the database whose mail links (`plinth:auth/mailer`'s
    /// `link`) point at `public_url`.
    pub(crate) fn runtime_linking(&self, public_url: Option<String>) -> Result<Runtime> {
        let options = RuntimeOptions {
            public_url,
            ..self.runtime_options()
        };
        Ok(Runtime::with_options(self.db()?, options)?)
    }

    /// A runtime over `db`; with `defer`, compiled components are written to
    /// the cache only by `Plugin::write_cache`.
    pub(crate) fn runtime_over(&self, db: Db, defer: bool) -> Result<Runtime> {
        let options = RuntimeOptions {
            defer_cache_writes: defer,
            ..self.runtime_options()
        };
        Ok(Runtime::with_options(db, options)?)
    }

    /// What every runtime of the CLI has: the compile cache, and the test
    /// capability (for the built-in db-test only: `plugins::load` grants it
    /// in code).
    fn runtime_options(&self) -> RuntimeOptions {
        RuntimeOptions {
            cache_dir: self.cache_dir.clone(),
            ..RuntimeOptions::default()
        }
        .capability(plinth_testing::TEST_CAPABILITY)
    }

    /// The database, not opened yet: nothing touches the file until
    /// `ensure_open` or the first use.
    pub(crate) fn deferred_db(&self) -> Result<Db> {
        let target = self.db_target.as_ref().ok_or_else(|| {
            Failure::usage(
                "no data directory (PLINTH_DATA_DIR, XDG_DATA_HOME and HOME are unset): name the database with --db",
            )
        })?;
        // A superuser as plinth's PostgreSQL user only when the operator
        // says so, by name of the risk.
        let mut pg = plinth_store::PostgresOptions::default();
        pg.allow_superuser = std::env::var("PLINTH_PG_ALLOW_SUPERUSER").is_ok_and(|v| v == "yes");
        match Db::at_with(target, plinth_store::Options::default(), pg) {
            Ok(db) => Ok(db),
            // `--db :memory:`, a URL that does not parse: a mistake in the command.
            Err(e @ plinth_store::Error::InvalidPath { .. }) => Err(Failure::usage(e)),
            Err(e) => Err(Failure::runtime(e)),
        }
    }

    /// Opens a deferred database now (creating a file's folder when needed).
    pub(crate) fn open_now(&self, db: &Db) -> Result<()> {
        if let Some(parent) = db
            .path()
            .and_then(Path::parent)
            .filter(|p| !p.as_os_str().is_empty())
        {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        match db.ensure_open() {
            Ok(()) => Ok(()),
            Err(e @ plinth_store::Error::InvalidPath { .. }) => Err(Failure::usage(e)),
            Err(e) => Err(Failure::runtime(e)),
        }
    }

    /// The plugin a command names: a built-in's or an installed plugin's
    /// name, or a path to a `.wasm`.
    pub(crate) fn find_plugin(&self, name: &str) -> Result<Source> {
        plugins::find(self.plugins_dir.as_deref(), name)
    }

    /// Loads `source` into `runtime` with what it may have (see
    /// [`plugins::load`]); `approve_request`: `--approve`.
    pub(crate) fn load_plugin(
        &self,
        runtime: &Runtime,
        source: &Source,
        approve_request: bool,
    ) -> Result<Plugin> {
        plugins::load(
            runtime,
            self.plugins_dir.as_deref(),
            source,
            approve_request,
        )
    }

    /// Delivers what a command queued before the CLI exits. A delivery that
    /// fails is recorded in the outbox and retried by the next `send-mail`;
    /// it does not fail the command that queued it.
    pub(crate) fn deliver_after(&self, db: &Db) {
        if let Err(e) = self.delivery.deliver_due(db) {
            eprintln!(
                "plinth: note: mail not delivered now ({}); `plinth send-mail` retries",
                plinth_host::escape_controls(&format!("{e:#}"))
            );
        }
    }
}
