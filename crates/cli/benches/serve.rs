//! `plinth serve` under load, beside the same call in process: the auth
//! plugin's `validate-session` at 1, 8 and 64 concurrent callers, for a
//! fixed time each, on SQLite and (when the test cluster can start) on
//! PostgreSQL. Over HTTP, each caller is one kept-alive HTTP/1.1 connection
//! on loopback sending its next request when the last was answered (a
//! closed loop: the load is bounded by the callers). In process, each
//! caller is a thread calling the plugin directly.
//!
//! Beside them, `GET /healthz` over the same connections: the floor of the
//! HTTP path on this machine (hyper, the router, loopback, the load
//! generator sharing the CPUs), with no plugin call in it.
//!
//! `cargo bench -p plinth-cli --bench serve --profile release`
//! (`PLINTH_BENCH_SECONDS` sets the time per row; default 3).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use plinth_auth::AuthPlugin;
use plinth_host::{Manifest, Runtime};
use plinth_store::Db;

const PLINTH: &str = env!("CARGO_BIN_EXE_plinth");
const PW: &str = "correct horse battery staple";
const LEVELS: [usize; 3] = [1, 8, 64];

/// Requests/s and latency percentiles of one run.
struct Run {
    per_second: f64,
    p50: Duration,
    p99: Duration,
}

fn summarize(mut latencies: Vec<Duration>, elapsed: Duration) -> Run {
    latencies.sort();
    let at = |q: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * q) as usize)
            .copied()
            .unwrap_or_default()
    };
    Run {
        per_second: latencies.len() as f64 / elapsed.as_secs_f64(),
        p50: at(0.50),
        p99: at(0.99),
    }
}

fn seconds() -> Duration {
    let s = std::env::var("PLINTH_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(3.0);
    Duration::from_secs_f64(s)
}

/// `callers` threads calling `validate-session` in process for `time`.
fn in_process(auth: &AuthPlugin, token: &str, callers: usize, time: Duration) -> Result<Run> {
    let stop = AtomicBool::new(false);
    let started = Instant::now();
    let latencies = std::thread::scope(|s| -> Result<Vec<Duration>> {
        let workers: Vec<_> = (0..callers)
            .map(|_| {
                s.spawn(|| -> Result<Vec<Duration>> {
                    let mut own = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        let t = Instant::now();
                        auth.validate_session(token)?
                            .map_err(|e| anyhow::anyhow!("validate-session: {e:?}"))?;
                        own.push(t.elapsed());
                    }
                    Ok(own)
                })
            })
            .collect();
        std::thread::sleep(time);
        stop.store(true, Ordering::Relaxed);
        let mut all = Vec::new();
        for w in workers {
            all.extend(
                w.join()
                    .map_err(|_| anyhow::anyhow!("a caller panicked"))??,
            );
        }
        Ok(all)
    })?;
    Ok(summarize(latencies, started.elapsed()))
}

/// `callers` kept-alive connections to `addr`, each sending the call as
/// soon as the last was answered, for `time`.
fn over_http(addr: &str, token: &str, callers: usize, time: Duration) -> Result<Run> {
    let body = format!("{{\"token\":\"{token}\"}}");
    let request = format!(
        "POST /plugins/auth/validate-session HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    load(addr, request.into_bytes(), callers, time)
}

/// The floor over HTTP: `GET /healthz`, which calls no plugin.
fn health_over_http(addr: &str, callers: usize, time: Duration) -> Result<Run> {
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    load(addr, request.into_bytes(), callers, time)
}

fn load(addr: &str, request: Vec<u8>, callers: usize, time: Duration) -> Result<Run> {
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let request = Arc::new(request);
    tokio.block_on(async {
        let stop = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..callers {
            let (stop, request, addr) = (stop.clone(), request.clone(), addr.to_string());
            tasks.push(tokio::spawn(
                async move { caller(&addr, &request, &stop).await },
            ));
        }
        tokio::time::sleep(time).await;
        stop.store(true, Ordering::Relaxed);
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await??);
        }
        Ok(summarize(all, started.elapsed()))
    })
}

/// One connection's loop: a request, its whole answer (by its
/// Content-Length), the next.
async fn caller(addr: &str, request: &[u8], stop: &AtomicBool) -> Result<Vec<Duration>> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let mut own = Vec::new();
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    while !stop.load(Ordering::Relaxed) {
        let t = Instant::now();
        stream.write_all(request).await?;
        buf.clear();
        loop {
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                bail!("the server closed the connection");
            }
            buf.extend_from_slice(&chunk[..n]);
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = std::str::from_utf8(&buf[..end])?;
                ensure!(head.starts_with("HTTP/1.1 200"), "answer: {head}");
                let len: usize = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse().ok())?
                    })
                    .context("no content-length")?;
                if buf.len() >= end + 4 + len {
                    break;
                }
            }
        }
        own.push(t.elapsed());
    }
    Ok(own)
}

/// A `plinth serve` on `db_target` with data in `data`; its address.
struct Served {
    child: std::process::Child,
    addr: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(data: &Path, db_target: &str) -> Result<Served> {
    use std::io::BufRead;
    let mut child = std::process::Command::new(PLINTH)
        .env("PLINTH_DATA_DIR", data)
        .env("PLINTH_DB", db_target)
        .env("PLINTH_LOG", "warn")
        .args(["serve", "--listen", "127.0.0.1:0", "--max-in-flight", "256"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let out = child.stdout.take().context("no stdout")?;
    let mut lines = std::io::BufReader::new(out).lines();
    let addr = loop {
        let line = lines.next().context("plinth serve exited")??;
        if let Some(a) = line.strip_prefix("plinth serve: listening on http://") {
            break a.trim().to_string();
        }
    };
    Ok(Served { child, addr })
}

/// A session token made through HTTP (so that both paths validate the
/// same kind of session in the same database).
fn session_over_http(addr: &str) -> Result<String> {
    let client = reqwest::blocking::Client::new();
    let up = client
        .post(format!("http://{addr}/plugins/auth/sign-up"))
        .json(&serde_json::json!({"name": "ada", "email": "ada@example.com", "password": PW}))
        .send()?;
    ensure!(up.status().is_success(), "sign-up: {}", up.text()?);
    let signed: serde_json::Value = client
        .post(format!("http://{addr}/plugins/auth/sign-in"))
        .json(&serde_json::json!({"email": "ada@example.com", "password": PW}))
        .send()?
        .json()?;
    Ok(signed["ok"]["token"]
        .as_str()
        .context("no token")?
        .to_string())
}

fn backend(label: &str, db_target: &str, data: &Path) -> Result<()> {
    let served = serve(data, db_target)?;
    let token = session_over_http(&served.addr)?;
    // The same plugin in this process, on the same database.
    let runtime = Runtime::new(Db::at(db_target, plinth_store::Options::default())?)?;
    let guest = plinth_guests::Guest::by_name("auth").context("no auth guest")?;
    let auth = AuthPlugin::new(runtime.load_file(
        guest.wasm.as_ref(),
        Manifest::from_file(guest.manifest.as_ref())?,
    )?)?;
    let time = seconds();
    println!("\n### {label}: validate-session, {time:?} per row\n");
    println!(
        "| callers | in process req/s | p50 | p99 | HTTP req/s | p50 | p99 | HTTP / in process | floor: GET /healthz req/s | p50 | p99 |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for callers in LEVELS {
        // Warm both paths.
        in_process(&auth, &token, callers, Duration::from_millis(300))?;
        over_http(&served.addr, &token, callers, Duration::from_millis(300))?;
        let native = in_process(&auth, &token, callers, time)?;
        let http = over_http(&served.addr, &token, callers, time)?;
        let floor = health_over_http(&served.addr, callers, time)?;
        println!(
            "| {callers} | {:.0} | {:.1} µs | {:.1} µs | {:.0} | {:.1} µs | {:.1} µs | {:.2} | {:.0} | {:.1} µs | {:.1} µs |",
            native.per_second,
            native.p50.as_secs_f64() * 1e6,
            native.p99.as_secs_f64() * 1e6,
            http.per_second,
            http.p50.as_secs_f64() * 1e6,
            http.p99.as_secs_f64() * 1e6,
            http.per_second / native.per_second,
            floor.per_second,
            floor.p50.as_secs_f64() * 1e6,
            floor.p99.as_secs_f64() * 1e6,
        );
    }
    Ok(())
}

fn main() -> Result<()> {
    println!(
        "plinth serve under load ({} CPUs); the closed-loop callers share the machine with the server",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let dir = tempfile::tempdir()?;
    let sqlite = dir.path().join("sqlite");
    std::fs::create_dir_all(&sqlite)?;
    backend(
        "SQLite",
        &sqlite.join("plinth.db").to_string_lossy(),
        &sqlite,
    )?;
    match plinth_pg_cluster::test_database("bench serve")? {
        Some((_, url)) => {
            let pg = dir.path().join("pg");
            std::fs::create_dir_all(&pg)?;
            backend("PostgreSQL", &url, &pg)?;
        }
        None => println!("\n(PostgreSQL: no test cluster on this machine; not measured)"),
    }
    Ok(())
}
