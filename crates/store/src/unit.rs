//! One unit of work, whichever the backend.

use std::collections::HashMap;
use std::time::Instant;

use crate::Db;
use crate::Result;
use crate::engine::Tx;

/// One unit of work: what it writes commits together on
/// [`commit`](Unit::commit) or not at all. Dropping an uncommitted unit
/// rolls its writes back, so a caller that fails half way leaves nothing
/// half written. Its connection goes back to the pool either way, with no
/// transaction open (or is closed when its state is unknown).
///
/// What a unit's reads see depends on the backend. On SQLite they share one
/// snapshot until the first write, which takes the one write lock for the
/// rest of the unit. On PostgreSQL each read before the first write sees
/// what was committed when it ran (no transaction is opened for reads
/// alone); the first write opens a transaction, and writes on two hosts
/// race row by row (the loser of a unique value gets a conflict, of a token
/// nothing). Operations that must read and write atomically (consuming a
/// token, reserving a failure, queuing mail under a limit) do so in one
/// statement or under a lock on both.
#[derive(Debug)]
pub struct Unit {
    db: Db,
    pub(crate) tx: Box<dyn Tx>,
    /// Seconds this unit's clock is ahead of the database's (tests only
    /// move it: see [`Unit::set_clock_offset`]).
    clock_offset: i64,
    /// Bytes each plugin's data takes as this unit sees it, once a write
    /// under a quota needed it (kept up to date by the unit's writes, and
    /// recorded at commit).
    pub(crate) usage: HashMap<String, Option<crate::quota::Usage>>,
}

impl Unit {
    pub(crate) fn new(db: Db, tx: Box<dyn Tx>) -> Self {
        Self {
            db,
            tx,
            clock_offset: 0,
            usage: HashMap::new(),
        }
    }

    pub(crate) fn tx(&mut self) -> &mut dyn Tx {
        self.tx.as_mut()
    }

    /// Rows this unit has inserted, updated or deleted so far (rows changed
    /// by foreign-key cascades are not counted).
    pub fn rows_written(&self) -> u64 {
        self.tx.rows_written()
    }

    /// Bounds how long this unit waits on the database — for a lock another
    /// unit holds, on PostgreSQL for the server's answer: until a little
    /// before `deadline` (a tenth of the time left, at most 100 ms, is kept
    /// for the caller to answer), never longer than the database's busy
    /// timeout. A unit that cannot go on by then fails with
    /// [`Error::Busy`](crate::Error::Busy), which the caller can answer with
    /// in time, instead of running past its own deadline.
    pub fn set_deadline(&mut self, deadline: Instant) {
        self.tx.set_deadline(deadline);
    }

    /// The database this unit works on.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Now, by the database's clock (plus this unit's offset).
    pub fn now(&self) -> i64 {
        self.db.clock().now().saturating_add(self.clock_offset)
    }

    /// Runs this unit's clock `seconds` ahead of the database's: every row
    /// it stamps and every expiry it checks sees that time. For tests that
    /// travel in time inside one call without moving the clock of calls
    /// running beside it (on PostgreSQL those run side by side).
    pub fn set_clock_offset(&mut self, seconds: i64) {
        self.clock_offset = seconds;
    }

    /// Whether this unit has written.
    pub fn is_writing(&self) -> bool {
        self.tx.is_writing()
    }

    /// Commits what the unit wrote (for a read-only unit, ends its snapshot).
    ///
    /// # Errors
    /// [`Error::Busy`](crate::Error::Busy), [`Error::Unavailable`](crate::Error::Unavailable)
    /// or [`Error::Engine`](crate::Error::Engine) when the commit fails; the
    /// writes are then rolled back.
    pub fn commit(mut self) -> Result<()> {
        for (plugin, usage) in &self.usage {
            if let Some(delta) = usage.as_ref().and_then(crate::quota::Usage::change) {
                self.tx.add_plugin_bytes(plugin, delta)?;
            }
        }
        self.usage.clear();
        self.tx.commit()
    }

    /// Rolls back what the unit wrote; the same as dropping it.
    pub fn rollback(self) {}
}
