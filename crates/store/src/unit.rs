//! One unit of work on one pooled connection.

use rusqlite::Connection;

use crate::{Db, Error, Result};

/// One unit of work: reads run as they come (WAL gives each a consistent
/// snapshot), and the first write opens an immediate transaction that holds
/// the write lock until [`commit`](Unit::commit). Dropping an uncommitted unit
/// rolls its writes back, so a caller that fails half way leaves nothing
/// half written. The connection returns to the pool either way.
///
/// Reads made before the first write are not part of the write transaction;
/// operations that must read and write atomically (consuming a token) do so
/// in one statement.
#[derive(Debug)]
pub struct Unit {
    db: Db,
    conn: Option<Connection>,
    writing: bool,
}

impl Unit {
    pub(crate) fn new(db: Db, conn: Connection) -> Self {
        Self {
            db,
            conn: Some(conn),
            writing: false,
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

    pub(crate) fn read(&self) -> Result<&Connection> {
        self.conn
            .as_ref()
            .ok_or_else(|| Error::invalid("the unit of work is already finished"))
    }

    pub(crate) fn write(&mut self) -> Result<&Connection> {
        if !self.writing {
            self.read()?.execute_batch("BEGIN IMMEDIATE")?;
            self.writing = true;
        }
        self.read()
    }

    /// Commits what the unit wrote (nothing to do for a read-only unit).
    ///
    /// # Errors
    /// [`Error::Busy`] or [`Error::Sqlite`] when SQLite refuses the commit; the
    /// writes are then rolled back.
    pub fn commit(mut self) -> Result<()> {
        if self.writing {
            self.read()?.execute_batch("COMMIT")?;
            self.writing = false;
        }
        Ok(())
    }

    /// Rolls back what the unit wrote; the same as dropping it.
    pub fn rollback(self) {}
}

impl Drop for Unit {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            if self.writing && conn.execute_batch("ROLLBACK").is_err() {
                // A connection whose state is unknown is not reused.
                return;
            }
            self.db.release(conn);
        }
    }
}
