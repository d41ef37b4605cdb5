//! A plugin's own data, from a guest vs native Rust, side by side in one
//! run on one SQLite file:
//!
//! 1. an insert and a point select through `plinth:sql` (the sql-probe
//!    guest runs the statement N times in one call, one `execute`/`query`
//!    each or all in one `execute-batch`/`query-batch`) vs the same
//!    statements with rusqlite (`prepare_cached`, N in one transaction),
//!    and vs the store's API called natively (the sandbox without the
//!    crossing);
//! 2. `wasi:keyvalue` set and get from the guest vs the store's key-value
//!    API called natively, and vs a plain rusqlite upsert/select;
//! 3. on PostgreSQL (a throwaway cluster over loopback TCP, set up as the
//!    README tells an operator), the insert batch and the point-select
//!    batch from the guest — run in the plugin's own session, as its role,
//!    64 runs in flight — vs the same statements prepared once and run N
//!    times in one transaction with tokio-postgres, natively, as plinth's
//!    user: one after another, and pipelined 64 in flight as the store does.
//!
//! Rounds are interleaved (guest, native, guest, …); each line gives the
//! median per operation and the ratio of medians, with the spread of the
//! per-round ratios.
//!
//! `cargo bench -p plinth-tests --bench plugin_data --profile release`

use std::time::{Duration, Instant};

use anyhow::{Result, bail, ensure};
use plinth_guests::SQL_PROBE;
use plinth_host::{Manifest, Plugin, Runtime, Val};
use plinth_store::sql::{Namespace, SqlValue};
use plinth_store::{Db, Durability, Options};
use rusqlite::Connection;

/// Operations per round.
const N: u32 = 1000;
/// Interleaved rounds.
const ROUNDS: usize = 11;
/// Interleaved rounds on PostgreSQL, whose round trips on loopback vary
/// more from round to round.
const PG_ROUNDS: usize = 31;

const CREATE: &str =
    "CREATE TABLE items (id INTEGER PRIMARY KEY, title TEXT NOT NULL, n INTEGER NOT NULL)";
const INSERT: &str = "INSERT INTO items (title, n) VALUES (?1, ?2)";
const SELECT: &str = "SELECT title, n FROM items WHERE id = ?1";

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The guest's `result<T, E>` as Rust's.
fn answer(out: Vec<Val>) -> Result<Val> {
    match out.as_slice() {
        [Val::Result(Ok(v))] => Ok(v.as_deref().cloned().unwrap_or(Val::Bool(true))),
        other => bail!("the guest answered {other:?}"),
    }
}

fn s(text: &str) -> Val {
    Val::String(text.into())
}

struct Pair {
    name: &'static str,
    guest: Vec<f64>,
    native: Vec<f64>,
    versus: &'static str,
}

impl Pair {
    fn new(name: &'static str, versus: &'static str) -> Self {
        Self {
            name,
            guest: Vec::new(),
            native: Vec::new(),
            versus,
        }
    }

    fn report(&self) {
        let ratios: Vec<f64> = self
            .guest
            .iter()
            .zip(&self.native)
            .map(|(g, n)| g / n)
            .collect();
        let (lo, hi) = ratios
            .iter()
            .fold((f64::MAX, f64::MIN), |(lo, hi), r| (lo.min(*r), hi.max(*r)));
        let (g, n) = (median(self.guest.clone()), median(self.native.clone()));
        println!(
            "  {:<34} guest {:>7.2} µs   {:<24} {:>7.2} µs   {:>5.2}×  (rounds {lo:.2}–{hi:.2}×)",
            self.name,
            g,
            self.versus,
            n,
            g / n
        );
    }
}

fn per_op(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6 / f64::from(N)
}

fn main() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("bench.db");
    let options = Options {
        durability: Durability::Normal,
        ..Options::default()
    };
    let db = Db::open_with(&path, options)?;
    let runtime = Runtime::new(db.clone())?;
    let probe: Plugin = runtime.load_file(
        SQL_PROBE.wasm.as_ref(),
        Manifest::from_file(SQL_PROBE.manifest.as_ref())?,
    )?;
    answer(probe.call_dynamic("run-execute", &[s(CREATE), Val::List(vec![])])?)?;
    let native = Connection::open(&path)?;
    native.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON",
    )?;
    native.execute_batch(&CREATE.replace("items", "native_items"))?;
    let native_insert = INSERT.replace("items", "native_items");
    let native_select = SELECT.replace("items", "native_items");

    println!(
        "plugin data: {N} operations per round, median of {ROUNDS} interleaved rounds, one SQLite file (WAL, synchronous=NORMAL)"
    );
    let mut insert = Pair::new("plinth:sql insert", "rusqlite");
    let mut select = Pair::new("plinth:sql point select", "rusqlite");
    let mut insert_store = Pair::new("plinth:sql insert", "store API, natively");
    let mut insert_batch = Pair::new("plinth:sql insert, execute-batch", "rusqlite");
    let mut select_batch = Pair::new("plinth:sql point select, query-batch", "rusqlite");
    let mut select_store = Pair::new("plinth:sql point select", "store API, natively");
    let mut insert_batch_store =
        Pair::new("plinth:sql insert, execute-batch", "store API, natively");
    let mut select_batch_store = Pair::new(
        "plinth:sql point select, query-batch",
        "store API, natively",
    );
    // The store's plugin SQL called from Rust, as the host function calls
    // it: the same namespace, grant and quota as the guest's.
    let probe_ns = Namespace::new("sql-probe", false)?
        .with_quota(Some(plinth_host::manifest::DEFAULT_DATA_BYTES));
    for _ in 0..ROUNDS {
        let t = Instant::now();
        let out = answer(probe.call_dynamic("bench-insert", &[s(INSERT), Val::U32(N)])?)?;
        insert.guest.push(per_op(t.elapsed()));
        ensure!(out == Val::U64(u64::from(N)), "{out:?}");
        let t = Instant::now();
        let tx = native.unchecked_transaction()?;
        for i in 0..N {
            tx.prepare_cached(&native_insert)?
                .execute((format!("item-{i}"), i64::from(i)))?;
        }
        tx.commit()?;
        insert.native.push(per_op(t.elapsed()));
        insert_store
            .guest
            .push(*insert.guest.last().unwrap_or(&0.0));
        insert_batch
            .native
            .push(*insert.native.last().unwrap_or(&0.0));
        let t = Instant::now();
        let out = answer(probe.call_dynamic("bench-insert-batch", &[s(INSERT), Val::U32(N)])?)?;
        insert_batch.guest.push(per_op(t.elapsed()));
        ensure!(out == Val::U64(u64::from(N)), "{out:?}");
        insert_batch_store
            .guest
            .push(*insert_batch.guest.last().unwrap_or(&0.0));
        let t = Instant::now();
        let each: Vec<Vec<SqlValue>> = (0..N)
            .map(|i| {
                vec![
                    SqlValue::Text(format!("item-{i}")),
                    SqlValue::Integer(i64::from(i)),
                ]
            })
            .collect();
        let each: Vec<&[SqlValue]> = each.iter().map(Vec::as_slice).collect();
        let mut unit = db.unit()?;
        let changed = unit.plugin_execute_batch(&probe_ns, INSERT, &each)?;
        unit.commit()?;
        insert_batch_store.native.push(per_op(t.elapsed()));
        ensure!(changed == u64::from(N));
        let t = Instant::now();
        let mut unit = db.unit()?;
        for i in 0..N {
            unit.plugin_execute(
                &probe_ns,
                INSERT,
                &[
                    SqlValue::Text(format!("item-{i}")),
                    SqlValue::Integer(i64::from(i)),
                ],
            )?;
        }
        unit.commit()?;
        insert_store.native.push(per_op(t.elapsed()));

        let t = Instant::now();
        let out =
            answer(probe.call_dynamic("bench-select", &[s(SELECT), Val::U32(N), Val::U32(N)])?)?;
        select.guest.push(per_op(t.elapsed()));
        ensure!(out == Val::U64(u64::from(N)), "{out:?}");
        let t = Instant::now();
        let tx = native.unchecked_transaction()?;
        let mut found = 0;
        for i in 0..N {
            let mut stmt = tx.prepare_cached(&native_select)?;
            let mut rows = stmt.query([1 + i64::from(i)])?;
            while let Some(row) = rows.next()? {
                let _: (String, i64) = (row.get(0)?, row.get(1)?);
                found += 1;
            }
        }
        tx.commit()?;
        select.native.push(per_op(t.elapsed()));
        ensure!(found == N);
        select_store
            .guest
            .push(*select.guest.last().unwrap_or(&0.0));
        select_batch
            .native
            .push(*select.native.last().unwrap_or(&0.0));
        let t = Instant::now();
        let out = answer(
            probe.call_dynamic("bench-select-batch", &[s(SELECT), Val::U32(N), Val::U32(N)])?,
        )?;
        select_batch.guest.push(per_op(t.elapsed()));
        ensure!(out == Val::U64(u64::from(N)), "{out:?}");
        select_batch_store
            .guest
            .push(*select_batch.guest.last().unwrap_or(&0.0));
        let t = Instant::now();
        let each: Vec<[SqlValue; 1]> = (0..N)
            .map(|i| [SqlValue::Integer(1 + i64::from(i))])
            .collect();
        let each: Vec<&[SqlValue]> = each.iter().map(|p| p.as_slice()).collect();
        let mut unit = db.unit()?;
        let found: usize = unit
            .plugin_query_batch(&probe_ns, SELECT, &each)?
            .counts
            .iter()
            .map(|&n| n as usize)
            .sum();
        unit.commit()?;
        select_batch_store.native.push(per_op(t.elapsed()));
        ensure!(found == N as usize);
        let t = Instant::now();
        let mut unit = db.unit()?;
        let mut found = 0;
        for i in 0..N {
            found += unit
                .plugin_query(&probe_ns, SELECT, &[SqlValue::Integer(1 + i64::from(i))])?
                .rows
                .len();
        }
        unit.commit()?;
        select_store.native.push(per_op(t.elapsed()));
        ensure!(found == N as usize);
    }
    for pair in [
        &insert,
        &insert_store,
        &insert_batch,
        &insert_batch_store,
        &select,
        &select_store,
        &select_batch,
        &select_batch_store,
    ] {
        pair.report();
    }

    // wasi:keyvalue.
    // The same quota as the guest's: the store's work is the same.
    let ns = Namespace::new("native", false)?
        .with_quota(Some(plinth_host::manifest::DEFAULT_DATA_BYTES));
    native.execute_batch(
        "CREATE TABLE native_kv (bucket TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL, PRIMARY KEY (bucket, key)) WITHOUT ROWID",
    )?;
    let value = vec![7u8; 64];
    let mut set_store = Pair::new("wasi:keyvalue set (64 B)", "store API, natively");
    let mut get_store = Pair::new("wasi:keyvalue get", "store API, natively");
    let mut set_raw = Pair::new("wasi:keyvalue set (64 B)", "rusqlite upsert");
    let mut get_raw = Pair::new("wasi:keyvalue get", "rusqlite select");
    for round in 0..ROUNDS {
        let bucket = format!("b{round}");
        let t = Instant::now();
        answer(probe.call_dynamic("kv-set-loop", &[s(&bucket), Val::U32(N), Val::U32(64)])?)?;
        let guest_set = per_op(t.elapsed());
        let t = Instant::now();
        let found = answer(probe.call_dynamic("kv-get-loop", &[s(&bucket), Val::U32(N)])?)?;
        let guest_get = per_op(t.elapsed());
        ensure!(found == Val::U32(N), "{found:?}");

        let t = Instant::now();
        let mut unit = db.unit()?;
        for i in 0..N {
            unit.kv_set(&ns, &bucket, &format!("key-{i}"), &value)?;
        }
        unit.commit()?;
        set_store.native.push(per_op(t.elapsed()));
        set_store.guest.push(guest_set);
        let t = Instant::now();
        let mut unit = db.unit()?;
        for i in 0..N {
            ensure!(unit.kv_get(&ns, &bucket, &format!("key-{i}"))?.is_some());
        }
        unit.commit()?;
        get_store.native.push(per_op(t.elapsed()));
        get_store.guest.push(guest_get);

        let t = Instant::now();
        let tx = native.unchecked_transaction()?;
        for i in 0..N {
            tx.prepare_cached(
                "INSERT INTO native_kv (bucket, key, value) VALUES (?1, ?2, ?3)
                 ON CONFLICT (bucket, key) DO UPDATE SET value = excluded.value",
            )?
            .execute((&bucket, format!("key-{i}"), &value))?;
        }
        tx.commit()?;
        set_raw.native.push(per_op(t.elapsed()));
        set_raw.guest.push(guest_set);
        let t = Instant::now();
        let tx = native.unchecked_transaction()?;
        for i in 0..N {
            let v: Vec<u8> = tx
                .prepare_cached("SELECT value FROM native_kv WHERE bucket = ?1 AND key = ?2")?
                .query_row((&bucket, format!("key-{i}")), |r| r.get(0))?;
            ensure!(v.len() == 64);
        }
        tx.commit()?;
        get_raw.native.push(per_op(t.elapsed()));
        get_raw.guest.push(guest_get);
    }
    for pair in [&set_store, &get_store, &set_raw, &get_raw] {
        pair.report();
    }
    postgres()
}

/// The batches on PostgreSQL: the guest vs tokio-postgres natively.
fn postgres() -> Result<()> {
    let Some((_cluster, url)) = plinth_pg_cluster::test_database("the plugin_data bench")? else {
        return Ok(());
    };
    let db = Db::connect(&url, Options::default())?;
    let runtime = Runtime::new(db)?;
    let probe: Plugin = runtime.load_file(
        SQL_PROBE.wasm.as_ref(),
        Manifest::from_file(SQL_PROBE.manifest.as_ref())?,
    )?;
    let create =
        "CREATE TABLE items (id BIGSERIAL PRIMARY KEY, title TEXT NOT NULL, n BIGINT NOT NULL)";
    let insert = "INSERT INTO items (title, n) VALUES ($1, $2)";
    let select = "SELECT title, n FROM items WHERE id = $1";
    answer(probe.call_dynamic("run-execute", &[s(create), Val::List(vec![])])?)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let client = rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok::<_, tokio_postgres::Error>(client)
    })?;
    rt.block_on(client.batch_execute(&create.replace("items", "native_items")))?;
    let native_insert = insert.replace("items", "native_items");
    let native_select = select.replace("items", "native_items");
    println!(
        "plugin data on PostgreSQL: {N} operations per round, median of {PG_ROUNDS} interleaved rounds, loopback TCP"
    );
    let mut insert_batch = Pair::new("plinth:sql insert, execute-batch", "tokio-postgres");
    let mut select_batch = Pair::new("plinth:sql point select, query-batch", "tokio-postgres");
    let mut insert_piped = Pair::new(
        "plinth:sql insert, execute-batch",
        "tokio-postgres, pipelined",
    );
    let mut select_piped = Pair::new(
        "plinth:sql point select, query-batch",
        "tokio-postgres, pipelined",
    );
    for _ in 0..PG_ROUNDS {
        let t = Instant::now();
        let out = answer(probe.call_dynamic("bench-insert-batch", &[s(insert), Val::U32(N)])?)?;
        insert_batch.guest.push(per_op(t.elapsed()));
        ensure!(out == Val::U64(u64::from(N)), "{out:?}");
        let t = Instant::now();
        rt.block_on(async {
            client.batch_execute("BEGIN").await?;
            let stmt = client.prepare(&native_insert).await?;
            for i in 0..N {
                client
                    .execute(&stmt, &[&format!("item-{i}"), &i64::from(i)])
                    .await?;
            }
            client.batch_execute("COMMIT").await
        })?;
        insert_batch.native.push(per_op(t.elapsed()));
        // The same, pipelined as the store runs a batch: 64 in flight.
        let t = Instant::now();
        rt.block_on(async {
            client.batch_execute("BEGIN").await?;
            let stmt = client.prepare(&native_insert).await?;
            let mut pending = futures_util::stream::FuturesOrdered::new();
            for i in 0..N {
                let title = format!("item-{i}");
                let (client, stmt) = (&client, &stmt);
                pending
                    .push_back(async move { client.execute(stmt, &[&title, &i64::from(i)]).await });
                if pending.len() >= 64
                    && let Some(done) = futures_util::StreamExt::next(&mut pending).await
                {
                    done?;
                }
            }
            while let Some(done) = futures_util::StreamExt::next(&mut pending).await {
                done?;
            }
            client.batch_execute("COMMIT").await
        })?;
        insert_piped.native.push(per_op(t.elapsed()));
        insert_piped
            .guest
            .push(*insert_batch.guest.last().unwrap_or(&0.0));

        let t = Instant::now();
        let out = answer(
            probe.call_dynamic("bench-select-batch", &[s(select), Val::U32(N), Val::U32(N)])?,
        )?;
        select_batch.guest.push(per_op(t.elapsed()));
        ensure!(out == Val::U64(u64::from(N)), "{out:?}");
        let t = Instant::now();
        let found = rt.block_on(async {
            client.batch_execute("BEGIN").await?;
            let stmt = client.prepare(&native_select).await?;
            let mut found = 0;
            for i in 0..N {
                for row in client.query(&stmt, &[&(1 + i64::from(i))]).await? {
                    let _: (String, i64) = (row.get(0), row.get(1));
                    found += 1;
                }
            }
            client.batch_execute("COMMIT").await?;
            Ok::<_, tokio_postgres::Error>(found)
        })?;
        select_batch.native.push(per_op(t.elapsed()));
        ensure!(found == N);
        let t = Instant::now();
        let found = rt.block_on(async {
            client.batch_execute("BEGIN").await?;
            let stmt = client.prepare(&native_select).await?;
            let mut pending = futures_util::stream::FuturesOrdered::new();
            let mut found = 0;
            for i in 0..N {
                let (client, stmt) = (&client, &stmt);
                pending.push_back(async move { client.query(stmt, &[&(1 + i64::from(i))]).await });
                if pending.len() >= 64
                    && let Some(rows) = futures_util::StreamExt::next(&mut pending).await
                {
                    for row in rows? {
                        let _: (String, i64) = (row.get(0), row.get(1));
                        found += 1;
                    }
                }
            }
            while let Some(rows) = futures_util::StreamExt::next(&mut pending).await {
                for row in rows? {
                    let _: (String, i64) = (row.get(0), row.get(1));
                    found += 1;
                }
            }
            client.batch_execute("COMMIT").await?;
            Ok::<_, tokio_postgres::Error>(found)
        })?;
        select_piped.native.push(per_op(t.elapsed()));
        select_piped
            .guest
            .push(*select_batch.guest.last().unwrap_or(&0.0));
        ensure!(found == N);
    }
    for pair in [&insert_batch, &insert_piped, &select_batch, &select_piped] {
        pair.report();
    }
    Ok(())
}
