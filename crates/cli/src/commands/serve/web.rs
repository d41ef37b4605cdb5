//! `plinth serve --web`: pages for people — the status page and the account
//! journey through the built-in auth plugin — as server-rendered HTML forms
//! (no script at all, so the Content-Security-Policy allows none).
//!
//! * The session token lives in a cookie: `HttpOnly`, `SameSite=Lax`,
//!   `Path=/`, and over TLS `Secure` with the `__Host-` prefix. Signing in
//!   and changing the password set a new session (the old one is not
//!   reused); signing out ends it on the server and clears the cookie.
//! * Every form that changes state carries a CSRF token checked against a
//!   cookie of its own (a double-submit token, compared in constant time),
//!   and a request whose `Sec-Fetch-Site` is not `same-origin`/`none`, or
//!   whose `Origin` is not this server's, is refused (403) before anything
//!   runs.
//! * Every page has a Content-Security-Policy without `unsafe-inline`,
//!   `frame-ancestors 'none'` (and `X-Frame-Options: DENY`),
//!   `Referrer-Policy: same-origin` (a token in a page's URL never leaves
//!   in a `Referer` to another site), `X-Content-Type-Options: nosniff`, and
//!   `Cache-Control: no-store`.
//! * Sign-in, sign-up and reset requests are limited per client address
//!   and per account ([`super::limits`]), the pages' and the JSON API's
//!   together.
//! * Tokens from mail links are consumed by a form post on the page the
//!   link opens, never by the GET itself (a mail scanner that follows links
//!   consumes nothing).

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http_body_util::BodyExt;
use plinth_auth::{AuthError, AuthPlugin};

use super::routes::App;

type Shared = Arc<App>;

/// The session cookie's name (over TLS: with the `__Host-` prefix).
const SESSION: &str = "plinth_session";
/// The CSRF cookie's name.
const CSRF: &str = "plinth_csrf";
/// The largest form read.
const MAX_FORM_BYTES: usize = 16 << 10;

/// How the pages are served.
#[derive(Debug, Clone, Copy)]
pub struct WebOptions {
    /// Over TLS: cookies `Secure`, `__Host-`; the origin `https://…`.
    pub tls: bool,
}

/// The pages.
pub fn router(app: Shared, options: WebOptions) -> Router {
    Router::new()
        .route("/", get(status))
        .route("/web/style.css", get(style))
        .route("/web/sign-up", get(sign_up_page).post(sign_up))
        .route("/web/sign-in", get(sign_in_page).post(sign_in))
        .route("/web/me", get(me))
        .route("/web/sign-out", axum::routing::post(sign_out))
        .route(
            "/web/sign-out-everywhere",
            axum::routing::post(sign_out_everywhere),
        )
        .route("/web/change-password", axum::routing::post(change_password))
        .route("/web/verify", get(verify_page).post(verify))
        .route("/web/reset", get(reset_request_page).post(reset_request))
        .route("/web/reset/confirm", get(reset_page).post(reset))
        .route("/web/{*rest}", axum::routing::any(no_such_page))
        .method_not_allowed_fallback(wrong_method)
        // Every answer under the pages carries their headers, errors too.
        .layer(axum::middleware::map_response(
            |mut r: Response| async move {
                secure(r.headers_mut());
                r
            },
        ))
        .layer(axum::Extension(options))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            super::routes::request_log,
        ))
        .with_state(app)
}

async fn no_such_page() -> Response {
    page(
        StatusCode::NOT_FOUND,
        "Not found",
        "<p>There is no such page.</p>",
        &[],
    )
}

async fn wrong_method() -> Response {
    page(
        StatusCode::METHOD_NOT_ALLOWED,
        "Not allowed",
        "<p>This page does not take that method.</p>",
        &[],
    )
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn cookie_name(options: WebOptions, name: &str) -> String {
    if options.tls {
        format!("__Host-{name}")
    } else {
        name.to_string()
    }
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Lax, Path=/, Secure over TLS.
fn set_cookie(options: WebOptions, name: &str, value: &str, max_age: Option<i64>) -> String {
    let mut c = format!(
        "{}={value}; Path=/; HttpOnly; SameSite=Lax",
        cookie_name(options, name)
    );
    if options.tls {
        c.push_str("; Secure");
    }
    if let Some(age) = max_age {
        c.push_str(&format!("; Max-Age={age}"));
    }
    c
}

fn cookie(headers: &HeaderMap, options: WebOptions, name: &str) -> Option<String> {
    let wanted = cookie_name(options, name);
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == wanted)
        .map(|(_, v)| v.to_string())
}

/// A page: the security headers, the HTML around `body`.
fn page(status: StatusCode, title: &str, body: &str, cookies: &[String]) -> Response {
    let html = format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{} · plinth</title>\n<link rel=\"stylesheet\" href=\"/web/style.css\">\n</head>\n<body>\n<header><nav aria-label=\"main\"><a href=\"/\">Status</a> <a href=\"/web/me\">Account</a> <a href=\"/web/sign-in\">Sign in</a> <a href=\"/web/sign-up\">Sign up</a></nav></header>\n<main>\n<h1>{}</h1>\n{body}\n</main>\n</body>\n</html>\n",
        escape(title),
        escape(title)
    );
    let mut response = (status, html).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    secure(h);
    for c in cookies {
        if let Ok(v) = HeaderValue::from_str(c) {
            h.append(header::SET_COOKIE, v);
        }
    }
    response
}

/// The security headers of every page.
fn secure(h: &mut HeaderMap) {
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // No Referer to other sites (a reset token in a page's URL stays
    // here); this site's own form posts keep their Origin.
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

fn redirect(to: &str, cookies: &[String]) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(to) {
        h.insert(header::LOCATION, v);
    }
    secure(h);
    for c in cookies {
        if let Ok(v) = HeaderValue::from_str(c) {
            h.append(header::SET_COOKIE, v);
        }
    }
    response
}

/// The CSRF token of this browser: its cookie's value, or a new one (and
/// the cookie to set).
fn csrf_token(headers: &HeaderMap, options: WebOptions) -> (String, Option<String>) {
    match cookie(headers, options, CSRF).filter(|t| t.len() == 32) {
        Some(t) => (t, None),
        None => {
            let t = uuid::Uuid::new_v4().simple().to_string();
            let set = set_cookie(options, CSRF, &t, None);
            (t, Some(set))
        }
    }
}

fn csrf_field(token: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        escape(token)
    )
}

/// A form page: its CSRF field, and the cookie when it is new.
fn form_page(
    headers: &HeaderMap,
    options: WebOptions,
    title: &str,
    form: impl FnOnce(&str) -> String,
) -> Response {
    let (token, set) = csrf_token(headers, options);
    let body = form(&csrf_field(&token));
    page(
        StatusCode::OK,
        title,
        &body,
        &set.into_iter().collect::<Vec<_>>(),
    )
}

/// A form post, checked: where it comes from, its size, its CSRF token.
struct Posted {
    fields: Vec<(String, String)>,
}

impl Posted {
    fn get(&self, name: &str) -> &str {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    }
}

/// Reads and checks a form post; an error page when it is refused.
async fn posted(req: Request, options: WebOptions) -> Result<(HeaderMap, Posted), Response> {
    let headers = req.headers().clone();
    if !same_origin(&headers, options) {
        return Err(page(
            StatusCode::FORBIDDEN,
            "Refused",
            "<p>This form was sent from another site.</p>",
            &[],
        ));
    }
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return Err(page(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Refused",
            "<p>Not a form.</p>",
            &[],
        ));
    }
    let limited = http_body_util::Limited::new(req.into_body(), MAX_FORM_BYTES);
    let bytes =
        match tokio::time::timeout(std::time::Duration::from_secs(10), limited.collect()).await {
            Ok(Ok(c)) => c.to_bytes(),
            _ => {
                return Err(page(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "Refused",
                    "<p>The form is too large.</p>",
                    &[],
                ));
            }
        };
    let fields: Vec<(String, String)> = form_urlencoded(&bytes);
    let posted = Posted { fields };
    let expected = cookie(&headers, options, CSRF);
    let ok = match expected {
        Some(cookie) if cookie.len() == 32 => {
            constant_time_eq(cookie.as_bytes(), posted.get("csrf").as_bytes())
        }
        _ => false,
    };
    if !ok {
        return Err(page(
            StatusCode::FORBIDDEN,
            "Refused",
            "<p>This form is out of date or was not sent from this site. Go back, reload the page and try again.</p>",
            &[],
        ));
    }
    Ok((headers, posted))
}

/// `Sec-Fetch-Site` (browsers send it) must say the request came from this
/// site or from the user (a typed URL); `Origin`, when sent, must be this
/// server's own: its scheme and its host (an opaque `null` origin is
/// another origin).
fn same_origin(headers: &HeaderMap, options: WebOptions) -> bool {
    // Every value, should there be more than one.
    let cross = headers
        .get_all("sec-fetch-site")
        .iter()
        .any(|v| !matches!(v.to_str(), Ok("same-origin" | "none")));
    if cross || headers.get_all(header::ORIGIN).iter().count() > 1 {
        return false;
    }
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    match headers.get(header::ORIGIN).map(|v| v.to_str()) {
        None => true,
        Some(Ok(origin)) => {
            let scheme = if options.tls { "https://" } else { "http://" };
            matches!((origin.strip_prefix(scheme), host), (Some(a), Some(h)) if a.eq_ignore_ascii_case(h))
        }
        Some(Err(_)) => false,
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `application/x-www-form-urlencoded`, decoded.
fn form_urlencoded(bytes: &[u8]) -> Vec<(String, String)> {
    let decode = |s: &str| -> String {
        let s = s.replace('+', " ");
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%'
                && i + 2 < bytes.len()
                && let (Some(h), Some(l)) = (
                    (bytes[i + 1] as char).to_digit(16),
                    bytes.get(i + 2).and_then(|b| (*b as char).to_digit(16)),
                )
            {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
            out.push(bytes[i]);
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    String::from_utf8_lossy(bytes)
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(pair), String::new()),
        })
        .collect()
}

/// Counts one post of `action` by this client (its address) and for
/// `account`; a 429 page when either is over the limit.
async fn limited(
    app: &App,
    peer: Option<std::net::IpAddr>,
    action: &str,
    account: Option<&str>,
) -> Option<Response> {
    match super::limits::count(&app.db, app.client_limits, peer, action, account).await {
        Ok(None) => None,
        Ok(Some(seconds)) => {
            let mut r = page(
                StatusCode::TOO_MANY_REQUESTS,
                "Too many attempts",
                &format!(
                    "<p role=\"alert\">Too many attempts from here or for this account; try again in {seconds} seconds.</p>"
                ),
                &[],
            );
            if let Ok(v) = HeaderValue::from_str(&seconds.to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            Some(r)
        }
        Err(()) => Some(page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Busy",
            "<p>The service is busy; try again.</p>",
            &[],
        )),
    }
}

/// The client's address, from the connection.
fn peer(req: &Request) -> Option<std::net::IpAddr> {
    req.extensions()
        .get::<super::listen::Peer>()
        .map(|p| p.0.ip())
}

/// The built-in auth plugin as served, typed.
fn auth(app: &App) -> Result<AuthPlugin, Response> {
    app.catalog
        .get("auth")
        .and_then(|s| AuthPlugin::new(s.plugin.clone()).ok())
        .ok_or_else(|| {
            page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Unavailable",
                "<p>The account service is not loaded.</p>",
                &[],
            )
        })
}

/// Runs an auth call on the blocking pool.
async fn call<T: Send + 'static>(
    app: &App,
    f: impl FnOnce(AuthPlugin) -> plinth_auth::AuthResult<T> + Send + 'static,
) -> Result<Result<T, AuthError>, Response> {
    let auth = auth(app)?;
    match tokio::task::spawn_blocking(move || f(auth)).await {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "an auth call from a page failed");
            Err(page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "<p>The request failed; nothing was changed. Try again.</p>",
                &[],
            ))
        }
        Err(_) => Err(page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Something went wrong",
            "<p>The request failed; nothing was changed.</p>",
            &[],
        )),
    }
}

/// What a person is told of an auth error.
fn message(e: &AuthError) -> (StatusCode, String) {
    match e {
        AuthError::InvalidInput(why) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("Please check the form: {why}."),
        ),
        AuthError::WeakPassword(why) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("Choose another password: {why}."),
        ),
        AuthError::NameTaken => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "That name is taken.".into(),
        ),
        AuthError::EmailTaken => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "That email address has an account; sign in instead.".into(),
        ),
        AuthError::InvalidCredentials => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "Wrong email address or password.".into(),
        ),
        AuthError::InvalidToken => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "This link is not valid any more (used, expired or mistyped).".into(),
        ),
        AuthError::SessionExpired => (
            StatusCode::UNAUTHORIZED,
            "Your session has ended; sign in again.".into(),
        ),
        AuthError::RateLimited(s) => (
            StatusCode::TOO_MANY_REQUESTS,
            format!("Too many attempts; try again in {s} seconds."),
        ),
        AuthError::Locked => (
            StatusCode::FORBIDDEN,
            "Sign-in is locked for this account; reset the password.".into(),
        ),
        AuthError::Busy => (
            StatusCode::SERVICE_UNAVAILABLE,
            "The service is busy; try again.".into(),
        ),
        AuthError::Internal(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "Something went wrong; nothing was changed.".into(),
        ),
    }
}

fn error_page(e: &AuthError, title: &str, back: &str) -> Response {
    let (status, text) = message(e);
    let mut r = page(
        status,
        title,
        &format!(
            "<p role=\"alert\">{}</p>\n<p><a href=\"{back}\">Back</a></p>",
            escape(&text)
        ),
        &[],
    );
    if let AuthError::RateLimited(s) = e
        && let Ok(v) = HeaderValue::from_str(&s.to_string())
    {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

async fn style() -> Response {
    let mut r = (
        [(header::CONTENT_TYPE, HeaderValue::from_static("text/css"))],
        "body{font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem;line-height:1.5}\nnav a{margin-right:1rem}\nlabel{display:block;margin-top:.8rem}\ninput{font-size:1rem;padding:.3rem;width:100%;box-sizing:border-box}\nbutton{margin-top:1rem;font-size:1rem;padding:.4rem 1rem}\n:focus{outline:3px solid #1a5fb4;outline-offset:2px}\ntable{border-collapse:collapse}td,th{padding:.2rem .6rem;text-align:left;border-bottom:1px solid #ccc}\n[role=alert]{color:#a51d2d;font-weight:bold}\n",
    )
        .into_response();
    secure(r.headers_mut());
    r
}

/// `GET /`: the database and the plugins.
async fn status(State(app): State<Shared>) -> Response {
    let db = app.db.clone();
    let probe = tokio::task::spawn_blocking(move || {
        (
            db.schema_version(),
            db.mail_queued(),
            db.dialect().to_string(),
        )
    })
    .await;
    let (connected, version, queued, dialect) = match probe {
        Ok((Ok(v), q, d)) => (
            true,
            v.to_string(),
            q.map_or("?".into(), |n| n.to_string()),
            d,
        ),
        Ok((Err(_), _, d)) => (false, "?".into(), "?".into(), d),
        Err(_) => (false, "?".into(), "?".into(), "?".into()),
    };
    let mut rows = String::new();
    let snapshot = app.catalog.snapshot();
    let mut names: Vec<&String> = snapshot.keys().collect();
    names.sort();
    for name in names {
        let s = &snapshot[name];
        let grants: Vec<String> = s
            .plugin
            .grants()
            .iter()
            .map(|(i, a)| format!("{} ({a})", i.name))
            .collect();
        let offered = if let Some(p) = &s.prefix {
            format!("wasi:http at {p}")
        } else {
            s.exports.keys().cloned().collect::<Vec<_>>().join(", ")
        };
        rows.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>\n",
            escape(name),
            escape(&grants.join(", ")),
            escape(&offered)
        ));
    }
    let body = format!(
        "<section aria-labelledby=\"db\"><h2 id=\"db\">Database</h2>\n<p>Connection: <strong id=\"connection\">{}</strong></p>\n<p>Backend: <span id=\"backend\">{}</span> · schema version <span id=\"schema-version\">{}</span></p>\n<p>Mail waiting in the outbox: <span id=\"outbox\">{}</span></p></section>\n<section aria-labelledby=\"plugins\"><h2 id=\"plugins\">Plugins</h2>\n<table><thead><tr><th scope=\"col\">Plugin</th><th scope=\"col\">Granted</th><th scope=\"col\">Offered over HTTP</th></tr></thead><tbody>\n{rows}</tbody></table></section>",
        if connected {
            "connected"
        } else {
            "not reachable"
        },
        escape(&dialect),
        escape(&version),
        escape(&queued),
    );
    page(StatusCode::OK, "Status", &body, &[])
}

async fn sign_up_page(
    axum::Extension(o): axum::Extension<WebOptions>,
    headers: HeaderMap,
) -> Response {
    form_page(&headers, o, "Sign up", |csrf| {
        format!(
            "<form method=\"post\" action=\"/web/sign-up\">{csrf}\n<label for=\"name\">Name</label><input id=\"name\" name=\"name\" autocomplete=\"username\" required autofocus>\n<label for=\"email\">Email</label><input id=\"email\" name=\"email\" type=\"email\" autocomplete=\"email\" required>\n<label for=\"password\">Password</label><input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"new-password\" minlength=\"8\" required>\n<button type=\"submit\">Sign up</button></form>"
        )
    })
}

async fn sign_up(
    State(app): State<Shared>,
    axum::Extension(o): axum::Extension<WebOptions>,
    req: Request,
) -> Response {
    let ip = peer(&req);
    let (_, form) = match posted(req, o).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    if let Some(r) = limited(&app, ip, "sign-up", Some(form.get("email"))).await {
        return r;
    }
    let (name, email, password) = (
        form.get("name").to_string(),
        form.get("email").to_string(),
        form.get("password").to_string(),
    );
    match call(&app, move |a| a.sign_up(&name, &email, &password)).await {
        Ok(Ok(user)) => page(
            StatusCode::OK,
            "Check your mail",
            &format!(
                "<p>Welcome, {}. We sent a link to <strong>{}</strong> to verify the address.</p>\n<p><a href=\"/web/sign-in\">Sign in</a></p>",
                escape(&user.name),
                escape(&user.email)
            ),
            &[],
        ),
        Ok(Err(e)) => error_page(&e, "Sign up", "/web/sign-up"),
        Err(r) => r,
    }
}

async fn sign_in_page(
    axum::Extension(o): axum::Extension<WebOptions>,
    headers: HeaderMap,
) -> Response {
    form_page(&headers, o, "Sign in", |csrf| {
        format!(
            "<form method=\"post\" action=\"/web/sign-in\">{csrf}\n<label for=\"email\">Email</label><input id=\"email\" name=\"email\" type=\"email\" autocomplete=\"email\" required autofocus>\n<label for=\"password\">Password</label><input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required>\n<button type=\"submit\">Sign in</button></form>\n<p><a href=\"/web/reset\">Forgot the password?</a></p>"
        )
    })
}

async fn sign_in(
    State(app): State<Shared>,
    axum::Extension(o): axum::Extension<WebOptions>,
    req: Request,
) -> Response {
    let ip = peer(&req);
    let (headers, form) = match posted(req, o).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    if let Some(r) = limited(&app, ip, "sign-in", Some(form.get("email"))).await {
        return r;
    }
    let (email, password) = (
        form.get("email").to_string(),
        form.get("password").to_string(),
    );
    let old = cookie(&headers, o, SESSION);
    match call(&app, move |a| {
        let signed = a.sign_in(&email, &password)?;
        // A new session replaces whatever this browser had: the old one ends.
        if let (Ok(_), Some(old)) = (&signed, old) {
            let _ = a.sign_out(&old);
        }
        Ok(signed)
    })
    .await
    {
        Ok(Ok(signed)) => redirect(
            "/web/me",
            &[set_cookie(o, SESSION, &signed.token, Some(30 * 24 * 3600))],
        ),
        Ok(Err(e)) => error_page(&e, "Sign in", "/web/sign-in"),
        Err(r) => r,
    }
}

/// `GET /web/me`: who is signed in, and what they can do.
async fn me(
    State(app): State<Shared>,
    axum::Extension(o): axum::Extension<WebOptions>,
    headers: HeaderMap,
) -> Response {
    let Some(token) = cookie(&headers, o, SESSION) else {
        return redirect("/web/sign-in", &[]);
    };
    match call(&app, move |a| a.validate_session(&token)).await {
        Ok(Ok(info)) => form_page(&headers, o, "Your account", |csrf| {
            format!(
                "<p>Signed in as <strong id=\"who\">{}</strong> (<span id=\"email\">{}</span>, {}).</p>\n<form method=\"post\" action=\"/web/sign-out\">{csrf}<button type=\"submit\">Sign out</button></form>\n<form method=\"post\" action=\"/web/sign-out-everywhere\">{csrf}<button type=\"submit\">Sign out everywhere</button></form>\n<h2>Change the password</h2>\n<form method=\"post\" action=\"/web/change-password\">{csrf}\n<label for=\"current\">Current password</label><input id=\"current\" name=\"current\" type=\"password\" autocomplete=\"current-password\" required>\n<label for=\"new\">New password</label><input id=\"new\" name=\"new\" type=\"password\" autocomplete=\"new-password\" minlength=\"8\" required>\n<button type=\"submit\">Change it</button></form>",
                escape(&info.user.name),
                escape(&info.user.email),
                if info.user.email_verified {
                    "verified"
                } else {
                    "not verified yet"
                }
            )
        }),
        Ok(Err(_)) => redirect("/web/sign-in", &[set_cookie(o, SESSION, "", Some(0))]),
        Err(r) => r,
    }
}

async fn sign_out(
    State(app): State<Shared>,
    axum::Extension(o): axum::Extension<WebOptions>,
    req: Request,
) -> Response {
    let (headers, _) = match posted(req, o).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    if let Some(token) = cookie(&headers, o, SESSION)
        && let Err(r) = call(&app, move |a| a.sign_out(&token)).await
    {
        return r;
    }
    redirect("/web/sign-in", &[set_cookie(o, SESSION, "", Some(0))])
}

async fn sign_out_everywhere(
    State(app): State<Shared>,
    axum::Extension(o): axum::Extension<WebOptions>,
    req: Request,
) -> Response {
    let (headers, _) = match posted(req, o).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    if let Some(token) = cookie(&headers, o, SESSION)
        && let Err(r) = call(&app, move |a| a.sign_out_everywhere(&token)).await
    {
        return r;
    }
    redirect("/web/sign-in", &[set_cookie(o, SESSION, "", Some(0))])
}

async fn change_password(
    State(app): State<Shared>,
    axum::Extension(o): axum::Extension<WebOptions>,
    req: Request,
) -> Response {
    let (headers, form) = match posted(req, o).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let Some(token) = cookie(&headers, o, SESSION) else {
        return redirect("/web/sign-in", &[]);
    };
    let (current, new) = (form.get("current").to_string(), form.get("new").to_string());
    match call(&app, move |a| a.change_password(&token, &current, &new)).await {
        // The change ends every other session and gives this browser a new one.
        Ok(Ok(signed)) => redirect(
            "/web/me",
            &[set_cookie(o, SESSION, &signed.token, Some(30 * 24 * 3600))],
        ),
        Ok(Err(e)) => error_page(&e, "Change the password", "/web/me"),
        Err(r) => r,
    }
}

/// The `token` of a link's query string.
fn query_token(uri: &axum::http::Uri) -> String {
    form_urlencoded(uri.query().unwrap_or("").as_bytes())
        .into_iter()
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v)
        .unwrap_or_default()
}

async fn verify_page(
    axum::Extension(o): axum::Extension<WebOptions>,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> Response {
    let token = query_token(&uri);
    form_page(&headers, o, "Verify your email address", |csrf| {
        format!(
            "<form method=\"post\" action=\"/web/verify\">{csrf}<input type=\"hidden\" name=\"token\" value=\"{}\">\n<button type=\"submit\" autofocus>Verify my address</button></form>",
            escape(&token)
        )
    })
}

async fn verify(
    State(app): State<Shared>,
    axum::Extension(o): axum::Extension<WebOptions>,
    req: Request,
) -> Response {
    let (_, form) = match posted(req, o).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let token = form.get("token").to_string();
    match call(&app, move |a| a.verify_email(&token)).await {
        Ok(Ok(user)) => page(
            StatusCode::OK,
            "Address verified",
            &format!(
                "<p><strong id=\"verified\">{}</strong> is verified.</p>\n<p><a href=\"/web/sign-in\">Sign in</a></p>",
                escape(&user.email)
            ),
            &[],
        ),
        Ok(Err(e)) => error_page(&e, "Verify your email address", "/web/sign-in"),
        Err(r) => r,
    }
}

async fn reset_request_page(
    axum::Extension(o): axum::Extension<WebOptions>,
    headers: HeaderMap,
) -> Response {
    form_page(&headers, o, "Reset the password", |csrf| {
        format!(
            "<form method=\"post\" action=\"/web/reset\">{csrf}\n<label for=\"email\">Email</label><input id=\"email\" name=\"email\" type=\"email\" autocomplete=\"email\" required autofocus>\n<button type=\"submit\">Send me a link</button></form>"
        )
    })
}

async fn reset_request(
    State(app): State<Shared>,
    axum::Extension(o): axum::Extension<WebOptions>,
    req: Request,
) -> Response {
    let ip = peer(&req);
    let (_, form) = match posted(req, o).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    if let Some(r) = limited(&app, ip, "reset", Some(form.get("email"))).await {
        return r;
    }
    let email = form.get("email").to_string();
    match call(&app, move |a| a.request_password_reset(&email)).await {
        // The same answer whether or not the address has an account.
        Ok(Ok(())) | Ok(Err(AuthError::InvalidCredentials)) => page(
            StatusCode::OK,
            "Check your mail",
            "<p>If that address has an account, a link to reset its password is on its way.</p>",
            &[],
        ),
        Ok(Err(e)) => error_page(&e, "Reset the password", "/web/reset"),
        Err(r) => r,
    }
}

async fn reset_page(
    axum::Extension(o): axum::Extension<WebOptions>,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> Response {
    let token = query_token(&uri);
    form_page(&headers, o, "Choose a new password", |csrf| {
        format!(
            "<form method=\"post\" action=\"/web/reset/confirm\">{csrf}<input type=\"hidden\" name=\"token\" value=\"{}\">\n<label for=\"new\">New password</label><input id=\"new\" name=\"new\" type=\"password\" autocomplete=\"new-password\" minlength=\"8\" required autofocus>\n<button type=\"submit\">Set it</button></form>",
            escape(&token)
        )
    })
}

async fn reset(
    State(app): State<Shared>,
    axum::Extension(o): axum::Extension<WebOptions>,
    req: Request,
) -> Response {
    let (_, form) = match posted(req, o).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let (token, new) = (form.get("token").to_string(), form.get("new").to_string());
    match call(&app, move |a| a.reset_password(&token, &new)).await {
        Ok(Ok(())) => page(
            StatusCode::OK,
            "Password changed",
            "<p>Your password is changed and every session signed out.</p>\n<p><a href=\"/web/sign-in\">Sign in</a></p>",
            &[set_cookie(o, SESSION, "", Some(0))],
        ),
        Ok(Err(e)) => error_page(&e, "Choose a new password", "/web/reset"),
        Err(r) => r,
    }
}
