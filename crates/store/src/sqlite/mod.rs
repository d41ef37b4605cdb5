//! The embedded backend: one SQLite file, WAL, a per-thread pool of
//! connections. The default.

mod errors;
pub(crate) mod migrations;
mod sandbox;
mod tx;
mod writers;

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};

use crate::engine::{Backend, OpenOnce, Tx, V1_TABLES, require_current};
use crate::{Error, Options, Result, pool};

pub(crate) use tx::SqliteTx;

/// `PRAGMA application_id` of a plinth database: `plnt` in ASCII. SQLite's
/// own way of saying which application a file belongs to.
pub const APPLICATION_ID: i32 = 0x706c_6e74;

/// A database file and its pool of idle connections.
#[derive(Debug, Clone)]
pub(crate) struct Sqlite {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    options: Options,
    idle: pool::Pool<Connection>,
    /// Set once the file is open (checked, migrated).
    open: OpenOnce,
    /// Plugin statements already put into their namespace, by plugin
    /// prefix and text.
    namespaced: sandbox::Rewrites,
    /// The queue for the write lock of this file in this process (see
    /// `writers`), found at the first write.
    writers: OnceLock<Arc<writers::Writers>>,
}

impl Sqlite {
    /// The rewrites of plugin statements this database has made.
    pub(crate) fn rewrites(&self) -> &sandbox::Rewrites {
        &self.inner.namespaced
    }

    /// A database at `path`, not yet looked at.
    pub(crate) fn new(path: &Path, options: Options) -> Result<Self> {
        check_path(path)?;
        Ok(Self {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                idle: pool::Pool::new(options.max_idle_connections),
                options,
                open: OpenOnce::default(),
                namespaced: sandbox::Rewrites::default(),
                writers: OnceLock::new(),
            }),
        })
    }

    pub(crate) fn busy_timeout(&self) -> Duration {
        self.inner.options.busy_timeout
    }

    /// Takes the write lock on `conn` (`BEGIN IMMEDIATE`), waiting at most
    /// until `until`: first for this process's writers that asked before
    /// (see `writers`), then, for the time left, in SQLite's busy wait for
    /// what other processes hold (none left: one try). Returns the turn,
    /// to be dropped once the transaction has ended.
    ///
    /// # Errors
    /// [`Error::Busy`] when `until` passes first.
    pub(crate) fn begin_immediate(
        &self,
        conn: &Connection,
        until: Instant,
    ) -> Result<writers::Turn> {
        let turn = self
            .inner
            .writers
            .get_or_init(|| writers::of_file(&self.inner.path))
            .turn(until)
            .ok_or(Error::Busy)?;
        conn.busy_timeout(until.saturating_duration_since(Instant::now()))?;
        let began = conn
            .prepare_cached("BEGIN IMMEDIATE")
            .and_then(|mut begin| begin.execute([]));
        // The connection is pooled: back to the database's timeout.
        conn.busy_timeout(self.busy_timeout())?;
        // A failed BEGIN passes the turn on here.
        began?;
        Ok(turn)
    }

    pub(crate) fn acquire(&self) -> Result<Connection> {
        self.ensure_open()?;
        match self.inner.idle.take() {
            Some(conn) => Ok(conn),
            None => self.connect(),
        }
    }

    /// Returns a connection to the pool (to the calling thread's share of
    /// it, so that its page cache stays on this thread), or closes it when
    /// the pool is full.
    pub(crate) fn release(&self, conn: Connection) {
        drop(self.inner.idle.put(conn));
    }
    /// Checks that the file is plinth's (or new) and migrates it.
    ///
    /// Another process may be doing the same at the same moment (hosts
    /// started together on one new file). So what the file holds is looked
    /// at under the write lock (`BEGIN IMMEDIATE`, waiting up to the busy
    /// timeout), and the lock is kept until the schema is complete and
    /// stamped: the second opener waits, then finds a plinth database, never
    /// one half made. A file already current needs nothing written, and is
    /// seen so in one read transaction, without waiting for the lock.
    fn open(&self) -> Result<()> {
        let path = &self.inner.path;
        check_file(path)?;
        // Nothing is written before the file is known to be plinth's (or
        // new): not even the switch to WAL, which comes last.
        let conn = self.connect_with(false)?;
        if !is_current(&conn, path)? {
            // In turn with this process's writers, as a unit's first write.
            let until = Instant::now() + self.inner.options.busy_timeout;
            let _turn = self.begin_immediate(&conn, until)?;
            let made = self.make_current(&conn);
            let ended = match &made {
                Ok(()) | Err(Kept(_)) => conn.execute_batch("COMMIT"),
                Err(Undone(_)) => conn.execute_batch("ROLLBACK"),
            };
            if ended.is_err() && !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
            match made {
                Ok(()) => ended?,
                Err(Kept(e) | Undone(e)) => return Err(e),
            }
        }
        self.use_wal(&conn)?;
        self.release(conn);
        Ok(())
    }

    /// Under the write lock: refuses a file that is not plinth's, stamps
    /// one that is (or is new), and migrates it (or, with `migrate: false`,
    /// checks that it is current). Says whether what it did is to be kept:
    /// the steps before a failing migration are.
    fn make_current(&self, conn: &Connection) -> std::result::Result<(), Outcome> {
        let path = &self.inner.path;
        check_owner(conn, path).map_err(Undone)?;
        if !self.inner.options.migrate {
            require_current(migrations::version_of(conn).map_err(Undone)?).map_err(Undone)?;
        }
        let id: i32 = conn
            .pragma_query_value(None, "application_id", |r| r.get(0))
            .map_err(|e| Undone(e.into()))?;
        if id != APPLICATION_ID {
            conn.pragma_update(None, "application_id", APPLICATION_ID)
                .map_err(|e| Undone(e.into()))?;
        }
        if self.inner.options.migrate {
            let now = self.inner.options.clock.now();
            migrations::apply_locked(conn, crate::migrations::SQLITE, now).map_err(Kept)?;
        }
        Ok(())
    }

    /// Puts the file in WAL mode (a no-op once it is). The switch takes the
    /// file's exclusive lock without SQLite's busy wait — it fails at once
    /// while another connection reads or writes, as other hosts opening a
    /// new file at the same time do — so it is tried again, until the busy
    /// timeout.
    fn use_wal(&self, conn: &Connection) -> Result<()> {
        let until = Instant::now() + self.inner.options.busy_timeout;
        let mut pause = Duration::from_millis(1);
        loop {
            let mode = conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| {
                row.get::<_, String>(0)
            });
            match mode {
                Ok(mode) if mode.eq_ignore_ascii_case("wal") => return Ok(()),
                Err(e) if !is_busy(&e) => {
                    return Err(Error::Open {
                        path: self.inner.path.clone(),
                        source: e.into(),
                    });
                }
                // Not switched (yet): another connection is in the way.
                _ if Instant::now() < until => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(20));
                }
                // As before this wait existed: a file left in its journal
                // mode still works; every pooled connection asks again.
                Ok(_) => return Ok(()),
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// A connection for the pool: the file is plinth's, in WAL mode.
    fn connect(&self) -> Result<Connection> {
        self.connect_with(true)
    }

    /// A connection, set up; with `wal`, it first switches the file to WAL
    /// (see `use_wal` for a file that may not be plinth's yet).
    fn connect_with(&self, wal: bool) -> Result<Connection> {
        let path = &self.inner.path;
        let open_err = |source: rusqlite::Error| Error::Open {
            path: path.clone(),
            source: source.into(),
        };
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(open_err)?;
        conn.busy_timeout(self.inner.options.busy_timeout)
            .map_err(open_err)?;
        if conn.is_readonly(rusqlite::MAIN_DB).map_err(open_err)? {
            return Err(Error::ReadOnly { path: path.clone() });
        }
        if wal {
            // The first statement that reads the file: a non-database file
            // fails here.
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| {
                row.get::<_, String>(0)
            })
            .map_err(open_err)?;
        }
        // Defensive: no writable schema, no writes to shadow tables by
        // hand; trusted_schema off: functions in a schema (a view, an
        // index) are only those marked safe. Plugins' SQL runs here too.
        conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true)
            .map_err(open_err)?;
        conn.pragma_update(None, "trusted_schema", false)
            .map_err(open_err)?;
        // secure_delete = FAST: content a statement removes (a scrubbed mail
        // body, a deleted token hash) is zeroed in the pages it rewrites
        // anyway, rather than left in free space for a reader of the file.
        conn.execute_batch(&format!(
            "PRAGMA foreign_keys = ON; PRAGMA synchronous = {}; PRAGMA secure_delete = FAST;",
            self.inner.options.durability.pragma()
        ))
        .map_err(open_err)?;
        conn.set_prepared_statement_cache_capacity(64);
        // Plugins' statements are prepared under it; the host's pass.
        sandbox::install_authorizer(&conn);
        Ok(conn)
    }
}

impl Backend for Sqlite {
    fn ensure_open(&self) -> Result<()> {
        self.inner.open.get_or_open(|| self.open())
    }

    fn may_hold_data(&self) -> bool {
        self.inner.open.is_open() || self.inner.path.exists()
    }

    fn pool_status(&self) -> crate::engine::PoolStatus {
        let idle = self.inner.idle.len();
        crate::engine::PoolStatus {
            idle,
            open: idle,
            max: self.inner.options.max_idle_connections,
            waiting: 0,
        }
    }

    fn begin(&self) -> Result<Box<dyn Tx>> {
        let conn = self.acquire()?;
        Ok(Box::new(SqliteTx::new(self.clone(), conn)))
    }

    fn schema_version(&self) -> Result<u32> {
        let conn = self.acquire()?;
        let v = migrations::version_of(&conn);
        self.release(conn);
        v
    }

    fn checkpoint(&self) {
        if let Ok(conn) = self.acquire() {
            let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
            self.release(conn);
        }
    }
}

/// Refuses a path that names no file: SQLite's in-memory database and URIs.
fn check_path(path: &Path) -> Result<()> {
    let text = path.to_string_lossy();
    if text.is_empty() || text == ":memory:" || text.starts_with("file:") {
        return Err(Error::InvalidPath {
            path: path.to_path_buf(),
            reason: "not a database file: an in-memory database or a URI keeps nothing plinth can find again".into(),
        });
    }
    Ok(())
}

/// What `Sqlite::make_current` did when it failed: whether what it had done
/// is to be committed (the steps before a failing migration) or rolled back.
enum Outcome {
    Kept(Error),
    Undone(Error),
}
use Outcome::{Kept, Undone};

/// Whether SQLite answered that another connection holds a lock.
fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

/// Refuses, before SQLite opens it, a path that cannot hold a lasting
/// database: not a regular file. A missing file is fine: it becomes a
/// plinth database.
fn check_file(path: &Path) -> Result<()> {
    check_path(path)?;
    let invalid = |reason: &str| Error::InvalidPath {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    };
    match std::fs::metadata(path) {
        Ok(meta) if !meta.is_file() => Err(invalid("not a regular file")),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(invalid(&e.to_string())),
    }
}

/// Whether the file behind `conn` is a plinth database at this build's
/// version, as one read transaction sees it: such a file needs nothing
/// written. The first read of the file: one that is not SQLite fails here.
fn is_current(conn: &Connection, path: &Path) -> Result<bool> {
    let open_err = |source: rusqlite::Error| Error::Open {
        path: path.to_path_buf(),
        source: source.into(),
    };
    conn.execute_batch("BEGIN").map_err(open_err)?;
    let current = conn
        .pragma_query_value(None, "application_id", |r| r.get::<_, i32>(0))
        .map_err(open_err)
        .and_then(|id| {
            Ok(id == APPLICATION_ID
                && migrations::version_of(conn)? == crate::migrations::latest_version())
        });
    conn.execute_batch("ROLLBACK")?;
    current
}

/// Refuses a file that is not plinth's, before anything is written to it:
/// another application's id, or tables plinth did not make. A new or empty
/// file is fine: it becomes a plinth database. Called under the write lock,
/// so that what it sees is not another host's schema half made.
fn check_owner(conn: &Connection, path: &Path) -> Result<()> {
    let open_err = |source: rusqlite::Error| Error::Open {
        path: path.to_path_buf(),
        source: source.into(),
    };
    let not_plinth = |reason: String| Error::NotPlinth {
        path: path.to_path_buf(),
        reason,
    };
    let id: i32 = conn
        .pragma_query_value(None, "application_id", |r| r.get(0))
        .map_err(open_err)?;
    if id == APPLICATION_ID {
        return Ok(());
    }
    if id != 0 {
        return Err(not_plinth(format!("its application id is {id:#x}")));
    }
    let mut stmt = conn
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
        .map_err(open_err)?;
    let tables: Vec<String> = stmt
        .query_map([], |r| r.get(0))
        .and_then(|rows| rows.collect())
        .map_err(open_err)?;
    if tables.is_empty() || V1_TABLES.iter().all(|t| tables.iter().any(|n| n == t)) {
        return Ok(());
    }
    Err(not_plinth(format!(
        "it holds tables plinth did not make: {}",
        tables.join(", ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Durability;

    fn synchronous(options: Options) -> Result<i64> {
        let dir = tempfile::tempdir().map_err(|e| Error::invalid(e.to_string()))?;
        let db = Sqlite::new(&dir.path().join("d.db"), options)?;
        let conn = db.acquire()?;
        let level = conn.pragma_query_value(None, "synchronous", |r| r.get(0))?;
        db.release(conn);
        Ok(level)
    }

    #[test]
    fn commits_are_synced_in_full_unless_asked_otherwise() -> Result<()> {
        // 2 is FULL, 1 is NORMAL.
        assert_eq!(synchronous(Options::default())?, 2);
        let normal = Options {
            durability: Durability::Normal,
            ..Options::default()
        };
        assert_eq!(synchronous(normal)?, 1);
        Ok(())
    }
}
