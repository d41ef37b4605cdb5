//! Guests that trap, loop or eat memory after writing: each is stopped with
//! a typed error, nothing it wrote is kept, and the runtime serves the next
//! call normally.

use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use plinth_guests::MISBEHAVE;
use plinth_host::{Error, Plugin, Val};

use crate::util::Fixture;

pub(crate) fn write_then(p: &Plugin, name: &str, behaviour: Val) -> plinth_host::Result<Vec<Val>> {
    p.call_dynamic("write-then", &[Val::String(name.into()), behaviour])
}

pub(crate) fn case(name: &str) -> Val {
    Val::Variant(name.into(), None)
}

fn user_exists(f: &Fixture, name: &str) -> Result<bool> {
    let n = f.sql_i64("SELECT COUNT(*) FROM users WHERE name = ?1", &[name])?;
    Ok(n == 1)
}

/// After a failure, a normal call on the same runtime still works and commits.
fn runtime_still_serves(f: &Fixture, p: &Plugin, name: &str) -> Result<()> {
    let out = write_then(p, name, case("return-normally"))?;
    ensure!(
        out == [Val::Result(Ok(Some(Box::new(Val::String(
            "returned".into()
        )))))],
        "{out:?}"
    );
    ensure!(
        user_exists(f, name)?,
        "the normal call's write was not kept"
    );
    Ok(())
}

#[test]
fn a_guest_that_returns_normally_commits_what_it_wrote() -> Result<()> {
    let f = Fixture::new()?;
    let p = f.load(MISBEHAVE)?;
    runtime_still_serves(&f, &p, "kept")
}

#[test]
fn a_guest_that_traps_after_writing_leaves_nothing_behind() -> Result<()> {
    let f = Fixture::new()?;
    let p = f.load(MISBEHAVE)?;
    match write_then(&p, "trapper", case("trap")) {
        Err(Error::Trap {
            plugin,
            function,
            message,
        }) => {
            ensure!(
                plugin == "misbehave" && function == "write-then",
                "{plugin}.{function}"
            );
            // The guest keeps its name section: the backtrace names its
            // frames, from the export down to the panic machinery.
            ensure!(
                message.contains("misbehave.wasm!write-then")
                    && message.contains("panicking::panic_fmt"),
                "{message}"
            );
        }
        other => anyhow::bail!("expected a trap, got {other:?}"),
    }
    ensure!(
        !user_exists(&f, "trapper")?,
        "the trapped call's write was kept"
    );
    runtime_still_serves(&f, &p, "after-trap")
}

#[test]
fn a_guest_that_loops_forever_is_stopped_near_its_time_limit() -> Result<()> {
    let f = Fixture::new()?;
    let p = f.load(MISBEHAVE)?;
    let limit = p.limits().time;
    ensure!(limit == Duration::from_millis(300));
    let started = Instant::now();
    match write_then(&p, "looper", case("loop-forever")) {
        Err(Error::TimedOut { limit: l, .. }) => ensure!(l == limit),
        other => anyhow::bail!("expected a time-out, got {other:?}"),
    }
    let took = started.elapsed();
    // The limit plus a generous margin for a loaded machine.
    ensure!(
        took >= limit && took < limit + Duration::from_secs(2),
        "stopped after {took:?}"
    );
    ensure!(
        !user_exists(&f, "looper")?,
        "the stopped call's write was kept"
    );
    runtime_still_serves(&f, &p, "after-loop")
}

#[test]
fn a_guest_that_allocates_past_its_limit_fails_with_a_memory_error() -> Result<()> {
    let f = Fixture::new()?;
    let p = f.load(MISBEHAVE)?;
    let out = write_then(
        &p,
        "small",
        Val::Variant("grow".into(), Some(Box::new(Val::U32(8)))),
    )?;
    ensure!(matches!(&out[..], [Val::Result(Ok(_))]), "{out:?}");
    match write_then(
        &p,
        "hog",
        Val::Variant("grow".into(), Some(Box::new(Val::U32(64)))),
    ) {
        Err(Error::MemoryLimit { limit, .. }) => ensure!(limit == 32 << 20),
        other => anyhow::bail!("expected a memory limit error, got {other:?}"),
    }
    ensure!(user_exists(&f, "small")? && !user_exists(&f, "hog")?);
    runtime_still_serves(&f, &p, "after-hog")
}

#[test]
fn many_failures_in_a_row_do_not_wear_the_runtime_down() -> Result<()> {
    let f = Fixture::new()?;
    let p = f.load(MISBEHAVE)?;
    for i in 0..30 {
        let behaviour = match i % 2 {
            0 => case("trap"),
            _ => Val::Variant("grow".into(), Some(Box::new(Val::U32(64)))),
        };
        ensure!(write_then(&p, &format!("bad{i}"), behaviour).is_err());
    }
    ensure!(f.rows("users")? == 0);
    runtime_still_serves(&f, &p, "survivor")
}

/// The epoch deadline stops running wasm; a guest that waits in the host
/// instead (`std::thread::sleep`, a blocking `wasi:io/poll`) is stopped at
/// the same deadline: its 300 ms limit ends an hour's sleep, as timed out,
/// and what it wrote is rolled back.
#[test]
fn a_guest_that_sleeps_past_its_time_limit_is_stopped_at_the_deadline() -> Result<()> {
    let f = Fixture::new()?;
    let p = f.load(MISBEHAVE)?;
    let started = Instant::now();
    let hour = Val::Variant("sleep".into(), Some(Box::new(Val::U32(3_600_000))));
    match write_then(&p, "sleeper", hour) {
        Err(Error::TimedOut { limit, .. }) => ensure!(limit == Duration::from_millis(300)),
        other => anyhow::bail!("expected a time-out, got {other:?}"),
    }
    let took = started.elapsed();
    ensure!(took < Duration::from_secs(3), "the sleep ran for {took:?}");
    ensure!(
        !user_exists(&f, "sleeper")?,
        "the timed-out call's write was kept"
    );
    // A short sleep within the limit is fine.
    let short = Val::Variant("sleep".into(), Some(Box::new(Val::U32(20))));
    write_then(&p, "napper", short)?;
    ensure!(user_exists(&f, "napper")?);
    runtime_still_serves(&f, &p, "after-sleep")
}

/// A call that holds the write lock and sleeps holds it only until its own
/// deadline: a sign-up waiting for the lock meanwhile gets it when the
/// sleeper is stopped, and succeeds.
#[test]
fn a_sleeping_writer_holds_the_lock_only_until_its_deadline() -> Result<()> {
    let f = Fixture::new()?;
    let p = f.load(MISBEHAVE)?;
    let auth = f.auth()?;
    let sleeper = std::thread::spawn(move || {
        let hour = Val::Variant("sleep".into(), Some(Box::new(Val::U32(3_600_000))));
        write_then(&p, "holder", hour)
    });
    // Let the sleeper take the write lock first.
    std::thread::sleep(Duration::from_millis(100));
    let started = Instant::now();
    crate::util::ok(auth.sign_up(
        "waiter",
        "waiter@example.com",
        "correct horse battery staple",
    ))?;
    let waited = started.elapsed();
    ensure!(waited < Duration::from_secs(3), "sign-up waited {waited:?}");
    match sleeper.join() {
        Ok(Err(Error::TimedOut { .. })) => {}
        other => anyhow::bail!("expected the sleeper to time out, got {other:?}"),
    }
    ensure!(!user_exists(&f, "holder")?);
    ensure!(user_exists(&f, "waiter")?);
    Ok(())
}

/// When another writer holds the database for longer than a call can wait,
/// the call is not stopped mid-wait: its wait ends a little before its
/// deadline, the store answers `busy`, and auth answers `busy` — typed,
/// retryable, nothing written.
#[test]
fn a_writer_that_cannot_get_the_lock_in_time_answers_busy() -> Result<()> {
    use plinth_host::{Limits, Manifest};
    let f = Fixture::new()?;
    let manifest = Manifest::from_file(plinth_guests::AUTH.manifest.as_ref())?.limits(Limits {
        time: Duration::from_millis(800),
        ..Limits::default()
    });
    let auth = plinth_auth::AuthPlugin::new(f.load_with(plinth_guests::AUTH, manifest)?)?;
    // Another process holds the write lock (SQLite); another host has
    // written the same name and email and not committed yet, so the call's
    // insert waits on the unique index (PostgreSQL).
    enum Holder {
        Sqlite(rusqlite::Connection),
        Postgres(plinth_store::Unit),
    }
    let other = match &f.pg {
        None => {
            let conn = f.sqlite()?;
            conn.execute_batch("BEGIN IMMEDIATE")?;
            Holder::Sqlite(conn)
        }
        Some((cluster, name)) => {
            let host = plinth_store::Db::connect(&cluster.url(name), Default::default())?;
            let mut unit = host.unit()?;
            unit.create_user(&plinth_store::NewUser {
                name: "blocked".into(),
                email: "blocked@example.com".into(),
            })?;
            Holder::Postgres(unit)
        }
    };
    let started = Instant::now();
    let answer = crate::util::refused(auth.sign_up(
        "blocked",
        "blocked@example.com",
        "correct horse battery staple",
    ))?;
    let took = started.elapsed();
    ensure!(answer == plinth_auth::AuthError::Busy, "{answer:?}");
    ensure!(took < Duration::from_millis(800), "it took {took:?}");
    match other {
        Holder::Sqlite(conn) => conn.execute_batch("ROLLBACK")?,
        Holder::Postgres(unit) => unit.rollback(),
    }
    ensure!(!user_exists(&f, "blocked")?);
    // With the lock free, the same call goes through.
    crate::util::ok(auth.sign_up(
        "blocked",
        "blocked@example.com",
        "correct horse battery staple",
    ))?;
    Ok(())
}

/// A call may write only so many rows to the database (the manifest's
/// `[limits] rows`, 10,000 by default): one that writes more is stopped with
/// a typed error and keeps nothing, and the next call works.
#[test]
fn a_guest_that_writes_past_its_row_limit_is_stopped_and_keeps_nothing() -> Result<()> {
    use plinth_host::{Limits, Manifest};
    let f = Fixture::new()?;
    let manifest = Manifest::from_file(MISBEHAVE.manifest.as_ref())?.limits(Limits {
        rows: 100,
        time: Duration::from_secs(10),
        ..Limits::default()
    });
    let p = f.load_with(MISBEHAVE, manifest)?;
    let many = |n: u32| Val::Variant("write-many".into(), Some(Box::new(Val::U32(n))));
    match write_then(&p, "", many(500)) {
        Err(Error::RowLimit { limit, .. }) => ensure!(limit == 100),
        other => anyhow::bail!("expected a row limit, got {other:?}"),
    }
    ensure!(f.rows("users")? == 0, "rows of the stopped call were kept");
    // Exactly at the limit is allowed; one more, even as the call's last
    // write, is not.
    write_then(&p, "", many(100))?;
    ensure!(f.rows("users")? == 100);
    match write_then(&p, "extra", many(100)) {
        Err(Error::RowLimit { .. }) => {}
        other => anyhow::bail!("expected a row limit, got {other:?}"),
    }
    ensure!(f.rows("users")? == 100);
    // The default limit holds when the manifest says nothing of rows (this
    // one only gives the 10,001 inserts the time they take).
    let p = f.load_with(
        MISBEHAVE,
        Manifest::new("misbehave")
            .grant(
                plinth_host::capabilities::users::USERS,
                plinth_host::Access::Write,
            )
            .limits(Limits {
                time: Duration::from_secs(30),
                ..Limits::default()
            }),
    )?;
    match write_then(
        &p,
        "big",
        Val::Variant("write-many".into(), Some(Box::new(Val::U32(10_001)))),
    ) {
        Err(Error::RowLimit { limit, .. }) => ensure!(limit == 10_000),
        other => anyhow::bail!("expected a row limit, got {other:?}"),
    }
    runtime_still_serves(&f, &p, "after-many")
}
