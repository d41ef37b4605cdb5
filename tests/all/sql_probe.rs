//! `plinth:sql` from a guest: the sql-probe plugin hands statements through,
//! and every promise is checked at the host's side.

use anyhow::{Result, ensure};
use plinth_guests::SQL_PROBE;
use plinth_host::{Manifest, Plugin, Val};

use crate::util::Fixture;

fn text(s: &str) -> Val {
    Val::Variant("text".into(), Some(Box::new(Val::String(s.into()))))
}

fn params(values: Vec<Val>) -> Val {
    Val::List(values)
}

/// Calls `function(statement, params)`; the guest's `result` as Rust's.
fn run(p: &Plugin, function: &str, statement: &str, args: Vec<Val>) -> Result<Result<Val, Val>> {
    let out = p.call_dynamic(function, &[Val::String(statement.into()), params(args)])?;
    match out.as_slice() {
        [Val::Result(Ok(v))] => Ok(Ok(v.as_deref().cloned().unwrap_or(Val::Bool(true)))),
        [Val::Result(Err(e))] => Ok(Err(e.as_deref().cloned().unwrap_or(Val::Bool(false)))),
        other => anyhow::bail!("unexpected {other:?}"),
    }
}

/// The case name of a WIT `error` value.
fn case(e: &Val) -> String {
    match e {
        Val::Variant(name, _) => name.clone(),
        other => format!("{other:?}"),
    }
}

#[test]
fn a_guest_keeps_and_reads_its_own_rows() -> Result<()> {
    let f = Fixture::new()?;
    let p = f.load(SQL_PROBE)?;
    if f.pg.is_some() {
        // Not yet on PostgreSQL: said, typed.
        let answer = run(&p, "run-execute", "CREATE TABLE notes (body TEXT)", vec![])?;
        ensure!(
            matches!(&answer, Err(e) if case(e) == "access-denied"),
            "{answer:?}"
        );
        return Ok(());
    }
    run(
        &p,
        "run-execute",
        "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)",
        vec![],
    )?
    .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let added = run(
        &p,
        "run-execute",
        "INSERT INTO notes (body) VALUES (?1)",
        vec![text("hello")],
    )?
    .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    ensure!(format!("{added:?}").contains("U64(1)"), "{added:?}");
    let rows = run(&p, "run-query", "SELECT id, body FROM notes", vec![])?
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let shown = format!("{rows:?}");
    ensure!(
        shown.contains("\"hello\"") && shown.contains("\"body\""),
        "{shown}"
    );
    Ok(())
}

#[test]
fn a_guest_cannot_reach_the_core_tables_and_changes_nothing_trying() -> Result<()> {
    let f = Fixture::new()?;
    if f.pg.is_some() {
        return Ok(());
    }
    let auth = f.auth()?;
    crate::util::ok(auth.sign_up("ada", "ada@example.com", "correct horse battery staple"))?;
    let p = f.load(SQL_PROBE)?;
    let before = f.snapshot()?;
    for (function, sql) in [
        ("run-query", "SELECT * FROM users"),
        ("run-query", "SELECT * FROM main.users"),
        ("run-query", "SELECT * FROM sqlite_master"),
        ("run-execute", "DELETE FROM sessions"),
        ("run-execute", "ATTACH DATABASE 'x.db' AS x"),
        ("run-execute", "PRAGMA writable_schema = ON"),
        ("run-execute", "BEGIN"),
        ("run-query", "SELECT load_extension('x')"),
    ] {
        let answer = run(&p, function, sql, vec![])?;
        ensure!(answer.is_err(), "{sql} was allowed: {answer:?}");
    }
    ensure!(f.snapshot()? == before);
    Ok(())
}

#[test]
fn a_trap_after_writing_keeps_nothing_of_the_plugins_tables() -> Result<()> {
    let f = Fixture::new()?;
    if f.pg.is_some() {
        return Ok(());
    }
    let p = f.load(SQL_PROBE)?;
    let statements = Val::List(
        ["CREATE TABLE t (x)", "INSERT INTO t VALUES (1)"]
            .iter()
            .map(|s| Val::String((*s).into()))
            .collect(),
    );
    ensure!(p.call_dynamic("execute-then-trap", &[statements]).is_err());
    let after = run(&p, "run-query", "SELECT * FROM t", vec![])?;
    ensure!(matches!(&after, Err(e) if case(e) == "syntax"), "{after:?}");
    Ok(())
}

#[test]
fn a_read_grant_reads_and_cannot_write() -> Result<()> {
    let f = Fixture::new()?;
    if f.pg.is_some() {
        return Ok(());
    }
    let writer = f.load(SQL_PROBE)?;
    run(&writer, "run-execute", "CREATE TABLE t (x)", vec![])?
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let manifest = Manifest::new("sql-probe").grant(
        plinth_host::capabilities::sql::SQL,
        plinth_host::Access::Read,
    );
    let reader = f.load_with(SQL_PROBE, manifest)?;
    ensure!(run(&reader, "run-query", "SELECT * FROM t", vec![])?.is_ok());
    for (function, sql) in [
        ("run-execute", "INSERT INTO t VALUES (1)"),
        ("run-query", "INSERT INTO t VALUES (1) RETURNING x"),
    ] {
        let answer = run(&reader, function, sql, vec![])?;
        ensure!(
            matches!(&answer, Err(e) if case(e) == "access-denied"),
            "{sql}: {answer:?}"
        );
    }
    Ok(())
}
