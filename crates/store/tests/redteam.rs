//! Red-team tests of the plugin SQL sandbox (SQLite and PostgreSQL). Each
//! test asserts a promise of README.md / docs/DECISIONS.md; a failing test
//! is a broken promise (see the comment above each for the attack).

#![allow(unsafe_code)] // the counting allocator only

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use plinth_store::plugin::{MigrationLimits, PluginMigration};
use plinth_store::sql::Namespace;
use plinth_store::{Db, NewUser, Options};

// ---------------------------------------------------------------------
// A counting allocator: the host's (Rust) heap, current and peak.
// ---------------------------------------------------------------------

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = CURRENT.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            // Count the moment both blocks may live (a moving realloc).
            let now = CURRENT.fetch_add(new_size, Ordering::Relaxed) + new_size;
            PEAK.fetch_max(now, Ordering::Relaxed);
            CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Memory-measuring tests run one at a time.
static MEASURE: Mutex<()> = Mutex::new(());

/// Every test of this file runs alone: the counting allocator sees every
/// thread's allocations (the PostgreSQL client decodes rows on its own
/// thread), so a test running beside a measurement would count in it.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Runs `f` and returns what it returned and the most bytes the heap grew
/// by while it ran.
fn peak_of<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = CURRENT.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let out = f();
    let peak = PEAK.load(Ordering::Relaxed);
    (out, peak.saturating_sub(base))
}

// ---------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------

fn db() -> Result<(tempfile::TempDir, Db)> {
    let dir = tempfile::tempdir()?;
    let db = Db::open(dir.path().join("x.db"))?;
    Ok((dir, db))
}

fn ns(plugin: &str) -> Result<Namespace> {
    Ok(Namespace::new(plugin, false)?)
}

fn raw(db: &Db) -> Result<rusqlite::Connection> {
    Ok(rusqlite::Connection::open(
        db.path().unwrap_or(std::path::Path::new("")),
    )?)
}

fn user(name: &str) -> NewUser {
    NewUser {
        name: name.into(),
        email: format!("{name}@example.com"),
    }
}

fn migration(version: u32, sql: &str) -> PluginMigration {
    PluginMigration {
        version,
        name: format!("m{version}"),
        sql: sql.into(),
    }
}

/// Every stored SQL text of the file that mentions `needle`.
fn stored_mentioning(db: &Db, needle: &str) -> Result<Vec<(String, String)>> {
    let conn = raw(db)?;
    let mut stmt =
        conn.prepare("SELECT name, sql FROM sqlite_schema WHERE sql LIKE '%' || ?1 || '%'")?;
    let found = stmt
        .query_map([needle], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(found)
}

// ---------------------------------------------------------------------
// SQLite: promise 1 (the namespace and the schema check)
// ---------------------------------------------------------------------

/// FTS5 accepts any prefix of an option's key (`cont=`, `c=` mean
/// `content=`: fts5_config.c compares with `sqlite3_strnicmp(.., nCmd)`);
/// the schema check only looks for the key spelled `content`.
#[test]
fn sqlite_fts5_abbreviated_content_option_cannot_name_a_core_table() -> Result<()> {
    let _serial = serial();
    let (_d, db) = db()?;
    db.with_unit(|u| u.create_user(&user("ada")).map(|_| ()))?;
    let alpha = ns("alpha")?;
    let mut outcomes = Vec::new();
    for (i, option) in [
        "cont='users'",
        "c='users'",
        "conte=users",
        "CONTEN = 'users'",
    ]
    .iter()
    .enumerate()
    {
        let mut unit = db.unit()?;
        let sql = format!("CREATE VIRTUAL TABLE f{i} USING fts5(email, {option})");
        let r = unit.plugin_execute(&alpha, &sql, &[]);
        // Whatever it answered, try to read through it.
        let read = unit.plugin_query(&alpha, &format!("SELECT email FROM f{i}"), &[]);
        outcomes.push(format!("{sql}: {r:?}; read: {read:?}"));
        unit.commit()?;
    }
    let stored = stored_mentioning(&db, "users")?
        .into_iter()
        .filter(|(name, _)| name.starts_with("alpha:"))
        .collect::<Vec<_>>();
    eprintln!("fts5 outcomes:\n{}", outcomes.join("\n"));
    ensure!(
        stored.is_empty(),
        "alpha's schema names the core table users: {stored:?}\n{}",
        outcomes.join("\n")
    );
    Ok(())
}

/// The same abbreviation towards another plugin's table.
#[test]
fn sqlite_fts5_abbreviated_content_option_cannot_name_another_plugins_table() -> Result<()> {
    let _serial = serial();
    let (_d, db) = db()?;
    let beta = ns("beta")?;
    db.with_unit(|u| {
        u.plugin_execute(&beta, "CREATE TABLE secret (s TEXT)", &[])
            .map_err(|e| plinth_store::Error::InvalidInput(e.to_string()))?;
        u.plugin_execute(&beta, "INSERT INTO secret VALUES ('beta only')", &[])
            .map_err(|e| plinth_store::Error::InvalidInput(e.to_string()))?;
        Ok(())
    })?;
    let alpha = ns("alpha")?;
    let mut unit = db.unit()?;
    let r = unit.plugin_execute(
        &alpha,
        r#"CREATE VIRTUAL TABLE f USING fts5(s, conten='beta:secret')"#,
        &[],
    );
    let read = unit.plugin_query(&alpha, "SELECT s FROM f", &[]);
    unit.commit()?;
    let leaked = format!("{read:?}").contains("beta only");
    eprintln!("fts5 beta: {r:?}; read: {read:?}");
    let stored = stored_mentioning(&db, "beta:secret")?
        .into_iter()
        .filter(|(name, _)| name.starts_with("alpha:"))
        .collect::<Vec<_>>();
    ensure!(
        stored.is_empty() && !leaked,
        "create: {r:?}; read: {read:?}; alpha's schema names beta's table: {stored:?}"
    );
    Ok(())
}

/// A plugin's name may not differ from another's only in case: SQLite
/// resolves names case-insensitively, so `ALPHA`'s `"ALPHA:t"` would be
/// `alpha`'s `"alpha:t"` (a foreign key of one pointing at the other's
/// table, one squatting the other's names). Names that keep data are
/// lowercase.
#[test]
fn sqlite_plugins_differing_in_case_stay_apart() -> Result<()> {
    let _serial = serial();
    for name in ["ALPHA", "Alpha", "alphA"] {
        ensure!(
            matches!(
                Namespace::new(name, false),
                Err(plinth_store::sql::SqlError::AccessDenied(_))
            ),
            "{name} was given a namespace"
        );
    }
    ns("alpha")?;
    Ok(())
}

/// A view a plugin leaves dangling (its table dropped; the schema check
/// accepts the drop because the view's names are the plugin's) makes SQLite
/// refuse every later `ALTER TABLE … RENAME` / `DROP COLUMN` in the whole
/// file (SQLite re-checks every view of the schema): another plugin's, and
/// the host's own future schema migrations.
#[test]
fn sqlite_a_plugins_dangling_view_does_not_break_others_schema_changes() -> Result<()> {
    let _serial = serial();
    let (_d, db) = db()?;
    let alpha = ns("alpha")?;
    let mut unit = db.unit()?;
    unit.plugin_execute(&alpha, "CREATE TABLE t (a)", &[])?;
    unit.plugin_execute(&alpha, "CREATE VIEW v AS SELECT a FROM t", &[])?;
    let dropped = unit.plugin_execute(&alpha, "DROP TABLE t", &[]);
    unit.commit()?;
    // Another plugin renames its own things.
    let beta = ns("beta")?;
    let mut unit = db.unit()?;
    unit.plugin_execute(&beta, "CREATE TABLE x (a, b)", &[])?;
    let col = unit.plugin_execute(&beta, "ALTER TABLE x RENAME COLUMN a TO c", &[]);
    let tab = unit.plugin_execute(&beta, "ALTER TABLE x RENAME TO y", &[]);
    unit.commit()?;
    // The host's kind of migration (run as the host would, no sandbox).
    let conn = raw(&db)?;
    let host = conn.execute_batch(
        "BEGIN; ALTER TABLE outbox RENAME COLUMN last_error TO last_error2; ROLLBACK;",
    );
    let _ = conn.execute_batch("ROLLBACK");
    let host_drop =
        conn.execute_batch("BEGIN; ALTER TABLE outbox DROP COLUMN last_error; ROLLBACK;");
    let _ = conn.execute_batch("ROLLBACK");
    // (beta's renames are refused whatever alpha did: the authorizer does
    // not list sqlite_rename_*; see the report.)
    let _ = (&col, &tab);
    ensure!(
        host.is_ok() && host_drop.is_ok(),
        "alpha's DROP TABLE t: {dropped:?}; then beta's RENAME COLUMN: {col:?}; \
         beta's RENAME TO: {tab:?}; the host's ALTER TABLE outbox RENAME COLUMN: {host:?}; \
         the host's DROP COLUMN: {host_drop:?}"
    );
    Ok(())
}

/// Grammar corners: each either is refused or reads nothing of the core
/// tables, and changes nothing of them.
#[test]
fn sqlite_grammar_corners_reach_no_core_data() -> Result<()> {
    let _serial = serial();
    let (_d, db) = db()?;
    db.with_unit(|u| u.create_user(&user("ada")).map(|_| ()))?;
    let alpha = ns("alpha")?;
    db.with_unit(|u| {
        u.plugin_execute(&alpha, "CREATE TABLE t (a, b)", &[])
            .map_err(|e| plinth_store::Error::InvalidInput(e.to_string()))?;
        Ok(())
    })?;
    let attempts = [
        "SELECT * FROM \"USERS\"",
        "SELECT * FROM [users]",
        "SELECT * FROM `users`",
        "SELECT * FROM main.users",
        "SELECT * FROM \"main\".\"users\"",
        "SELECT * FROM temp.sqlite_master",
        "SELECT * FROM SQLITE_MASTER",
        "SELECT * FROM \"sqlite_schema\"",
        "SELECT * FROM pragma_table_info('users')",
        "SELECT * FROM json_each((SELECT json_group_array(email) FROM users))",
        "SELECT a FROM t WHERE a IN users",
        "SELECT (SELECT email FROM users LIMIT 1)",
        "WITH RECURSIVE r(e) AS (SELECT email FROM users) SELECT * FROM r",
        "WITH t AS (SELECT email AS a FROM users) SELECT a FROM t",
        "SELECT email FROM users, t",
        "SELECT sqlite_offset(a) FROM t",
        "SELECT sqlite_version()",
        "SELECT SQLITE_SOURCE_ID()",
        "SELECT \"sqlite_version\"()",
        "SELECT load_extension('/tmp/x')",
        "SELECT sqlite_compileoption_get(0)",
        "SELECT fts5(NULL)",
        "SELECT a FROM t INDEXED BY sqlite_autoindex_users_1",
        "SELECT a, row_number() OVER (ORDER BY (SELECT count(*) FROM users)) FROM t",
        "INSERT INTO t SELECT email, name FROM users",
        "INSERT INTO t VALUES ((SELECT email FROM users), 1) RETURNING *",
        "INSERT INTO t VALUES (1, 2) RETURNING (SELECT email FROM users)",
        "INSERT INTO t VALUES (1, 2) ON CONFLICT DO UPDATE SET a = (SELECT email FROM users)",
        "UPDATE t SET a = u.email FROM users AS u",
        "DELETE FROM users",
        "UPDATE users SET email = 'x'",
        "CREATE TABLE c AS SELECT * FROM users",
        "CREATE TABLE c2 AS WITH x AS (SELECT * FROM users) SELECT * FROM x",
        "CREATE VIEW v1 AS SELECT * FROM users",
        "CREATE VIEW v2 AS WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n FROM users) SELECT * FROM r",
        "CREATE VIEW v3 AS SELECT (SELECT email FROM users) AS e",
        "CREATE TABLE g (a, e AS ((SELECT email FROM users)))",
        "CREATE TABLE d (a DEFAULT (sqlite_version()))",
        "CREATE TABLE ck (a CHECK (a <> (SELECT 1 FROM users)))",
        "CREATE INDEX ix ON t (sqlite_version())",
        "CREATE INDEX ix2 ON t (a) WHERE a > sqlite_version()",
        "CREATE TABLE co (a TEXT COLLATE nocase REFERENCES \"users\" (uuid))",
        "CREATE TRIGGER tr AFTER INSERT ON t BEGIN DELETE FROM users; END",
        "CREATE TEMP TABLE tt (a)",
        "CREATE VIRTUAL TABLE vv USING fts5vocab(t, 'row')",
        "CREATE VIRTUAL TABLE vv2 USING dbstat",
        "ANALYZE",
        "VACUUM",
        "REINDEX",
        "PRAGMA foreign_keys = OFF",
        "ATTACH 'x.db' AS x",
        "ALTER TABLE t RENAME TO users",
        "ALTER TABLE t RENAME TO \"main\".\"users\"",
        "ALTER TABLE t ADD COLUMN z REFERENCES users(uuid)",
        "ALTER TABLE t ADD COLUMN z2 DEFAULT (sqlite_source_id())",
        "DROP TABLE users",
        "DROP INDEX sqlite_autoindex_users_1",
        "SAVEPOINT x",
        "RELEASE x",
    ];
    let mut leaks = Vec::new();
    for sql in attempts {
        let mut unit = db.unit()?;
        let q = unit.plugin_query(&alpha, sql, &[]);
        if let Ok(rows) = &q
            && format!("{rows:?}").contains("ada@example.com")
        {
            leaks.push(format!("{sql}: {rows:?}"));
        }
        // A real second statement would also do: execute.
        let e = unit.plugin_execute(&alpha, sql, &[]);
        eprintln!(
            "sqlite corner: {sql} => query {:?}; execute {e:?}",
            q.as_ref().map(|r| r.rows.len())
        );
        unit.commit()?;
    }
    ensure!(leaks.is_empty(), "core data read: {leaks:?}");
    let conn = raw(&db)?;
    let users: i64 = conn.query_row(
        "SELECT count(*) FROM users WHERE email = 'ada@example.com'",
        [],
        |r| r.get(0),
    )?;
    ensure!(users == 1, "users changed: {users}");
    let foreign = stored_mentioning(&db, "users")?
        .into_iter()
        .filter(|(n, _)| n.starts_with("alpha:"))
        .filter(|(_, sql)| sql.to_lowercase().contains("\"users\"") || sql.contains(" users"))
        .collect::<Vec<_>>();
    ensure!(
        foreign.is_empty(),
        "alpha's schema names users: {foreign:?}"
    );
    let outside: Vec<String> = conn
        .prepare(
            "SELECT name FROM sqlite_schema WHERE name NOT LIKE 'alpha:%'
               AND name NOT LIKE 'sqlite_autoindex_alpha:%' AND sql LIKE '%alpha%'",
        )?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    ensure!(
        outside.is_empty(),
        "objects outside the namespace: {outside:?}"
    );
    // A sign-in's writes still work.
    let u = db.with_unit(|u| u.get_user_by_name("ada"))?;
    db.with_unit(|x| x.create_session(&"b".repeat(64), &u.uuid, 3600))?;
    db.with_unit(|x| x.delete_user_sessions(&u.uuid))?;
    Ok(())
}

/// Deferred foreign keys: a plugin makes its own unit's host writes fail
/// to commit (SQLite: one transaction, so both go: the promise "one unit"
/// holds; recorded for the report).
#[test]
fn sqlite_a_deferred_violation_keeps_nothing_of_the_unit() -> Result<()> {
    let _serial = serial();
    let (_d, db) = db()?;
    let alpha = ns("alpha")?;
    db.with_unit(|u| {
        u.plugin_execute(&alpha, "CREATE TABLE p (id INTEGER PRIMARY KEY)", &[])
            .map_err(|e| plinth_store::Error::InvalidInput(e.to_string()))?;
        u.plugin_execute(
            &alpha,
            "CREATE TABLE c (x INTEGER REFERENCES p (id) DEFERRABLE INITIALLY DEFERRED)",
            &[],
        )
        .map_err(|e| plinth_store::Error::InvalidInput(e.to_string()))?;
        Ok(())
    })?;
    let mut unit = db.unit()?;
    unit.create_user(&user("bob"))?;
    let ins = unit.plugin_execute(&alpha, "INSERT INTO c VALUES (42)", &[]);
    let committed = unit.commit();
    let conn = raw(&db)?;
    let bob: i64 = conn.query_row("SELECT count(*) FROM users WHERE name = 'bob'", [], |r| {
        r.get(0)
    })?;
    let c: i64 = conn.query_row(r#"SELECT count(*) FROM "alpha:c""#, [], |r| r.get(0))?;
    ensure!(
        (bob == 1) == (c == 1),
        "insert: {ins:?}; commit: {committed:?}; bob: {bob}, alpha's rows: {c}"
    );
    Ok(())
}

/// `INSERT OR FAIL` keeps the rows it wrote before the failing one
/// (SQLite's FAIL resolution); a statement outside a savepoint (no quota,
/// one parameter list, not DDL) then answers `constraint` while its first
/// rows stay: "the statement changed nothing" does not hold.
#[test]
fn sqlite_a_failed_statement_keeps_nothing_or_fail() -> Result<()> {
    let _serial = serial();
    let (_d, db) = db()?;
    let alpha = ns("alpha")?;
    let mut unit = db.unit()?;
    unit.plugin_execute(&alpha, "CREATE TABLE u (x INTEGER UNIQUE)", &[])?;
    let r = unit.plugin_execute(&alpha, "INSERT OR FAIL INTO u VALUES (1), (2), (1)", &[]);
    let u = unit.plugin_execute(&alpha, "UPDATE OR FAIL u SET x = 5", &[]);
    unit.commit()?;
    let conn = raw(&db)?;
    let rows: Vec<i64> = conn
        .prepare(r#"SELECT x FROM "alpha:u" ORDER BY x"#)?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    ensure!(
        r.is_ok() || rows.is_empty(),
        "INSERT OR FAIL answered {r:?} and kept {rows:?} (then UPDATE OR FAIL: {u:?})"
    );
    Ok(())
}

/// `plugin_execute` of a statement with `RETURNING`: whatever it answers,
/// what it wrote and what it answered agree.
#[test]
fn sqlite_execute_with_returning_answers_what_it_kept() -> Result<()> {
    let _serial = serial();
    let (_d, db) = db()?;
    let alpha = ns("alpha")?;
    let mut unit = db.unit()?;
    unit.plugin_execute(&alpha, "CREATE TABLE r (x)", &[])?;
    let r = unit.plugin_execute(&alpha, "INSERT INTO r VALUES (1), (2) RETURNING x", &[]);
    unit.commit()?;
    let conn = raw(&db)?;
    let n: i64 = conn.query_row(r#"SELECT count(*) FROM "alpha:r""#, [], |r| r.get(0))?;
    ensure!(
        r.is_ok() == (n == 2) && (r.is_ok() || n == 0),
        "plugin_execute answered {r:?}; the table keeps {n} rows"
    );
    Ok(())
}

/// An upsert's `DO UPDATE SET` with a subquery: renamed into the namespace
/// or refused, never the core table's rows.
#[test]
fn sqlite_upsert_set_subquery_reads_no_core_rows() -> Result<()> {
    let _serial = serial();
    let (_d, db) = db()?;
    db.with_unit(|u| u.create_user(&user("ada")).map(|_| ()))?;
    let alpha = ns("alpha")?;
    let mut unit = db.unit()?;
    unit.plugin_execute(&alpha, "CREATE TABLE up (a UNIQUE, b)", &[])?;
    unit.plugin_execute(&alpha, "INSERT INTO up VALUES (1, 'x')", &[])?;
    let r = unit.plugin_execute(
        &alpha,
        "INSERT INTO up VALUES (1, 2) ON CONFLICT (a) DO UPDATE SET b = (SELECT email FROM users)",
        &[],
    );
    let r2 = unit.plugin_execute(
        &alpha,
        "INSERT INTO up VALUES (1, 2) ON CONFLICT (a) DO UPDATE SET b = excluded.b \
         WHERE EXISTS (SELECT 1 FROM users WHERE email LIKE 'a%')",
        &[],
    );
    let rows = unit.plugin_query(&alpha, "SELECT b FROM up", &[])?;
    unit.commit()?;
    ensure!(
        !format!("{rows:?}").contains("ada@") && !format!("{rows:?}").contains("Integer(2)"),
        "{r:?} / {r2:?}: {rows:?}"
    );
    Ok(())
}

// ---------------------------------------------------------------------
// SQLite: promise 3 (migrations under deadline, quota, row limit)
// ---------------------------------------------------------------------

/// `CREATE TABLE … AS SELECT` inserts rows SQLite does not count as
/// changes: the migration's row limit does not see them.
#[test]
fn sqlite_migration_row_limit_counts_create_table_as_select() -> Result<()> {
    let _serial = serial();
    let (_d, db) = db()?;
    let m = migration(
        1,
        "CREATE TABLE t AS WITH RECURSIVE c(n) AS \
         (SELECT 1 UNION ALL SELECT n + 1 FROM c LIMIT 5000) SELECT n FROM c;",
    );
    let limits = MigrationLimits {
        deadline: None,
        rows: Some(100),
    };
    let r = db.migrate_plugin(&ns("alpha")?, &[m], limits);
    let conn = raw(&db)?;
    let kept: i64 = conn
        .query_row(r#"SELECT count(*) FROM "alpha:t""#, [], |r| r.get(0))
        .unwrap_or(0);
    ensure!(
        kept <= 100,
        "a migration under a row limit of 100 kept {kept} rows: {r:?}"
    );
    Ok(())
}

/// The same road in a call: `Unit::rows_written`, which the runtime holds
/// to the plugin's row limit, does not see CTAS rows.
#[test]
fn sqlite_rows_written_counts_create_table_as_select() -> Result<()> {
    let _serial = serial();
    let (_d, db) = db()?;
    let mut unit = db.unit()?;
    // Refused (its rows would be written by no statement the row limit
    // counts), or counted.
    let made = unit.plugin_execute(
        &ns("alpha")?,
        "CREATE TABLE t AS WITH RECURSIVE c(n) AS \
         (SELECT 1 UNION ALL SELECT n + 1 FROM c LIMIT 5000) SELECT n FROM c",
        &[],
    );
    let written = unit.rows_written();
    unit.commit()?;
    ensure!(
        matches!(made, Err(plinth_store::sql::SqlError::AccessDenied(_))) || written >= 5000,
        "5000 rows written ({made:?}), rows_written() says {written}"
    );
    Ok(())
}

/// Every schema change re-reads and re-parses every object of the plugin
/// (the schema check), outside the progress handler: a migration of many
/// small tables runs quadratically long, past its deadline.
#[test]
fn sqlite_a_migration_of_many_tables_ends_at_its_deadline() -> Result<()> {
    let _serial = serial();
    let (_d, db) = db()?;
    let mut sql = String::new();
    for i in 0..2500 {
        sql.push_str(&format!(
            "CREATE TABLE t{i} (a INTEGER PRIMARY KEY, b TEXT DEFAULT (lower('X')) CHECK (length(b) < 100), c REFERENCES t0 (a));\n"
        ));
    }
    let started = Instant::now();
    let limits = MigrationLimits {
        deadline: Some(started + Duration::from_millis(500)),
        rows: None,
    };
    let r = db.migrate_plugin(&ns("alpha")?, &[migration(1, &sql)], limits);
    let took = started.elapsed();
    ensure!(
        took < Duration::from_secs(3),
        "a migration with a 500 ms deadline ran {took:?}: {:?}",
        r.map(|m| m.to)
    );
    Ok(())
}

// ---------------------------------------------------------------------
// SQLite: promise 2 (rows held to the result budget)
// ---------------------------------------------------------------------

/// Many one-column rows: each value is counted as 32 bytes, but the host
/// holds the flat vector (grown by doubling) and then a `Vec` per row.
#[test]
fn sqlite_small_rows_take_no_more_than_the_budget_in_the_host() -> Result<()> {
    let _serial = serial();
    let _one = MEASURE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let (_d, db) = db()?;
    let budget: u64 = 8 << 20;
    let alpha = ns("alpha")?.with_result_budget(budget);
    let mut unit = db.unit()?;
    // 250,000 rows of one NULL: 8,000,000 bytes counted, under the budget.
    let sql = "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c LIMIT 250000) \
               SELECT NULL FROM c";
    let (rows, peak) = peak_of(|| unit.plugin_query(&alpha, sql, &[]));
    let n = rows.map(|r| r.rows.len());
    let (batch, batch_peak) = peak_of(|| unit.plugin_query_batch(&alpha, sql, &[&[]]));
    let bn = batch.map(|b| b.values.len());
    ensure!(
        peak as u64 <= budget * 2 && batch_peak as u64 <= budget * 2,
        "budget {budget}: plugin_query ({n:?} rows) grew the host's heap by {peak} bytes, \
         plugin_query_batch ({bn:?} values) by {batch_peak}"
    );
    Ok(())
}

/// Column names are built in full before they are counted: up to 60
/// joined tables, each with one column whose name is close to 100 KB.
#[test]
fn sqlite_column_names_are_held_to_the_budget() -> Result<()> {
    let _serial = serial();
    let (_d, db) = db()?;
    let alpha = ns("alpha")?;
    let mut unit = db.unit()?;
    let long = "n".repeat(95_000);
    for t in 0..60 {
        unit.plugin_execute(&alpha, &format!("CREATE TABLE t{t} (\"{long}{t}\")"), &[])?;
    }
    unit.commit()?;
    let budget: u64 = 64 << 10;
    let small = ns("alpha")?.with_result_budget(budget);
    let mut unit = db.unit()?;
    let sql = format!(
        "SELECT * FROM {}",
        (0..60)
            .map(|t| format!("t{t}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _one = MEASURE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let (r, peak) = peak_of(|| unit.plugin_query(&small, &sql, &[]));
    ensure!(
        peak as u64 <= budget * 4,
        "budget {budget}: {:?}; the host's heap grew by {peak} bytes",
        r.map(|r| r.columns.len())
    );
    Ok(())
}

// ---------------------------------------------------------------------
// PostgreSQL
// ---------------------------------------------------------------------

mod postgres {
    use super::*;
    use plinth_pg_cluster::Cluster;

    fn setup(test: &str) -> Result<Option<(&'static Cluster, String, Db)>> {
        let Some((cluster, url)) = plinth_pg_cluster::test_database(test)? else {
            return Ok(None);
        };
        let db = Db::connect(&url, Options::default())?;
        db.with_unit(|u| u.create_user(&user("ada")).map(|_| ()))?;
        let name = plinth_pg_cluster::database_name(&url).to_string();
        Ok(Some((cluster, name, db)))
    }

    fn alpha() -> Result<Namespace> {
        Ok(Namespace::new("alpha", false)?.with_quota(Some(1 << 20)))
    }

    /// One value has no size limit of its own on PostgreSQL (`lpad` is
    /// listed): a 200 MB row must not be built in the host before the
    /// budget is consulted; rows under it come back whole and in order.
    #[test]
    fn pg_one_huge_value_is_held_to_the_budget() -> Result<()> {
        let _serial = serial();
        let Some((_cluster, _name, db)) = setup("redteam::huge_value")? else {
            return Ok(());
        };
        let a = alpha()?.with_result_budget(1 << 20);
        let _one = MEASURE
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (answer, grew) = peak_of(|| -> Result<_> {
            let mut unit = db.unit()?;
            Ok(unit.plugin_query(&a, "SELECT lpad('', 200000000, 'x') AS v", &[]))
        });
        let answer = answer?;
        ensure!(
            matches!(answer, Err(plinth_store::sql::SqlError::TooLarge(_))) && grew < 8 << 20,
            "{:?}; the heap grew by {grew} bytes",
            answer.map(|r| r.rows.len())
        );
        // What the bound must not change: order, duplicate names, row locks,
        // parameters, RETURNING.
        let mut unit = db.unit()?;
        unit.plugin_execute(&a, "CREATE TABLE o (n INT)", &[])?;
        unit.plugin_execute(
            &a,
            "INSERT INTO o SELECT n FROM generate_series(1, 50) AS n",
            &[],
        )?;
        let rows = unit.plugin_query(
            &a,
            "SELECT n, n AS n FROM o WHERE n > $1 ORDER BY n DESC FOR UPDATE",
            &[plinth_store::sql::SqlValue::Integer(40)],
        )?;
        let got: Vec<_> = rows.rows.iter().map(|r| r[0].clone()).collect();
        let want: Vec<_> = (41..=50)
            .rev()
            .map(plinth_store::sql::SqlValue::Integer)
            .collect();
        ensure!(got == want && rows.columns == ["n", "n"], "{rows:?}");
        let back = unit.plugin_query(&a, "INSERT INTO o VALUES (99) RETURNING n", &[])?;
        ensure!(
            back.rows == [[plinth_store::sql::SqlValue::Integer(99)]],
            "{back:?}"
        );
        unit.commit()?;
        Ok(())
    }

    /// A deferred constraint fails at `PREPARE TRANSACTION`, after the
    /// plugin's statement succeeded: the host's writes of the same call
    /// must not commit without the plugin's.
    #[test]
    fn pg_a_deferred_violation_at_prepare_keeps_nothing_of_the_call() -> Result<()> {
        let _serial = serial();
        let Some((cluster, name, db)) = setup("redteam::deferred")? else {
            return Ok(());
        };
        let a = alpha()?;
        let mut unit = db.unit()?;
        unit.plugin_execute(
            &a,
            "CREATE TABLE d (x INT UNIQUE DEFERRABLE INITIALLY DEFERRED)",
            &[],
        )?;
        unit.commit()?;
        let mut unit = db.unit()?;
        unit.create_user(&user("bob"))?;
        let ins = unit.plugin_execute(&a, "INSERT INTO d VALUES (1), (1)", &[]);
        let committed = unit.commit();
        let bob = cluster.psql(&name, "SELECT count(*) FROM users WHERE name = 'bob'")?;
        let d = cluster.psql(&name, "SELECT count(*) FROM plugin_alpha.d")?;
        let prepared = cluster.psql(&name, "SELECT count(*) FROM pg_prepared_xacts")?;
        ensure!(
            (bob == "1") == (d != "0") && prepared == "0",
            "insert: {ins:?}; commit: {committed:?}; bob: {bob}; alpha's rows: {d}; \
             prepared left: {prepared}"
        );
        // The next unit works.
        db.with_unit(|u| u.get_user_by_name("ada").map(|_| ()))?;
        Ok(())
    }

    /// The quota counts relations of kind r, m and i; a `serial` column's
    /// sequence (and catalog rows) are not counted: 400 sequences of 8 KiB.
    #[test]
    fn pg_sequences_count_against_the_quota() -> Result<()> {
        let _serial = serial();
        let Some((cluster, name, db)) = setup("redteam::sequences")? else {
            return Ok(());
        };
        let a = alpha()?;
        let cols = (0..200)
            .map(|i| format!("c{i} serial"))
            .collect::<Vec<_>>()
            .join(", ");
        let mut results = Vec::new();
        for t in 0..2 {
            let mut unit = db.unit()?;
            results.push(unit.plugin_execute(&a, &format!("CREATE TABLE s{t} ({cols})"), &[]));
            unit.commit()?;
        }
        let total: u64 = cluster
            .psql(
                &name,
                "SELECT COALESCE(SUM(pg_relation_size(c.oid)), 0) FROM pg_class c
                 JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'plugin_alpha'",
            )?
            .parse()?;
        ensure!(
            total <= 1 << 20,
            "alpha's schema holds {total} bytes under a quota of {}: {results:?}",
            1 << 20
        );
        Ok(())
    }

    #[test]
    fn pg_rows_written_counts_writes_made_by_a_query() -> Result<()> {
        let _serial = serial();
        let Some((_cluster, _name, db)) = setup("redteam::rows_query")? else {
            return Ok(());
        };
        let a = alpha()?;
        let mut unit = db.unit()?;
        unit.plugin_execute(&a, "CREATE TABLE w (x INT)", &[])?;
        let before = unit.rows_written();
        let r1 = unit.plugin_query(
            &a,
            "INSERT INTO w SELECT n FROM generate_series(1, 3000) AS n RETURNING 1 AS one",
            &[],
        );
        let r2 = unit.plugin_query(
            &a,
            "WITH i AS (INSERT INTO w SELECT n FROM generate_series(1, 3000) AS n RETURNING x) \
             SELECT count(*) AS c FROM i",
            &[],
        );
        let written = unit.rows_written() - before;
        unit.commit()?;
        // The RETURNING query counts what it wrote; the writable WITH,
        // whose writes nothing would count, is refused.
        ensure!(
            written >= 3000 && matches!(r2, Err(plinth_store::sql::SqlError::AccessDenied(_))),
            "rows inserted by queries ({:?}, {:?}); rows_written() grew by {written}",
            r1.map(|r| r.rows.len()),
            r2.map(|r| r.rows)
        );
        Ok(())
    }

    /// The same in a migration: a writable CTE's rows, under a row limit.
    #[test]
    fn pg_migration_row_limit_counts_a_writable_cte() -> Result<()> {
        let _serial = serial();
        let Some((cluster, name, db)) = setup("redteam::rows_migration")? else {
            return Ok(());
        };
        let m = migration(
            1,
            "CREATE TABLE w (x INT); \
             WITH i AS (INSERT INTO w SELECT n FROM generate_series(1, 5000) AS n RETURNING x) \
             SELECT count(*) FROM i;",
        );
        let limits = MigrationLimits {
            deadline: None,
            rows: Some(100),
        };
        let r = db.migrate_plugin(&alpha()?, &[m], limits);
        let kept = cluster
            .psql(&name, "SELECT count(*) FROM plugin_alpha.w")
            .unwrap_or_else(|_| "0".into());
        ensure!(
            kept.parse::<u64>().unwrap_or(0) <= 100,
            "a migration under a row limit of 100 kept {kept} rows: {r:?}"
        );
        Ok(())
    }

    /// Statement kinds and functions a PostgreSQL plugin might use to leave
    /// something behind or act outside its schema.
    #[test]
    fn pg_grammar_corners_leave_nothing_and_reach_nothing() -> Result<()> {
        let _serial = serial();
        let Some((cluster, name, db)) = setup("redteam::corners")? else {
            return Ok(());
        };
        let a = alpha()?;
        db.with_unit(|u| {
            u.plugin_execute(&a, "CREATE TABLE mine (x INT, t TEXT)", &[])
                .map_err(|e| plinth_store::Error::InvalidInput(e.to_string()))?;
            Ok(())
        })?;
        let attempts = [
            "SELECT 'public.users'::regclass",
            "SELECT x FROM mine WHERE t = (SELECT email FROM users LIMIT 1)",
            "SELECT * FROM \"USERS\"",
            "SELECT * FROM \"public\".users",
            "SELECT * FROM mine TABLESAMPLE SYSTEM (50)",
            "ALTER TABLE mine SET SCHEMA public",
            "ALTER TABLE mine ALTER COLUMN t TYPE text USING (pg_notify('x', 'y')::text)",
            "ALTER TABLE mine ALTER COLUMN x SET DEFAULT nextval('public.users_id_seq')",
            "ALTER TABLE mine OWNER TO plinth",
            "ALTER TABLE mine SET (autovacuum_enabled = false)",
            "CREATE TABLE p (x INT) PARTITION BY RANGE (x)",
            "CREATE TABLE p1 PARTITION OF p FOR VALUES FROM (0) TO (10)",
            "CREATE TABLE u2 (x INT) INHERITS (users)",
            "CREATE UNLOGGED TABLE ul (x INT)",
            "CREATE TABLE gen (x INT, y TEXT GENERATED ALWAYS AS (current_user) STORED)",
            "CREATE TABLE dflt (x TEXT DEFAULT session_user)",
            "CREATE TABLE ctas AS SELECT * FROM users",
            "CREATE INDEX CONCURRENTLY ic ON mine (x)",
            "CREATE VIEW vw AS SELECT * FROM pg_stat_activity",
            "CREATE SEQUENCE sq",
            "CREATE TYPE ty AS (a INT)",
            "CREATE DOMAIN dm AS INT CHECK (VALUE > 0)",
            "CREATE EXTENSION dblink",
            "CREATE POLICY pol ON mine USING (true)",
            "CREATE RULE r AS ON INSERT TO mine DO ALSO NOTIFY x",
            "CREATE PROCEDURE pr() LANGUAGE sql AS 'select 1'",
            "CALL pr()",
            "NOTIFY x",
            "PREPARE p AS SELECT 1",
            "DECLARE c CURSOR WITH HOLD FOR SELECT 1",
            "SET statement_timeout = 0",
            "RESET ALL",
            "COMMENT ON TABLE mine IS 'x'",
            "SECURITY LABEL ON TABLE mine IS 'x'",
            "ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO PUBLIC",
            "GRANT SELECT ON mine TO PUBLIC",
            "VACUUM mine",
            "ANALYZE mine",
            "SELECT txid_current()",
            "SELECT pg_sleep(0)",
            "SELECT lo_creat(-1)",
            "SELECT * FROM lo_creat(-1)",
            "SELECT current_user",
            "SELECT x FROM mine FOR UPDATE",
            "WITH w AS (INSERT INTO mine VALUES (1) RETURNING x) SELECT * FROM w",
            "INSERT INTO mine SELECT 1, email FROM users",
            "INSERT INTO mine VALUES (1, 'a') ON CONFLICT DO NOTHING",
            "COPY mine FROM STDIN",
            "TRUNCATE users",
            "SELECT xmlparse(document '<a/>')",
            "SELECT U&\"\\0075sers\".email FROM U&\"\\0075sers\"",
            "SELECT $q$x$q$",
        ];
        let mut leaks = Vec::new();
        for sql in attempts {
            let mut unit = db.unit()?;
            let r = unit.plugin_query(&a, sql, &[]);
            eprintln!("pg corner: {sql} => {:?}", r.as_ref().map(|r| r.rows.len()));
            if let Ok(rows) = &r
                && format!("{rows:?}").contains("ada@example.com")
            {
                leaks.push(format!("{sql}: {rows:?}"));
            }
            let _ = unit.commit();
        }
        ensure!(leaks.is_empty(), "core data read: {leaks:?}");
        let checks = [
            ("SELECT count(*) FROM users", "1"),
            ("SELECT count(*) FROM pg_largeobject_metadata", "0"),
            ("SELECT count(*) FROM pg_prepared_xacts", "0"),
            (
                "SELECT count(*) FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner
                 JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE r.rolname LIKE 'plugin_alpha%' AND n.nspname <> 'plugin_alpha'
                   AND n.nspname NOT LIKE 'pg_toast%'",
                "0",
            ),
            (
                "SELECT count(*) FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole
                 JOIN plugin_roles p ON p.role = r.rolname
                 WHERE p.plugin = 'alpha' AND s.setconfig <> ARRAY['search_path=plugin_alpha']",
                "0",
            ),
            (
                "SELECT count(*) FROM pg_default_acl d JOIN pg_roles r ON r.oid = d.defaclrole
                 WHERE r.rolname LIKE 'plugin_alpha%'",
                "0",
            ),
            (
                "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE n.nspname = 'plugin_alpha' AND c.relacl IS NOT NULL",
                "0",
            ),
        ];
        let mut broken = Vec::new();
        for (sql, want) in checks {
            let got = cluster.psql(&name, sql)?;
            if got != want {
                broken.push(format!("{sql}: {got} (want {want})"));
            }
        }
        ensure!(broken.is_empty(), "{broken:?}");
        Ok(())
    }
}
