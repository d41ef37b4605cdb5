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
    let (id, placeholder) = if f.pg.is_some() {
        ("BIGSERIAL", "$1")
    } else {
        ("INTEGER", "?1")
    };
    let dialect = p.call_dynamic("which-dialect", &[])?;
    let expected = if f.pg.is_some() {
        "postgresql"
    } else {
        "sqlite"
    };
    ensure!(format!("{dialect:?}").contains(expected), "{dialect:?}");
    run(
        &p,
        "run-execute",
        &format!("CREATE TABLE notes (id {id} PRIMARY KEY, body TEXT NOT NULL)"),
        vec![],
    )?
    .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let added = run(
        &p,
        "run-execute",
        &format!("INSERT INTO notes (body) VALUES ({placeholder})"),
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
    let auth = f.auth()?;
    crate::util::ok(auth.sign_up("ada", "ada@example.com", "correct horse battery staple"))?;
    let p = f.load(SQL_PROBE)?;
    let before = f.snapshot()?;
    let sqlite = [
        ("run-query", "SELECT * FROM users"),
        ("run-query", "SELECT * FROM main.users"),
        ("run-query", "SELECT * FROM sqlite_master"),
        ("run-execute", "DELETE FROM sessions"),
        ("run-execute", "ATTACH DATABASE 'x.db' AS x"),
        ("run-execute", "PRAGMA writable_schema = ON"),
        ("run-execute", "BEGIN"),
        ("run-query", "SELECT load_extension('x')"),
    ];
    let postgres = [
        ("run-query", "SELECT * FROM users"),
        ("run-query", "SELECT * FROM public.users"),
        ("run-query", "SELECT * FROM pg_roles"),
        ("run-execute", "DELETE FROM public.sessions"),
        ("run-query", "SELECT set_config('role', 'postgres', true)"),
        ("run-execute", "SET ROLE postgres"),
        ("run-execute", "BEGIN"),
        (
            "run-query",
            "SELECT query_to_xml('select * from public.users', true, true, '')",
        ),
    ];
    let attempts = if f.pg.is_some() { postgres } else { sqlite };
    for (function, sql) in attempts {
        let answer = run(&p, function, sql, vec![])?;
        ensure!(answer.is_err(), "{sql} was allowed: {answer:?}");
    }
    ensure!(f.snapshot()? == before);
    Ok(())
}

#[test]
fn a_trap_after_writing_keeps_nothing_of_the_plugins_tables() -> Result<()> {
    let f = Fixture::new()?;
    let p = f.load(SQL_PROBE)?;
    let statements = Val::List(
        ["CREATE TABLE t (x INTEGER)", "INSERT INTO t VALUES (1)"]
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
    let writer = f.load(SQL_PROBE)?;
    run(&writer, "run-execute", "CREATE TABLE t (x INTEGER)", vec![])?
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let shipped = std::fs::read_to_string(SQL_PROBE.manifest)?;
    let read_only = shipped.replace(
        "\"plinth:sql/sql\" = \"read-write\"",
        "\"plinth:sql/sql\" = \"read\"",
    );
    ensure!(read_only != shipped);
    let manifest = Manifest::from_toml(&read_only, "read-only probe")?;
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

/// `wasi:keyvalue` through the probe: each export's `result<T, string>`;
/// a call that ran out of time (it kept nothing) as the error `busy`.
fn kv(p: &Plugin, function: &str, args: Vec<Val>) -> Result<Result<Val, String>> {
    let out = match p.call_dynamic(function, &args) {
        Err(plinth_host::Error::TimedOut { .. }) => return Ok(Err("busy: timed out".into())),
        other => other?,
    };
    match out.as_slice() {
        [Val::Result(Ok(v))] => Ok(Ok(v.as_deref().cloned().unwrap_or(Val::Bool(true)))),
        [Val::Result(Err(e))] => Ok(Err(match e.as_deref() {
            Some(Val::String(s)) => s.clone(),
            other => format!("{other:?}"),
        })),
        other => anyhow::bail!("unexpected {other:?}"),
    }
}

fn s(text: &str) -> Val {
    Val::String(text.into())
}

fn bytes(b: &[u8]) -> Val {
    Val::List(b.iter().map(|&x| Val::U8(x)).collect())
}

fn some_bytes(v: &Val) -> Option<Vec<u8>> {
    match v {
        Val::Option(Some(inner)) => match inner.as_ref() {
            Val::List(items) => Some(
                items
                    .iter()
                    .map(|x| if let Val::U8(b) = x { *b } else { 0 })
                    .collect(),
            ),
            _ => None,
        },
        _ => None,
    }
}

/// The probe under another plugin's name: the same code, other buckets
/// and tables.
fn other_probe(f: &Fixture) -> Result<Plugin> {
    let mut manifest = Manifest::from_file(SQL_PROBE.manifest.as_ref())?;
    manifest.name = "other-probe".into();
    f.load_with(SQL_PROBE, manifest)
}

#[test]
fn keyvalue_get_set_delete_exists_and_buckets_of_their_own() -> Result<()> {
    let f = Fixture::new()?;
    let p = f.load(SQL_PROBE)?;
    let other = other_probe(&f)?;
    let got = |p: &Plugin, key: &str| -> Result<Option<Vec<u8>>> {
        let v = kv(p, "kv-get", vec![s("prefs"), s(key)])?.map_err(anyhow::Error::msg)?;
        Ok(some_bytes(&v))
    };
    ensure!(got(&p, "theme")?.is_none());
    kv(&p, "kv-set", vec![s("prefs"), s("theme"), bytes(b"dark")])?.map_err(anyhow::Error::msg)?;
    ensure!(got(&p, "theme")? == Some(b"dark".to_vec()));
    // Another plugin's bucket of the same name is another bucket.
    ensure!(got(&other, "theme")?.is_none());
    kv(
        &other,
        "kv-set",
        vec![s("prefs"), s("theme"), bytes(b"light")],
    )?
    .map_err(anyhow::Error::msg)?;
    ensure!(got(&p, "theme")? == Some(b"dark".to_vec()));
    let exists = kv(&p, "kv-exists", vec![s("prefs"), s("theme")])?;
    ensure!(matches!(exists, Ok(Val::Bool(true))), "{exists:?}");
    kv(&p, "kv-delete", vec![s("prefs"), s("theme")])?.map_err(anyhow::Error::msg)?;
    let exists = kv(&p, "kv-exists", vec![s("prefs"), s("theme")])?;
    ensure!(matches!(exists, Ok(Val::Bool(false))), "{exists:?}");
    ensure!(got(&other, "theme")? == Some(b"light".to_vec()));
    // Batches.
    let pairs = Val::List(
        (0..3)
            .map(|i| Val::Tuple(vec![s(&format!("k{i}")), bytes(&[i])]))
            .collect(),
    );
    kv(&p, "kv-set-many", vec![s("b"), pairs])?.map_err(anyhow::Error::msg)?;
    let many = kv(
        &p,
        "kv-get-many",
        vec![s("b"), Val::List(vec![s("k0"), s("nope"), s("k2")])],
    )?
    .map_err(anyhow::Error::msg)?;
    let shown = format!("{many:?}");
    ensure!(
        shown.matches("Some").count() == 2 && shown.contains("None"),
        "{shown}"
    );
    // Over the limits: typed, nothing written.
    let big = kv(
        &p,
        "kv-set",
        vec![s("b"), s("big"), bytes(&vec![1; (1 << 20) + 1])],
    )?;
    ensure!(matches!(&big, Err(e) if e.contains("too large")), "{big:?}");
    ensure!(got(&p, "big")?.is_none());
    Ok(())
}

#[test]
fn keyvalue_list_keys_pages_by_cursor() -> Result<()> {
    let f = Fixture::new()?;
    let p = f.load(SQL_PROBE)?;
    let n = 2017;
    for chunk in (0..n).collect::<Vec<_>>().chunks(500) {
        let pairs = Val::List(
            chunk
                .iter()
                .map(|i| Val::Tuple(vec![s(&format!("key-{i:05}")), bytes(b"")]))
                .collect(),
        );
        kv(&p, "kv-set-many", vec![s("b"), pairs])?.map_err(anyhow::Error::msg)?;
    }
    let (mut keys, mut cursor, mut pages) = (Vec::new(), None::<String>, 0);
    loop {
        let page = kv(
            &p,
            "kv-keys",
            vec![s("b"), Val::Option(cursor.clone().map(|c| Box::new(s(&c))))],
        )?
        .map_err(anyhow::Error::msg)?;
        pages += 1;
        let Val::Tuple(parts) = page else {
            anyhow::bail!("{page:?}")
        };
        if let Val::List(items) = &parts[0] {
            keys.extend(items.iter().map(|k| format!("{k:?}")));
        }
        match &parts[1] {
            Val::Option(Some(c)) => match c.as_ref() {
                Val::String(c) => cursor = Some(c.clone()),
                other => anyhow::bail!("{other:?}"),
            },
            _ => break,
        }
        ensure!(pages < 10);
    }
    ensure!(
        keys.len() == n && pages == 3,
        "{} keys, {pages} pages",
        keys.len()
    );
    let mut sorted = keys.clone();
    sorted.dedup();
    ensure!(sorted.len() == n);
    Ok(())
}

/// Four threads call the same plugin at once; every increment and every
/// compare-and-swap lands exactly once.
#[test]
fn keyvalue_increment_and_swap_under_concurrent_calls_lose_nothing() -> Result<()> {
    const THREADS: u8 = 4;
    const EACH: usize = 15;
    let f = Fixture::new()?;
    let p = f.load(SQL_PROBE)?;
    let mut retried = 0u32;
    std::thread::scope(|scope| -> Result<()> {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let p = p.clone();
                scope.spawn(move || -> Result<u32> {
                    let mut extra = 0;
                    for _ in 0..EACH {
                        for _ in 0..50 {
                            match kv(&p, "kv-increment", vec![s("c"), s("hits"), Val::S64(1)])? {
                                Ok(_) => break,
                                Err(e) if e.contains("busy") => extra += 1,
                                Err(e) => anyhow::bail!(e),
                            }
                        }
                        for _ in 0..50 {
                            match kv(&p, "kv-cas-append", vec![s("c"), s("log"), Val::U8(t)])? {
                                Ok(Val::U32(n)) => {
                                    extra += n - 1;
                                    break;
                                }
                                Ok(other) => anyhow::bail!("{other:?}"),
                                Err(e) if e.contains("busy") => extra += 1,
                                Err(e) => anyhow::bail!(e),
                            }
                        }
                    }
                    Ok(extra)
                })
            })
            .collect();
        for h in handles {
            retried += h
                .join()
                .map_err(|_| anyhow::anyhow!("a thread panicked"))??;
        }
        Ok(())
    })?;
    let hits = kv(&p, "kv-get", vec![s("c"), s("hits")])?.map_err(anyhow::Error::msg)?;
    let hits = some_bytes(&hits).and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok());
    let total = usize::from(THREADS) * EACH;
    ensure!(
        hits.map(i64::from_le_bytes) == Some(total as i64),
        "{hits:?}"
    );
    let log = kv(&p, "kv-get", vec![s("c"), s("log")])?.map_err(anyhow::Error::msg)?;
    let log = some_bytes(&log).unwrap_or_default();
    ensure!(log.len() == total, "{} marks", log.len());
    for t in 0..THREADS {
        ensure!(log.iter().filter(|&&b| b == t).count() == EACH);
    }
    eprintln!(
        "keyvalue: {total} increments and {total} swaps from {THREADS} threads, {retried} retries"
    );
    Ok(())
}

/// A call that writes a row of its own table, a key and a user, then
/// traps, keeps none of the three; one that returns keeps all three.
#[test]
fn one_call_writes_its_table_its_bucket_and_the_core_tables_as_one() -> Result<()> {
    let f = Fixture::new()?;
    let p = f.load(SQL_PROBE)?;
    run(&p, "run-execute", "CREATE TABLE t (x INTEGER)", vec![])?
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let table = "INSERT INTO t VALUES (1)";
    let args = |name: &str| vec![s(table), s("b"), s("k"), s(name)];
    ensure!(p.call_dynamic("write-all-then-trap", &args("ada")).is_err());
    ensure!(f.rows("users")? == 0);
    let key = kv(&p, "kv-get", vec![s("b"), s("k")])?.map_err(anyhow::Error::msg)?;
    ensure!(some_bytes(&key).is_none(), "{key:?}");
    let rows = run(&p, "run-query", "SELECT count(*) FROM t", vec![])?
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    ensure!(
        format!("{rows:?}").contains("\"integer\", Some(S64(0))"),
        "{rows:?}"
    );
    kv(&p, "write-all", args("bob"))?.map_err(anyhow::Error::msg)?;
    ensure!(f.rows("users")? == 1);
    let key = kv(&p, "kv-get", vec![s("b"), s("k")])?.map_err(anyhow::Error::msg)?;
    ensure!(some_bytes(&key) == Some(b"written".to_vec()));
    let rows = run(&p, "run-query", "SELECT count(*) FROM t", vec![])?
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    ensure!(format!("{rows:?}").contains("S64(1)"), "{rows:?}");
    Ok(())
}

/// A call that writes a row of its own table, a key and a user, then runs
/// out of time or memory, keeps none of the three either (on PostgreSQL the
/// plugin's row is in its own session: neither is committed).
#[test]
fn a_timeout_or_a_memory_breach_after_writing_everywhere_keeps_nothing() -> Result<()> {
    let f = Fixture::new()?;
    let manifest = Manifest::from_file(SQL_PROBE.manifest.as_ref())?.limits(plinth_host::Limits {
        time: std::time::Duration::from_millis(800),
        memory_bytes: 16 << 20,
        ..plinth_host::Limits::default()
    });
    let p = f.load_with(SQL_PROBE, manifest)?;
    run(&p, "run-execute", "CREATE TABLE t (x INTEGER)", vec![])?
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    for (how, expected) in [("spin", "ran past its time limit"), ("grow", "memory")] {
        let args = [
            s("INSERT INTO t VALUES (1)"),
            s("b"),
            s("k"),
            s(&format!("user-{how}")),
            s(how),
        ];
        match p.call_dynamic("write-all-then-fail", &args) {
            Err(e) => ensure!(e.to_string().contains(expected), "{how}: {e}"),
            Ok(v) => anyhow::bail!("{how}: returned {v:?}"),
        }
        ensure!(f.rows("users")? == 0, "{how}: a user was kept");
        let key = kv(&p, "kv-get", vec![s("b"), s("k")])?.map_err(anyhow::Error::msg)?;
        ensure!(some_bytes(&key).is_none(), "{how}: {key:?}");
        let rows = run(&p, "run-query", "SELECT count(*) FROM t", vec![])?
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        ensure!(
            format!("{rows:?}").contains("\"integer\", Some(S64(0))"),
            "{how}: {rows:?}"
        );
    }
    Ok(())
}

/// Statements that would run away end typed — out of time, too large, over
/// the call's row limit — keep nothing, and the next call works.
/// A call's answer, or its error as text.
fn ok_of(r: Result<Result<Val, Val>>) -> Result<Val> {
    r?.map_err(|e| anyhow::anyhow!("{e:?}"))
}

/// Creates table `big` with 2000 rows (a cross join of three is 8·10⁹).
fn big_table(p: &Plugin) -> Result<()> {
    ok_of(run(
        p,
        "run-execute",
        "CREATE TABLE big (x INTEGER)",
        vec![],
    ))?;
    ok_of(run(
        p,
        "run-execute",
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 2000) INSERT INTO big SELECT x FROM c",
        vec![],
    ))?;
    Ok(())
}

#[test]
fn runaway_statements_end_typed_and_the_next_call_works() -> Result<()> {
    let f = Fixture::new()?;
    if f.pg.is_some() {
        return Ok(());
    }
    let p = f.load(SQL_PROBE)?;
    let ok = ok_of;
    big_table(&p)?;
    let count = |p: &Plugin| -> Result<String> {
        Ok(format!(
            "{:?}",
            ok(run(p, "run-query", "SELECT count(*) FROM big", vec![]))?
        ))
    };
    ensure!(count(&p)?.contains("S64(2000)"));
    // A cross join of 8·10⁹ rows: stopped at the call's deadline (2 s).
    let started = std::time::Instant::now();
    let cross = run(
        &p,
        "run-query",
        "SELECT count(*) FROM big AS a, big AS b, big AS c",
        vec![],
    );
    match &cross {
        Ok(Err(e)) => ensure!(case(e) == "timed-out", "{e:?}"),
        Err(e) => ensure!(
            matches!(e.downcast_ref(), Some(plinth_host::Error::TimedOut { .. })),
            "{e}"
        ),
        Ok(Ok(v)) => anyhow::bail!("a cross join of 8e9 rows finished: {v:?}"),
    }
    ensure!(started.elapsed() < std::time::Duration::from_secs(5));
    // A million rows in one statement, and in a loop of statements: over
    // the call's row limit (10,000), the call fails and keeps nothing.
    let million = run(
        &p,
        "run-execute",
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000) INSERT INTO big SELECT x FROM c",
        vec![],
    );
    ensure!(million.is_err(), "a million rows were kept: {million:?}");
    let looped = p.call_dynamic(
        "bench-insert",
        &[
            Val::String("INSERT INTO big (x) VALUES (?2)".into()),
            Val::U32(1_000_000),
        ],
    );
    match looped {
        Err(e) => ensure!(matches!(e, plinth_host::Error::RowLimit { .. }), "{e}"),
        Ok(v) => anyhow::bail!("a million inserts returned {v:?}"),
    }
    // A 100 MB blob, made in SQL.
    let blob = run(&p, "run-query", "SELECT zeroblob(100000000)", vec![])?;
    ensure!(
        matches!(&blob, Err(e) if case(e) == "too-large"),
        "{blob:?}"
    );
    ensure!(count(&p)?.contains("S64(2000)"), "{}", count(&p)?);
    Ok(())
}

/// A write stopped at the deadline: on SQLite it takes the unit's whole
/// transaction with it (SQLite rolls back on an interrupted write), and the
/// connection would then commit each later statement on its own; on
/// PostgreSQL the statement is stopped a little before the deadline and
/// undone alone. A guest that catches the time-out and writes again gets
/// one of two things, never a part: the call times out and keeps nothing,
/// or (PostgreSQL) it commits, before its deadline, the rows before and
/// after the stopped statement.
#[test]
fn writing_on_after_a_timed_out_write_keeps_the_unit_whole() -> Result<()> {
    let f = Fixture::new()?;
    let p = f.load(SQL_PROBE)?;
    let ok = ok_of;
    big_table(&p)?;
    ok(run(&p, "run-execute", "CREATE TABLE t (x INTEGER)", vec![]))?;
    // The update's condition is a cross join of 8·10⁹ rows: it is stopped
    // at the call's deadline (2 s) before it changes a row.
    let statements = [
        "INSERT INTO t (x) VALUES (1)",
        "UPDATE t SET x = 2 WHERE (SELECT count(*) FROM big AS a, big AS b, big AS c) > 0",
        "INSERT INTO t (x) VALUES (3)",
    ];
    let out = p.call_dynamic(
        "execute-each",
        &[Val::List(
            statements
                .iter()
                .map(|s| Val::String((*s).into()))
                .collect(),
        )],
    );
    let kept = ok(run(&p, "run-query", "SELECT x FROM t ORDER BY x", vec![]))?;
    let kept: Vec<String> = match kept.clone() {
        Val::Record(fields) => fields
            .into_iter()
            .filter(|(name, _)| name == "rows")
            .flat_map(|(_, rows)| match rows {
                Val::List(rows) => rows,
                _ => Vec::new(),
            })
            .map(|row| format!("{row:?}"))
            .collect(),
        other => anyhow::bail!("{other:?}"),
    };
    match &out {
        Err(plinth_host::Error::TimedOut { .. }) => {
            ensure!(kept.is_empty(), "a call that timed out kept {kept:?}");
        }
        Ok(answers) if f.pg.is_some() => {
            let told = format!("{answers:?}");
            ensure!(told.contains("timed-out"), "{told}");
            // The last insert runs on what time is left after the cancel:
            // kept exactly when it answered ok.
            let third_ok = matches!(
                answers.as_slice(),
                [Val::List(each)] if matches!(each.get(2), Some(Val::Result(Ok(_))))
            );
            let expected = if third_ok { 2 } else { 1 };
            ensure!(
                kept.len() == expected
                    && kept[0].contains("S64(1)")
                    && (!third_ok || kept[1].contains("S64(3)")),
                "a committed call kept {kept:?}; it answered {told}"
            );
        }
        other => anyhow::bail!("the call answered {other:?}, and kept {kept:?}"),
    }
    Ok(())
}

/// `execute-batch` keeps all of a batch or, when one of its rows fails,
/// none of it; the call goes on and can write again.
#[test]
fn a_batch_is_kept_whole_or_not_at_all() -> Result<()> {
    let f = Fixture::new()?;
    let p = f.load(SQL_PROBE)?;
    let placeholder = if f.pg.is_some() { "$1" } else { "?1" };
    run(
        &p,
        "run-execute",
        "CREATE TABLE tags (name TEXT PRIMARY KEY)",
        vec![],
    )?
    .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let insert = format!("INSERT INTO tags (name) VALUES ({placeholder})");
    let batch = |names: &[&str]| -> Result<Result<Val, Val>> {
        let each = Val::List(names.iter().map(|n| Val::List(vec![text(n)])).collect());
        let out = p.call_dynamic("run-execute-batch", &[Val::String(insert.clone()), each])?;
        match out.as_slice() {
            [Val::Result(Ok(v))] => Ok(Ok(v.as_deref().cloned().unwrap_or(Val::Bool(true)))),
            [Val::Result(Err(e))] => Ok(Err(e.as_deref().cloned().unwrap_or(Val::Bool(false)))),
            other => anyhow::bail!("unexpected {other:?}"),
        }
    };
    let kept = batch(&["a", "b", "c"])?;
    ensure!(kept == Ok(Val::U64(3)), "{kept:?}");
    // The third row takes a name already there: the two before it go too.
    let refused = batch(&["d", "e", "a", "f"])?;
    ensure!(
        matches!(&refused, Err(e) if case(e) == "constraint"),
        "{refused:?}"
    );
    let count = run(&p, "run-query", "SELECT count(*) FROM tags", vec![])?
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    ensure!(format!("{count:?}").contains("S64(3)"), "{count:?}");
    ensure!(batch(&[])? == Ok(Val::U64(0)));
    ensure!(batch(&["d"])? == Ok(Val::U64(1)));
    Ok(())
}

/// A batch's parameters come flat and are split by its number of runs:
/// every run the same width, none for a statement without parameters, a
/// bounded number of runs; a query's rows come back flat with each run's
/// count.
#[test]
fn flat_batches_split_their_parameters_by_runs() -> Result<()> {
    let f = Fixture::new()?;
    let p = f.load(SQL_PROBE)?;
    let placeholder = if f.pg.is_some() { "$1" } else { "?1" };
    ok_of(run(
        &p,
        "run-execute",
        "CREATE TABLE tags (name TEXT PRIMARY KEY)",
        vec![],
    ))?;
    let batch =
        |statement: &str, runs: u32, params: &[&str], query: bool| -> Result<Result<Val, Val>> {
            let out = p.call_dynamic(
                "run-batch",
                &[
                    Val::String(statement.into()),
                    Val::U32(runs),
                    Val::List(params.iter().map(|n| text(n)).collect()),
                    Val::Bool(query),
                ],
            )?;
            match out.as_slice() {
                [Val::Result(Ok(v))] => Ok(Ok(v.as_deref().cloned().unwrap_or(Val::Bool(true)))),
                [Val::Result(Err(e))] => Ok(Err(e.as_deref().cloned().unwrap_or(Val::Bool(false)))),
                other => anyhow::bail!("unexpected {other:?}"),
            }
        };
    let insert = format!("INSERT INTO tags (name) VALUES ({placeholder})");
    let kept = batch(&insert, 3, &["a", "b", "c"], false)?;
    ensure!(
        matches!(&kept, Ok(Val::Tuple(t)) if t[0] == Val::U64(3)),
        "{kept:?}"
    );
    // Five parameters do not make two runs of one width.
    let uneven = batch(&insert, 2, &["d", "e", "f", "g", "h"], false)?;
    ensure!(
        matches!(&uneven, Err(e) if case(e) == "syntax"),
        "{uneven:?}"
    );
    ensure!(batch(&insert, 0, &["d"], false)?.is_err());
    // No parameters: the statement runs `runs` times all the same.
    let counted = "INSERT INTO tags (name) SELECT 'z' || count(*) FROM tags";
    let zero_width = batch(counted, 4, &[], false)?;
    ensure!(
        matches!(&zero_width, Ok(Val::Tuple(t)) if t[0] == Val::U64(4)),
        "{zero_width:?}"
    );
    // A count of runs the guest pays nothing for is bounded.
    let huge = batch(counted, u32::MAX, &[], false)?;
    ensure!(
        matches!(&huge, Err(e) if case(e) == "too-large"),
        "{huge:?}"
    );
    // Rows back flat: two from the first run, one from the second.
    let select =
        format!("SELECT name FROM tags WHERE name >= {placeholder} AND name < 'd' ORDER BY name");
    let rows = batch(&select, 2, &["b", "c"], true)?;
    let Ok(Val::Tuple(t)) = &rows else {
        anyhow::bail!("{rows:?}");
    };
    ensure!(
        t[1] == Val::List(vec![Val::U32(2), Val::U32(1)]),
        "{rows:?}"
    );
    ensure!(
        t[2] == Val::List(vec![text("b"), text("c"), text("c")]),
        "{rows:?}"
    );
    let count = ok_of(run(&p, "run-query", "SELECT count(*) FROM tags", vec![]))?;
    ensure!(format!("{count:?}").contains("S64(7)"), "{count:?}");
    Ok(())
}
