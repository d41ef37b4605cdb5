//! Several plinth processes on one database: two processes of this test
//! binary, four threads each, mixing auth, db-test and trapping calls on
//! one PostgreSQL database (in the `all_postgres` build) or one SQLite file
//! (in `all`). The parent counts what they report against what the database
//! holds.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, ensure};
use plinth_guests::{AUTH, DB_TEST, MISBEHAVE};
use plinth_host::{Access, Manifest, Plugin, Runtime, RuntimeOptions, Val};
use plinth_store::{Clock, Db, Options};

use crate::util::{Fixture, ok};

const PW: &str = "correct horse battery staple";
const NEW_PW: &str = "a brand new passphrase here";
/// Reset tokens the workers race for: each worker tries each once.
const TOKENS: usize = 24;
const THREADS: usize = 4;
const ROUNDS: usize = 60;

/// The environment a worker process is started with.
const TARGET: &str = "PLINTH_STRESS_DB";
const WORKER: &str = "PLINTH_STRESS_WORKER";
const TOKEN_FILE: &str = "PLINTH_STRESS_TOKENS";

#[test]
fn two_processes_of_four_threads_account_for_every_row_token_and_name() -> Result<()> {
    let f = Fixture::new()?;
    let auth = f.auth()?;
    let mut tokens = Vec::new();
    for k in 0..TOKENS {
        let email = format!("reset-{k}@example.com");
        ok(auth.sign_up(&format!("reset-{k}"), &email, PW))?;
        ok(auth.request_password_reset(&email))?;
        tokens.push(f.mailed_token(&email)?);
    }
    ok(auth.sign_up("signer", "signer@example.com", PW))?;
    let token_file = f.dir.path().join("tokens");
    std::fs::write(&token_file, tokens.join("\n"))?;
    let target = f.runtime.db().location().to_string();
    let target = match &f.pg {
        // The display form has no password; the test cluster needs none.
        Some((cluster, name)) => cluster.url(name),
        None => target,
    };
    // The worker's test name: `hosts::stress_worker`, under `suite::` in
    // the PostgreSQL build.
    let module = module_path!();
    let worker = format!(
        "{}::stress_worker",
        module.split_once("::").map_or(module, |(_, rest)| rest)
    );
    let workers: Vec<_> = (0..2)
        .map(|id| {
            Command::new(std::env::current_exe()?)
                .args(["--exact", &worker, "--ignored", "--nocapture"])
                .env(TARGET, &target)
                .env(WORKER, id.to_string())
                .env(TOKEN_FILE, &token_file)
                .output()
                .context("starting a worker")
        })
        .collect::<Result<_>>()?;
    let mut total: BTreeMap<String, i64> = BTreeMap::new();
    for (id, out) in workers.iter().enumerate() {
        let text = String::from_utf8_lossy(&out.stdout);
        ensure!(
            out.status.success(),
            "worker {id} failed: {text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let line = text
            .lines()
            .find_map(|l| l.strip_prefix("STRESS "))
            .with_context(|| format!("worker {id} reported nothing: {text}"))?;
        for pair in line.split_whitespace() {
            let (k, v) = pair.split_once('=').context("key=value")?;
            *total.entry(k.into()).or_default() += v.parse::<i64>()?;
        }
    }
    let n = |k: &str| total.get(k).copied().unwrap_or(0);
    // Every write that returned normally is there; no trapped one is.
    let kept = f.sql_i64("SELECT COUNT(*) FROM users WHERE name LIKE 'w_-t_-%'", &[])?;
    ensure!(
        kept == n("kept"),
        "{kept} rows for {} kept writes",
        n("kept")
    );
    let trapped = f.sql_i64("SELECT COUNT(*) FROM users WHERE name LIKE 'w_-t_-%0'", &[])?;
    ensure!(
        trapped == 0 && n("trapped") > 0,
        "{trapped} trapped writes kept"
    );
    // Each reset token was consumed exactly once across both processes.
    ensure!(
        n("resets") == TOKENS as i64,
        "{} resets of {TOKENS} tokens",
        n("resets")
    );
    let left = f.sql_i64(
        "SELECT COUNT(*) FROM password_reset_tokens WHERE user_uuid IN
             (SELECT uuid FROM users WHERE name LIKE 'reset-%')",
        &[],
    )?;
    ensure!(left == 0, "{left} reset tokens left");
    // Each raced name was taken exactly once; the loser got a conflict.
    let raced = f.sql_i64("SELECT COUNT(*) FROM users WHERE name LIKE 'race-%'", &[])?;
    ensure!(
        raced == n("won") && n("won") + n("lost") == 2 * raced,
        "{raced} names, {} won, {} lost",
        n("won"),
        n("lost")
    );
    ensure!(n("signins") > 0 && n("dbtest") > 0, "{total:?}");
    // Past the harness's capture: the CI log shows the counts.
    plinth_pg_cluster::say(&format!(
        "two processes × {THREADS} threads on {}: {total:?}",
        f.runtime.db().dialect()
    ));
    Ok(())
}

/// One worker process: started by the test above, never on its own.
#[test]
#[ignore = "a worker process of two_processes_of_four_threads_…, started by it"]
fn stress_worker() -> Result<()> {
    let target = std::env::var(TARGET).context("started without a database")?;
    let id: usize = std::env::var(WORKER)?.parse()?;
    let tokens: Vec<String> = std::fs::read_to_string(std::env::var(TOKEN_FILE)?)?
        .lines()
        .map(str::to_string)
        .collect();
    let clock = Arc::new(Clock::fixed(crate::util::unix_now()));
    let db = Db::at(
        &target,
        Options {
            clock,
            ..Options::default()
        },
    )?;
    db.ensure_open()?;
    let runtime = Runtime::with_options(
        db,
        RuntimeOptions::default().capability(plinth_testing::TEST_CAPABILITY),
    )?;
    let relaxed = |guest: plinth_guests::Guest| -> Result<Manifest> {
        let mut m = Manifest::from_file(guest.manifest.as_ref())?;
        // Wall-clock limits include waits for other hosts' locks.
        m.limits.time = std::time::Duration::from_secs(30);
        Ok(m)
    };
    let load = |guest: plinth_guests::Guest, m: Manifest| -> Result<Plugin> {
        Ok(runtime.load_file(guest.wasm.as_ref(), m)?)
    };
    let writer = load(MISBEHAVE, relaxed(MISBEHAVE)?)?;
    let auth = plinth_auth::AuthPlugin::new(load(AUTH, relaxed(AUTH)?)?)?;
    let db_test = plinth_testing::DbTestPlugin::new(load(
        DB_TEST,
        relaxed(DB_TEST)?.grant(plinth_testing::TEST_CLOCK, Access::Write),
    )?)?;
    let counts = Arc::new(Mutex::new(BTreeMap::<&'static str, i64>::new()));
    let tokens = Arc::new(tokens);
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let (writer, auth, db_test) = (writer.clone(), auth.clone(), db_test.clone());
            let (counts, tokens) = (counts.clone(), tokens.clone());
            std::thread::spawn(move || -> Result<()> {
                let count = |k: &'static str| {
                    *counts
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .entry(k)
                        .or_default() += 1;
                };
                for i in 0..ROUNDS {
                    let name = format!("w{id}-t{t}-{i}");
                    match i % 10 {
                        0 => {
                            ensure!(write_then(&writer, &name, "trap").is_err());
                            count("trapped");
                        }
                        1..=3 => {
                            let out = write_then(&writer, &name, "return-normally")?;
                            ensure!(matches!(&out[..], [Val::Result(Ok(_))]), "{out:?}");
                            count("kept");
                        }
                        4 => {
                            // Both processes try the same name.
                            let race = format!("race-{t}-{i}");
                            match auth.sign_up(&race, &format!("{race}@example.com"), PW)? {
                                Ok(_) => count("won"),
                                Err(
                                    plinth_auth::AuthError::NameTaken
                                    | plinth_auth::AuthError::EmailTaken,
                                ) => count("lost"),
                                Err(e) => anyhow::bail!("sign-up {race}: {e:?}"),
                            }
                        }
                        5 => {
                            let token = &tokens[(t * ROUNDS / 10 + i / 10) % tokens.len()];
                            match auth.reset_password(token, NEW_PW)? {
                                Ok(()) => count("resets"),
                                Err(plinth_auth::AuthError::InvalidToken) => {}
                                Err(e) => anyhow::bail!("reset: {e:?}"),
                            }
                        }
                        6 => {
                            let checks = db_test.run()?;
                            let failed: Vec<_> = checks.iter().filter(|c| !c.passed).collect();
                            ensure!(failed.is_empty(), "db-test: {failed:?}");
                            count("dbtest");
                        }
                        _ => {
                            ok(auth.sign_in("signer@example.com", PW))?;
                            count("signins");
                        }
                    }
                }
                Ok(())
            })
        })
        .collect();
    for t in threads {
        t.join()
            .map_err(|_| anyhow::anyhow!("a thread panicked"))??;
    }
    let counts = counts
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ");
    println!("STRESS {counts}");
    Ok(())
}

fn write_then(p: &Plugin, name: &str, what: &str) -> plinth_host::Result<Vec<Val>> {
    p.call_dynamic(
        "write-then",
        &[Val::String(name.into()), Val::Variant(what.into(), None)],
    )
}
