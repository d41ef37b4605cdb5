//! One unit of work on one pooled connection.

use std::cell::Cell;
use std::time::{Duration, Instant};

use rusqlite::Connection;

use crate::{Db, Error, Result};

/// One unit of work: its reads share one read transaction (one WAL
/// snapshot), and the first write ends that and opens an immediate
/// transaction that holds the write lock until [`commit`](Unit::commit).
/// Dropping an uncommitted unit rolls its writes back, so a caller that fails
/// half way leaves nothing half written. The connection returns to the pool
/// either way, with no transaction open.
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
pub struct Unit {
    db: Db,
    conn: Option<Connection>,
    writing: bool,
    reading: Cell<bool>,
    /// When the unit's caller must have its answer: waits for the write lock
    /// end before it (see [`Unit::set_deadline`]).
    deadline: Option<Instant>,
    /// The connection's count of changed rows when the write transaction
    /// began.
    changes_at_begin: u64,
}

impl Unit {
    pub(crate) fn new(db: Db, conn: Connection) -> Self {
        Self {
            db,
            conn: Some(conn),
            writing: false,
            reading: Cell::new(false),
            deadline: None,
            changes_at_begin: 0,
        }
    }

    /// Rows this unit has inserted, updated or deleted so far (rows changed
    /// by foreign-key cascades are not counted, as SQLite counts them).
    pub fn rows_written(&self) -> u64 {
        match (&self.conn, self.writing) {
            (Some(conn), true) => conn.total_changes().saturating_sub(self.changes_at_begin),
            _ => 0,
        }
    }

    /// Bounds how long this unit waits for the write lock: until a little
    /// before `deadline` (a tenth of the time left, at most 100 ms, is kept
    /// for the caller to answer), never longer than the database's busy
    /// timeout. A unit that cannot have the lock by then fails with
    /// [`Error::Busy`], which the caller can answer with in time, instead
    /// of running past its own deadline waiting for another writer.
    pub fn set_deadline(&mut self, deadline: Instant) {
        self.deadline = Some(deadline);
    }

    /// How long the next wait for the write lock may last.
    fn lock_wait(&self) -> Duration {
        let most = self.db.busy_timeout();
        match self.deadline {
            None => most,
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                let answer = (left / 10).min(Duration::from_millis(100));
                left.saturating_sub(answer).min(most)
            }
        }
    }

    /// The database this unit works on.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Now, by the database's clock.
    pub fn now(&self) -> i64 {
        self.db.clock().now()
    }

    /// Whether this unit has written (and so holds the write lock).
    pub fn is_writing(&self) -> bool {
        self.writing
    }

    fn conn(&self) -> Result<&Connection> {
        self.conn
            .as_ref()
            .ok_or_else(|| Error::invalid("the unit of work is already finished"))
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
            // The wait for the write lock is bounded by the caller's deadline
            // (the connection is pooled: set for every unit, with or without).
            let wait = self.lock_wait();
            if wait.is_zero() {
                return Err(Error::Busy);
            }
            let most = self.db.busy_timeout();
            if wait != most {
                conn.busy_timeout(wait)?;
            }
            let began = conn.prepare_cached("BEGIN IMMEDIATE")?.execute([]);
            if wait != most {
                conn.busy_timeout(most)?;
            }
            began?;
            self.changes_at_begin = conn.total_changes();
            self.writing = true;
        }
        self.conn()
    }

    /// Commits what the unit wrote (for a read-only unit, ends its snapshot).
    ///
    /// # Errors
    /// [`Error::Busy`] or [`Error::Engine`] when SQLite refuses the commit; the
    /// writes are then rolled back.
    pub fn commit(mut self) -> Result<()> {
        if self.writing || self.reading.get() {
            self.conn()?.prepare_cached("COMMIT")?.execute([])?;
            self.writing = false;
            self.reading.set(false);
        }
        Ok(())
    }

    /// Rolls back what the unit wrote; the same as dropping it.
    pub fn rollback(self) {}
}

impl Drop for Unit {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            if (self.writing || self.reading.get()) && conn.execute_batch("ROLLBACK").is_err() {
                // A connection whose state is unknown is not reused.
                return;
            }
            self.db.release(conn);
        }
    }
}
