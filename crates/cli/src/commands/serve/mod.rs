//! `plinth serve`: the runtime as a long-running HTTP service.
//!
//! * Plugins load once ([`catalog`]) and are called from many connections
//!   at once through the runtime's pools, limits and units of work. An
//!   export is reachable (`POST /plugins/NAME/EXPORT`) only when its
//!   manifest's `[http]` section asks for it and the operator approved it
//!   (built-ins: by the build; `db-test` never). `GET /openapi.json`
//!   describes what is exposed, generated from the WIT types.
//! * On its own it delivers the outbox and removes expired sessions and
//!   tokens on a schedule, and reloads a plugin that `plinth plugin install`
//!   replaced (new calls get the new build; calls in flight finish on the
//!   old one).
//! * On SIGTERM or SIGINT it stops accepting, lets calls in flight finish
//!   within `--shutdown-timeout-ms`, waits for a mail pass under way to
//!   record what it sent, and exits.
//! * Bounded: a request body cap (413), a read timeout for the body (408),
//!   a header timeout and a connection cap against slow clients, and a
//!   limit on calls in flight that answers 503 with `Retry-After` rather
//!   than queueing.
//! * Operable: `/healthz`, `/readyz` and `/metrics` (Prometheus text), on
//!   `--admin-listen` when given; request logs through `tracing` with a
//!   request id, carrying no body, header, query string or secret.
//! * TLS from PEM files (`--tls-cert`, `--tls-key`) with rustls; or plain
//!   HTTP on loopback behind a reverse proxy that terminates TLS.

mod catalog;
mod limits;
mod listen;
mod metrics;
mod openapi;
mod routes;
mod web;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::context::{self, Ctx};

/// `plinth serve`'s options.
#[derive(clap::Args, Debug, Clone)]
pub struct ServeArgs {
    /// Where to listen for the plugins' HTTP API (loopback by default: put
    /// it on another address on purpose).
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    pub listen: SocketAddr,
    /// Serve /healthz, /readyz and /metrics on this address only (otherwise
    /// they are served beside the API).
    #[arg(long, value_name = "ADDR")]
    pub admin_listen: Option<SocketAddr>,
    /// The largest request body read, in bytes (larger: 413).
    #[arg(long, default_value_t = 1 << 20, value_name = "BYTES")]
    pub max_body_bytes: usize,
    /// Plugin calls in flight at once; one more answers 503 with
    /// Retry-After. Request bodies held at once are bounded by this times
    /// --max-body-bytes.
    #[arg(long, default_value_t = 64, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max_in_flight: u32,
    /// Connections open at once; more wait in the kernel's backlog.
    #[arg(long, default_value_t = 1024, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_connections: u32,
    /// How long a client may take to send a request's headers (and, on a
    /// kept-alive connection, to start the next request).
    #[arg(long, default_value_t = 10_000, value_name = "MS")]
    pub header_timeout_ms: u64,
    /// How long a client may take to send a request's body (then 408).
    #[arg(long, default_value_t = 30_000, value_name = "MS")]
    pub body_timeout_ms: u64,
    /// On SIGTERM/SIGINT, how long calls in flight may take to finish.
    #[arg(long, default_value_t = 30_000, value_name = "MS")]
    pub shutdown_timeout_ms: u64,
    /// How often the outbox is delivered.
    #[arg(long, default_value_t = 5_000, value_name = "MS")]
    pub mail_interval_ms: u64,
    /// How often expired sessions and tokens are removed.
    #[arg(long, default_value_t = 600_000, value_name = "MS")]
    pub cleanup_interval_ms: u64,
    /// How often the plugins directory is checked for plugins installed,
    /// replaced or removed.
    #[arg(long, default_value_t = 1_000, value_name = "MS")]
    pub reload_interval_ms: u64,
    /// Also serve pages for people: the status page at / and the account
    /// journey (sign up, verify, sign in, account, password reset, sign
    /// out) under /web/, through the built-in auth plugin, with the session
    /// in an HttpOnly cookie and CSRF-checked forms.
    #[arg(long)]
    pub web: bool,
    /// The URL people reach this service at (https://accounts.example.com),
    /// for the links in verification and reset mail. Default with --web:
    /// this listener's own address.
    #[arg(long, value_name = "URL")]
    pub public_url: Option<String>,
    /// Sign-in, sign-up and password-reset requests (pages and JSON API
    /// together) each client address and each account may make per window
    /// (429 with Retry-After past it).
    #[arg(long, default_value_t = 10, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub rate_limit: u32,
    /// The --rate-limit window, in seconds.
    #[arg(long, default_value_t = 600, value_name = "SECONDS", value_parser = clap::value_parser!(i64).range(1..=86_400))]
    pub rate_window_s: i64,
    /// A PEM certificate chain: serve HTTPS with it (and --tls-key).
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

/// Runs the service until SIGTERM or SIGINT.
pub fn run(ctx: &Ctx, args: ServeArgs) -> context::Result<ExitCode> {
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("plinth-serve")
        .build()
        .context("cannot start the async runtime")?;
    let drained = tokio.block_on(serve(ctx, args))?;
    if !drained {
        // Calls still running on the blocking pool would find the async
        // runtime gone under them: end the process here, as a stop past the
        // bound means; their units of work are rolled back by the database.
        std::process::exit(0);
    }
    Ok(ExitCode::SUCCESS)
}

/// Serves until a signal; whether every call ended within the bound.
async fn serve(ctx: &Ctx, args: ServeArgs) -> Result<bool> {
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(listen::tls_acceptor(cert, key)?),
        _ => None,
    };
    let api = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let api_addr = api.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    // Where mail links point: the operator's public URL, or with --web
    // this listener's own address.
    let public_url = match &args.public_url {
        Some(url) => Some(check_public_url(url)?),
        None if args.web => Some(format!("{scheme}://{api_addr}")),
        None => None,
    };
    let runtime = ctx.runtime_linking(public_url).map_err(|f| f.error)?;
    let db = runtime.db().clone();
    let metrics = Arc::new(metrics::Metrics::new());
    let catalog = Arc::new(catalog::Catalog::new(
        runtime,
        ctx.plugins_dir.clone(),
        metrics.clone(),
    ));
    {
        let catalog = catalog.clone();
        tokio::task::spawn_blocking(move || catalog.refresh())
            .await
            .context("loading the plugins")?;
    }
    let app = Arc::new(routes::App {
        catalog: catalog.clone(),
        db: db.clone(),
        metrics: metrics.clone(),
        in_flight: Arc::new(tokio::sync::Semaphore::new(args.max_in_flight as usize)),
        max_body_bytes: args.max_body_bytes,
        client_limits: limits::ClientLimits {
            per_window: args.rate_limit,
            window: args.rate_window_s,
        },
        body_budget: Arc::new(tokio::sync::Semaphore::new(
            args.max_body_bytes
                .saturating_mul(args.max_in_flight as usize)
                .clamp(1, tokio::sync::Semaphore::MAX_PERMITS),
        )),
        body_timeout: Duration::from_millis(args.body_timeout_ms),
    });
    let limits = listen::ConnLimits {
        header_timeout: Duration::from_millis(args.header_timeout_ms),
        connections: Arc::new(tokio::sync::Semaphore::new(args.max_connections as usize)),
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);

    let mut api_router = routes::api_router(app.clone());
    if args.web {
        api_router = api_router.merge(web::router(
            app.clone(),
            web::WebOptions { tls: tls.is_some() },
        ));
    }
    let mut listeners = Vec::new();
    match args.admin_listen {
        Some(admin_addr) => {
            let admin = tokio::net::TcpListener::bind(admin_addr)
                .await
                .with_context(|| format!("cannot listen on {admin_addr}"))?;
            let admin_addr = admin.local_addr()?;
            announce(&format!("plinth serve: admin on http://{admin_addr}"));
            listeners.push(tokio::spawn(listen::accept_loop(
                admin,
                routes::admin_router(app.clone()),
                None,
                limits.clone(),
                stop_rx.clone(),
            )));
            listeners.push(tokio::spawn(listen::accept_loop(
                api,
                api_router,
                tls.clone(),
                limits.clone(),
                stop_rx.clone(),
            )));
        }
        None => listeners.push(tokio::spawn(listen::accept_loop(
            api,
            api_router.merge(routes::admin_router(app.clone())),
            tls.clone(),
            limits.clone(),
            stop_rx.clone(),
        ))),
    }
    announce(&format!("plinth serve: listening on {scheme}://{api_addr}"));

    let background = Background::start(ctx, db, catalog, metrics, &args, stop_rx.clone());

    shutdown_signal().await;
    tracing::info!("shutting down: no new connections; finishing calls in flight");
    let _ = stop_tx.send(true);
    for l in listeners {
        let _ = l.await;
    }
    // Every connection holds a permit until it closes, and every call one
    // until it ends (a call whose client went away runs on to its end).
    let grace = Duration::from_millis(args.shutdown_timeout_ms);
    let connections = limits.connections.acquire_many(args.max_connections);
    let calls = app.in_flight.acquire_many(args.max_in_flight);
    let drained = tokio::time::timeout(grace, async {
        let held = connections.await;
        let calls = calls.await;
        (held, calls)
    })
    .await
    .is_ok();
    if !drained {
        tracing::warn!(
            ?grace,
            "calls still in flight at the shutdown bound; they are cut (nothing they wrote is kept)"
        );
    }
    background.stop().await;
    announce("plinth serve: stopped");
    Ok(drained)
}

/// A public URL: http or https, a host, no query, fragment or whitespace.
fn check_public_url(url: &str) -> Result<String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    match rest {
        Some(rest)
            if !rest.is_empty()
                && !rest.starts_with('/')
                && !url
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control() || c == '?' || c == '#') =>
        {
            Ok(url.trim_end_matches('/').to_string())
        }
        _ => anyhow::bail!(
            "--public-url {url:?}: give http(s)://host[:port][/path], with no query or fragment"
        ),
    }
}

/// A line on stdout, flushed (tests and scripts wait for it).
fn announce(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    match (term, int) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// The service's own schedule: mail, cleanup, reloads. Each job runs on
/// the blocking pool, one pass at a time; stopping waits for a pass under
/// way to end, so that a message sent is recorded as sent before the
/// process exits (and is not sent again by the next one).
struct Background {
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Background {
    fn start(
        ctx: &Ctx,
        db: plinth_store::Db,
        catalog: Arc<catalog::Catalog>,
        metrics: Arc<metrics::Metrics>,
        args: &ServeArgs,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> Self {
        let delivery = Arc::new(ctx.delivery.clone());
        let mut tasks = Vec::new();
        {
            let db = db.clone();
            let metrics = metrics.clone();
            tasks.push(every(
                Duration::from_millis(args.mail_interval_ms),
                stop.clone(),
                move || {
                    match delivery.deliver_due(&db) {
                        Ok(Some(r)) if r.sent + r.retrying + r.failed > 0 => {
                            tracing::info!(
                                sent = r.sent,
                                retrying = r.retrying,
                                failed = r.failed,
                                "mail pass"
                            );
                        }
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %format!("{e:#}"), "mail pass failed"),
                    }
                    metrics.observe_outbox(&db);
                },
            ));
        }
        tasks.push(every(
            Duration::from_millis(args.cleanup_interval_ms),
            stop.clone(),
            move || match db.cleanup_expired() {
                Ok(removed) => {
                    let n: u32 = removed.iter().map(|(_, n)| n).sum();
                    if n > 0 {
                        tracing::info!(?removed, "expired rows removed");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cleanup failed"),
            },
        ));
        tasks.push(every(
            Duration::from_millis(args.reload_interval_ms),
            stop,
            move || catalog.refresh(),
        ));
        Self { tasks }
    }

    /// Waits for the passes under way to end (each loop checks the stop
    /// signal between passes).
    async fn stop(self) {
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// Runs `job` on the blocking pool every `period` until `stop` says so; a
/// pass under way is never cut.
fn every(
    period: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
    job: impl Fn() + Send + Sync + 'static,
) -> tokio::task::JoinHandle<()> {
    let job = Arc::new(job);
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(period.max(Duration::from_millis(10)));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = stop.changed() => return,
            }
            if *stop.borrow() {
                return;
            }
            let job = job.clone();
            let _ = tokio::task::spawn_blocking(move || job()).await;
        }
    })
}
