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

mod ops;
mod sandbox;

use std::future::Future;
use std::pin::{Pin, pin};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};

use crate::backend::{Backend, OpenOnce, Tx, V1_TABLES, require_current, wait_budget};
use crate::migrations::{self, Migration};
use crate::{EngineError, Error, Options, Result, UniqueField};

/// The advisory lock key of migrations: `plnt` in ASCII.
const MIGRATION_LOCK: i64 = 0x706c_6e74;

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
        let known = migrations::latest_version();
        if found > known {
            return Err(Error::SchemaTooNew { found, known });
        }
        if !self.inner.options.migrate {
            return require_current(found);
        }
        apply(client, migrations::POSTGRES, self.inner.options.clock.now()).await?;
        Ok(())
    }
}

/// The version recorded in the database; 0 when never migrated.
async fn version_of(client: &tokio_postgres::Client) -> Result<u32> {
    let exists: bool = client
        .query_one("SELECT to_regclass('schema_version') IS NOT NULL", &[])
        .await
        .map_err(classify)?
        .get(0);
    if !exists {
        return Ok(0);
    }
    let version: i32 = client
        .query_one("SELECT COALESCE(MAX(version), 0) FROM schema_version", &[])
        .await
        .map_err(classify)?
        .get(0);
    Ok(u32::try_from(version).unwrap_or(0))
}

/// Applies every migration newer than the database's version, each in its
/// own transaction. The caller holds the migration lock.
async fn apply(client: &tokio_postgres::Client, list: &[Migration], now: i64) -> Result<u32> {
    migrations::validate(list)?;
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_version (
                 version INTEGER PRIMARY KEY,
                 applied_at BIGINT NOT NULL
             )",
        )
        .await
        .map_err(classify)?;
    let current = version_of(client).await?;
    for m in list.iter().filter(|m| m.version > current) {
        client.batch_execute("BEGIN").await.map_err(classify)?;
        let step = async {
            client
                .batch_execute(m.sql)
                .await
                .map_err(|source| Error::Migration {
                    version: m.version,
                    source: EngineError::new(source),
                })?;
            let version = i32::try_from(m.version).unwrap_or(i32::MAX);
            client
                .execute(
                    "INSERT INTO schema_version (version, applied_at) VALUES ($1, $2)",
                    &[&version, &now],
                )
                .await
                .map_err(classify)?;
            client.batch_execute("COMMIT").await.map_err(classify)
        };
        if let Err(e) = step.await {
            let _ = client.batch_execute("ROLLBACK").await;
            return Err(e);
        }
    }
    version_of(client).await
}

impl Backend for Postgres {
    fn ensure_open(&self) -> Result<()> {
        self.inner.open.get_or_open(|| self.run(self.open()))
    }

    fn begin(&self) -> Result<Box<dyn Tx>> {
        self.ensure_open()?;
        Ok(Box::new(PgTx {
            pg: self.clone(),
            client: None,
            writing: false,
            broken: false,
            deadline: None,
            timer: None,
            rows: 0,
            sessions: Vec::new(),
        }))
    }

    fn pool_status(&self) -> crate::backend::PoolStatus {
        let status = self.inner.pool.status();
        crate::backend::PoolStatus {
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

/// What a statement does to the unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Reads: outside a transaction until the unit's first write.
    Read,
    /// Writes rows: opens the transaction; its rows count toward the
    /// unit's rows written.
    Write,
    /// Takes a lock held to the commit: opens the transaction, writes
    /// nothing.
    Lock,
}

/// What a statement is run for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    /// Its rows.
    Rows,
    /// The number of rows it changed.
    Count,
}

/// One unit of work on one connection, taken at its first statement.
#[derive(Debug)]
pub(crate) struct PgTx {
    pg: Postgres,
    client: Option<deadpool_postgres::Object>,
    /// A transaction is open (the unit has written).
    writing: bool,
    /// The connection was lost or is in a state not known: nothing more
    /// runs on it, and it is not reused.
    broken: bool,
    deadline: Option<Instant>,
    /// Fires when the unit's waits must end (see [`PgTx::run`]).
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    rows: u64,
    /// The plugins' sessions this unit ran statements in (see `sandbox`).
    sessions: Vec<sandbox::PluginSession>,
}

/// How long a statement is given to end after its cancel request was sent.
const CANCEL_GRACE: Duration = Duration::from_secs(1);

impl PgTx {
    /// Runs one statement: outside a transaction for a read before the
    /// first write; inside one, in a savepoint. Returns its rows and the
    /// count of rows it changed.
    fn run(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
        want: Want,
        access: Access,
    ) -> Result<(Vec<Row>, u64)> {
        if self.broken {
            return Err(Error::Unavailable(EngineError::from_message(
                "the unit's connection was lost; its writes were rolled back",
            )));
        }
        // Without a deadline the server's own bounds hold (`lock_timeout`,
        // the busy timeout, for lock waits) and a statement runs to its
        // end. With one, every wait also ends a little before it: the
        // unit's timer is set there (not capped by the busy timeout, which
        // bounds one lock wait, not the unit).
        let budget = match self.deadline {
            Some(_) => {
                let budget = wait_budget(self.deadline, Duration::MAX);
                if budget.is_zero() {
                    return Err(Error::Busy);
                }
                Some(budget)
            }
            None => None,
        };
        let busy_timeout = self.pg.inner.options.busy_timeout;
        let pg = self.pg.clone();
        let begin = access != Access::Read && !self.writing;
        let in_tx = self.writing || begin;
        let client_slot = &mut self.client;
        let timer_slot = &mut self.timer;
        let outcome = pg.run(async {
            // One timer for the unit, made at its first bounded statement and
            // polled by each: a timer made and dropped per statement costs a
            // wake of the runtime's driver thread every time.
            let timer = budget.map(|budget| {
                timer_slot.get_or_insert_with(|| Box::pin(tokio::time::sleep(budget)))
            });
            if client_slot.is_none() {
                // A wait for a free connection is a wait like any other.
                let client = match budget {
                    None => pg.connection().await?,
                    Some(budget) => tokio::time::timeout(budget.min(busy_timeout), pg.connection())
                        .await
                        .map_err(|_| Error::Busy)??,
                };
                *client_slot = Some(client);
            }
            let Some(client) = client_slot.as_ref() else {
                return Err(Error::invalid("no connection"));
            };
            Ok(statement(client, sql, params, want, begin, in_tx, timer).await)
        });
        // An error here is no connection: nothing ran.
        match outcome? {
            Outcome::Done(rows, n) => {
                if begin {
                    self.writing = true;
                }
                if access == Access::Write {
                    self.rows += n;
                }
                Ok((rows, n))
            }
            Outcome::Failed { error, began } => {
                if began {
                    self.writing = true;
                }
                Err(error)
            }
            Outcome::Lost(error) => {
                self.broken = true;
                Err(error)
            }
        }
    }

    fn rows(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
        access: Access,
    ) -> Result<Vec<Row>> {
        Ok(self.run(sql, params, Want::Rows, access)?.0)
    }

    /// The first row; [`Error::NotFound`] when there is none.
    fn row(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
        access: Access,
    ) -> Result<Row> {
        self.rows(sql, params, access)?
            .into_iter()
            .next()
            .ok_or(Error::NotFound)
    }

    fn execute(&mut self, sql: &'static str, params: &[&(dyn ToSql + Sync)]) -> Result<u64> {
        Ok(self.run(sql, params, Want::Count, Access::Write)?.1)
    }

    fn end(&mut self, sql: &'static str) -> Result<()> {
        let Some(client) = self.client.as_ref() else {
            return Ok(());
        };
        let result = self.pg.run(client.batch_execute(sql));
        self.writing = false;
        result.map_err(|e| {
            self.broken = true;
            classify(e)
        })
    }
}

/// How one statement ended.
enum Outcome {
    /// It ran: its rows and count.
    Done(Vec<Row>, u64),
    /// It failed and changed nothing (its savepoint was rolled back); the
    /// unit goes on. `began`: the transaction it opened stays open.
    Failed { error: Error, began: bool },
    /// The connection is gone or in an unknown state.
    Lost(Error),
}

/// Runs one statement on `client` within `budget`, pipelining the
/// transaction's `BEGIN` and the savepoint around it into one round trip.
async fn statement(
    client: &deadpool_postgres::Object,
    sql: &'static str,
    params: &[&(dyn ToSql + Sync)],
    want: Want,
    begin: bool,
    in_tx: bool,
    timer: Option<&mut Pin<Box<tokio::time::Sleep>>>,
) -> Outcome {
    let open = match (begin, in_tx) {
        (true, _) => "BEGIN; SAVEPOINT plinth_statement",
        (false, true) => "SAVEPOINT plinth_statement",
        (false, false) => "",
    };
    let work = async {
        let prepared = client.prepare_cached(sql).await?;
        let opened = async {
            if open.is_empty() {
                Ok(())
            } else {
                client.batch_execute(open).await
            }
        };
        let ran = async {
            match want {
                Want::Rows => client.query(&prepared, params).await.map(|rows| {
                    let n = rows.len() as u64;
                    (rows, n)
                }),
                Want::Count => client
                    .execute(&prepared, params)
                    .await
                    .map(|n| (Vec::new(), n)),
            }
        };
        let released = async {
            if in_tx {
                client
                    .batch_execute("RELEASE SAVEPOINT plinth_statement")
                    .await
            } else {
                Ok(())
            }
        };
        if !in_tx {
            // A read on its own: one request, nothing around it.
            return ran.await;
        }
        // Sent in one go; answered in order.
        let (opened, ran, released) = tokio::join!(opened, ran, released);
        opened?;
        let ran = ran?;
        released?;
        Ok::<_, tokio_postgres::Error>(ran)
    };
    let mut work = pin!(work);
    let result = match timer {
        None => work.await,
        Some(timer) => tokio::select! {
        result = &mut work => result,
        () = timer.as_mut() => {
            // Past the budget: ask the server to stop the statement, then
            // give it a moment to answer so that the savepoint can be
            // rolled back and the unit go on.
            let _ = client.cancel_token().cancel_query(NoTls).await;
            match tokio::time::timeout(CANCEL_GRACE, &mut work).await {
                Ok(Ok(done)) => Ok(done),
                Ok(Err(_)) => {
                    return settle(client, in_tx, begin, Error::Busy).await;
                }
                Err(_) => return Outcome::Lost(Error::Busy),
            }
        }
        },
    };
    match result {
        Ok((rows, n)) => Outcome::Done(rows, n),
        Err(e) if client.is_closed() => Outcome::Lost(lost(e)),
        Err(e) => settle(client, in_tx, begin, classify(e)).await,
    }
}

/// After a failed statement inside a transaction: rolls back to its
/// savepoint, so that the transaction goes on without it.
async fn settle(
    client: &deadpool_postgres::Object,
    in_tx: bool,
    began: bool,
    error: Error,
) -> Outcome {
    if !in_tx {
        return Outcome::Failed {
            error,
            began: false,
        };
    }
    match client
        .batch_execute("ROLLBACK TO SAVEPOINT plinth_statement; RELEASE SAVEPOINT plinth_statement")
        .await
    {
        Ok(()) => Outcome::Failed { error, began },
        Err(e) if began => {
            // The BEGIN itself may have failed: no transaction to keep.
            if client.is_closed() {
                Outcome::Lost(lost(e))
            } else {
                Outcome::Lost(error)
            }
        }
        Err(e) => Outcome::Lost(lost(e)),
    }
}

fn lost(e: tokio_postgres::Error) -> Error {
    Error::Unavailable(EngineError::new(e))
}

impl Drop for PgTx {
    fn drop(&mut self) {
        self.end_sessions();
        if self.writing && !self.broken && self.end("ROLLBACK").is_err() {
            self.broken = true;
        }
        if let Some(client) = self.client.take()
            && self.broken
        {
            // Not returned to the pool: its state is not known.
            drop(deadpool_postgres::Object::take(client));
        }
    }
}

impl PgTx {
    pub(crate) fn set_deadline(&mut self, deadline: Instant) {
        self.deadline = Some(deadline);
        self.timer = None;
    }

    pub(crate) fn commit(&mut self) -> Result<()> {
        if self.broken {
            return Err(Error::Unavailable(EngineError::from_message(
                "the unit's connection was lost; its writes were rolled back",
            )));
        }
        if self.sessions.iter().any(|s| s.wrote) {
            return self.commit_with_sessions();
        }
        self.end_sessions();
        if self.writing {
            self.end("COMMIT")?;
        }
        Ok(())
    }

    pub(crate) fn rows_written(&self) -> u64 {
        self.rows
    }

    pub(crate) fn is_writing(&self) -> bool {
        self.writing
    }
}

/// Classifies the server's answer: a unique violation becomes
/// [`Error::Conflict`] by the constraint's name (never by its message), a
/// foreign key violation [`Error::NotFound`], lock and cancel outcomes
/// [`Error::Busy`], a lost connection [`Error::Unavailable`].
pub(crate) fn classify(e: tokio_postgres::Error) -> Error {
    let Some(db) = e.as_db_error() else {
        return if e.is_closed() {
            lost(e)
        } else {
            Error::Engine(EngineError::new(e))
        };
    };
    let code = db.code();
    if *code == SqlState::UNIQUE_VIOLATION {
        if let Some(field) = db.constraint().and_then(unique_field) {
            return Error::Conflict(field);
        }
    } else if *code == SqlState::FOREIGN_KEY_VIOLATION {
        return Error::NotFound;
    } else if [
        SqlState::LOCK_NOT_AVAILABLE,
        SqlState::T_R_DEADLOCK_DETECTED,
        SqlState::T_R_SERIALIZATION_FAILURE,
        SqlState::QUERY_CANCELED,
    ]
    .contains(code)
    {
        return Error::Busy;
    } else if [
        SqlState::ADMIN_SHUTDOWN,
        SqlState::CRASH_SHUTDOWN,
        SqlState::CANNOT_CONNECT_NOW,
    ]
    .contains(code)
    {
        return lost(e);
    }
    // tokio-postgres's own text is "db error"; the server's message and
    // code say what happened.
    let message = format!("{} ({})", db.message(), code.code());
    Error::Engine(EngineError::described(message, e))
}

/// The unique field behind a constraint of the PostgreSQL schema.
fn unique_field(constraint: &str) -> Option<UniqueField> {
    Some(match constraint {
        "users_uuid_unique" => UniqueField::Uuid,
        "users_name_unique" | "users_name_key_unique" => UniqueField::Name,
        "users_email_unique" => UniqueField::Email,
        "sessions_pkey" => UniqueField::SessionId,
        "email_verification_tokens_pkey" | "password_reset_tokens_pkey" => UniqueField::Token,
        _ => return None,
    })
}
