//! Hands statements through `plinth:sql`: the tests' way to try every road
//! into (and out of) a plugin's own tables.

// The generated shim of `run-batch` takes its flat arguments one by one.
#[allow(clippy::too_many_arguments)]
mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "local:sql-probe/sql-probe",
        generate_all,
    });
}

use bindings::plinth::database::types::NewUser;
use bindings::plinth::database::users;
use bindings::plinth::sql::sql;
use bindings::plinth::sql::types::{Dialect, Error, Outcome, Rows, Value};
use bindings::wasi::keyvalue::{atomics, batch, store};

struct Probe;

impl bindings::Guest for Probe {
    fn run_execute(statement: String, params: Vec<Value>) -> Result<Outcome, Error> {
        sql::execute(&statement, &params)
    }

    fn run_query(statement: String, params: Vec<Value>) -> Result<Rows, Error> {
        sql::query(&statement, &params)
    }

    fn which_dialect() -> Dialect {
        sql::current_dialect()
    }

    fn execute_then_trap(statements: Vec<String>) {
        for s in &statements {
            if sql::execute(s, &[]).is_err() {
                break;
            }
        }
        panic!("trapping after {} statements", statements.len());
    }

    fn execute_each(statements: Vec<String>) -> Vec<Result<Outcome, Error>> {
        statements.iter().map(|s| sql::execute(s, &[])).collect()
    }

    fn bench_insert(statement: String, count: u32) -> Result<u64, Error> {
        let mut changed = 0;
        for i in 0..count {
            let params = [
                Value::Text(format!("item-{i}")),
                Value::Integer(i64::from(i)),
            ];
            changed += sql::execute(&statement, &params)?.rows_affected;
        }
        Ok(changed)
    }

    fn bench_select(statement: String, count: u32, rows: u32) -> Result<u64, Error> {
        let mut found = 0;
        for i in 0..count {
            let params = [Value::Integer(1 + i64::from(i % rows.max(1)))];
            found += sql::query(&statement, &params)?.rows.len() as u64;
        }
        Ok(found)
    }

    fn bench_insert_batch(statement: String, count: u32) -> Result<u64, Error> {
        let mut params = Vec::with_capacity(2 * count as usize);
        for i in 0..count {
            params.push(Value::Text(format!("item-{i}")));
            params.push(Value::Integer(i64::from(i)));
        }
        sql::execute_batch(&statement, count, &params)
    }

    fn bench_select_batch(statement: String, count: u32, rows: u32) -> Result<u64, Error> {
        let params: Vec<Value> = (0..count)
            .map(|i| Value::Integer(1 + i64::from(i % rows.max(1))))
            .collect();
        let found = sql::query_batch(&statement, count, &params)?;
        Ok(found.counts.iter().map(|&n| u64::from(n)).sum())
    }

    fn run_execute_batch(statement: String, each: Vec<Vec<Value>>) -> Result<u64, Error> {
        let runs = u32::try_from(each.len()).unwrap_or(u32::MAX);
        let params: Vec<Value> = each.into_iter().flatten().collect();
        sql::execute_batch(&statement, runs, &params)
    }

    fn run_batch(
        statement: String,
        runs: u32,
        params: Vec<Value>,
        query: bool,
    ) -> Result<(u64, Vec<u32>, Vec<Value>), Error> {
        if query {
            let rows = sql::query_batch(&statement, runs, &params)?;
            Ok((0, rows.counts, rows.values))
        } else {
            Ok((
                sql::execute_batch(&statement, runs, &params)?,
                Vec::new(),
                Vec::new(),
            ))
        }
    }

    fn kv_set_loop(bucket: String, count: u32, size: u32) -> Result<(), String> {
        let b = open(&bucket)?;
        let value = vec![7u8; size as usize];
        for i in 0..count {
            b.set(&format!("key-{i}"), &value).map_err(text)?;
        }
        Ok(())
    }

    fn kv_get_loop(bucket: String, count: u32) -> Result<u32, String> {
        let b = open(&bucket)?;
        let mut found = 0;
        for i in 0..count {
            if b.get(&format!("key-{i}")).map_err(text)?.is_some() {
                found += 1;
            }
        }
        Ok(found)
    }

    fn kv_set(bucket: String, key: String, value: Vec<u8>) -> Result<(), String> {
        open(&bucket)?.set(&key, &value).map_err(text)
    }

    fn kv_get(bucket: String, key: String) -> Result<Option<Vec<u8>>, String> {
        open(&bucket)?.get(&key).map_err(text)
    }

    fn kv_delete(bucket: String, key: String) -> Result<(), String> {
        open(&bucket)?.delete(&key).map_err(text)
    }

    fn kv_exists(bucket: String, key: String) -> Result<bool, String> {
        open(&bucket)?.exists(&key).map_err(text)
    }

    fn kv_keys(
        bucket: String,
        cursor: Option<String>,
    ) -> Result<(Vec<String>, Option<String>), String> {
        let page = open(&bucket)?.list_keys(cursor.as_deref()).map_err(text)?;
        Ok((page.keys, page.cursor))
    }

    fn kv_increment(bucket: String, key: String, delta: i64) -> Result<i64, String> {
        atomics::increment(&open(&bucket)?, &key, delta).map_err(text)
    }

    fn kv_cas_append(bucket: String, key: String, mark: u8) -> Result<u32, String> {
        let b = open(&bucket)?;
        let mut cas = atomics::Cas::new(&b, &key).map_err(text)?;
        for attempt in 1..=1000 {
            let mut next = cas.current().map_err(text)?.unwrap_or_default();
            next.push(mark);
            match atomics::swap(cas, &next) {
                Ok(()) => return Ok(attempt),
                Err(atomics::CasError::CasFailed(fresh)) => cas = fresh,
                Err(atomics::CasError::StoreError(e)) => return Err(text(e)),
            }
        }
        Err("no swap in 1000 attempts".into())
    }

    fn kv_set_many(bucket: String, pairs: Vec<(String, Vec<u8>)>) -> Result<(), String> {
        batch::set_many(&open(&bucket)?, &pairs).map_err(text)
    }

    fn kv_get_many(
        bucket: String,
        keys: Vec<String>,
    ) -> Result<Vec<Option<(String, Vec<u8>)>>, String> {
        batch::get_many(&open(&bucket)?, &keys).map_err(text)
    }

    fn write_all_then_trap(statement: String, bucket: String, key: String, name: String) {
        let written = Self::write_all(statement, bucket, key, name);
        panic!("trapping after writing to all three stores: {written:?}");
    }

    fn write_all_then_fail(
        statement: String,
        bucket: String,
        key: String,
        name: String,
        how: String,
    ) {
        let written = Self::write_all(statement, bucket, key, name);
        if how == "grow" {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![1; 1 << 20]);
                std::hint::black_box(&hoard);
            }
        }
        let mut n: u64 = 0;
        loop {
            n = std::hint::black_box(n.wrapping_add(1));
            if n == 0 {
                panic!("{written:?}");
            }
        }
    }

    fn write_all(
        statement: String,
        bucket: String,
        key: String,
        name: String,
    ) -> Result<(), String> {
        if !statement.is_empty() {
            sql::execute(&statement, &[]).map_err(|e| format!("{e:?}"))?;
        }
        open(&bucket)?.set(&key, b"written").map_err(text)?;
        users::create_user(&NewUser {
            email: format!("{name}@example.com"),
            name,
        })
        .map_err(|e| format!("{e:?}"))?;
        Ok(())
    }
}

fn open(bucket: &str) -> Result<store::Bucket, String> {
    store::open(bucket).map_err(text)
}

fn text(e: store::Error) -> String {
    format!("{e:?}")
}

bindings::export!(Probe with_types_in bindings);
