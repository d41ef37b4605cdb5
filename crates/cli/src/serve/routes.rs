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
    pub body_timeout: Duration,
}

type Shared = Arc<App>;

/// A request's id, set by the logging layer.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// The plugins' API and its description.
pub fn api_router(app: Shared) -> Router {
    Router::new()
        .route("/plugins/{plugin}/{export}", post(call_export).fallback(method_not_allowed))
        .route("/openapi.json", get(openapi))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(app.clone(), request_log))
        .with_state(app)
}

/// The admin endpoints.
pub fn admin_router(app: Shared) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .layer(axum::middleware::from_fn_with_state(app.clone(), request_log))
        .with_state(app)
}

/// Gives the request an id, logs it once answered, counts the response.
async fn request_log(State(app): State<Shared>, mut req: Request, next: Next) -> Response {
    let id = uuid::Uuid::new_v4().simple().to_string();
    req.extensions_mut().insert(RequestId(id.clone()));
    let method = req.method().clone();
    // The path only: a query string may carry a token.
    let path = req.uri().path().to_string();
    let started = Instant::now();
    let span = tracing::info_span!("request", request_id = %id);
    let mut response = tracing::Instrument::instrument(next.run(req), span.clone()).await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", v);
    }
    let status = response.status().as_u16();
    app.metrics.responded(status);
    let _enter = span.enter();
    tracing::info!(
        %method,
        path = %plinth_host::escape_controls(&path),
        status,
        micros = started.elapsed().as_micros() as u64,
        "request"
    );
    response
}

fn request_id(req_id: Option<&RequestId>) -> String {
    req_id.map(|r| r.0.clone()).unwrap_or_default()
}

/// A JSON error body: what kind of failure, a message for people, the
/// request id.
fn error(status: StatusCode, kind: &str, message: impl Into<String>, id: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))],
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

async fn not_found(req: Request) -> Response {
    let id = request_id(req.extensions().get::<RequestId>());
    error(StatusCode::NOT_FOUND, "not-found", "no such resource", &id)
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
    let Some(served) = app.catalog.get(&plugin_name) else {
        return error(StatusCode::NOT_FOUND, "not-found", "no such plugin is served", &id);
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
    let body = match read_body(&app, req).await {
        Ok(b) => b,
        Err(r) => return r(&id),
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
    let args = match plinth_host::json::args_from_json(&value, &func) {
        Ok(a) => a,
        Err(e) => return error(StatusCode::BAD_REQUEST, "bad-request", e.to_string(), &id),
    };
    // A slot for the call, or 503 now: never a queue without end.
    let Ok(permit) = app.in_flight.clone().try_acquire_owned() else {
        app.metrics.overloaded();
        return with_retry_after(
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "overloaded",
                "too many calls in flight; retry shortly",
                &id,
            ),
            1,
        );
    };
    let plugin = served.plugin.clone();
    let qualified = func.qualified_name();
    let guard = app.metrics.call_started();
    let started = Instant::now();
    let result = plugin.call_dynamic_async(&qualified, args).await;
    drop(guard);
    drop(permit);
    let seconds = started.elapsed().as_secs_f64();
    let (response, outcome) = match result {
        Ok(values) => answer(&values),
        Err(e) => failure(&e, &id),
    };
    app.metrics
        .call_ended(&plugin_name, &export, outcome, seconds);
    response
}

fn is_json(headers: &HeaderMap) -> bool {
    match headers.get(header::CONTENT_TYPE) {
        // A client that says nothing is taken at its word that it is JSON.
        None => true,
        Some(v) => v.to_str().is_ok_and(|v| {
            let essence = v.split(';').next().unwrap_or("").trim();
            essence.eq_ignore_ascii_case("application/json")
                || (essence.len() > 5 && essence.to_ascii_lowercase().ends_with("+json"))
        }),
    }
}

type Refusal = Box<dyn FnOnce(&str) -> Response + Send>;

/// The body, read within the cap and the time allowed.
async fn read_body(app: &App, req: Request) -> Result<Bytes, Refusal> {
    let cap = app.max_body_bytes;
    let too_large: Refusal = Box::new(move |id: &str| {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
            format!("the body is over {cap} bytes"),
            id,
        )
    });
    if let Some(len) = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        && len > cap as u64
    {
        return Err(too_large);
    }
    let limited = http_body_util::Limited::new(req.into_body(), cap);
    match tokio::time::timeout(app.body_timeout, limited.collect()).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
            Err(too_large)
        }
        Ok(Err(_)) => Err(Box::new(|id: &str| {
            error(StatusCode::BAD_REQUEST, "bad-request", "the body could not be read", id)
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

/// The answer to a call that returned.
fn answer(values: &[Val]) -> (Response, &'static str) {
    let body = match values {
        [] => serde_json::Value::Null,
        [one] => plinth_host::json::to_json(one),
        many => serde_json::Value::Array(many.iter().map(plinth_host::json::to_json).collect()),
    };
    let (status, retry, outcome) = match values {
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
                    (StatusCode::TOO_MANY_REQUESTS, secs.or(Some(1)), "error")
                }
                (Some("rate-limited"), _) => (StatusCode::TOO_MANY_REQUESTS, Some(1), "error"),
                (Some("busy"), _) => (StatusCode::SERVICE_UNAVAILABLE, Some(1), "error"),
                (Some("internal"), _) => (StatusCode::INTERNAL_SERVER_ERROR, None, "error"),
                _ => (StatusCode::UNPROCESSABLE_ENTITY, None, "error"),
            }
        }
        _ => (StatusCode::OK, None, "ok"),
    };
    let response = (
        status,
        [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        body.to_string(),
    )
        .into_response();
    (
        match retry {
            Some(s) => with_retry_after(response, s),
            None => response,
        },
        outcome,
    )
}

/// The answer to a call that failed in the runtime: the kind of failure and
/// the request id; the details go to the log.
fn failure(e: &plinth_host::Error, id: &str) -> (Response, &'static str) {
    use plinth_host::Error as E;
    tracing::warn!(error = %e, "call failed");
    let (status, kind, message) = match e {
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
    };
    let response = error(status, kind, message, id);
    let response = if status == StatusCode::SERVICE_UNAVAILABLE {
        with_retry_after(response, 1)
    } else {
        response
    };
    (response, kind_outcome(kind))
}

fn kind_outcome(kind: &str) -> &'static str {
    match kind {
        "timed-out" => "timed-out",
        "memory-limit" => "memory-limit",
        "row-limit" => "row-limit",
        "trap" => "trap",
        "bad-request" => "bad-request",
        _ => "internal",
    }
}

/// `GET /openapi.json`.
async fn openapi(State(app): State<Shared>) -> Response {
    let doc = super::openapi::document(&app.catalog.snapshot());
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))],
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
        Ok(Ok(Ok(version))) => (true, json!({ "reachable": true, "schema_version": version })),
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
        [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        body.to_string(),
    )
        .into_response()
}

/// `GET /metrics`.
async fn metrics(State(app): State<Shared>) -> Response {
    let text = app.metrics.encode(&app.catalog.snapshot());
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        )],
        text,
    )
        .into_response()
}

