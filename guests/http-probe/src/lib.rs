//! A `wasi:http` incoming handler that misbehaves on request, for the
//! tests: each path is one way of attacking what the host promises a plugin
//! that serves HTTP (its unit of work, its deadline, the response body's
//! limit, no network).
//!
//! * `GET /count` — how many rows its table `hits` has (the body: a number).
//! * `POST /write` — adds a row, answers `200`.
//! * `POST /write-then-trap` — adds a row, sends a whole response, then
//!   traps.
//! * `POST /write-then-spin` — adds a row, then runs forever.
//! * `GET /body-before-response` — writes 64 KiB of body before setting the
//!   response, so that nobody reads it: its writes wait.
//! * `GET /big?bytes=N` — a body of `N` bytes, written 4096 at a time; a
//!   write that fails traps.
//! * `GET /outgoing?port=N` — sends `GET http://127.0.0.1:N/` through
//!   `wasi:http/outgoing-handler`; the body says how that went.
//! * `GET /no-response` — returns without setting one.
//! * `GET /unfinished` — sets a response, writes some of its body and never
//!   finishes it.
//! * `GET /error` — sets an error instead of a response.
//! * anything else — echoes what it was given: one `name=value` line each
//!   for the method, path, scheme, authority, the `x-probe` header, whether
//!   a `host` header is visible, and the body.

mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "local:http-probe/http-probe",
        generate_all,
    });
}

use bindings::plinth::sql::sql;
use bindings::plinth::sql::types::{Dialect, Value};
use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    ErrorCode, Fields, IncomingBody, IncomingRequest, Method, OutgoingBody, OutgoingRequest,
    OutgoingResponse, ResponseOutparam, Scheme,
};
use wasip2::io::streams::StreamError;

struct Probe;

wasip2::http::proxy::export!(Probe);

impl wasip2::exports::http::incoming_handler::Guest for Probe {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let path_with_query = request.path_with_query().unwrap_or_default();
        let (path, query) = path_with_query
            .split_once('?')
            .unwrap_or((path_with_query.as_str(), ""));
        match path {
            "/count" => {
                let rows = sql::query("SELECT count(*) FROM hits", &[]).expect("count");
                let n = match rows.rows.first().and_then(|r| r.first()) {
                    Some(Value::Integer(n)) => *n,
                    _ => -1,
                };
                respond(out, 200, n.to_string().as_bytes());
            }
            "/write" => {
                write(path);
                respond(out, 200, b"written");
            }
            "/write-then-trap" => {
                write(path);
                respond(out, 200, b"written");
                panic!("the handler traps after answering");
            }
            "/write-then-spin" => {
                write(path);
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "/body-before-response" => {
                let response = OutgoingResponse::new(Fields::new());
                let body = response.body().expect("body");
                let stream = body.write().expect("stream");
                for _ in 0..16 {
                    stream
                        .blocking_write_and_flush(&[b'x'; 4096])
                        .expect("write");
                }
                drop(stream);
                ResponseOutparam::set(out, Ok(response));
                OutgoingBody::finish(body, None).expect("finish");
            }
            "/big" => {
                let bytes = number(query, "bytes");
                let response = OutgoingResponse::new(Fields::new());
                let body = response.body().expect("body");
                ResponseOutparam::set(out, Ok(response));
                let stream = body.write().expect("stream");
                let mut left = bytes;
                while left > 0 {
                    let n = left.min(4096);
                    stream
                        .blocking_write_and_flush(&vec![b'x'; n as usize])
                        .expect("the host stopped reading the body");
                    left -= n;
                }
                drop(stream);
                OutgoingBody::finish(body, None).expect("finish");
            }
            "/outgoing" => {
                let answer = send(number(query, "port"));
                respond(out, 200, answer.as_bytes());
            }
            "/no-response" => drop(out),
            "/unfinished" => {
                let response = OutgoingResponse::new(Fields::new());
                let body = response.body().expect("body");
                ResponseOutparam::set(out, Ok(response));
                let stream = body.write().expect("stream");
                stream.blocking_write_and_flush(b"partial").expect("write");
                drop(stream);
                // Neither finished nor dropped: the body stays open.
                std::mem::forget(body);
            }
            "/error" => ResponseOutparam::set(
                out,
                Err(ErrorCode::InternalError(Some("the probe fails".into()))),
            ),
            _ => {
                let echo = echo(&request, &path_with_query);
                respond(out, 200, echo.as_bytes());
            }
        }
    }
}

/// Adds a row to `hits`.
fn write(path: &str) {
    let statement = match sql::current_dialect() {
        Dialect::Postgresql => "INSERT INTO hits (path) VALUES ($1)",
        Dialect::Sqlite => "INSERT INTO hits (path) VALUES (?1)",
    };
    sql::execute(statement, &[Value::Text(path.into())]).expect("insert");
}

/// The number `name=N` in a query string, or 0.
fn number(query: &str, name: &str) -> u64 {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == name)
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}

/// Sends `GET http://127.0.0.1:{port}/`; what came of it.
fn send(port: u64) -> String {
    let request = OutgoingRequest::new(Fields::new());
    let _ = request.set_method(&Method::Get);
    let _ = request.set_scheme(Some(&Scheme::Http));
    let _ = request.set_authority(Some(&format!("127.0.0.1:{port}")));
    let _ = request.set_path_with_query(Some("/"));
    match outgoing_handler::handle(request, None) {
        Err(code) => format!("refused: {code:?}"),
        Ok(future) => {
            future.subscribe().block();
            match future.get() {
                Some(Ok(Ok(response))) => format!("sent: status {}", response.status()),
                Some(Ok(Err(code))) => format!("sent, failed: {code:?}"),
                other => format!("sent: {other:?}"),
            }
        }
    }
}

fn echo(request: &IncomingRequest, path_with_query: &str) -> String {
    let headers = request.headers();
    let probe = headers
        .get("x-probe")
        .first()
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .unwrap_or_default();
    let host_visible = !headers.get("host").is_empty();
    drop(headers);
    let body = read_body(request);
    format!(
        "method={:?}\npath={path_with_query}\nscheme={:?}\nauthority={}\nx-probe={probe}\nhost-visible={host_visible}\nbody={}\n",
        request.method(),
        request.scheme(),
        request.authority().unwrap_or_default(),
        String::from_utf8_lossy(&body),
    )
}

fn read_body(request: &IncomingRequest) -> Vec<u8> {
    let body = request.consume().expect("body");
    let stream = body.stream().expect("stream");
    let mut bytes = Vec::new();
    loop {
        match stream.blocking_read(4096) {
            Ok(chunk) => bytes.extend_from_slice(&chunk),
            Err(StreamError::Closed) => break,
            Err(e) => panic!("reading the body: {e:?}"),
        }
    }
    drop(stream);
    drop(IncomingBody::finish(body));
    bytes
}

/// Answers `status` with `body`, whole.
fn respond(out: ResponseOutparam, status: u16, body: &[u8]) {
    let response = OutgoingResponse::new(Fields::new());
    response.set_status_code(status).expect("status");
    let outgoing = response.body().expect("body");
    ResponseOutparam::set(out, Ok(response));
    let stream = outgoing.write().expect("stream");
    for chunk in body.chunks(4096) {
        stream.blocking_write_and_flush(chunk).expect("write");
    }
    drop(stream);
    OutgoingBody::finish(outgoing, None).expect("finish");
}
