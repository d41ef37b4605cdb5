//! The embedded backend: one SQLite file, WAL, a per-thread pool of
//! connections. The default.

mod ops;
mod sandbox;
mod unit;
mod writers;

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::backend::{Backend, OpenOnce, Tx, V1_TABLES, require_current};
use crate::{Error, Options, Result, migrations, pool};

pub(crate) use unit::SqliteTx;

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

    /// Waits, at most until `until`, for the turn of this process's units
    /// to take the write lock: in the order they asked (see `writers`).
    /// `None` when `until` passed first.
    pub(crate) fn write_turn(&self, until: std::time::Instant) -> Option<writers::Turn> {
        self.inner
            .writers
            .get_or_init(|| writers::of_file(&self.inner.path))
            .turn(until)
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
    fn open(&self) -> Result<()> {
        check_owner(&self.inner.path)?;
        let mut conn = self.connect()?;
        let now = self.inner.options.clock.now();
        if self.inner.options.migrate {
            migrations::apply(&mut conn, migrations::MIGRATIONS, now)?;
        } else {
            require_current(migrations::version_of(&conn)?)?;
        }
        let id: i32 = conn.pragma_query_value(None, "application_id", |r| r.get(0))?;
        if id != APPLICATION_ID {
            conn.pragma_update(None, "application_id", APPLICATION_ID)?;
        }
        self.release(conn);
        Ok(())
    }

    fn connect(&self) -> Result<Connection> {
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
        // The first statement that reads the file: a non-database file fails here.
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get::<_, String>(0))
            .map_err(open_err)?;
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

/// Refuses, before anything is written, a path that cannot hold a lasting
/// database and a file that is not plinth's. A missing or empty file is
/// fine: it becomes a plinth database.
fn check_owner(path: &Path) -> Result<()> {
    check_path(path)?;
    let invalid = |reason: &str| Error::InvalidPath {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    };
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(invalid(&e.to_string())),
    };
    if !meta.is_file() {
        return Err(invalid("not a regular file"));
    }
    if meta.len() == 0 {
        return Ok(());
    }
    let open_err = |source: rusqlite::Error| Error::Open {
        path: path.to_path_buf(),
        source: source.into(),
    };
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(open_err)?;
    let not_plinth = |reason: String| Error::NotPlinth {
        path: path.to_path_buf(),
        reason,
    };
    // The first read of the file: one that is not SQLite fails here.
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
