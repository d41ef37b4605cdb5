//! Shared fixtures: a fresh database file and a runtime on a movable clock.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;
use plinth_guests::Guest;
use plinth_host::{Access, Manifest, Plugin, Runtime, RuntimeOptions};
use plinth_store::{Clock, Db, Options};
use tempfile::TempDir;

/// A runtime over a fresh database file in its own temp dir, with the test
/// capability (`plinth:test/clock`, `plinth:test/report`) registered.
pub struct Fixture {
    pub dir: TempDir,
    pub runtime: Runtime,
    pub clock: Arc<Clock>,
}

impl Fixture {
    pub fn new() -> Result<Self> {
        let dir = tempfile::tempdir()?;
        // Frozen at the real time: it moves only when a test advances it, so
        // expiry checks do not race the wall clock on a loaded machine.
        let clock = Arc::new(Clock::fixed(unix_now()));
        let db = Db::open_with(
            dir.path().join("plinth.db"),
            Options {
                clock: clock.clone(),
                ..Options::default()
            },
        )?;
        let runtime = Runtime::with_options(
            db,
            RuntimeOptions::default().capability(plinth_testing::TEST_CAPABILITY),
        )?;
        Ok(Self {
            dir,
            runtime,
            clock,
        })
    }

    /// The database file (SQLite fixtures).
    pub fn db_path(&self) -> PathBuf {
        self.runtime
            .db()
            .path()
            .map(std::path::Path::to_path_buf)
            .unwrap_or_default()
    }

    /// A direct connection to the file, to read back what plugins wrote.
    pub fn sqlite(&self) -> Result<rusqlite::Connection> {
        Ok(rusqlite::Connection::open(self.db_path())?)
    }

    /// Loads a built guest with the manifest shipped beside it; db-test also
    /// gets the test clock, which only code can grant.
    pub fn load(&self, guest: Guest) -> Result<Plugin> {
        let mut manifest = Manifest::from_file(guest.manifest.as_ref())?;
        if guest == plinth_guests::DB_TEST {
            manifest = manifest.grant(plinth_testing::TEST_CLOCK, Access::Write);
        }
        self.load_with(guest, manifest)
    }

    /// Loads a built guest with the given manifest.
    pub fn load_with(&self, guest: Guest, manifest: Manifest) -> Result<Plugin> {
        Ok(self.runtime.load_file(guest.wasm.as_ref(), manifest)?)
    }
}

/// Turns an auth call's two channels into one test result.
pub fn ok<T>(r: plinth_auth::AuthResult<T>) -> Result<T> {
    match r {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => anyhow::bail!("the plugin answered {e:?}"),
        Err(e) => Err(e.into()),
    }
}

/// The plugin's answer of an auth call that must fail.
pub fn refused<T: std::fmt::Debug>(
    r: plinth_auth::AuthResult<T>,
) -> Result<plinth_auth::AuthError> {
    match r {
        Ok(Ok(v)) => anyhow::bail!("expected an error, got {v:?}"),
        Ok(Err(e)) => Ok(e),
        Err(e) => Err(e.into()),
    }
}

impl Fixture {
    /// The auth plugin with its shipped manifest.
    pub fn auth(&self) -> Result<plinth_auth::AuthPlugin> {
        Ok(plinth_auth::AuthPlugin::new(
            self.load(plinth_guests::AUTH)?,
        )?)
    }

    /// The token in the newest message to `to` (bodies carry `token: …`).
    pub fn mailed_token(&self, to: &str) -> Result<String> {
        let mail = self.runtime.db().outbox(Some(to), 1)?;
        let body = &mail
            .first()
            .ok_or_else(|| anyhow::anyhow!("no mail to {to}"))?
            .body;
        body.lines()
            .find_map(|l| l.strip_prefix("token: "))
            .map(str::to_string)
            .ok_or_else(|| anyhow::anyhow!("no token in {body:?}"))
    }

    /// The number of rows in `table`.
    pub fn rows(&self, table: &str) -> Result<i64> {
        Ok(self
            .sqlite()?
            .query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))?)
    }

    /// Row counts of every table, to prove a call wrote nothing.
    pub fn snapshot(&self) -> Result<Vec<(String, i64)>> {
        Ok(self
            .runtime
            .db()
            .table_counts()?
            .into_iter()
            .map(|c| (c.table.to_string(), c.rows))
            .collect())
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
