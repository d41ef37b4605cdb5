//! SQLite vs PostgreSQL, and plinth's overhead on PostgreSQL, measured side
//! by side in one run:
//!
//! 1. each operation family through the store, on an SQLite file and on a
//!    PostgreSQL database over the server's local socket;
//! 2. a user lookup from a guest (the bench plugin) vs the same query with
//!    tokio-postgres in native Rust, on the same server;
//! 3. validate-session throughput of two host processes vs one on the same
//!    server.
//!
//! `cargo bench -p plinth-tests --bench postgres --profile release`. The
//! server is a throwaway cluster started by the bench (Debian's binaries).

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use plinth_auth::AuthPlugin;
use plinth_guests::{AUTH, BENCH};
use plinth_host::{Manifest, Runtime, RuntimeOptions};
use plinth_pg_cluster::{Availability, Cluster};
use plinth_store::{Db, NewUser, Options, TokenKind};
use plinth_testing::BenchPlugin;

const PW: &str = "correct horse battery staple";
const WORKER: &str = "PLINTH_BENCH_PG_WORKER";
const REPEATS: usize = 7;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Median time per operation of `ops` runs of `f`, over [`REPEATS`] rounds.
fn per_op(ops: u32, mut f: impl FnMut(u32) -> Result<()>) -> Result<Duration> {
    let mut rounds = Vec::new();
    let mut n = 0;
    for _ in 0..REPEATS {
        let start = Instant::now();
        for _ in 0..ops {
            f(n)?;
            n += 1;
        }
        rounds.push(start.elapsed() / ops);
    }
    Ok(median(rounds))
}

fn runtime(db: Db) -> Result<Runtime> {
    Ok(Runtime::with_options(db, RuntimeOptions::default())?)
}

fn load(runtime: &Runtime, guest: plinth_guests::Guest) -> Result<plinth_host::Plugin> {
    let manifest = Manifest::from_file(guest.manifest.as_ref())?;
    Ok(runtime.load_file(guest.wasm.as_ref(), manifest)?)
}

fn families(db: &Db) -> Result<Vec<(&'static str, Duration)>> {
    let mut out = Vec::new();
    let user = db.with_unit(|u| {
        u.create_user(&NewUser {
            name: "bench".into(),
            email: "bench@example.com".into(),
        })
    })?;
    out.push((
        "create user (one unit each)",
        per_op(100, |n| {
            db.with_unit(|u| {
                u.create_user(&NewUser {
                    name: format!("u{n}"),
                    email: format!("u{n}@example.com"),
                })
            })?;
            Ok(())
        })?,
    ));
    out.push((
        "get user by email",
        per_op(500, |_| {
            db.unit()?.get_user_by_email("bench@example.com")?;
            Ok(())
        })?,
    ));
    out.push((
        "create + get session",
        per_op(100, |n| {
            let id = format!("{n:064}");
            db.with_unit(|u| u.create_session(&id, &user.uuid, 600))?;
            db.unit()?.get_session(&id)?;
            Ok(())
        })?,
    ));
    out.push((
        "create + consume token",
        per_op(100, |n| {
            let token = format!("{n:064}");
            db.with_unit(|u| u.create_token(TokenKind::PasswordReset, &token, &user.uuid, 600))?;
            db.with_unit(|u| u.consume_token(TokenKind::PasswordReset, &token))?;
            Ok(())
        })?,
    ));
    out.push((
        "record + clear failure",
        per_op(100, |_| {
            db.with_unit(|u| {
                u.record_failure("sign-in:bench")?;
                u.clear_failures("sign-in:bench")
            })?;
            Ok(())
        })?,
    ));
    out.push((
        "queue mail under the limit",
        per_op(100, |n| {
            db.with_unit(|u| {
                u.queue_mail_limited(
                    &plinth_store::Mail {
                        to: format!("r{n}@example.com"),
                        subject: "hello".into(),
                        body: "body".into(),
                    },
                    600,
                    3,
                )
            })?;
            Ok(())
        })?,
    ));
    Ok(out)
}

/// `times` lookups of one user with tokio-postgres, prepared once, on a
/// multi-threaded runtime as a native service would run it.
fn native_lookups(url: &str, email: &str, times: u32) -> Result<Duration> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
        tokio::spawn(conn);
        let stmt = client
            .prepare(
                "SELECT uuid, name, email, email_verified, avatar, bio, created_at, updated_at
                 FROM users WHERE email = $1",
            )
            .await?;
        let mut rounds = Vec::new();
        for _ in 0..REPEATS {
            let start = Instant::now();
            for _ in 0..times {
                let row = client.query_one(&stmt, &[&email]).await?;
                let name: String = row.try_get(1)?;
                ensure!(name == "bench");
            }
            rounds.push(start.elapsed() / times);
        }
        Ok(median(rounds))
    })
}

fn guest_lookups(bench: &BenchPlugin, email: &str, times: u32) -> Result<Duration> {
    let mut rounds = Vec::new();
    for _ in 0..REPEATS {
        let start = Instant::now();
        let found = bench.lookup_by_email(email, times)?;
        ensure!(found == Ok(times), "{found:?}");
        rounds.push(start.elapsed() / times);
    }
    Ok(median(rounds))
}

/// One worker process: validate-session on two threads for the given
/// seconds; prints how many calls it made.
fn worker(url: &str) -> Result<()> {
    let seconds: u64 = std::env::var("PLINTH_BENCH_PG_SECONDS")?.parse()?;
    let token = std::env::var("PLINTH_BENCH_PG_SESSION")?;
    let runtime = runtime(Db::connect(url, Options::default())?)?;
    let auth = AuthPlugin::new(load(&runtime, AUTH)?)?;
    // Warm: the instance pool and the connections.
    for _ in 0..50 {
        auth.validate_session(&token)?
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    }
    let until = Instant::now() + Duration::from_secs(seconds);
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let (auth, token) = (auth.clone(), token.clone());
            std::thread::spawn(move || -> Result<u64> {
                let mut n = 0;
                while Instant::now() < until {
                    auth.validate_session(&token)?
                        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
                    n += 1;
                }
                Ok(n)
            })
        })
        .collect();
    let mut calls = 0;
    for t in threads {
        calls += t.join().map_err(|_| anyhow::anyhow!("panicked"))??;
    }
    println!("CALLS {calls}");
    Ok(())
}

fn throughput(url: &str, session: &str, processes: usize, seconds: u64) -> Result<f64> {
    let children: Vec<_> = (0..processes)
        .map(|_| {
            Command::new(std::env::current_exe()?)
                .env(WORKER, url)
                .env("PLINTH_BENCH_PG_SECONDS", seconds.to_string())
                .env("PLINTH_BENCH_PG_SESSION", session)
                .stdout(std::process::Stdio::piped())
                .spawn()
                .context("starting a worker")
        })
        .collect::<Result<_>>()?;
    let mut calls = 0u64;
    for child in children {
        let out = child.wait_with_output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        ensure!(out.status.success(), "a worker failed: {text}");
        calls += text
            .lines()
            .find_map(|l| l.strip_prefix("CALLS "))
            .context("no count")?
            .parse::<u64>()?;
    }
    Ok(calls as f64 / seconds as f64)
}

fn main() -> Result<()> {
    if let Ok(url) = std::env::var(WORKER) {
        return worker(&url);
    }
    let cluster: &Cluster = match Cluster::shared()? {
        Availability::Running(c) => c,
        Availability::Missing(why) => bail!("no PostgreSQL: {why}"),
    };
    let dir = tempfile::tempdir()?;
    println!("# SQLite vs PostgreSQL\n");
    println!(
        "machine: {} cores; PostgreSQL 15 on this machine, reached over its Unix socket\n",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    let sqlite = Db::open(dir.path().join("bench.db"))?;
    let pg_url = {
        let tcp = cluster.database()?;
        cluster.socket_url(plinth_pg_cluster::database_name(&tcp))
    };
    let pg = Db::connect(&pg_url, Options::default())?;
    let on_sqlite = families(&sqlite)?;
    let on_pg = families(&pg)?;
    println!(
        "| operation (through the store, median of {REPEATS}) | SQLite | PostgreSQL | PostgreSQL ÷ SQLite |"
    );
    println!("|---|---|---|---|");
    for ((name, s), (_, p)) in on_sqlite.iter().zip(&on_pg) {
        println!(
            "| {name} | {:.1} µs | {:.1} µs | {:.2}× |",
            s.as_secs_f64() * 1e6,
            p.as_secs_f64() * 1e6,
            p.as_secs_f64() / s.as_secs_f64()
        );
    }

    // A user to look up and a session to validate, made through auth.
    let runtime = runtime(pg.clone())?;
    let auth = AuthPlugin::new(load(&runtime, AUTH)?)?;
    let bench = BenchPlugin::new(load(&runtime, BENCH)?)?;
    auth.sign_up("looked-up", "looked-up@example.com", PW)?
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let session = auth
        .sign_in("looked-up@example.com", PW)?
        .map_err(|e| anyhow::anyhow!("{e:?}"))?
        .token;
    let email = "bench@example.com";
    let times = 1000;
    // Interleaved, so that both see the same machine.
    let mut guest = Vec::new();
    let mut native = Vec::new();
    for _ in 0..3 {
        guest.push(guest_lookups(&bench, email, times)?);
        native.push(native_lookups(&pg_url, email, times)?);
    }
    let (g, n) = (median(guest), median(native));
    println!(
        "\nuser lookup on PostgreSQL, {times} per call: guest through plinth {:.1} µs, tokio-postgres in native Rust {:.1} µs: **{:.2}×**",
        g.as_secs_f64() * 1e6,
        n.as_secs_f64() * 1e6,
        g.as_secs_f64() / n.as_secs_f64()
    );

    let seconds = 4;
    let one = throughput(&pg_url, &session, 1, seconds)?;
    let two = throughput(&pg_url, &session, 2, seconds)?;
    println!(
        "\nvalidate-session, 2 threads per host process, {seconds} s: 1 process {one:.0} calls/s, 2 processes {two:.0} calls/s: **{:.2}×**",
        two / one
    );
    Ok(())
}
