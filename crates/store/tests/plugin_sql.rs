//! A plugin's own SQL on SQLite: its namespace holds, by every road a
//! statement can take; limits end statements typed; the unit stays one.

use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use plinth_store::sql::{Namespace, SqlError, SqlValue};
use plinth_store::{Db, NewUser};

fn db() -> Result<(tempfile::TempDir, Db)> {
    let dir = tempfile::tempdir()?;
    let db = Db::open(dir.path().join("p.db"))?;
    Ok((dir, db))
}

fn ns(plugin: &str) -> Result<Namespace> {
    Ok(Namespace::new(plugin, false)?)
}

/// Creates `items` for plugin `plugin`, with one row.
fn items(db: &Db, plugin: &str) -> Result<()> {
    let ns = ns(plugin)?;
    let mut unit = db.unit()?;
    unit.plugin_execute(
        &ns,
        "CREATE TABLE items (id INTEGER PRIMARY KEY, title TEXT NOT NULL UNIQUE)",
        &[],
    )?;
    unit.plugin_execute(
        &ns,
        "INSERT INTO items (title) VALUES (?1)",
        &[SqlValue::Text(format!("{plugin}'s"))],
    )?;
    unit.commit()?;
    Ok(())
}

fn text(v: &SqlValue) -> &str {
    match v {
        SqlValue::Text(t) => t,
        _ => "",
    }
}

#[test]
fn a_plugin_creates_writes_and_reads_its_own_tables() -> Result<()> {
    let (_d, db) = db()?;
    items(&db, "notes")?;
    let ns = ns("notes")?;
    let mut unit = db.unit()?;
    let out = unit.plugin_execute(&ns, "INSERT INTO items (title) VALUES ('two')", &[])?;
    ensure!(
        out.rows_affected == 1 && out.last_insert_id == Some(2),
        "{out:?}"
    );
    let rows = unit.plugin_query(
        &ns,
        "SELECT items.id, title FROM items WHERE id >= ?1 ORDER BY id",
        &[SqlValue::Integer(1)],
    )?;
    ensure!(rows.columns == ["id", "title"], "{rows:?}");
    ensure!(
        rows.rows.len() == 2 && text(&rows.rows[1][1]) == "two",
        "{rows:?}"
    );
    // A CTE's name is the CTE's.
    let cte = unit.plugin_query(
        &ns,
        "WITH t AS (SELECT title FROM items) SELECT count(*) FROM t",
        &[],
    )?;
    ensure!(cte.rows[0][0] == SqlValue::Integer(2));
    unit.commit()?;
    Ok(())
}

/// Every road to another plugin's or the host's data ends in a typed error,
/// and changes nothing.
#[test]
fn no_statement_reaches_the_core_tables_or_another_plugins() -> Result<()> {
    let (_d, db) = db()?;
    db.with_unit(|u| {
        u.create_user(&NewUser {
            name: "ada".into(),
            email: "ada@example.com".into(),
        })
    })?;
    items(&db, "a")?;
    let b = ns("b")?;
    let attempts = [
        "SELECT * FROM users",
        "SELECT * FROM main.users",
        "SELECT * FROM \"a:items\"",
        "SELECT * FROM items",
        "DELETE FROM users",
        "UPDATE users SET name = 'x'",
        "DROP TABLE users",
        "DROP TABLE \"a:items\"",
        "INSERT INTO sessions VALUES ('x', 'y', 0, 0)",
        "SELECT * FROM sqlite_master",
        "SELECT * FROM sqlite_schema",
        "SELECT name FROM pragma_table_info('users')",
        "SELECT * FROM schema_version",
        "PRAGMA table_info(users)",
        "PRAGMA writable_schema = ON",
        "ATTACH DATABASE '/tmp/x.db' AS x",
        "VACUUM INTO '/tmp/copy.db'",
        "SELECT load_extension('libevil')",
        "SELECT sqlite_version()",
        "SELECT sqlite_compileoption_get(0)",
        "CREATE TEMP TABLE t (x)",
        "CREATE TRIGGER t AFTER INSERT ON items BEGIN DELETE FROM users; END",
        "CREATE VIEW v AS SELECT * FROM main.users",
        "WITH x AS (SELECT 1) SELECT * FROM users",
        "SELECT (SELECT count(*) FROM users)",
        "SELECT main.users.name FROM items",
        "BEGIN",
        "COMMIT",
        "ROLLBACK",
        "SAVEPOINT s",
        "RELEASE s",
        "CREATE VIRTUAL TABLE x USING fts3(a)",
        "SELECT 1; DELETE FROM users",
        "SELECT * FROM (WITH users AS (SELECT 1) SELECT 1), users",
        "WITH users AS (SELECT 1) SELECT * FROM main.users",
        "SELECT \"a:items\".title FROM items",
    ];
    let before = db.table_counts()?;
    for sql in attempts {
        let mut unit = db.unit()?;
        let answer =
            if sql.trim_start().to_uppercase().starts_with("SELECT") || sql.starts_with("WITH") {
                unit.plugin_query(&b, sql, &[]).map(|_| ())
            } else {
                unit.plugin_execute(&b, sql, &[]).map(|_| ())
            };
        ensure!(answer.is_err(), "{sql} was allowed");
        ensure!(
            !matches!(answer, Err(SqlError::Internal(_))),
            "{sql}: {answer:?}"
        );
        unit.commit()?;
    }
    ensure!(db.table_counts()? == before, "something changed");
    // a's table is as a left it.
    let rows = db
        .unit()?
        .plugin_query(&ns("a")?, "SELECT title FROM items", &[])?;
    ensure!(rows.rows.len() == 1 && text(&rows.rows[0][0]) == "a's");
    Ok(())
}

#[test]
fn the_same_name_in_two_plugins_is_two_tables() -> Result<()> {
    let (_d, db) = db()?;
    items(&db, "a")?;
    items(&db, "b")?;
    for p in ["a", "b"] {
        let rows = db
            .unit()?
            .plugin_query(&ns(p)?, "SELECT title FROM items", &[])?;
        ensure!(rows.rows.len() == 1 && text(&rows.rows[0][0]) == format!("{p}'s"));
    }
    Ok(())
}

#[test]
fn transaction_control_is_refused_saying_why() -> Result<()> {
    let (_d, db) = db()?;
    match db.unit()?.plugin_execute(&ns("a")?, "BEGIN IMMEDIATE", &[]) {
        Err(SqlError::AccessDenied(why)) => ensure!(why.contains("the call is the transaction")),
        other => anyhow::bail!("{other:?}"),
    }
    Ok(())
}

#[test]
fn a_read_only_namespace_reads_and_cannot_write() -> Result<()> {
    let (_d, db) = db()?;
    items(&db, "a")?;
    let ro = Namespace::new("a", true)?;
    let mut unit = db.unit()?;
    ensure!(
        unit.plugin_query(&ro, "SELECT * FROM items", &[])?
            .rows
            .len()
            == 1
    );
    for sql in [
        "INSERT INTO items (title) VALUES ('x')",
        "DELETE FROM items",
        "CREATE TABLE more (x)",
    ] {
        ensure!(
            matches!(
                unit.plugin_execute(&ro, sql, &[]),
                Err(SqlError::AccessDenied(_))
            ),
            "{sql}"
        );
    }
    Ok(())
}

#[test]
fn a_constraint_names_itself_and_the_unit_goes_on_as_one() -> Result<()> {
    let (_d, db) = db()?;
    items(&db, "a")?;
    let a = ns("a")?;
    let mut unit = db.unit()?;
    unit.plugin_execute(&a, "INSERT INTO items (title) VALUES ('new')", &[])?;
    match unit.plugin_execute(&a, "INSERT INTO items (title) VALUES ('a''s')", &[]) {
        Err(SqlError::Constraint(what)) => ensure!(what.contains("title"), "{what}"),
        other => anyhow::bail!("{other:?}"),
    }
    unit.create_user(&NewUser {
        name: "bob".into(),
        email: "bob@example.com".into(),
    })?;
    // Dropped: the plugin's row and the user go together.
    drop(unit);
    ensure!(
        db.unit()?
            .plugin_query(&a, "SELECT * FROM items", &[])?
            .rows
            .len()
            == 1
    );
    ensure!(db.unit()?.get_user_by_name("bob").is_err());
    Ok(())
}

#[test]
fn runaway_statements_end_typed_and_the_next_works() -> Result<()> {
    let (_d, db) = db()?;
    items(&db, "a")?;
    let a = ns("a")?;
    // A recursive CTE that never ends: stopped at the deadline.
    let mut unit = db.unit()?;
    unit.set_deadline(Instant::now() + Duration::from_millis(300));
    let started = Instant::now();
    let bomb = unit.plugin_query(
        &a,
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c",
        &[],
    );
    ensure!(matches!(bomb, Err(SqlError::TimedOut)), "{bomb:?}");
    ensure!(started.elapsed() < Duration::from_secs(2));
    drop(unit);
    // A 100 MB blob, made or passed in.
    let mut unit = db.unit()?;
    for sql in ["SELECT zeroblob(100000000)", "SELECT randomblob(100000000)"] {
        let r = unit.plugin_query(&a, sql, &[]);
        ensure!(matches!(r, Err(SqlError::TooLarge(_))), "{sql}: {r:?}");
    }
    let big = unit.plugin_execute(
        &a,
        "INSERT INTO items (title) VALUES (?1)",
        &[SqlValue::Blob(vec![0; 100_000_000])],
    );
    ensure!(matches!(big, Err(SqlError::TooLarge(_))), "{big:?}");
    // The next statement works.
    ensure!(
        unit.plugin_query(&a, "SELECT count(*) FROM items", &[])?
            .rows[0][0]
            == SqlValue::Integer(1)
    );
    Ok(())
}

#[test]
fn full_text_search_works_in_the_namespace() -> Result<()> {
    let (_d, db) = db()?;
    let a = ns("a")?;
    let mut unit = db.unit()?;
    unit.plugin_execute(&a, "CREATE VIRTUAL TABLE docs USING fts5(title, body)", &[])?;
    unit.plugin_execute(
        &a,
        "INSERT INTO docs (title, body) VALUES ('plinth', 'a plugin runtime'), ('other', 'nothing here')",
        &[],
    )?;
    let hits = unit.plugin_query(
        &a,
        "SELECT title FROM docs(?1)",
        &[SqlValue::Text("runtime".into())],
    )?;
    ensure!(
        hits.rows.len() == 1 && text(&hits.rows[0][0]) == "plinth",
        "{hits:?}"
    );
    let by_column = unit.plugin_query(
        &a,
        "SELECT title FROM docs WHERE body MATCH ?1 ORDER BY rank",
        &[SqlValue::Text("nothing".into())],
    )?;
    ensure!(by_column.rows.len() == 1 && text(&by_column.rows[0][0]) == "other");
    unit.commit()?;
    Ok(())
}

mod migrations {
    use plinth_store::Error;
    use plinth_store::plugin::PluginMigration;

    use super::*;

    fn step(version: u32, name: &str, sql: &str) -> PluginMigration {
        PluginMigration {
            version,
            name: name.into(),
            sql: sql.into(),
        }
    }

    fn v1() -> PluginMigration {
        step(
            1,
            "notes",
            "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL);
             CREATE INDEX notes_body ON notes (body);",
        )
    }

    fn v2() -> PluginMigration {
        step(
            2,
            "pinned",
            "ALTER TABLE notes ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0;
             UPDATE notes SET pinned = 1 WHERE body LIKE '!%';",
        )
    }

    fn bodies(db: &Db, plugin: &str) -> Result<Vec<SqlValue>> {
        let rows = db
            .unit()?
            .plugin_query(&ns(plugin)?, "SELECT * FROM notes ORDER BY id", &[])?;
        Ok(rows.rows.into_iter().flatten().collect())
    }

    #[test]
    fn install_reload_and_upgrade_keep_the_data() -> Result<()> {
        let (_d, db) = db()?;
        let n = ns("notes")?;
        let done = db.migrate_plugin(
            &n,
            &[v1()],
            plinth_store::plugin::MigrationLimits::default(),
        )?;
        ensure!((done.from, done.to) == (0, 1));
        let mut unit = db.unit()?;
        for body in ["plain", "!urgent"] {
            unit.plugin_execute(
                &n,
                "INSERT INTO notes (body) VALUES (?1)",
                &[SqlValue::Text(body.into())],
            )?;
        }
        unit.commit()?;
        // Loading again does nothing.
        let again = db.migrate_plugin(
            &n,
            &[v1()],
            plinth_store::plugin::MigrationLimits::default(),
        )?;
        ensure!((again.from, again.to) == (1, 1));
        let up = db.migrate_plugin(
            &n,
            &[v1(), v2()],
            plinth_store::plugin::MigrationLimits::default(),
        )?;
        ensure!((up.from, up.to) == (1, 2));
        let all = bodies(&db, "notes")?;
        ensure!(
            all == [
                SqlValue::Integer(1),
                SqlValue::Text("plain".into()),
                SqlValue::Integer(0),
                SqlValue::Integer(2),
                SqlValue::Text("!urgent".into()),
                SqlValue::Integer(1),
            ],
            "{all:?}"
        );
        let recorded = db.plugin_migrations("notes")?;
        ensure!(recorded.len() == 2 && recorded[1].name == "pinned");
        ensure!(recorded[0].checksum == v1().checksum());
        // Another plugin's migrations are its own.
        ensure!(db.plugin_migrations("other")?.is_empty());
        let data = db.plugin_data()?;
        ensure!(data.len() == 1 && data[0].version == 2, "{data:?}");
        let tables: Vec<&str> = data[0].tables.iter().map(|t| t.name.as_str()).collect();
        ensure!(tables == ["notes", "notes_body"], "{tables:?}");
        ensure!(data[0].bytes() >= 2 * 4096, "{data:?}");
        Ok(())
    }

    #[test]
    fn an_older_build_and_an_edited_migration_are_refused() -> Result<()> {
        let (_d, db) = db()?;
        let n = ns("notes")?;
        db.migrate_plugin(
            &n,
            &[v1(), v2()],
            plinth_store::plugin::MigrationLimits::default(),
        )?;
        match db.migrate_plugin(
            &n,
            &[v1()],
            plinth_store::plugin::MigrationLimits::default(),
        ) {
            Err(Error::PluginSchemaTooNew {
                found: 2,
                shipped: 1,
                ..
            }) => {}
            other => anyhow::bail!("{other:?}"),
        }
        let mut edited = v1();
        edited.sql.push_str("\n-- a comment is an edit too");
        match db.migrate_plugin(
            &n,
            &[edited, v2()],
            plinth_store::plugin::MigrationLimits::default(),
        ) {
            Err(Error::PluginMigrationChanged { version: 1, .. }) => {}
            other => anyhow::bail!("{other:?}"),
        }
        match db.migrate_plugin(
            &n,
            &[v2()],
            plinth_store::plugin::MigrationLimits::default(),
        ) {
            Err(Error::InvalidMigrations(_)) => {}
            other => anyhow::bail!("{other:?}"),
        }
        ensure!(db.plugin_migrations("notes")?.len() == 2);
        Ok(())
    }

    #[test]
    fn a_failing_migration_leaves_the_old_version_and_data() -> Result<()> {
        let (_d, db) = db()?;
        let n = ns("notes")?;
        db.migrate_plugin(
            &n,
            &[v1()],
            plinth_store::plugin::MigrationLimits::default(),
        )?;
        let mut unit = db.unit()?;
        unit.plugin_execute(&n, "INSERT INTO notes (body) VALUES ('kept')", &[])?;
        unit.commit()?;
        // The second statement fails after the first changed the table.
        let bad = step(
            2,
            "half",
            "ALTER TABLE notes ADD COLUMN extra TEXT; DELETE FROM notes; INSERT INTO missing VALUES (1);",
        );
        match db.migrate_plugin(
            &n,
            &[v1(), bad],
            plinth_store::plugin::MigrationLimits::default(),
        ) {
            Err(Error::PluginMigration {
                version: 2,
                error: SqlError::Syntax(_),
                ..
            }) => {}
            other => anyhow::bail!("{other:?}"),
        }
        ensure!(db.plugin_migrations("notes")?.len() == 1);
        let all = bodies(&db, "notes")?;
        ensure!(
            all == [SqlValue::Integer(1), SqlValue::Text("kept".into())],
            "{all:?}"
        );
        // Nor can a migration reach what the plugin's statements cannot.
        for sql in [
            "DROP TABLE users;",
            "CREATE TABLE x (a); INSERT INTO x SELECT email FROM main.users;",
            "ATTACH DATABASE 'other.db' AS o;",
            "CREATE TRIGGER t AFTER INSERT ON notes BEGIN DELETE FROM users; END;",
            "BEGIN; CREATE TABLE y (a); COMMIT;",
        ] {
            let r = db.migrate_plugin(
                &n,
                &[v1(), step(2, "evil", sql)],
                plinth_store::plugin::MigrationLimits::default(),
            );
            // `users` is the plugin's own name: there is no such table of its.
            ensure!(
                matches!(
                    r,
                    Err(Error::PluginMigration {
                        error: SqlError::AccessDenied(_) | SqlError::Syntax(_),
                        ..
                    })
                ),
                "{sql}: {r:?}"
            );
        }
        ensure!(db.plugin_migrations("notes")?.len() == 1);
        ensure!(db.table_counts()?.iter().any(|c| c.table == "users"));
        let tables = &db.plugin_data()?[0].tables;
        ensure!(tables.len() == 2, "{tables:?}");
        Ok(())
    }

    #[test]
    fn threads_loading_at_once_apply_each_migration_once() -> Result<()> {
        let (_d, db) = db()?;
        let counter = step(
            1,
            "counted",
            "CREATE TABLE runs (n INTEGER); INSERT INTO runs VALUES (1);",
        );
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let (db, m) = (db.clone(), counter.clone());
                std::thread::spawn(move || -> Result<u32> {
                    Ok(db
                        .migrate_plugin(
                            &ns("notes")?,
                            &[m],
                            plinth_store::plugin::MigrationLimits::default(),
                        )?
                        .from)
                })
            })
            .collect();
        let mut froms = Vec::new();
        for h in handles {
            froms.push(h.join().map_err(|_| anyhow::anyhow!("panicked"))??);
        }
        froms.sort_unstable();
        ensure!(froms == [0, 1, 1, 1], "{froms:?}");
        let runs = db
            .unit()?
            .plugin_query(&ns("notes")?, "SELECT count(*) FROM runs", &[])?;
        ensure!(runs.rows[0][0] == SqlValue::Integer(1));
        Ok(())
    }

    #[test]
    fn a_quota_refuses_the_write_that_passes_it_and_keeps_the_rest() -> Result<()> {
        let (_d, db) = db()?;
        let n = ns("notes")?.with_quota(Some(64 << 10));
        db.migrate_plugin(
            &n,
            &[v1()],
            plinth_store::plugin::MigrationLimits::default(),
        )?;
        let mut unit = db.unit()?;
        let mut kept = 0;
        let refused = loop {
            let r = unit.plugin_execute(
                &n,
                "INSERT INTO notes (body) VALUES (?1)",
                &[SqlValue::Text("x".repeat(4000))],
            );
            match r {
                Ok(_) => kept += 1,
                Err(e) => break e,
            }
            ensure!(kept < 100, "no quota");
        };
        ensure!(matches!(refused, SqlError::TooLarge(_)), "{refused:?}");
        ensure!(kept >= 5, "{kept}");
        // The refused row is not there; the unit goes on and commits.
        let count = unit.plugin_query(&n, "SELECT count(*) FROM notes", &[])?;
        ensure!(count.rows[0][0] == SqlValue::Integer(kept), "{count:?}");
        unit.plugin_execute(&n, "DELETE FROM notes WHERE id > 2", &[])?;
        unit.commit()?;
        let used = db.plugin_data()?[0].bytes();
        ensure!(used <= 64 << 10, "{used}");
        // Deleting made room: a new call can write again.
        let mut unit = db.unit()?;
        unit.plugin_execute(&n, "INSERT INTO notes (body) VALUES ('small')", &[])?;
        unit.commit()?;
        // Later units start from what earlier ones recorded: filling up in
        // one and committing leaves the next no room for a large row.
        let mut unit = db.unit()?;
        while unit
            .plugin_execute(
                &n,
                "INSERT INTO notes (body) VALUES (?1)",
                &[SqlValue::Text("y".repeat(4000))],
            )
            .is_ok()
        {}
        unit.commit()?;
        let mut unit = db.unit()?;
        let big = unit.plugin_execute(
            &n,
            "INSERT INTO notes (body) VALUES (?1)",
            &[SqlValue::Text("z".repeat(40_000))],
        );
        ensure!(matches!(big, Err(SqlError::TooLarge(_))), "{big:?}");
        // And key-value writes count against the same quota.
        let kv = unit.kv_set(&n, "b", "k", &[0; 40_000]);
        ensure!(
            matches!(kv, Err(plinth_store::plugin::KvError::TooLarge(_))),
            "{kv:?}"
        );
        let used = db.plugin_data()?[0].bytes();
        ensure!(used <= 64 << 10, "{used}");
        Ok(())
    }
}

/// SQLite rolls back the whole transaction when a write is interrupted (or
/// the disk fills) without a statement journal, and the connection falls
/// back to autocommit. A guest that catches the time-out and writes again
/// must not have that write committed on its own, outside the call's unit.
#[test]
fn a_write_stopped_at_the_deadline_loses_the_unit_and_nothing_after_it_commits() -> Result<()> {
    let (_d, db) = db()?;
    items(&db, "a")?;
    for quota in [None, Some(64 << 20)] {
        let a = ns("a")?.with_quota(quota);
        let mut unit = db.unit()?;
        unit.plugin_execute(&a, "INSERT INTO items (title) VALUES ('before')", &[])?;
        unit.set_deadline(Instant::now() + Duration::from_millis(200));
        let bomb = unit.plugin_execute(
            &a,
            "INSERT INTO items (title) WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT 'r' || x FROM c",
            &[],
        );
        ensure!(
            matches!(bomb, Err(SqlError::TimedOut)),
            "{quota:?}: {bomb:?}"
        );
        // The guest goes on: a small write (fewer steps than the progress
        // handler's period) and a key-value write.
        let after = unit.plugin_execute(&a, "INSERT INTO items (title) VALUES ('after')", &[]);
        ensure!(
            after.is_err(),
            "{quota:?}: a write after the unit was lost: {after:?}"
        );
        let kv = unit.kv_set(&a, "b", "k", b"v");
        ensure!(kv.is_err(), "{quota:?}: {kv:?}");
        ensure!(unit.commit().is_err(), "{quota:?}: a lost unit committed");
        let titles = db
            .unit()?
            .plugin_query(&a, "SELECT title FROM items ORDER BY id", &[])?
            .rows;
        ensure!(titles.len() == 1, "{quota:?}: {titles:?}");
        ensure!(db.unit()?.kv_get(&a, "b", "k")?.is_none(), "{quota:?}");
    }
    Ok(())
}

/// A query run once per parameter list answers flat: each run's count,
/// then every value row after row, a run with no rows counting zero; the
/// rows read back per run are those of one query each, and invalid UTF-8
/// stored as text comes back replaced, not refused.
#[test]
fn a_query_batch_answers_flat_with_each_runs_count() -> Result<()> {
    let (_d, db) = db()?;
    items(&db, "notes")?;
    let ns = ns("notes")?;
    let mut unit = db.unit()?;
    unit.plugin_execute_batch(
        &ns,
        "INSERT INTO items (title) VALUES (?1)",
        &[
            &[SqlValue::Text("two".into())],
            &[SqlValue::Text("three".into())],
        ],
    )?;
    let select = "SELECT id, title FROM items WHERE id >= ?1 AND id <= ?2 ORDER BY id";
    let each: [&[SqlValue]; 3] = [
        &[SqlValue::Integer(1), SqlValue::Integer(2)],
        &[SqlValue::Integer(9), SqlValue::Integer(10)],
        &[SqlValue::Integer(3), SqlValue::Integer(3)],
    ];
    let batch = unit.plugin_query_batch(&ns, select, &each)?;
    ensure!(batch.columns == ["id", "title"], "{batch:?}");
    ensure!(batch.counts == [2, 0, 1], "{batch:?}");
    ensure!(batch.values.len() == 6, "{batch:?}");
    let runs = batch.runs();
    ensure!(runs.len() == 3 && runs[1].is_empty(), "{runs:?}");
    for (run, params) in runs.iter().zip(each) {
        let one = unit.plugin_query(&ns, select, params)?;
        ensure!(one.columns == batch.columns, "{one:?}");
        let rows: Vec<&[SqlValue]> = one.rows.iter().map(Vec::as_slice).collect();
        ensure!(&rows == run, "{rows:?} vs {run:?}");
    }
    ensure!(text(&runs[2][0][1]) == "three", "{runs:?}");

    unit.plugin_execute(
        &ns,
        "INSERT INTO items (title) VALUES (CAST(X'6F6BFF' AS TEXT))",
        &[],
    )?;
    let odd = unit.plugin_query(&ns, "SELECT title FROM items WHERE id = 4", &[])?;
    ensure!(
        odd.rows.len() == 1 && text(&odd.rows[0][0]) == "ok\u{FFFD}",
        "{odd:?}"
    );
    Ok(())
}

/// What a plugin's schema keeps for later is checked once the change is
/// made: a foreign key, a default, a generated column, a check, an index
/// expression or a view that points outside the namespace or calls a
/// function plugins may not call is undone, with a typed refusal, and sign-in's
/// tables keep working.
mod schema_check {
    use super::*;

    fn refused(unit: &mut plinth_store::Unit, ns: &Namespace, sql: &str) -> Result<String> {
        match unit.plugin_execute(ns, sql, &[]) {
            Err(SqlError::AccessDenied(why)) => Ok(why),
            other => anyhow::bail!("{sql}: expected access-denied, got {other:?}"),
        }
    }

    /// The names of `plugin`'s objects in the file, as SQLite has them.
    fn objects(db: &Db, plugin: &str) -> Result<Vec<String>> {
        let conn = rusqlite::Connection::open(db.path().unwrap_or(std::path::Path::new("")))?;
        let mut stmt = conn.prepare("SELECT name FROM sqlite_schema WHERE tbl_name LIKE ?1")?;
        let names = stmt
            .query_map([format!("{plugin}:%")], |r| r.get(0))?
            .collect::<rusqlite::Result<Vec<String>>>()?;
        Ok(names)
    }

    #[test]
    fn a_foreign_key_added_to_a_core_table_is_undone_and_sign_in_still_works() -> Result<()> {
        let (_d, db) = db()?;
        let alpha = ns("alpha")?;
        let mut unit = db.unit()?;
        unit.plugin_execute(&alpha, "CREATE TABLE f (a)", &[])?;
        // Put into the namespace by the rewrite: it points at alpha's own
        // (missing) sessions, not the core table...
        unit.plugin_execute(
            &alpha,
            "ALTER TABLE f ADD COLUMN u TEXT REFERENCES sessions (user_uuid)",
            &[],
        )?;
        unit.commit()?;
        let conn = rusqlite::Connection::open(db.path().unwrap_or(std::path::Path::new("")))?;
        let target: String = conn.query_row(
            r#"SELECT "table" FROM pragma_foreign_key_list('alpha:f')"#,
            [],
            |r| r.get(0),
        )?;
        ensure!(target == "alpha:sessions", "{target}");
        // ...and a session of the core tables is still written and deleted.
        let user = db.with_unit(|u| {
            u.create_user(&NewUser {
                name: "ada".into(),
                email: "ada@example.com".into(),
            })
        })?;
        let id = "a".repeat(64);
        db.with_unit(|u| u.create_session(&id, &user.uuid, 3600))?;
        db.with_unit(|u| u.delete_user_sessions(&user.uuid))?;
        Ok(())
    }

    #[test]
    fn a_foreign_key_that_names_another_namespace_stays_in_its_own() -> Result<()> {
        let (_d, db) = db()?;
        items(&db, "beta")?;
        let alpha = ns("alpha")?;
        let mut unit = db.unit()?;
        unit.plugin_execute(&alpha, "CREATE TABLE f (a)", &[])?;
        for sql in [
            r#"ALTER TABLE f ADD COLUMN b TEXT REFERENCES "beta:items" (title)"#,
            r#"CREATE TABLE g (b TEXT REFERENCES "beta:items" (title))"#,
            r#"CREATE TABLE h (b TEXT, FOREIGN KEY (b) REFERENCES "beta:items" (title))"#,
        ] {
            unit.plugin_execute(&alpha, sql, &[])?;
        }
        unit.commit()?;
        // Every key points into alpha's namespace, and beta's rows change
        // as freely as before.
        let conn = rusqlite::Connection::open(db.path().unwrap_or(std::path::Path::new("")))?;
        let mut stmt = conn.prepare(
            r#"SELECT k."table" FROM sqlite_schema AS s, pragma_foreign_key_list(s.name) AS k
               WHERE s.type = 'table' AND s.name LIKE 'alpha:%'"#,
        )?;
        let targets = stmt
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        ensure!(
            targets.len() == 3 && targets.iter().all(|t| t == "alpha:beta:items"),
            "{targets:?}"
        );
        let beta = ns("beta")?;
        let mut unit = db.unit()?;
        let gone = unit.plugin_execute(&beta, "DELETE FROM items", &[])?;
        ensure!(gone.rows_affected == 1, "{gone:?}");
        unit.commit()?;
        Ok(())
    }

    #[test]
    fn functions_hidden_in_the_schema_are_refused_and_undone() -> Result<()> {
        let (_d, db) = db()?;
        let alpha = ns("alpha")?;
        let mut unit = db.unit()?;
        unit.plugin_execute(&alpha, "CREATE TABLE t (a, b)", &[])?;
        for sql in [
            "CREATE TABLE d (a, v DEFAULT (sqlite_version()))",
            "CREATE TABLE d (a, v DEFAULT (sqlite_source_id()))",
            "CREATE TABLE d (a, v DEFAULT (sqlite_compileoption_get(0)))",
            "CREATE TABLE d (a, v DEFAULT (load_extension('x')))",
            "CREATE TABLE d (a, v AS (sqlite_version()))",
            "CREATE TABLE d (a CHECK (sqlite_version() <> ''))",
            "ALTER TABLE t ADD COLUMN v DEFAULT (sqlite_version())",
            "CREATE VIEW w AS SELECT sqlite_version() AS v",
            "CREATE VIEW w AS SELECT * FROM t WHERE a = sqlite_source_id()",
            "CREATE INDEX i ON t (sqlite_version(), a)",
        ] {
            let why = refused(&mut unit, &alpha, sql)?;
            ensure!(
                why.contains("sqlite_") || why.contains("load_extension"),
                "{sql}: {why}"
            );
        }
        // The same shapes with listed functions are fine.
        unit.plugin_execute(&alpha, "CREATE TABLE d (a, v DEFAULT (lower('X')))", &[])?;
        unit.plugin_execute(&alpha, "CREATE VIEW w AS SELECT upper(a) AS v FROM t", &[])?;
        unit.plugin_execute(&alpha, "CREATE INDEX i ON t (lower(a))", &[])?;
        unit.plugin_execute(&alpha, "INSERT INTO d (a) VALUES (1)", &[])?;
        let rows = unit.plugin_query(&alpha, "SELECT v FROM d", &[])?;
        ensure!(rows.rows == [[SqlValue::Text("x".into())]], "{rows:?}");
        unit.commit()?;
        let mut names = objects(&db, "alpha")?;
        names.sort();
        ensure!(
            names == ["alpha:d", "alpha:i", "alpha:t", "alpha:w"],
            "{names:?}"
        );
        Ok(())
    }

    #[test]
    fn a_table_cannot_be_renamed_out_of_the_namespace() -> Result<()> {
        let (_d, db) = db()?;
        let alpha = ns("alpha")?;
        let mut unit = db.unit()?;
        unit.plugin_execute(&alpha, "CREATE TABLE t (a)", &[])?;
        for sql in [
            "ALTER TABLE t RENAME TO users2",
            "ALTER TABLE t RENAME TO \"beta:t\"",
        ] {
            match unit.plugin_execute(&alpha, sql, &[]) {
                Err(SqlError::AccessDenied(_)) => {}
                other => anyhow::bail!("{sql}: {other:?}"),
            }
        }
        unit.commit()?;
        ensure!(objects(&db, "alpha")? == ["alpha:t"]);
        Ok(())
    }

    #[test]
    fn a_migration_that_points_outside_fails_whole() -> Result<()> {
        use plinth_store::plugin::{MigrationLimits, PluginMigration};
        let (_d, db) = db()?;
        let m = PluginMigration {
            version: 1,
            name: "sneaky".into(),
            sql: "CREATE TABLE f (a); ALTER TABLE f ADD COLUMN v DEFAULT (sqlite_version());"
                .into(),
        };
        match db.migrate_plugin(&ns("alpha")?, &[m], MigrationLimits::default()) {
            Err(plinth_store::Error::PluginMigration {
                error: SqlError::AccessDenied(_),
                ..
            }) => {}
            other => anyhow::bail!("{other:?}"),
        }
        ensure!(objects(&db, "alpha")?.is_empty());
        ensure!(db.plugin_migrations("alpha")?.is_empty());
        Ok(())
    }
}

/// The rows a query brings into the host are held to the namespace's
/// budget while they are read.
#[test]
fn rows_past_the_result_budget_end_too_large_query_and_batch() -> Result<()> {
    let (_d, db) = db()?;
    let small = ns("alpha")?.with_result_budget(1 << 20);
    let mut unit = db.unit()?;
    // 64 rows of 64 KiB: 4 MiB, over a 1 MiB budget.
    let big = "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c LIMIT 64) \
               SELECT zeroblob(65536) FROM c";
    match unit.plugin_query(&small, big, &[]) {
        Err(SqlError::TooLarge(why)) => ensure!(why.contains("524288"), "{why}"),
        other => anyhow::bail!("{:?}", other.map(|r| r.rows.len())),
    }
    // A batch counts all its runs together: 40 runs of 32 KiB each.
    let each: Vec<Vec<SqlValue>> = (0..40).map(|_| vec![SqlValue::Integer(32768)]).collect();
    let each: Vec<&[SqlValue]> = each.iter().map(Vec::as_slice).collect();
    match unit.plugin_query_batch(&small, "SELECT zeroblob(?1)", &each) {
        Err(SqlError::TooLarge(_)) => {}
        other => anyhow::bail!("{:?}", other.map(|r| r.counts.len())),
    }
    // Under the budget, the same answers in full; the unit goes on.
    let fine = unit.plugin_query_batch(&small, "SELECT zeroblob(?1)", &each[..20])?;
    ensure!(fine.counts == [1; 20]);
    ensure!(ns("alpha")?.result_budget() == plinth_store::sql::MAX_RESULT_BYTES);
    ensure!(
        ns("alpha")?.with_result_budget(u64::MAX).result_budget()
            == plinth_store::sql::MAX_RESULT_BYTES
    );
    Ok(())
}

/// A plugin's migrations run under its limits: its quota, its row limit and
/// a deadline, past which the statement is stopped and nothing is kept.
mod migration_limits {
    use super::*;
    use plinth_store::plugin::{MigrationLimits, PluginMigration};

    fn one(sql: &str) -> PluginMigration {
        PluginMigration {
            version: 1,
            name: "load".into(),
            sql: sql.into(),
        }
    }

    #[test]
    fn an_endless_migration_is_stopped_at_its_deadline_and_keeps_nothing() -> Result<()> {
        let (_d, db) = db()?;
        let endless = one("CREATE TABLE t (n); \
             WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c) \
             INSERT INTO t SELECT n FROM c;");
        let started = Instant::now();
        let limits = MigrationLimits {
            deadline: Some(started + Duration::from_millis(300)),
            rows: None,
        };
        match db.migrate_plugin(&ns("alpha")?, &[endless], limits) {
            Err(plinth_store::Error::PluginMigration {
                error: SqlError::TimedOut,
                ..
            }) => {}
            other => anyhow::bail!("{other:?}"),
        }
        let took = started.elapsed();
        ensure!(took < Duration::from_secs(3), "took {took:?}");
        ensure!(db.plugin_migrations("alpha")?.is_empty());
        // The writer is free at once: a core write goes through.
        db.with_unit(|u| {
            u.create_user(&NewUser {
                name: "ada".into(),
                email: "ada@example.com".into(),
            })
        })?;
        Ok(())
    }

    #[test]
    fn a_migration_past_the_quota_or_the_row_limit_keeps_nothing() -> Result<()> {
        let (_d, db) = db()?;
        let fill = one("CREATE TABLE t (b); \
             WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c LIMIT 600) \
             INSERT INTO t SELECT zeroblob(60000) FROM c;");
        let quota = ns("alpha")?.with_quota(Some(1 << 20));
        match db.migrate_plugin(
            &quota,
            std::slice::from_ref(&fill),
            MigrationLimits::default(),
        ) {
            Err(plinth_store::Error::PluginMigration {
                error: SqlError::TooLarge(_),
                ..
            }) => {}
            other => anyhow::bail!("{other:?}"),
        }
        ensure!(db.plugin_migrations("alpha")?.is_empty());
        let rows = MigrationLimits {
            deadline: None,
            rows: Some(100),
        };
        match db.migrate_plugin(&ns("alpha")?, std::slice::from_ref(&fill), rows) {
            Err(plinth_store::Error::PluginMigration {
                error: SqlError::TooLarge(why),
                ..
            }) => ensure!(why.contains("row limit"), "{why}"),
            other => anyhow::bail!("{other:?}"),
        }
        ensure!(db.plugin_migrations("alpha")?.is_empty());
        // Within both, it applies; the bytes it took count against the quota.
        let roomy = ns("alpha")?.with_quota(Some(64 << 20));
        let ok = MigrationLimits {
            deadline: None,
            rows: Some(1000),
        };
        db.migrate_plugin(&roomy, &[fill], ok)?;
        let data = db.plugin_data()?;
        let alpha = data.iter().find(|d| d.plugin == "alpha");
        ensure!(alpha.is_some_and(|a| a.bytes() > 30 << 20), "{alpha:?}");
        Ok(())
    }
}
