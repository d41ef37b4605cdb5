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
/// Interleaved rounds of the lookup comparison.
const ROUNDS: usize = 11;

/// CPU time this process's threads have run, from the kernel's
/// per-thread scheduler statistics (nanoseconds): what a path costs this
/// host, apart from waiting for the server and for the scheduler.
fn cpu_time() -> Duration {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Duration::ZERO;
    };
    let ns: u64 = tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    Duration::from_nanos(ns)
}

/// Per-thread CPU nanoseconds by thread name (a diagnostic).
fn cpu_by_thread() -> std::collections::BTreeMap<String, u64> {
    let mut out = std::collections::BTreeMap::new();
    for t in std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        let ns = std::fs::read_to_string(t.path().join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap_or(0);
        *out.entry(format!(
            "{}#{}",
            name.trim(),
            t.file_name().to_string_lossy()
        ))
        .or_default() += ns;
    }
    out
}

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
/// multi-threaded runtime (two workers, tokio's usual shape on two cores) as
/// a native service would run it. The runtime outlives the measurement, so that the CPU
/// time of its threads is counted.
fn native_lookups(
    rt: &tokio::runtime::Runtime,
    url: &str,
    email: &str,
    times: u32,
) -> Result<Duration> {
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
                // Decoded into the same record as the store's.
                let user = plinth_store::User {
                    uuid: row.try_get(0)?,
                    name: row.try_get(1)?,
                    email: row.try_get(2)?,
                    email_verified: row.try_get(3)?,
                    avatar: row.try_get(4)?,
                    bio: row.try_get(5)?,
                    created_at: row.try_get(6)?,
                    updated_at: row.try_get(7)?,
                };
                ensure!(user.name == "bench");
            }
            rounds.push(start.elapsed() / times);
        }
        Ok(median(rounds))
    })
}

/// `times` lookups through the store, in one unit, in native Rust: the
/// store's share of the guest's cost.
fn store_lookups(db: &Db, email: &str, times: u32) -> Result<Duration> {
    let mut rounds = Vec::new();
    for _ in 0..REPEATS {
        let mut unit = db.unit()?;
        unit.set_deadline(Instant::now() + Duration::from_secs(10));
        let start = Instant::now();
        for _ in 0..times {
            unit.get_user_by_email(email)?;
        }
        rounds.push(start.elapsed() / times);
    }
    Ok(median(rounds))
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
    let native_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let times = 1000;
    // Interleaved, so that both see the same machine.
    // Interleaved rounds, so that both sides see the same machine; the
    // ratio of each round, then their median and spread.
    let (mut ratios, mut store_ratios) = (Vec::new(), Vec::new());
    let (mut guest, mut native) = (Vec::new(), Vec::new());
    // Where the CPU goes, thread by thread, for one round of each.
    let by_thread = |label: &str, f: &mut dyn FnMut() -> Result<Duration>| -> Result<()> {
        let before = cpu_by_thread();
        f()?;
        let after = cpu_by_thread();
        let mut parts = Vec::new();
        for (k, v) in &after {
            let d = v - before.get(k).copied().unwrap_or(0);
            if d > 1_000_000 {
                let name = k.split('#').next().unwrap_or(k);
                let per = d as f64 / 1e3 / f64::from(times * REPEATS as u32);
                parts.push(format!("{name} {per:.1} µs"));
            }
        }
        println!("CPU per lookup by thread, {label}: {}", parts.join(", "));
        Ok(())
    };
    by_thread("a guest through plinth", &mut || {
        guest_lookups(&bench, email, times)
    })?;
    by_thread("through plinth's store", &mut || {
        store_lookups(&pg, email, times)
    })?;
    by_thread("tokio-postgres", &mut || {
        native_lookups(&native_rt, &pg_url, email, times)
    })?;
    let (mut guest_cpu, mut native_cpu, mut store_cpu) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let c0 = cpu_time();
        let g = guest_lookups(&bench, email, times)?;
        let c1 = cpu_time();
        let n = native_lookups(&native_rt, &pg_url, email, times)?;
        let c2 = cpu_time();
        let st = store_lookups(&pg, email, times)?;
        let c3 = cpu_time();
        let per = times * REPEATS as u32;
        guest_cpu.push((c1 - c0) / per);
        native_cpu.push((c2 - c1) / per);
        store_cpu.push((c3 - c2) / per);
        ratios.push(g.as_secs_f64() / n.as_secs_f64());
        store_ratios.push(st.as_secs_f64() / n.as_secs_f64());
        guest.push(g);
        native.push(n);
    }
    let spread = |v: &[f64]| {
        let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = v.iter().copied().fold(0.0, f64::max);
        (lo, hi)
    };
    let mid = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (lo, hi) = spread(&ratios);
    let (slo, shi) = spread(&store_ratios);
    println!(
        "\nuser lookup on PostgreSQL, {times} per call, {ROUNDS} interleaved rounds: guest through plinth {:.1} µs, tokio-postgres in native Rust {:.1} µs (medians): **{:.2}×** (rounds {lo:.2}–{hi:.2}×)",
        median(guest).as_secs_f64() * 1e6,
        median(native).as_secs_f64() * 1e6,
        mid(ratios.clone()),
    );
    let (gc, nc, sc) = (median(guest_cpu), median(native_cpu), median(store_cpu));
    println!(
        "CPU time of this process per lookup (all its threads, medians): guest through plinth {:.1} µs, the store alone {:.1} µs, tokio-postgres {:.1} µs: {:.2}×",
        gc.as_secs_f64() * 1e6,
        sc.as_secs_f64() * 1e6,
        nc.as_secs_f64() * 1e6,
        gc.as_secs_f64() / nc.as_secs_f64()
    );
    println!(
        "(the same lookups through plinth's store in native Rust, no wasm: {:.2}× tokio-postgres, rounds {slo:.2}–{shi:.2}×)",
        mid(store_ratios.clone()),
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
