//! The seam between the store and a database engine.
//!
//! [`Db`](crate::Db) and [`Unit`](crate::Unit) validate every argument,
//! stamp times and generate identifiers; the domain (`crate::domain`)
//! writes every statement once; an engine only connects, runs statements,
//! takes locks and sandboxes plugins' SQL. Values cross this seam as
//! [`Arg`]s and rows as [`Row`]s, errors as the store's own
//! [`Error`](crate::Error)s: no engine type crosses it, so the public API
//! names neither rusqlite nor postgres.
//!
//! Two implement it: `crate::sqlite` (the embedded default) and
//! `crate::postgres` (several hosts on one server; the `postgres` feature).

use std::fmt::Debug;
use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use crate::Result;

/// A database engine behind [`Db`](crate::Db).
pub(crate) trait Backend: Debug + Send + Sync {
    /// Connects, checks that the database is plinth's (or new) and applies
    /// or checks the migrations. Every later call is a no-op; a failed one
    /// is tried again by the next.
    fn ensure_open(&self) -> Result<()>;
    /// A unit of work on a connection of its own (lazily: a backend may
    /// take the connection only at the unit's first statement).
    fn begin(&self) -> Result<Box<dyn Tx>>;
    /// The version recorded in the database.
    fn schema_version(&self) -> Result<u32>;
    /// Makes what was scrubbed unreadable from the engine's logs, where
    /// that is the engine's job (SQLite's write-ahead log); best effort.
    fn checkpoint(&self) {}
    /// Whether the database may hold anything yet, known without creating
    /// it: false only for an SQLite file neither opened nor on disk.
    fn may_hold_data(&self) -> bool {
        true
    }
    /// The connections the backend keeps for units of work, now.
    fn pool_status(&self) -> PoolStatus;
}

/// The connections a [`Db`](crate::Db) keeps for units of work.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStatus {
    /// Open and waiting for a unit.
    pub idle: usize,
    /// Open in all: in use by units, and idle. (SQLite opens one per unit
    /// that finds none idle; this counts the idle ones and those in use
    /// are not tracked, so it equals `idle`.)
    pub open: usize,
    /// The most it keeps (idle, for SQLite; open, for PostgreSQL).
    pub max: usize,
    /// Units waiting for a connection (PostgreSQL's pool).
    pub waiting: usize,
}

/// One unit of work on one connection, as an engine runs it. It knows
/// nothing of users or mail: the domain (`crate::domain`) writes its
/// statements once, as [`Sql`], and runs them through [`execute`](Tx::execute)
/// and [`query`](Tx::query); what differs between engines is a dialect's
/// text, a [`Lock`]'s kind, and the sandbox of a plugin's own SQL.
///
/// Reads and writes run in the unit; it commits only on
/// [`commit`](Tx::commit); dropping it rolls back and hands the connection
/// back (or closes one whose state is unknown).
pub(crate) trait Tx: Debug + Send {
    /// Bounds the unit's waits on the database (for locks, for the server)
    /// by `deadline`, keeping a margin for the caller to answer.
    fn set_deadline(&mut self, deadline: Instant);
    /// Rows inserted, updated or deleted so far.
    fn rows_written(&self) -> u64;
    /// Whether the unit has written.
    fn is_writing(&self) -> bool;
    /// Commits.
    fn commit(self: Box<Self>) -> Result<()>;

    /// Runs a statement that writes and returns no rows: the rows it changed.
    fn execute(&mut self, sql: &Sql, args: &[Arg<'_>]) -> Result<u64>;
    /// Runs a statement and hands each row it returns to `row` until it
    /// answers [`ControlFlow::Break`]: a read then stops stepping (a lookup
    /// by a unique key does not look for a second row); a write runs to its
    /// end. `access` says what the statement does to the unit (a write's
    /// rows count as rows written).
    fn query(
        &mut self,
        sql: &Sql,
        args: &[Arg<'_>],
        access: Access,
        row: &mut dyn FnMut(&dyn Row) -> Result<ControlFlow<()>>,
    ) -> Result<()>;
    /// Takes `lock` until the unit ends.
    fn lock(&mut self, lock: Lock<'_>) -> Result<()>;

    /// Runs a plugin's own SQL (see `crate::sql`) through the engine's
    /// sandbox, once per parameter list of `each` (a batch: all or nothing).
    /// Under a quota (`ns.quota()`), a statement that writes is undone if it
    /// takes the plugin's data past it (the rule: `crate::quota`); `used` is
    /// what the plugin's data takes as the unit sees it, which the engine
    /// reads (once) and keeps up to date as it measures each statement.
    fn plugin_sql(
        &mut self,
        ns: &crate::sql::Namespace,
        sql: &str,
        each: &[&[crate::sql::SqlValue]],
        want: crate::sql::Want,
        used: &mut Option<crate::quota::Usage>,
    ) -> std::result::Result<crate::sql::Answers, crate::sql::SqlError>;
    /// Runs a plugin's migration script (statements separated by `;`), each
    /// statement through the sandbox, under the namespace's quota (`used`
    /// as for `plugin_sql`).
    fn plugin_script(
        &mut self,
        ns: &crate::sql::Namespace,
        script: &str,
        used: &mut Option<crate::quota::Usage>,
    ) -> std::result::Result<(), crate::sql::SqlError>;
    /// The objects that hold plugins' rows (or only `plugin`'s), as
    /// `(plugin, object as stored, bytes)`: how an engine lays out a
    /// plugin's tables is its own.
    fn plugin_objects(&mut self, plugin: Option<&str>) -> Result<Vec<(String, String, u64)>>;
}

/// What a statement does to the unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Reads (on SQLite in the unit's snapshot; on PostgreSQL outside a
    /// transaction until the unit's first write).
    Read,
    /// Writes rows: takes the write lock or opens the transaction; the rows
    /// it returns count toward the unit's rows written.
    Write,
    /// Reads under what a write holds (SQLite's write lock, PostgreSQL's
    /// transaction), writing nothing.
    Lock,
}

/// A lock held until the unit ends. SQLite has one lock, its write lock,
/// which every kind takes; PostgreSQL takes an advisory lock on the key, so
/// that units on every host queuing to one recipient (say) take turns while
/// the others go on.
#[derive(Debug, Clone, Copy)]
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
pub(crate) enum Lock<'a> {
    /// Queuing mail to this recipient (the count and the insert atomic).
    Recipient(&'a str),
    /// Migrating this plugin's schema.
    PluginSchema(&'a str),
    /// One key of a plugin's bucket, whether or not it has a row yet.
    Key {
        plugin: &'a str,
        bucket: &'a str,
        key: &'a str,
    },
}

/// One of plinth's own statements, in each engine's dialect. Written once
/// by [`sql!`](crate::engine::sql) with SQLite's `?N` parameters, from which
/// PostgreSQL's `$N` text is made at compile time; a statement whose texts
/// differ beyond that names both.
#[derive(Debug, Clone, Copy)]
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
pub(crate) struct Sql {
    pub sqlite: &'static str,
    pub postgres: &'static str,
}

/// [`Sql`] from one text with `?N` parameters, or from two texts
/// (`sql!(sqlite: "…", postgres: "…")`) where the dialects differ.
macro_rules! sql {
    (sqlite: $sqlite:expr, postgres: $postgres:expr $(,)?) => {
        $crate::engine::Sql {
            sqlite: $sqlite,
            postgres: $postgres,
        }
    };
    ($text:expr) => {{
        const TEXT: &str = $text;
        const DOLLARS: [u8; TEXT.len()] = $crate::engine::dollars(TEXT);
        const POSTGRES: &str = match ::core::str::from_utf8(&DOLLARS) {
            Ok(text) => text,
            Err(_) => panic!("a statement that is not UTF-8"),
        };
        $crate::engine::Sql {
            sqlite: TEXT,
            postgres: POSTGRES,
        }
    }};
}
pub(crate) use sql;

/// `text` with each parameter `?N` written `$N`. Fails the build for a `?`
/// not followed by a digit and for a `$`: a statement written once uses
/// `?N` only.
pub(crate) const fn dollars<const N: usize>(text: &str) -> [u8; N] {
    let bytes = text.as_bytes();
    let mut out = [0u8; N];
    let mut i = 0;
    while i < N {
        out[i] = match bytes[i] {
            b'?' if i + 1 < N && bytes[i + 1].is_ascii_digit() => b'$',
            b'?' => panic!("a `?` that is not a numbered parameter"),
            b'$' => panic!("a `$` in a statement written with `?N` parameters"),
            b => b,
        };
        i += 1;
    }
    out
}

/// A value bound to a parameter. Each engine converts it to the type the
/// statement wants there (on PostgreSQL, an integer to `int4`, `int8` or
/// `boolean`, as the server inferred).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Arg<'a> {
    Null,
    Int(i64),
    Real(f64),
    Text(&'a str),
    Blob(&'a [u8]),
}

impl<'a> From<&'a str> for Arg<'a> {
    fn from(v: &'a str) -> Self {
        Arg::Text(v)
    }
}

impl<'a> From<&'a String> for Arg<'a> {
    fn from(v: &'a String) -> Self {
        Arg::Text(v)
    }
}

impl<'a> From<&'a [u8]> for Arg<'a> {
    fn from(v: &'a [u8]) -> Self {
        Arg::Blob(v)
    }
}

impl From<i64> for Arg<'_> {
    fn from(v: i64) -> Self {
        Arg::Int(v)
    }
}

impl From<u32> for Arg<'_> {
    fn from(v: u32) -> Self {
        Arg::Int(v.into())
    }
}

impl From<bool> for Arg<'_> {
    fn from(v: bool) -> Self {
        Arg::Int(v.into())
    }
}

impl<'a, T: Into<Arg<'a>>> From<Option<T>> for Arg<'a> {
    fn from(v: Option<T>) -> Self {
        v.map_or(Arg::Null, Into::into)
    }
}

impl<'a> From<&'a crate::sql::SqlValue> for Arg<'a> {
    fn from(v: &'a crate::sql::SqlValue) -> Self {
        use crate::sql::SqlValue;
        match v {
            SqlValue::Null => Arg::Null,
            SqlValue::Integer(n) => Arg::Int(*n),
            SqlValue::Real(x) => Arg::Real(*x),
            SqlValue::Text(t) => Arg::Text(t),
            SqlValue::Blob(b) => Arg::Blob(b),
        }
    }
}

/// The [`Arg`]s of a statement: `args![a, b]`.
macro_rules! args {
    ($($arg:expr),* $(,)?) => {
        &[$($crate::engine::Arg::from($arg)),*]
    };
}
pub(crate) use args;

/// A row a statement returned, as the engine reads it: each column as an
/// integer (SQLite's 0 and 1 and PostgreSQL's `boolean` too), text or
/// bytes, `None` for NULL.
pub(crate) trait Row {
    fn int(&self, i: usize) -> Result<Option<i64>>;
    fn text(&self, i: usize) -> Result<Option<String>>;
    fn blob(&self, i: usize) -> Result<Option<Vec<u8>>>;
}

impl dyn Row + '_ {
    /// Column `i` as a `T`.
    pub(crate) fn get<T: Column>(&self, i: usize) -> Result<T> {
        T::read(self, i)
    }
}

/// The error of a column that does not hold what its reader expects.
pub(crate) fn not_a(i: usize, what: &str) -> crate::Error {
    crate::Error::Engine(crate::EngineError::from_message(&format!(
        "column {i} does not hold {what}"
    )))
}

/// A Rust type a column is read as.
pub(crate) trait Column: Sized {
    fn read(row: &dyn Row, i: usize) -> Result<Self>;
}

impl Column for Option<i64> {
    fn read(row: &dyn Row, i: usize) -> Result<Self> {
        row.int(i)
    }
}

impl Column for Option<String> {
    fn read(row: &dyn Row, i: usize) -> Result<Self> {
        row.text(i)
    }
}

impl Column for Option<Vec<u8>> {
    fn read(row: &dyn Row, i: usize) -> Result<Self> {
        row.blob(i)
    }
}

impl Column for i64 {
    fn read(row: &dyn Row, i: usize) -> Result<Self> {
        row.int(i)?.ok_or_else(|| not_a(i, "an integer"))
    }
}

/// A count: never negative, saturating.
impl Column for u32 {
    fn read(row: &dyn Row, i: usize) -> Result<Self> {
        Ok(u32::try_from(i64::read(row, i)?.max(0)).unwrap_or(u32::MAX))
    }
}

/// A count or a size in bytes: never negative.
impl Column for u64 {
    fn read(row: &dyn Row, i: usize) -> Result<Self> {
        Ok(u64::try_from(i64::read(row, i)?).unwrap_or(0))
    }
}

/// SQLite's 0 and 1; PostgreSQL's `boolean` (read as 0 and 1).
impl Column for bool {
    fn read(row: &dyn Row, i: usize) -> Result<Self> {
        Ok(i64::read(row, i)? != 0)
    }
}

impl Column for String {
    fn read(row: &dyn Row, i: usize) -> Result<Self> {
        row.text(i)?.ok_or_else(|| not_a(i, "text"))
    }
}

impl Column for Vec<u8> {
    fn read(row: &dyn Row, i: usize) -> Result<Self> {
        row.blob(i)?.ok_or_else(|| not_a(i, "bytes"))
    }
}

/// The tables of a plinth database at schema v1: a database holding other
/// tables but not all of these is not plinth's.
pub(crate) const V1_TABLES: [&str; 5] = [
    "email_verification_tokens",
    "password_reset_tokens",
    "schema_version",
    "sessions",
    "users",
];

/// A database's opening (checks, migrations), done once: callers that
/// race wait for the first; a failed open is tried again by the next.
#[derive(Debug, Default)]
pub(crate) struct OpenOnce {
    opened: std::sync::OnceLock<()>,
    opening: std::sync::Mutex<()>,
}

impl OpenOnce {
    /// Whether it was opened.
    pub(crate) fn is_open(&self) -> bool {
        self.opened.get().is_some()
    }

    pub(crate) fn get_or_open(&self, open: impl FnOnce() -> Result<()>) -> Result<()> {
        if self.opened.get().is_some() {
            return Ok(());
        }
        let _one_at_a_time = self
            .opening
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if self.opened.get().is_some() {
            return Ok(());
        }
        open()?;
        let _ = self.opened.set(());
        Ok(())
    }
}

/// Checks the version `found` in a database that is not to be migrated:
/// it must be this build's.
pub(crate) fn require_current(found: u32) -> Result<()> {
    let known = crate::migrations::latest_version();
    if found > known {
        return Err(crate::Error::SchemaTooNew { found, known });
    }
    if found < known {
        return Err(crate::Error::InvalidMigrations(format!(
            "the database is at version {found}; version {known} is needed (run the migrations)"
        )));
    }
    Ok(())
}

/// How long a unit may wait now for the database: until a little before
/// `deadline` (a tenth of the time left, at most 100 ms, is kept for the
/// caller to answer), never longer than `most`.
pub(crate) fn wait_budget(deadline: Option<Instant>, most: Duration) -> Duration {
    match deadline {
        None => most,
        Some(deadline) => {
            let left = deadline.saturating_duration_since(Instant::now());
            let answer = (left / 10).min(Duration::from_millis(100));
            left.saturating_sub(answer).min(most)
        }
    }
}

/// A count of rows as the WIT's `u32`, saturating.
pub(crate) fn saturating_u32(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}
