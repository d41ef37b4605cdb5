//! The HTTP API: plugin exports, the OpenAPI document, and the admin
//! endpoints.
//!
//! Every response carries an `x-request-id`, and every request is logged
//! once with it: method, path (never the query string), status, time. No
//! body and no header is logged, so no token, password, cookie or
//! `authorization` value reaches the log.
//!
//! A call's answers:
//! * 200 with the export's results as JSON (`plinth call --json`'s mapping;
//!   a WIT `result` is `{"ok": …}`);
//! * for a WIT `result` that is an error, `{"err": …}` with a 4xx (422), or
//!   by convention of the error's case name: `rate-limited(n)` 429 with
//!   `Retry-After: n`, `busy` 503 with `Retry-After: 1`, `internal` 500;
//! * 400 for a body that is not JSON or arguments that do not fit the
//!   export's types (naming the field), 404 for a plugin or an export not
//!   served, 405 for another method, 408 for a body not sent in time, 413
//!   for a body over the cap, 415 for a body that is not JSON;
//! * 503 with `Retry-After` when the calls in flight are at their limit, or
//!   when the call ran out of time, memory or rows; 500 when it trapped or
//!   could not commit. These say what kind of failure it was and the request
//!   id, nothing of the plugin's internals (those are logged, under the
//!   request id).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http_body_util::BodyExt;
use plinth_host::Val;
use serde_json::json;
use tokio::sync::Semaphore;

use super::catalog::Catalog;
use super::metrics::Metrics;

/// What every handler shares.
pub struct App {
    pub catalog: Arc<Catalog>,
    pub db: plinth_store::Db,
    pub metrics: Arc<Metrics>,
    /// One permit per call in flight.
    pub in_flight: Arc<Semaphore>,
    pub max_body_bytes: usize,
    /// Per-client limits on sign-in, sign-up and reset requests.
    pub client_limits: super::limits::ClientLimits,
    /// Bytes of request bodies held at once, all requests together.
    pub body_budget: Arc<Semaphore>,
    pub body_timeout: Duration,
}

type Shared = Arc<App>;

/// A request's id, set by the logging layer.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// The plugins' API and its description.
pub fn api_router(app: Shared) -> Router {
    Router::new()
        .route(
            "/plugins/{plugin}/{export}",
            post(call_export).fallback(method_not_allowed),
        )
        .route("/openapi.json", get(openapi))
        .fallback(wasi_http)
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            request_log,
        ))
        .with_state(app)
}

/// The admin endpoints.
pub fn admin_router(app: Shared) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            request_log,
        ))
        .with_state(app)
}

/// Gives the request an id, logs it once answered, counts the response.
/// A request whose client went away before the answer is logged too, with
/// status 499 (as nginx names it).
pub(super) async fn request_log(
    State(app): State<Shared>,
    mut req: Request,
    next: Next,
) -> Response {
    let id = uuid::Uuid::new_v4().simple().to_string();
    req.extensions_mut().insert(RequestId(id.clone()));
    let peer = req
        .extensions()
        .get::<super::listen::Peer>()
        .map(|p| p.0.ip().to_string())
        .unwrap_or_default();
    let span = tracing::info_span!("request", request_id = %id);
    let mut logged = Logged {
        method: req.method().to_string(),
        // The path only (a query string may carry a token), and below a
        // wasi:http plugin's prefix only its first segment: what the plugin
        // puts in its paths is its own and may be a secret.
        path: loggable_path(req.uri().path()),
        peer,
        started: Instant::now(),
        status: None,
        metrics: app.metrics.clone(),
        span: span.clone(),
    };
    let mut response = tracing::Instrument::instrument(next.run(req), span).await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", v);
    }
    logged.status = Some(response.status().as_u16());
    response
}

/// One request's log line, written when it is dropped: answered, or given
/// up by its client.
struct Logged {
    method: String,
    path: String,
    peer: String,
    started: Instant,
    status: Option<u16>,
    metrics: Arc<Metrics>,
    span: tracing::Span,
}

impl Drop for Logged {
    fn drop(&mut self) {
        let status = self.status.unwrap_or(499);
        self.metrics.responded(status);
        let _enter = self.span.enter();
        tracing::info!(
            method = %self.method,
            path = %plinth_host::escape_controls(&self.path),
            peer = %self.peer,
            status,
            micros = self.started.elapsed().as_micros() as u64,
            "{}",
            if self.status.is_some() { "request" } else { "request: the client went away before the answer" }
        );
    }
}

/// What of a path the log shows: the paths plinth itself routes in full
/// (their segments are names, never secrets), others up to their first
/// segment.
fn loggable_path(path: &str) -> String {
    let own = path.starts_with("/plugins/")
        || matches!(path, "/openapi.json" | "/healthz" | "/readyz" | "/metrics");
    if own || path.len() <= 1 {
        return path.to_string();
    }
    match path[1..].find('/') {
        Some(i) => format!("{}/…", &path[..=i]),
        None => path.to_string(),
    }
}

fn request_id(req_id: Option<&RequestId>) -> String {
    req_id.map(|r| r.0.clone()).unwrap_or_default()
}

/// A JSON error body: what kind of failure, a message for people, the
/// request id.
fn error(status: StatusCode, kind: &str, message: impl Into<String>, id: &str) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        json!({ "error": kind, "message": message.into(), "request_id": id }).to_string(),
    )
        .into_response()
}

fn with_retry_after(mut response: Response, seconds: u64) -> Response {
    if let Ok(v) = HeaderValue::from_str(&seconds.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, v);
    }
    response
}

fn not_found(id: &str) -> Response {
    error(StatusCode::NOT_FOUND, "not-found", "no such resource", id)
}

/// Headers a proxy does not pass on (RFC 9110, 7.6.1), and those the
/// plugin has no business seeing.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authorization",
    "proxy-authenticate",
];

/// Anything else: a `wasi:http` plugin whose approved prefix holds the
/// path (the longest), called with the path below its prefix; otherwise
/// 404.
async fn wasi_http(State(app): State<Shared>, req: Request) -> Response {
    let id = request_id(req.extensions().get::<RequestId>());
    let path = req.uri().path().to_string();
    let snapshot = app.catalog.snapshot();
    let mounted = snapshot
        .iter()
        .filter_map(|(name, s)| {
            let prefix = s.prefix.as_deref()?;
            let rest = path.strip_prefix(prefix)?;
            (rest.is_empty() || rest.starts_with('/')).then_some((name, s, prefix.len()))
        })
        .max_by_key(|(_, _, len)| *len);
    let Some((name, served, len)) = mounted else {
        return not_found(&id);
    };
    let (name, served) = (name.clone(), served.clone());
    let below = match &path[len..] {
        "" => "/".to_string(),
        rest => rest.to_string(),
    };
    let target = match req.uri().query() {
        Some(q) => format!("{below}?{q}"),
        None => below,
    };
    let Ok(uri) = target.parse::<axum::http::Uri>() else {
        return error(
            StatusCode::BAD_REQUEST,
            "bad-request",
            "not a valid path",
            &id,
        );
    };
    let mut builder = axum::http::Request::builder()
        .method(req.method().clone())
        .uri(uri);
    for (k, v) in req.headers() {
        if !HOP_BY_HOP.contains(&k.as_str()) {
            builder = builder.header(k, v);
        }
    }
    let (body, reserved) = match read_body(&app, req).await {
        Ok(b) => b,
        Err(r) => return closing(r(&id)),
    };
    let Ok(request) = builder.body(body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "bad-request",
            "not a valid request",
            &id,
        );
    };
    let plugin = served.plugin.clone();
    let max = app
        .max_body_bytes
        .max(plinth_host::DEFAULT_HTTP_RESPONSE_BYTES);
    let result = in_call_slot(
        &app,
        &id,
        &name,
        "wasi:http/incoming-handler",
        move || {
            let _reserved = reserved;
            plugin.handle_http(request, max)
        },
        |r| match r {
            Ok(_) => ("ok", None),
            Err(e) => (failure_kind(e).1, Some(e.to_string())),
        },
    )
    .await;
    match result {
        Ok(Ok(answer)) => {
            let (parts, body) = answer.into_parts();
            let mut response = Response::from_parts(parts, axum::body::Body::from(body));
            for h in HOP_BY_HOP {
                response.headers_mut().remove(*h);
            }
            response
        }
        Ok(Err(e)) => failure(&e, &id),
        Err(refused) => refused,
    }
}

/// Runs `work`, one plugin call, in a call slot on the blocking pool, or
/// answers 503 at once when every slot is taken. The slot, the count of
/// calls in flight and the call's metrics belong to the work, not to the
/// request: a client that goes away does not free its slot before the
/// call has ended (the call runs on to its own limit), so the limit bounds
/// the calls that run, not only the requests that wait.
async fn in_call_slot<R: Send + 'static>(
    app: &App,
    id: &str,
    plugin: &str,
    export: &str,
    work: impl FnOnce() -> R + Send + 'static,
    outcome: fn(&R) -> (&'static str, Option<String>),
) -> Result<R, Response> {
    let Ok(permit) = app.in_flight.clone().try_acquire_owned() else {
        app.metrics.overloaded();
        return Err(overloaded(id));
    };
    let metrics = app.metrics.clone();
    let (plugin, export) = (plugin.to_string(), export.to_string());
    let span = tracing::Span::current();
    let run = move || {
        let _permit = permit;
        let _enter = span.enter();
        let _in_flight = metrics.call_started();
        let started = Instant::now();
        let result = work();
        let (kind, failure) = outcome(&result);
        if let Some(failure) = failure {
            // Here rather than in the answer: the client may be gone.
            tracing::warn!(error = %failure, "call failed");
        }
        metrics.call_ended(&plugin, &export, kind, started.elapsed().as_secs_f64());
        result
    };
    // On the blocking pool. (`block_in_place` on the worker thread was
    // measured too: 145 µs instead of 258 µs for one caller, but a third
    // less throughput and four times the p99 at 64 callers, as every call
    // hands the worker's other tasks to a new thread.)
    tokio::task::spawn_blocking(run).await.map_err(|e| {
        tracing::error!(error = %e, "the blocking task running the call failed");
        error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the call failed",
            id,
        )
    })
}

fn overloaded(id: &str) -> Response {
    with_retry_after(
        error(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            "too many calls in flight; retry shortly",
            id,
        ),
        1,
    )
}

async fn method_not_allowed(req: Request) -> Response {
    let id = request_id(req.extensions().get::<RequestId>());
    let mut r = error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "call an export with POST and a JSON object of its arguments",
        &id,
    );
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("POST"));
    r
}

/// `POST /plugins/NAME/EXPORT`.
async fn call_export(
    State(app): State<Shared>,
    Path((plugin_name, export)): Path<(String, String)>,
    req: Request,
) -> Response {
    let id = request_id(req.extensions().get::<RequestId>());
    let peer = req
        .extensions()
        .get::<super::listen::Peer>()
        .map(|p| p.0.ip());
    let Some(served) = app.catalog.get(&plugin_name) else {
        return error(
            StatusCode::NOT_FOUND,
            "not-found",
            "no such plugin is served",
            &id,
        );
    };
    let Some(func) = served.exports.get(&export).cloned() else {
        return error(
            StatusCode::NOT_FOUND,
            "not-found",
            format!(
                "plugin {} offers no export {} over HTTP",
                plinth_host::escape_controls(&plugin_name),
                plinth_host::escape_controls(&export)
            ),
            &id,
        );
    };
    if !is_json(req.headers()) {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "send the arguments as a JSON object (content-type: application/json)",
            &id,
        );
    }
    let (body, reserved) = match read_body(&app, req).await {
        Ok(b) => b,
        Err(r) => return closing(r(&id)),
    };
    let value: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad-request",
                format!("the body is not JSON: {e}"),
                &id,
            );
        }
    };
    drop(body);
    let args = match plinth_host::json::args_from_json(&value, &func) {
        Ok(a) => a,
        Err(e) => return error(StatusCode::BAD_REQUEST, "bad-request", e.to_string(), &id),
    };
    // The built-in auth plugin's costly calls count against the client's
    // limits, as the pages' forms do.
    if let Some(action) = limited_action(&plugin_name, &export) {
        let account = value.get("email").and_then(serde_json::Value::as_str);
        match super::limits::count(&app.db, app.client_limits, peer, action, account).await {
            Ok(None) => {}
            Ok(Some(seconds)) => {
                return with_retry_after(
                    error(
                        StatusCode::TOO_MANY_REQUESTS,
                        "rate-limited",
                        "too many of these requests from this client or for this account",
                        &id,
                    ),
                    u64::try_from(seconds).unwrap_or(1),
                );
            }
            Err(()) => {
                return with_retry_after(
                    error(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "busy",
                        "retry shortly",
                        &id,
                    ),
                    1,
                );
            }
        }
    }
    drop(value);
    let plugin = served.plugin.clone();
    let qualified = func.qualified_name();
    let result = in_call_slot(
        &app,
        &id,
        &plugin_name,
        &export,
        move || {
            let _reserved = reserved;
            plugin.call_dynamic(&qualified, &args)
        },
        |r| match r {
            Ok(values) if plinth_host::json::is_err(values) => ("error", None),
            Ok(_) => ("ok", None),
            Err(e) => (failure_kind(e).1, Some(e.to_string())),
        },
    )
    .await;
    match result {
        Ok(Ok(values)) => answer(&values, &id),
        Ok(Err(e)) => failure(&e, &id),
        Err(refused) => refused,
    }
}

/// The client-limited action an export of the built-in auth plugin is.
fn limited_action(plugin: &str, export: &str) -> Option<&'static str> {
    match (plugin, export) {
        ("auth", "sign-in") => Some("sign-in"),
        ("auth", "sign-up") => Some("sign-up"),
        ("auth", "request-password-reset") => Some("reset"),
        _ => None,
    }
}

fn is_json(headers: &HeaderMap) -> bool {
    match headers.get(header::CONTENT_TYPE) {
        // Said, not guessed: a body with no type is what a cross-site
        // `fetch` of a blob sends without asking first.
        None => false,
        Some(v) => v.to_str().is_ok_and(|v| {
            let essence = v.split(';').next().unwrap_or("").trim();
            essence.eq_ignore_ascii_case("application/json")
                || (essence.len() > 5 && essence.to_ascii_lowercase().ends_with("+json"))
        }),
    }
}

type Refusal = Box<dyn FnOnce(&str) -> Response + Send>;

/// A refusal of a body that was not read to its end: the connection closes
/// after it (what is left of the body must not be read as a next request,
/// and the client must not send one on it).
fn closing(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// The body, read within the cap and the time allowed, with the share of
/// the buffering budget it holds (its length, or the cap when it does not
/// say): bodies waiting to be read or called with hold at most that budget
/// together, and a request that finds it spent is answered 503 at once.
async fn read_body(
    app: &App,
    req: Request,
) -> Result<(Bytes, tokio::sync::OwnedSemaphorePermit), Refusal> {
    let cap = app.max_body_bytes;
    let too_large: Refusal = Box::new(move |id: &str| {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
            format!("the body is over {cap} bytes"),
            id,
        )
    });
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > cap as u64) {
        return Err(too_large);
    }
    let share = declared
        .map_or(cap, |len| len as usize)
        .clamp(1, cap.max(1));
    let share = u32::try_from(share).unwrap_or(u32::MAX);
    let Ok(reserved) = app.body_budget.clone().try_acquire_many_owned(share) else {
        app.metrics.overloaded();
        return Err(Box::new(|id: &str| overloaded(id)));
    };
    let limited = http_body_util::Limited::new(req.into_body(), cap);
    match tokio::time::timeout(app.body_timeout, limited.collect()).await {
        Ok(Ok(collected)) => Ok((collected.to_bytes(), reserved)),
        Ok(Err(e))
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(too_large)
        }
        Ok(Err(_)) => Err(Box::new(|id: &str| {
            error(
                StatusCode::BAD_REQUEST,
                "bad-request",
                "the body could not be read",
                id,
            )
        })),
        Err(_) => Err(Box::new(|id: &str| {
            error(
                StatusCode::REQUEST_TIMEOUT,
                "request-timeout",
                "the body was not sent in time",
                id,
            )
        })),
    }
}

/// The answer to a call that returned. The payload of an `internal`
/// error case is replaced by a pointer to the log (where it is written):
/// it is the host's or the plugin's inside, not the client's business.
fn answer(values: &[Val], id: &str) -> Response {
    let mut body = plinth_host::json::results_to_json(values);
    let (status, retry) = match values {
        [Val::Result(Err(e))] => {
            let case = match e.as_deref() {
                Some(Val::Variant(case, _)) | Some(Val::Enum(case)) => Some(case.as_str()),
                _ => None,
            };
            match (case, e.as_deref()) {
                (Some("rate-limited"), Some(Val::Variant(_, Some(n)))) => {
                    let secs = match **n {
                        Val::U32(s) => Some(u64::from(s)),
                        Val::U64(s) => Some(s),
                        _ => None,
                    };
                    (StatusCode::TOO_MANY_REQUESTS, secs.or(Some(1)))
                }
                (Some("rate-limited"), _) => (StatusCode::TOO_MANY_REQUESTS, Some(1)),
                (Some("busy"), _) => (StatusCode::SERVICE_UNAVAILABLE, Some(1)),
                (Some("internal"), Some(Val::Variant(_, payload))) => {
                    tracing::warn!(
                        detail = %payload.as_deref().map(|p| plinth_host::json::to_json(p).to_string()).unwrap_or_default(),
                        "the export answered internal"
                    );
                    if payload.is_some() {
                        body = serde_json::json!({"err": {"internal": format!("see the server's log, request id {id}")}});
                    }
                    (StatusCode::INTERNAL_SERVER_ERROR, None)
                }
                (Some("internal"), _) => (StatusCode::INTERNAL_SERVER_ERROR, None),
                _ => (StatusCode::UNPROCESSABLE_ENTITY, None),
            }
        }
        _ => (StatusCode::OK, None),
    };
    let response = (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body.to_string(),
    )
        .into_response();
    match retry {
        Some(s) => with_retry_after(response, s),
        None => response,
    }
}

/// The answer to a call that failed in the runtime: the kind of failure and
/// the request id; the details go to the log.
fn failure(e: &plinth_host::Error, id: &str) -> Response {
    let (status, kind, message) = failure_kind(e);
    let response = error(status, kind, message, id);
    if status == StatusCode::SERVICE_UNAVAILABLE {
        with_retry_after(response, 1)
    } else {
        response
    }
}

/// A runtime failure's status, kind (also the metrics' outcome) and message.
fn failure_kind(e: &plinth_host::Error) -> (StatusCode, &'static str, &'static str) {
    use plinth_host::Error as E;
    match e {
        E::TimedOut { .. } => (
            StatusCode::SERVICE_UNAVAILABLE,
            "timed-out",
            "the call ran past its time limit; nothing it wrote was kept",
        ),
        E::MemoryLimit { .. } => (
            StatusCode::SERVICE_UNAVAILABLE,
            "memory-limit",
            "the call ran out of memory; nothing it wrote was kept",
        ),
        E::RowLimit { .. } => (
            StatusCode::SERVICE_UNAVAILABLE,
            "row-limit",
            "the call wrote more rows than allowed; nothing it wrote was kept",
        ),
        E::Trap { .. } => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "trap",
            "the plugin failed; nothing it wrote was kept",
        ),
        E::BadArguments { .. } | E::NoSuchExport { .. } => (
            StatusCode::BAD_REQUEST,
            "bad-request",
            "the arguments do not fit the export",
        ),
        _ => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the call failed; nothing it wrote was kept",
        ),
    }
}

/// `GET /openapi.json`.
async fn openapi(State(app): State<Shared>) -> Response {
    let doc = super::openapi::document(&app.catalog.snapshot());
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        doc.to_string(),
    )
        .into_response()
}

/// `GET /healthz`: the process is up.
async fn healthz() -> Response {
    (StatusCode::OK, "ok\n").into_response()
}

/// `GET /readyz`: the database answers and the plugins were loaded.
async fn readyz(State(app): State<Shared>) -> Response {
    let db = app.db.clone();
    let database = tokio::time::timeout(
        Duration::from_secs(2),
        tokio::task::spawn_blocking(move || db.schema_version()),
    )
    .await;
    let (db_ok, db_state) = match database {
        Ok(Ok(Ok(version))) => (
            true,
            json!({ "reachable": true, "schema_version": version }),
        ),
        Ok(Ok(Err(e))) => {
            tracing::warn!(error = %e, "readiness: the database does not answer");
            (false, json!({ "reachable": false }))
        }
        _ => (false, json!({ "reachable": false })),
    };
    let loaded = app.catalog.loaded();
    let plugins: Vec<_> = {
        let snapshot = app.catalog.snapshot();
        let mut names: Vec<_> = snapshot.keys().cloned().collect();
        names.sort();
        names
    };
    let failed: Vec<_> = app
        .catalog
        .failures()
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    let ready = db_ok && loaded;
    let body = json!({
        "ready": ready,
        "database": db_state,
        "plugins": plugins,
        "failed_to_load": failed,
    });
    (
        if ready {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        },
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body.to_string(),
    )
        .into_response()
}

/// `GET /metrics`.
async fn metrics(State(app): State<Shared>) -> Response {
    let text = app.metrics.encode(&app.catalog.snapshot(), &app.db);
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        )],
        text,
    )
        .into_response()
}
