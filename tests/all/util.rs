//! Shared fixtures: a fresh database (an SQLite file, or a PostgreSQL
//! database in `all_postgres`) and a runtime on a movable clock.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;
use plinth_guests::Guest;
use plinth_host::{Access, Manifest, Plugin, Runtime, RuntimeOptions};
use plinth_store::{Clock, Db, Options};
use tempfile::TempDir;

/// A runtime over a fresh database (see [`postgres_build`]), with the test
/// capability (`plinth:test/clock`, `plinth:test/report`) registered.
pub struct Fixture {
    pub dir: TempDir,
    pub runtime: Runtime,
    pub clock: Arc<Clock>,
    pub pg: PgDatabase,
}

/// Whether this build of the suite runs on PostgreSQL: the suite is built
/// twice, as `all` (SQLite) and `all_postgres`.
pub fn postgres_build() -> bool {
    env!("CARGO_CRATE_NAME") == "all_postgres"
}

/// The cluster and database name of a PostgreSQL fixture.
pub type PgDatabase = Option<(&'static plinth_pg_cluster::Cluster, String)>;

/// A fresh database for one test: a file in `dir`, or, in the PostgreSQL
/// build, a database of its own on the throwaway cluster.
fn fresh_db_on(dir: &std::path::Path, options: Options) -> Result<(Db, PgDatabase)> {
    if postgres_build() {
        match plinth_pg_cluster::test_database("the integration suite")? {
            Some((cluster, url)) => {
                let name = plinth_pg_cluster::database_name(&url).to_string();
                return Ok((Db::connect(&url, options)?, Some((cluster, name))));
            }
            None => plinth_pg_cluster::say(
                "all_postgres: no PostgreSQL on this machine; this test runs on SQLite instead",
            ),
        }
    }
    Ok((Db::open_with(dir.join("plinth.db"), options)?, None))
}

impl Fixture {
    pub fn new() -> Result<Self> {
        let dir = tempfile::tempdir()?;
        // Frozen at the real time: it moves only when a test advances it, so
        // expiry checks do not race the wall clock on a loaded machine.
        let clock = Arc::new(Clock::fixed(unix_now()));
        let (db, pg) = fresh_db_on(
            dir.path(),
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
            pg,
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

    /// Runs `sql` through a connection of its own (rusqlite, or psql on
    /// PostgreSQL), as another program would; `?1`, `?2`… are replaced by
    /// `args` (bound on SQLite, quoted literals on PostgreSQL). Returns the
    /// first column of the first row, as text ("" when none).
    pub fn sql(&self, sql: &str, args: &[&str]) -> Result<String> {
        if let Some((cluster, name)) = &self.pg {
            let mut text = sql.to_string();
            for (i, arg) in args.iter().enumerate().rev() {
                let literal = format!("'{}'", arg.replace('\'', "''"));
                text = text.replace(&format!("?{}", i + 1), &literal);
            }
            let out = cluster.psql(name, &text)?;
            return Ok(out.lines().next().unwrap_or("").to_string());
        }
        let conn = self.sqlite()?;
        let mut stmt = conn.prepare(sql)?;
        let params = rusqlite::params_from_iter(args.iter());
        if stmt.column_count() == 0 {
            stmt.execute(params)?;
            return Ok(String::new());
        }
        let mut rows = stmt.query(params)?;
        let Some(row) = rows.next()? else {
            return Ok(String::new());
        };
        Ok(match row.get::<_, rusqlite::types::Value>(0)? {
            rusqlite::types::Value::Null => String::new(),
            rusqlite::types::Value::Integer(n) => n.to_string(),
            rusqlite::types::Value::Real(x) => x.to_string(),
            rusqlite::types::Value::Text(t) => t,
            rusqlite::types::Value::Blob(b) => format!("{b:?}"),
        })
    }

    /// A number [`sql`](Self::sql) returned.
    pub fn sql_i64(&self, sql: &str, args: &[&str]) -> Result<i64> {
        let text = self.sql(sql, args)?;
        text.parse()
            .map_err(|_| anyhow::anyhow!("{sql} gave {text:?}, not a number"))
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
        self.runtime
            .db()
            .table_counts()?
            .into_iter()
            .find(|c| c.table == table)
            .map(|c| c.rows)
            .ok_or_else(|| anyhow::anyhow!("no table {table}"))
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

pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
