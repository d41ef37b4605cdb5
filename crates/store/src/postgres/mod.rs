//! The PostgreSQL backend: several plinth hosts on one server.
//!
//! The client is tokio-postgres with a deadpool pool (what Spin and
//! wasmCloud use). The store's API is synchronous — plugin calls are — so
//! each backend owns one small tokio runtime that drives every connection of
//! its pool; a unit's statements run on the calling thread by
//! [`Handle::block_on`](tokio::runtime::Handle::block_on), never on the
//! runtime's own workers, and no connection needs a runtime of its own.
//! Called from inside someone else's tokio runtime (where `block_on` is not
//! allowed), a statement runs on a short-lived scoped thread instead: it
//! works, but blocks that worker, as any synchronous database call would —
//! embedders in async code call plinth from `spawn_blocking`.
//!
//! Each unit of work holds one connection for its call. Reads before its
//! first write run on their own (each sees what was committed when it ran);
//! the first write opens a transaction, and every statement inside one is
//! wrapped in a savepoint, pipelined in the same round trip, so that a
//! statement that fails (a unique value taken) leaves the unit usable as on
//! SQLite, where PostgreSQL would otherwise abort the whole transaction.
//! Every wait is bounded by the unit's deadline: past it the statement is
//! cancelled on the server (a cancel request) and the unit answers
//! [`Error::Busy`]; the server itself also ends lock waits after the busy
//! timeout (`lock_timeout`) and drops transactions a vanished host left idle
//! (`idle_in_transaction_session_timeout`).

mod errors;
mod migrations;
mod sandbox;
mod tx;

use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

use crate::engine::{Backend, OpenOnce, Tx, V1_TABLES, require_current};
use crate::{EngineError, Error, Options, PostgresOptions, Result};
use migrations::{apply, version_of};

pub(crate) use errors::classify;
pub(crate) use tx::PgTx;

/// The advisory lock key of migrations: `plnt` in ASCII.
const MIGRATION_LOCK: i64 = 0x706c_6e74;

/// A PostgreSQL database and its pool. Cloning shares both.
#[derive(Debug, Clone)]
pub(crate) struct Postgres {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// The runtime driving the pool's connections; taken by `drop`.
    runtime: Option<tokio::runtime::Runtime>,
    handle: tokio::runtime::Handle,
    pool: Pool,
    /// The URL without its password.
    url: String,
    options: Options,
    pg: PostgresOptions,
    open: OpenOnce,
    /// How to connect (plugins' sessions: the same, as their own roles).
    config: tokio_postgres::Config,
    /// Each plugin's pool of sessions as its own role, by role name, once
    /// its role and schema exist (see `sandbox`).
    plugin_pools: std::sync::Mutex<std::collections::HashMap<String, Pool>>,
    /// What this database's plugin roles end in (roles are the server's,
    /// not one database's): eight hex digits of the database's name's MD5.
    role_tag: std::sync::OnceLock<String>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            // Never blocks: dropping a database inside async code is fine.
            runtime.shutdown_background();
        }
    }
}

/// `postgres://user@host:port/dbname`, from what the URL said: never the
/// password.
fn display_url(config: &tokio_postgres::Config) -> String {
    use tokio_postgres::config::Host;
    let user = config.get_user().unwrap_or("");
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let db = config.get_dbname().unwrap_or(user);
    match config.get_hosts().first() {
        Some(Host::Tcp(host)) => format!("postgres://{user}@{host}:{port}/{db}"),
        Some(Host::Unix(dir)) => {
            format!("postgres://{user}@/{db}?host={}&port={port}", dir.display())
        }
        None => format!("postgres://{user}@localhost:{port}/{db}"),
    }
}

impl Postgres {
    pub(crate) fn new(url: &str, options: Options, pg: PostgresOptions) -> Result<Self> {
        let invalid = |reason: String| Error::InvalidPath {
            path: "postgres://…".into(),
            reason,
        };
        let mut config = tokio_postgres::Config::from_str(url)
            .map_err(|e| invalid(format!("not a PostgreSQL URL: {e}")))?;
        let shown = display_url(&config);
        // Server-side bounds: a lock wait ends at the busy timeout; a
        // transaction its host abandoned ends and frees its locks.
        let server = format!(
            "-c lock_timeout={} -c idle_in_transaction_session_timeout={}",
            options.busy_timeout.as_millis().max(1),
            pg.idle_transaction_timeout.as_millis().max(1),
        );
        let combined = match config.get_options() {
            Some(given) if !given.is_empty() => format!("{given} {server}"),
            _ => server,
        };
        config
            .options(combined)
            .application_name("plinth")
            .connect_timeout(pg.connect_timeout);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(pg.io_threads.max(1))
            .thread_name("plinth-postgres")
            .enable_all()
            .build()
            .map_err(|e| Error::Engine(EngineError::new(e)))?;
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.max_idle_connections.max(1))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(options.busy_timeout))
            .create_timeout(Some(pg.connect_timeout))
            .build()
            .map_err(|e| invalid(e.to_string()))?;
        Ok(Self {
            inner: Arc::new(Inner {
                handle: runtime.handle().clone(),
                runtime: Some(runtime),
                pool,
                url: shown,
                options,
                pg,
                open: OpenOnce::default(),
                config,
                plugin_pools: std::sync::Mutex::default(),
                role_tag: std::sync::OnceLock::new(),
            }),
        })
    }

    pub(crate) fn display_url(&self) -> &str {
        &self.inner.url
    }

    /// Runs `future` to completion on this backend's runtime, from a
    /// synchronous caller.
    pub(crate) fn run<F>(&self, future: F) -> F::Output
    where
        F: Future + Send,
        F::Output: Send,
    {
        let handle = &self.inner.handle;
        if tokio::runtime::Handle::try_current().is_err() {
            return handle.block_on(future);
        }
        // Inside a runtime `block_on` would panic: a thread of our own.
        std::thread::scope(|scope| {
            scope
                .spawn(|| handle.block_on(future))
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    /// A connection from the pool (the pool reconnects when the last one
    /// was lost).
    async fn connection(&self) -> Result<deadpool_postgres::Object> {
        self.inner
            .pool
            .get()
            .await
            .map_err(|e| self.connect_error(e))
    }

    fn connect_error(&self, e: deadpool_postgres::PoolError) -> Error {
        use deadpool_postgres::PoolError;
        match e {
            PoolError::Backend(e) if e.as_db_error().is_some() => classify(e),
            PoolError::Timeout(deadpool_postgres::TimeoutType::Wait) => Error::Busy,
            other => Error::Connect {
                url: self.inner.url.clone(),
                source: EngineError::new(other),
            },
        }
    }

    async fn open(&self) -> Result<()> {
        self.open_migrated().await?;
        let tag: String = self
            .connection()
            .await?
            .query_one("SELECT left(md5(current_database()), 8)", &[])
            .await
            .map_err(classify)?
            .get(0);
        let _ = self.inner.role_tag.set(tag);
        // What hosts that died mid-commit left prepared.
        self.resolve_in_doubt().await
    }

    async fn open_migrated(&self) -> Result<()> {
        let client = self.connection().await?;
        // Hosts starting at once queue here; each migration is applied once.
        client
            .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(classify)?;
        let result = self.open_locked(&client).await;
        let unlocked = client
            .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
            .await;
        result?;
        unlocked.map_err(classify)?;
        Ok(())
    }

    async fn open_locked(&self, client: &tokio_postgres::Client) -> Result<()> {
        let superuser: bool = client
            .query_one(
                "SELECT rolsuper FROM pg_roles WHERE rolname = current_user",
                &[],
            )
            .await
            .map_err(classify)?
            .get(0);
        if superuser && !self.inner.pg.allow_superuser {
            return Err(Error::ServerSetup(format!(
                "{}: plinth's database user is a superuser, which can read and write the server's files and become any role; \
                 give plinth a user with LOGIN CREATEROLE that owns its database (README, \"Running on PostgreSQL\"), \
                 or accept the risk explicitly (PLINTH_PG_ALLOW_SUPERUSER=yes, PostgresOptions::allow_superuser)",
                self.inner.url
            )));
        }
        let tables: Vec<String> = client
            .query(
                // pg_tables, not information_schema: the latter shows only
                // what this (non-superuser) user may use.
                "SELECT tablename::text FROM pg_tables
                 WHERE schemaname = current_schema() ORDER BY 1",
                &[],
            )
            .await
            .map_err(classify)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        if !tables.is_empty() && !V1_TABLES.iter().all(|t| tables.iter().any(|n| n == t)) {
            return Err(Error::NotPlinth {
                path: self.inner.url.clone().into(),
                reason: format!("it holds tables plinth did not make: {}", tables.join(", ")),
            });
        }
        let found = version_of(client).await?;
        let known = crate::migrations::latest_version();
        if found > known {
            return Err(Error::SchemaTooNew { found, known });
        }
        if !self.inner.options.migrate {
            return require_current(found);
        }
        apply(
            client,
            crate::migrations::POSTGRES,
            self.inner.options.clock.now(),
        )
        .await?;
        Ok(())
    }
}

impl Backend for Postgres {
    fn ensure_open(&self) -> Result<()> {
        self.inner.open.get_or_open(|| self.run(self.open()))
    }

    fn begin(&self) -> Result<Box<dyn Tx>> {
        self.ensure_open()?;
        Ok(Box::new(PgTx::new(self.clone())))
    }

    fn pool_status(&self) -> crate::engine::PoolStatus {
        let status = self.inner.pool.status();
        crate::engine::PoolStatus {
            idle: status.available,
            open: status.size,
            max: status.max_size,
            waiting: status.waiting,
        }
    }

    fn schema_version(&self) -> Result<u32> {
        self.ensure_open()?;
        self.run(async {
            let client = self.connection().await?;
            version_of(&client).await
        })
    }
}
