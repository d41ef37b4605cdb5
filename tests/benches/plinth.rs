//! plinth's benchmarks: each number is measured beside its native-Rust
//! counterpart in the same run, on the same file database, and reported as a
//! ratio. Run with `cargo bench -p plinth-tests --bench plinth`.
//!
//! Set `PLINTH_BENCH_QUICK=1` for a short run (fewer iterations), and
//! `PLINTH_BENCH_ONLY=calls,validate` to run only some sections (`load`, `calls`,
//! `lookups`, `argon2`, `validate`, `throughput`). `PLINTH_BENCH_SCALE=N`
//! multiplies the iterations; `PLINTH_BENCH_PERF_MAP=1` names the guests'
//! functions for `perf` (see `RuntimeOptions::perf_map`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use plinth_auth::AuthPlugin;
use plinth_guests::{AUTH, BENCH, DB_TEST, Guest};
use plinth_host::{Access, Manifest, Plugin, Runtime, RuntimeOptions};
use plinth_store::Db;
use plinth_testing::{BenchPlugin, DbTestPlugin};

const PW: &str = "correct horse battery staple";

fn quick() -> bool {
    std::env::var_os("PLINTH_BENCH_QUICK").is_some()
}

/// Whether a section is selected by `PLINTH_BENCH_ONLY` (all are by default).
fn section(name: &str) -> bool {
    match std::env::var("PLINTH_BENCH_ONLY") {
        Ok(only) => only.split(',').any(|s| s.trim() == name),
        Err(_) => true,
    }
}

/// An iteration count: a tenth in quick mode, times `PLINTH_BENCH_SCALE` when
/// set (long runs to profile under `perf`).
fn scaled(n: usize) -> usize {
    let scale = std::env::var("PLINTH_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    if quick() { (n / 10).max(3) } else { n * scale }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Spread above which a row is marked as not to be trusted: the slowest and
/// fastest runs differ by more than this share of the median.
const TOO_WIDE: f64 = 0.15;

/// The median of repeated measurements and how far apart they lie.
struct Spread {
    median: f64,
    min: f64,
    max: f64,
}

impl Spread {
    fn of(mut v: Vec<f64>) -> Self {
        v.sort_by(f64::total_cmp);
        Self {
            median: v[v.len() / 2],
            min: v[0],
            max: v[v.len() - 1],
        }
    }

    /// (max − min) ÷ median.
    fn width(&self) -> f64 {
        (self.max - self.min) / self.median
    }

    /// `median (min–max, ±w%)`, and a warning when too wide.
    fn show(&self, unit: &str) -> String {
        let warn = if self.width() > TOO_WIDE {
            " — spread too wide to trust"
        } else {
            ""
        };
        format!(
            "{:.2}{unit} ({:.2}–{:.2}, ±{:.0}%){warn}",
            self.median,
            self.min,
            self.max,
            self.width() * 50.0
        )
    }
}

/// The CPU, and the vector features that decide how wasm SIMD and native
/// code run on it (from /proc/cpuinfo on Linux).
fn machine() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |name: &str| {
        info.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_else(|| "unknown".into())
    };
    let flags = field("flags");
    let vector: Vec<&str> = flags
        .split_whitespace()
        .filter(|f| {
            f.starts_with("avx")
                || f.starts_with("sse")
                || *f == "ssse3"
                || *f == "fma"
                || *f == "bmi2"
        })
        .collect();
    format!(
        "{} (family {}, model {}); vector features: {}",
        field("model name"),
        field("cpu family"),
        field("model\t"),
        vector.join(" ")
    )
}

fn time<T>(f: impl FnOnce() -> T) -> (Duration, T) {
    let t = Instant::now();
    let out = f();
    (t.elapsed(), out)
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn load(runtime: &Runtime, guest: Guest) -> Result<Plugin> {
    let mut manifest = Manifest::from_file(guest.manifest.as_ref())?;
    if guest == DB_TEST {
        // Its test clock is granted in code only.
        manifest = manifest.grant(plinth_testing::TEST_CLOCK, Access::Write);
    }
    Ok(runtime.load_file(guest.wasm.as_ref(), manifest)?)
}

/// What every runtime of the benchmark offers beyond the built-in
/// capabilities: the test capability db-test imports.
fn options(cache_dir: Option<std::path::PathBuf>) -> RuntimeOptions {
    RuntimeOptions {
        cache_dir,
        perf_map: std::env::var_os("PLINTH_BENCH_PERF_MAP").is_some(),
        ..RuntimeOptions::default()
    }
    .capability(plinth_testing::TEST_CAPABILITY)
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn native_argon2(password: &str) -> Result<u64> {
    let params = argon2::Params::new(19_456, 2, 1, Some(32)).map_err(anyhow::Error::msg)?;
    let mut out = [0u8; 32];
    argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
        .hash_password_into(password.as_bytes(), b"plinth-bench-salt", &mut out)
        .map_err(anyhow::Error::msg)?;
    Ok(u64::from_le_bytes(out[..8].try_into()?))
}

fn main() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let cache = dir.path().join("cache");
    let db = Db::open(dir.path().join("bench.db"))?;
    let rss_start = rss_kib();
    let runtime = Runtime::with_options(db.clone(), options(Some(cache)))?;

    println!("# plinth benchmarks\n");
    println!(
        "machine: {} cores, {}\n\nevery ratio is plugin ÷ native measured in this run\n",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        machine()
    );

    if section("load") {
        loads(&runtime, &db)?;
    }
    let auth = AuthPlugin::new(load(&runtime, AUTH)?)?;
    let bench = BenchPlugin::new(load(&runtime, BENCH)?)?;
    let _db_test = DbTestPlugin::new(load(&runtime, DB_TEST)?)?;
    let rss_idle = rss_kib();
    println!(
        "\nresident memory: {:.1} MiB at start, {:.1} MiB with auth, bench and db-test loaded and idle\n",
        rss_start as f64 / 1024.0,
        rss_idle as f64 / 1024.0
    );

    ok(auth.sign_up("ada", "ada@example.com", PW))?;
    for i in 0..1000 {
        db.with_unit(|u| {
            u.create_user(&plinth_store::NewUser {
                name: format!("user{i}"),
                email: format!("user{i}@example.com"),
            })
        })?;
    }
    let token = ok(auth.sign_in("ada@example.com", PW))?.token;

    if section("calls") {
        calls(&bench, &runtime)?;
    }
    if section("lookups") {
        lookups(&bench, &db)?;
    }
    if section("argon2") || section("validate") {
        auth_calls(&runtime, &auth, &bench, &db, &token)?;
    }
    if section("throughput") {
        throughput(&auth, &bench, &token);
    }
    Ok(())
}

fn loads(runtime: &Runtime, db: &Db) -> Result<()> {
    println!("## Loading\n");
    println!("| component | size | cold load (compile) | cached load | speed-up |");
    println!("|---|---|---|---|---|");
    for guest in [AUTH, DB_TEST] {
        let size = std::fs::metadata(guest.wasm)?.len();
        let cold = median(
            (0..scaled(5))
                .map(|_| {
                    let fresh = tempfile::tempdir().map(|d| d.path().join("c"));
                    let rt = Runtime::with_options(db.clone(), options(fresh.ok()));
                    let t = Instant::now();
                    let ok = rt.map(|rt| load(&rt, guest).is_ok()).unwrap_or(false);
                    let e = t.elapsed();
                    assert!(ok, "cold load failed");
                    e
                })
                .collect(),
        );
        load(runtime, guest)?; // fill the cache
        let mut cached = Vec::new();
        for _ in 0..scaled(20) {
            let (d, p) = time(|| load(runtime, guest));
            ensure!(p?.loaded_from_cache(), "not from cache");
            cached.push(d);
        }
        let cached = median(cached);
        println!(
            "| {} | {} KiB | {:.1} ms | {:.2} ms | {:.0}× |",
            guest.name,
            size / 1024,
            ms(cold),
            ms(cached),
            cold.as_secs_f64() / cached.as_secs_f64()
        );
    }

    Ok(())
}

/// A fresh instance + call of the bench guest's empty export by wasmtime
/// alone: plinth's engine (its configuration and pooling allocator), a
/// linker that defines the guest's imports as traps, a `Store` with nothing
/// in it. The floor under plinth's fresh-instance call.
fn bare_fresh_call(runtime: &Runtime) -> Result<Duration> {
    bare_fresh_call_on(runtime.engine()).map_err(|e| anyhow::anyhow!("{e:?}"))
}

fn bare_fresh_call_on(engine: &wasmtime::Engine) -> wasmtime::Result<Duration> {
    use wasmtime::component::{Component, Linker};
    let component = Component::from_file(engine, BENCH.wasm)?;
    let mut linker = Linker::<()>::new(engine);
    linker.define_unknown_imports_as_traps(&component)?;
    let pre = linker.instantiate_pre(&component)?;
    let once = || -> wasmtime::Result<()> {
        let mut store = wasmtime::Store::new(engine, ());
        store.set_epoch_deadline(u64::MAX / 2);
        let instance = pre.instantiate(&mut store)?;
        let noop = instance.get_typed_func::<(), ()>(&mut store, "noop")?;
        noop.call(&mut store, ())?;
        Ok(())
    };
    once()?;
    let mut times = Vec::new();
    for _ in 0..scaled(5000).min(20_000) {
        let (d, r) = time(once);
        r?;
        times.push(d);
    }
    Ok(median(times))
}

fn calls(bench: &BenchPlugin, runtime: &Runtime) -> Result<()> {
    println!("## Calls\n");
    let live_calls = u32::try_from(scaled(200_000))?;
    bench.time_live_calls(1000)?;
    let live = median(
        (0..5)
            .map(|_| bench.time_live_calls(live_calls))
            .collect::<Result<Vec<_>, _>>()?,
    ) / live_calls;
    let fresh = median(
        (0..scaled(5000).min(20_000))
            .map(|_| time(|| bench.noop()).0)
            .collect(),
    );
    println!("| what | time |");
    println!("|---|---|");
    println!(
        "| host→guest call of an empty export, live instance | {:.0} ns |",
        live.as_secs_f64() * 1e9
    );
    println!(
        "| fresh instance + call (new Store, instantiate, call, drop) | {:.1} µs |",
        us(fresh)
    );
    let bare = bare_fresh_call(runtime)?;
    println!(
        "| the same by wasmtime alone (plinth's engine and pool, imports as traps, an empty Store) | {:.1} µs |",
        us(bare)
    );

    Ok(())
}

/// `times` lookups of `email` in native Rust, in one unit of work as a
/// plugin call has; how many found the user.
fn native_lookups(db: &Db, email: &str, times: u32) -> Result<u32> {
    let mut unit = db.unit()?;
    let mut found = 0;
    for _ in 0..times {
        if unit.get_user_by_email(email).is_ok() {
            found += 1;
        }
    }
    Ok(found)
}

fn lookups(bench: &BenchPlugin, db: &Db) -> Result<()> {
    println!("\n## A typed lookup by email from inside a guest vs native Rust (same WAL file)\n");
    println!("| lookups per plugin call | plugin, per lookup | native, per lookup | ratio |");
    println!("|---|---|---|---|");
    let empty = median(
        (0..scaled(200))
            .map(|_| time(|| bench.lookup_by_email("ada@example.com", 0)).0)
            .collect(),
    );
    let mut per_lookup = Vec::new();
    for n in [10u32, 100, 1000, 10_000] {
        let reps = scaled(match n {
            10 => 2000,
            100 => 500,
            1000 => 60,
            _ => 10,
        });
        let mut plugin_t = Vec::new();
        let mut native_t = Vec::new();
        for _ in 0..reps {
            let (d, found) = time(|| bench.lookup_by_email("ada@example.com", n));
            ensure!(found? == Ok(n));
            plugin_t.push(d.saturating_sub(empty));
            let (d, found) = time(|| native_lookups(db, "ada@example.com", n));
            ensure!(found? == n);
            native_t.push(d);
        }
        let p = median(plugin_t) / n;
        let q = median(native_t) / n;
        per_lookup.push(p);
        println!(
            "| {n} | {:.2} µs | {:.2} µs | {:.2}× |",
            us(p),
            us(q),
            p.as_secs_f64() / q.as_secs_f64()
        );
    }
    println!(
        "\nflatness: per-lookup cost at 10,000 ÷ at 10 = {:.2}",
        per_lookup[3].as_secs_f64() / per_lookup[0].as_secs_f64()
    );

    // The same lookups of an email no user has: the boundary without the
    // record (the `not-found` error crosses it instead), so the difference
    // from the row above is what lowering one user record costs.
    let n = 10_000;
    let mut plugin_t = Vec::new();
    let mut native_t = Vec::new();
    for _ in 0..scaled(10) {
        let (d, found) = time(|| bench.lookup_by_email("nobody@example.com", n));
        ensure!(found? == Ok(0));
        plugin_t.push(d.saturating_sub(empty));
        let (d, found) = time(|| native_lookups(db, "nobody@example.com", n));
        ensure!(found? == 0);
        native_t.push(d);
    }
    let (p, q) = (median(plugin_t) / n, median(native_t) / n);
    println!(
        "\nno such user, {n} lookups: plugin {:.2} µs, native {:.2} µs, {:.2}×",
        us(p),
        us(q),
        p.as_secs_f64() / q.as_secs_f64()
    );

    Ok(())
}

fn auth_calls(
    runtime: &Runtime,
    auth: &AuthPlugin,
    bench: &BenchPlugin,
    db: &Db,
    token: &str,
) -> Result<()> {
    println!("\n## Auth\n");
    println!("| what | time | compared with | ratio |");
    println!("|---|---|---|---|");
    let mut argon2_spread = None;
    if section("argon2") {
        let reps = scaled(15);
        let mut guest_a = Vec::new();
        let mut crate_a = Vec::new();
        let mut native_a = Vec::new();
        for i in 0..reps {
            let pw = format!("password {i}");
            let (d, g) = time(|| bench.argon2_hash(&pw));
            guest_a.push(d);
            let (d, c) = time(|| bench.argon2_crate_hash(&pw));
            crate_a.push(d);
            let (d, n) = time(|| native_argon2(&pw));
            native_a.push(d);
            let (g, c, n) = (g?, c?, n?);
            ensure!(g == n && c == n, "guest and native Argon2 disagree");
        }
        // Each repetition measures the three side by side: the ratio of
        // each pair, and the spread of each, say how far one run can be
        // trusted.
        let ratios: Vec<f64> = guest_a
            .iter()
            .zip(&native_a)
            .map(|(g, n)| g.as_secs_f64() / n.as_secs_f64())
            .collect();
        let spread_ms = |v: &[Duration]| Spread::of(v.iter().map(|d| ms(*d)).collect());
        argon2_spread = Some((
            reps,
            [
                ("in the guest (SIMD128)", spread_ms(&guest_a).show(" ms")),
                (
                    "in the guest (the argon2 crate)",
                    spread_ms(&crate_a).show(" ms"),
                ),
                ("native", spread_ms(&native_a).show(" ms")),
                (
                    "guest ÷ native, per repetition",
                    Spread::of(ratios).show("×"),
                ),
            ],
        ));
        let (guest_a, crate_a, native_a) = (median(guest_a), median(crate_a), median(native_a));
        let mut sign_up = Vec::new();
        for i in 0..reps {
            let (d, r) =
                time(|| auth.sign_up(&format!("bench{i}"), &format!("bench{i}@example.com"), PW));
            ok(r)?;
            sign_up.push(d);
        }
        let mut sign_in = Vec::new();
        for _ in 0..reps {
            let (d, r) = time(|| auth.sign_in("ada@example.com", PW));
            ok(r)?;
            sign_in.push(d);
        }
        let (sign_up, sign_in) = (median(sign_up), median(sign_in));
        println!(
            "| Argon2id m=19456 KiB t=2 p=1, in the guest | {:.1} ms | native Rust, same parameters: {:.1} ms | {:.2}× |",
            ms(guest_a),
            ms(native_a),
            guest_a.as_secs_f64() / native_a.as_secs_f64()
        );
        println!(
            "| the same, by the `argon2` crate in the guest (scalar wasm) | {:.1} ms | native Rust: {:.1} ms | {:.2}× |",
            ms(crate_a),
            ms(native_a),
            crate_a.as_secs_f64() / native_a.as_secs_f64()
        );
        println!(
            "| sign-up through the plugin | {:.1} ms | its Argon2 hash in the guest | {:.2}× |",
            ms(sign_up),
            sign_up.as_secs_f64() / guest_a.as_secs_f64()
        );
        println!(
            "| sign-in through the plugin | {:.1} ms | its Argon2 verify in the guest | {:.2}× |",
            ms(sign_in),
            sign_in.as_secs_f64() / guest_a.as_secs_f64()
        );
    }
    if section("validate") {
        // auth as shipped (its manifest reuses instances), and the same
        // component loaded to take a fresh instance for every call.
        let fresh = AuthPlugin::new(runtime.load_file(
            AUTH.wasm.as_ref(),
            Manifest::from_file(AUTH.manifest.as_ref())?.reuse(None),
        )?)?;
        let validate = |auth: &AuthPlugin, token: &str, valid: bool| {
            median(
                (0..scaled(5000))
                    .map(|_| {
                        let (d, r) = time(|| auth.validate_session(token));
                        assert_eq!(matches!(r, Ok(Ok(_))), valid, "{r:?}");
                        d
                    })
                    .collect(),
            )
        };
        let reused = validate(auth, token, true);
        let fresh_validate = validate(&fresh, token, true);
        // The same work in native Rust: the token's SHA-256, the session and
        // its user read in one unit of work, committed.
        let native = median(
            (0..scaled(5000))
                .map(|_| {
                    let (d, r) = time(|| native_validate(db, token));
                    assert!(r.is_ok());
                    d
                })
                .collect(),
        );
        // The floor under each: a call that returns at once (a malformed
        // token is refused before any host call).
        let reused_floor = validate(auth, "not-a-token", false);
        let fresh_floor = validate(&fresh, "not-a-token", false);
        for (what, took) in [
            (
                "through the plugin, a reused instance (auth's manifest)",
                reused,
            ),
            (
                "through the plugin, a fresh instance per call",
                fresh_validate,
            ),
        ] {
            println!(
                "| validate-session {what} (file database) | {:.1} µs | its reads in native Rust: {:.1} µs | {:.1}× |",
                us(took),
                us(native),
                took.as_secs_f64() / native.as_secs_f64()
            );
        }
        for (what, took, of) in [
            ("a reused instance", reused_floor, reused),
            ("a fresh instance", fresh_floor, fresh_validate),
        ] {
            println!(
                "| validate-session of a malformed token, {what} (no database) | {:.1} µs | validate-session, {what} | {:.2}× |",
                us(took),
                took.as_secs_f64() / of.as_secs_f64()
            );
        }
    }
    if let Some((reps, rows)) = argon2_spread {
        println!("\n### Argon2id: median and spread over {reps} repetitions\n");
        println!("| what | median (min–max, ± half the spread) |");
        println!("|---|---|");
        for (what, shown) in rows {
            println!("| {what} | {shown} |");
        }
    }
    Ok(())
}

fn throughput(auth: &AuthPlugin, bench: &BenchPlugin, token: &str) {
    println!(
        "\n## Throughput of a read-heavy mix (9 validate-session : 1 plugin call of 10 lookups)\n"
    );
    println!("| concurrent callers | calls/s | vs 1 caller |");
    println!("|---|---|---|");
    let window = if quick() {
        Duration::from_millis(500)
    } else {
        Duration::from_secs(3)
    };
    let mut base = 0.0;
    for callers in [1usize, 2, 4, 8] {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let handles: Vec<_> = (0..callers)
            .map(|_| {
                let (auth, bench, token, stop) =
                    (auth.clone(), bench.clone(), token.to_owned(), stop.clone());
                std::thread::spawn(move || {
                    let mut calls = 0u64;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        if calls % 10 == 9 {
                            let _ = bench.lookup_by_email("user7@example.com", 10);
                        } else {
                            let _ = auth.validate_session(&token);
                        }
                        calls += 1;
                    }
                    calls
                })
            })
            .collect();
        std::thread::sleep(window);
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let total: u64 = handles.into_iter().map(|h| h.join().unwrap_or(0)).sum();
        let rate = total as f64 / window.as_secs_f64();
        if callers == 1 {
            base = rate;
        }
        println!("| {callers} | {rate:.0} | {:.2}× |", rate / base);
    }
    println!(
        "\nresident memory after the run: {:.1} MiB",
        rss_kib() as f64 / 1024.0
    );
}

/// validate-session's work without the plugin: hash the token, read the
/// session and its user in one unit, commit.
fn native_validate(db: &Db, token: &str) -> Result<plinth_store::User> {
    use sha2::Digest;
    // Hex by table, as the guest does it (a `format!` per byte cost ~3 µs).
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut id = String::with_capacity(64);
    for b in sha2::Sha256::digest(token.as_bytes()) {
        id.push(char::from(HEX[usize::from(b >> 4)]));
        id.push(char::from(HEX[usize::from(b & 15)]));
    }
    let mut unit = db.unit()?;
    let session = unit.get_session(&id)?;
    let user = unit.get_user_by_uuid(&session.user_uuid)?;
    unit.commit()?;
    Ok(user)
}

fn ok<T>(r: plinth_auth::AuthResult<T>) -> Result<T> {
    match r {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => anyhow::bail!("plugin answered {e:?}"),
        Err(e) => Err(e.into()),
    }
}
