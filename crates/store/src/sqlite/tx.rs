//! One unit of work on one pooled SQLite connection: the engine side of
//! [`Tx`], plinth's statements run through the statement cache.

use std::cell::Cell;
use std::ops::ControlFlow;
use std::time::Instant;

use rusqlite::Connection;

use super::Sqlite;
use super::writers::Turn;
use rusqlite::types::ValueRef;

use crate::engine::{Access, Arg, Lock, Row, Sql, Tx, not_a, wait_budget};
use crate::{Error, Result};

/// One unit of work: its reads share one read transaction (one WAL
/// snapshot), and the first write ends that and opens an immediate
/// transaction that holds the write lock until commit. Dropping it rolls
/// back; the connection returns to the pool either way, with no
/// transaction open.
///
/// Before the immediate transaction, the unit waits for its turn among this
/// process's writers (first come, first served; see `super::writers`), and
/// keeps the turn until its transaction has ended.
///
/// Reads made before the first write are not part of the write transaction;
/// operations that must read and write atomically (consuming a token) do so
/// in one statement.
///
/// One read transaction for all of a unit's reads, rather than one per
/// statement, is also what lets readers on several threads scale: SQLite
/// takes a WAL read lock (a process-wide mutex around an `fcntl`) for every
/// transaction.
#[derive(Debug)]
pub(crate) struct SqliteTx {
    db: Sqlite,
    conn: Option<Connection>,
    writing: bool,
    reading: Cell<bool>,
    /// The unit's turn to hold the write lock, from its first write until
    /// its transaction ends: a commit passes it on; a dropped unit, once
    /// `drop` has rolled back (the field outlives that).
    turn: Option<Turn>,
    /// When the unit's caller must have its answer: waits for the write lock
    /// end before it.
    deadline: Option<Instant>,
    /// The connection's count of changed rows when the write transaction
    /// began.
    changes_at_begin: u64,
    /// The bytes of pages in use, as last counted for a plugin's quota, and
    /// the connection's count of changed rows then (see
    /// `SqliteTx::bytes_in_use`).
    pub(crate) pages_counted: Cell<Option<(u64, i64)>>,
    /// The database's page size, read once.
    pub(crate) page_size: Cell<Option<i64>>,
}

impl SqliteTx {
    pub(crate) fn new(db: Sqlite, conn: Connection) -> Self {
        Self {
            db,
            conn: Some(conn),
            writing: false,
            reading: Cell::new(false),
            turn: None,
            deadline: None,
            changes_at_begin: 0,
            pages_counted: Cell::new(None),
            page_size: Cell::new(None),
        }
    }

    fn conn(&self) -> Result<&Connection> {
        let conn = self
            .conn
            .as_ref()
            .ok_or_else(|| Error::invalid("the unit of work is already finished"))?;
        if self.is_lost(conn) {
            return Err(Error::UnitLost);
        }
        Ok(conn)
    }

    /// Whether SQLite rolled the unit's transaction back by itself: it does
    /// when a write is interrupted (the deadline) or the disk fills without
    /// a statement journal, and the connection is then in autocommit mode,
    /// where every later statement would commit on its own. Such a unit
    /// refuses everything after (its commit too).
    fn is_lost(&self, conn: &Connection) -> bool {
        (self.writing || self.reading.get()) && conn.is_autocommit()
    }

    /// The connection for a read, in the unit's transaction: the read
    /// transaction, opened by the first read, or the write transaction.
    pub(crate) fn read(&self) -> Result<&Connection> {
        let conn = self.conn()?;
        if !self.writing && !self.reading.get() {
            // Deferred: the snapshot is taken by the first SELECT.
            conn.prepare_cached("BEGIN")?.execute([])?;
            self.reading.set(true);
        }
        Ok(conn)
    }

    pub(crate) fn write(&mut self) -> Result<&Connection> {
        if !self.writing {
            let conn = self.conn()?;
            if self.reading.get() {
                conn.prepare_cached("COMMIT")?.execute([])?;
                // Cleared only once ended: a failed COMMIT leaves it for
                // `drop` to roll back.
                self.reading.set(false);
            }
            // The wait for the write lock is bounded by the caller's deadline.
            let most = self.db.busy_timeout();
            let wait = wait_budget(self.deadline, most);
            if wait.is_zero() {
                return Err(Error::Busy);
            }
            // After this process's writers that asked before, in order.
            let turn = self.db.begin_immediate(conn, Instant::now() + wait)?;
            self.changes_at_begin = conn.total_changes();
            self.writing = true;
            self.turn = Some(turn);
        }
        self.conn()
    }

    /// The database this unit works on.
    pub(crate) fn db(&self) -> &Sqlite {
        &self.db
    }

    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.deadline
    }
}

impl Drop for SqliteTx {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            if (self.writing || self.reading.get())
                && !conn.is_autocommit()
                && conn.execute_batch("ROLLBACK").is_err()
            {
                // A connection whose state is unknown is not reused.
                return;
            }
            self.db.release(conn);
        }
    }
}

impl Tx for SqliteTx {
    fn set_deadline(&mut self, deadline: Instant) {
        self.deadline = Some(deadline);
    }

    fn rows_written(&self) -> u64 {
        match (&self.conn, self.writing) {
            (Some(conn), true) => conn.total_changes().saturating_sub(self.changes_at_begin),
            _ => 0,
        }
    }

    fn is_writing(&self) -> bool {
        self.writing
    }

    fn commit(mut self: Box<Self>) -> Result<()> {
        if self.writing || self.reading.get() {
            self.conn()?.prepare_cached("COMMIT")?.execute([])?;
            self.writing = false;
            self.reading.set(false);
            // Committed: the next writer's turn.
            self.turn = None;
        }
        Ok(())
    }

    fn execute(&mut self, sql: &Sql, args: &[Arg<'_>]) -> Result<u64> {
        let mut stmt = self.write()?.prepare_cached(sql.sqlite)?;
        Ok(stmt.execute(rusqlite::params_from_iter(args))? as u64)
    }

    fn query(
        &mut self,
        sql: &Sql,
        args: &[Arg<'_>],
        access: Access,
        each: &mut dyn FnMut(&dyn Row) -> Result<ControlFlow<()>>,
    ) -> Result<()> {
        let conn = match access {
            Access::Read => self.read()?,
            Access::Write | Access::Lock => self.write()?,
        };
        let mut stmt = conn.prepare_cached(sql.sqlite)?;
        let mut rows = stmt.query(rusqlite::params_from_iter(args))?;
        let mut wanted = true;
        while let Some(row) = rows.next()? {
            if wanted && each(&SqliteRow(row))?.is_break() {
                if access == Access::Read {
                    break;
                }
                wanted = false;
            }
        }
        Ok(())
    }

    /// SQLite's one lock: the file's write lock.
    fn lock(&mut self, _: Lock<'_>) -> Result<()> {
        self.write()?;
        Ok(())
    }

    fn plugin_sql(
        &mut self,
        ns: &crate::sql::Namespace,
        sql: &str,
        each: &[&[crate::sql::SqlValue]],
        want: crate::sql::Want,
        used: &mut Option<crate::quota::Usage>,
    ) -> std::result::Result<crate::sql::Answers, crate::sql::SqlError> {
        self.run_plugin_sql(ns, sql, each, want, used)
    }

    fn plugin_script(
        &mut self,
        ns: &crate::sql::Namespace,
        script: &str,
        used: &mut Option<crate::quota::Usage>,
    ) -> std::result::Result<(), crate::sql::SqlError> {
        self.run_plugin_script(ns, script, used)
    }

    fn plugin_objects(&mut self, plugin: Option<&str>) -> Result<Vec<(String, String, u64)>> {
        self.read_plugin_objects(plugin)
    }
}

/// A row of a statement, read as the seam's values.
struct SqliteRow<'a, 'b>(&'a rusqlite::Row<'b>);

impl Row for SqliteRow<'_, '_> {
    fn int(&self, i: usize) -> Result<Option<i64>> {
        match self.0.get_ref(i)? {
            ValueRef::Null => Ok(None),
            ValueRef::Integer(n) => Ok(Some(n)),
            _ => Err(not_a(i, "an integer")),
        }
    }

    fn text(&self, i: usize) -> Result<Option<String>> {
        match self.0.get_ref(i)? {
            ValueRef::Null => Ok(None),
            ValueRef::Text(t) => Ok(Some(String::from_utf8_lossy(t).into_owned())),
            _ => Err(not_a(i, "text")),
        }
    }

    fn blob(&self, i: usize) -> Result<Option<Vec<u8>>> {
        match self.0.get_ref(i)? {
            ValueRef::Null => Ok(None),
            ValueRef::Blob(b) => Ok(Some(b.to_vec())),
            _ => Err(not_a(i, "bytes")),
        }
    }
}

/// An [`Arg`] as SQLite binds it, borrowing its text or bytes.
pub(crate) fn bound(arg: Arg<'_>) -> rusqlite::types::ToSqlOutput<'_> {
    use rusqlite::types::{ToSqlOutput, ValueRef};
    ToSqlOutput::Borrowed(match arg {
        Arg::Null => ValueRef::Null,
        Arg::Int(n) => ValueRef::Integer(n),
        Arg::Real(x) => ValueRef::Real(x),
        Arg::Text(t) => ValueRef::Text(t.as_bytes()),
        Arg::Blob(b) => ValueRef::Blob(b),
    })
}

impl rusqlite::ToSql for Arg<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(bound(*self))
    }
}
