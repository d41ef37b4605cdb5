//! Notes as a small JSON API over `wasi:http`: the example of a plugin that
//! serves HTTP. It exports `wasi:http/incoming-handler` (what `wasmtime
//! serve` and Spin run; here through the `wasip2` crate's
//! `http::proxy::export!`) and keeps its notes in tables of its own
//! (`plinth:sql`, created by `http-notes.migrations/`), stamped by plinth's
//! clock.
//!
//! Paths are the plugin's own: the host hands it the path below where it is
//! mounted (`[http] prefix` in its manifest), so it answers the same
//! wherever that is.
//!
//! * `GET /notes` — every note, newest first: `200` and a JSON array.
//! * `POST /notes` with `{"title": "…", "body": "…"}` — adds one: `201` and
//!   the note; `400` for a body that is not such an object, or an empty or
//!   over-long field; `413` for a request body over 64 KiB.
//! * `GET /notes/{id}` — one note: `200`, or `404`.
//! * Anything else: `404`, or `405` (with `allow`) for another method on a
//!   known path.
//!
//! Every call is one unit of work: a note is kept only when its response
//! was sent whole.

mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "plinth:http-notes/http-notes",
        generate_all,
    });
}

use bindings::plinth::database::clock;
use bindings::plinth::sql::sql;
use bindings::plinth::sql::types::{Dialect, Error as SqlError, Value};
use serde::{Deserialize, Serialize};
use wasip2::http::types::{
    Fields, IncomingBody, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam,
};
use wasip2::io::streams::StreamError;

/// The largest request body read, in bytes.
const MAX_REQUEST: usize = 64 * 1024;
/// The longest title, in bytes.
const MAX_TITLE: usize = 200;
/// The longest body, in bytes.
const MAX_BODY: usize = 16 * 1024;

struct Handler;

wasip2::http::proxy::export!(Handler);

impl wasip2::exports::http::incoming_handler::Guest for Handler {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let reply = route(&request);
        drop(request);
        respond(out, reply);
    }
}

/// A note, as stored and as sent.
#[derive(Serialize)]
struct Note {
    id: i64,
    title: String,
    body: String,
    created_at: i64,
}

/// What `POST /notes` takes.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewNote {
    title: String,
    #[serde(default)]
    body: String,
}

/// A status, extra headers and a JSON body.
struct Reply {
    status: u16,
    headers: Vec<(String, Vec<u8>)>,
    json: String,
}

impl Reply {
    fn json(status: u16, value: &impl Serialize) -> Self {
        match serde_json::to_string(value) {
            Ok(json) => Self {
                status,
                headers: Vec::new(),
                json,
            },
            Err(e) => Self::error(500, &format!("encoding the answer: {e}")),
        }
    }

    fn error(status: u16, message: &str) -> Self {
        Self {
            status,
            headers: Vec::new(),
            json: serde_json::json!({ "error": message }).to_string(),
        }
    }
}

fn route(request: &IncomingRequest) -> Reply {
    let path_with_query = request.path_with_query().unwrap_or_default();
    let path = path_with_query.split('?').next().unwrap_or_default();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let method = request.method();
    let answer = match (segments.as_slice(), &method) {
        (["notes"], Method::Get) => list(),
        (["notes"], Method::Post) => match read_body(request) {
            Ok(bytes) => add(&bytes),
            Err(reply) => Ok(reply),
        },
        (["notes"], _) => Ok(not_allowed("GET, POST")),
        (["notes", id], Method::Get) => match id.parse::<i64>() {
            Ok(id) => get(id),
            Err(_) => Ok(Reply::error(404, "no such note")),
        },
        (["notes", _], _) => Ok(not_allowed("GET")),
        _ => Ok(Reply::error(404, "nothing here: try /notes")),
    };
    answer.unwrap_or_else(|e| Reply::error(500, &storage(e)))
}

fn not_allowed(allow: &str) -> Reply {
    let mut reply = Reply::error(405, "method not allowed");
    reply
        .headers
        .push(("allow".into(), allow.as_bytes().to_vec()));
    reply
}

fn list() -> Result<Reply, SqlError> {
    let rows = query(
        "SELECT id, title, body, created_at FROM notes ORDER BY id DESC",
        &[],
    )?;
    let notes: Vec<Note> = rows.iter().filter_map(|r| note(r)).collect();
    Ok(Reply::json(200, &notes))
}

fn get(id: i64) -> Result<Reply, SqlError> {
    let rows = query(
        "SELECT id, title, body, created_at FROM notes WHERE id = ?1",
        &[Value::Integer(id)],
    )?;
    Ok(match rows.first().and_then(|r| note(r)) {
        Some(note) => Reply::json(200, &note),
        None => Reply::error(404, "no such note"),
    })
}

fn add(bytes: &[u8]) -> Result<Reply, SqlError> {
    let new: NewNote = match serde_json::from_slice(bytes) {
        Ok(new) => new,
        Err(e) => return Ok(Reply::error(400, &format!("not a note: {e}"))),
    };
    if new.title.trim().is_empty() {
        return Ok(Reply::error(400, "the title is empty"));
    }
    if new.title.len() > MAX_TITLE || new.body.len() > MAX_BODY {
        return Ok(Reply::error(
            400,
            &format!("a title is at most {MAX_TITLE} bytes, a body {MAX_BODY}"),
        ));
    }
    let created_at = clock::now();
    let rows = query(
        "INSERT INTO notes (title, body, created_at) VALUES (?1, ?2, ?3) RETURNING id",
        &[
            Value::Text(new.title.clone()),
            Value::Text(new.body.clone()),
            Value::Integer(created_at),
        ],
    )?;
    let Some(Value::Integer(id)) = rows.first().and_then(|r| r.first()) else {
        return Ok(Reply::error(500, "the new note has no id"));
    };
    Ok(Reply::json(
        201,
        &Note {
            id: *id,
            title: new.title,
            body: new.body,
            created_at,
        },
    ))
}

fn note(row: &[Value]) -> Option<Note> {
    match row {
        [
            Value::Integer(id),
            Value::Text(title),
            Value::Text(body),
            Value::Integer(created_at),
        ] => Some(Note {
            id: *id,
            title: title.clone(),
            body: body.clone(),
            created_at: *created_at,
        }),
        _ => None,
    }
}

/// Runs a query, its `?1` placeholders as the host's dialect writes them.
fn query(statement: &str, params: &[Value]) -> Result<Vec<Vec<Value>>, SqlError> {
    let statement = match sql::current_dialect() {
        Dialect::Postgresql => statement.replace('?', "$"),
        Dialect::Sqlite => statement.to_string(),
    };
    Ok(sql::query(&statement, params)?.rows)
}

fn storage(e: SqlError) -> String {
    match e {
        SqlError::TooLarge(m) => format!("too large: {m}"),
        SqlError::Busy => "the database is busy; try again".into(),
        other => format!("storage: {other:?}"),
    }
}

/// The request's body, or the reply that refuses it.
fn read_body(request: &IncomingRequest) -> Result<Vec<u8>, Reply> {
    let failed = |what: &str| Reply::error(400, &format!("reading the request body: {what}"));
    let body = request.consume().map_err(|()| failed("taken"))?;
    let stream = body.stream().map_err(|()| failed("no stream"))?;
    let mut bytes = Vec::new();
    loop {
        match stream.blocking_read(16 * 1024) {
            Ok(chunk) => {
                if bytes.len() + chunk.len() > MAX_REQUEST {
                    return Err(Reply::error(
                        413,
                        &format!("a request body is at most {MAX_REQUEST} bytes"),
                    ));
                }
                bytes.extend_from_slice(&chunk);
            }
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(e)) => return Err(failed(&e.to_debug_string())),
        }
    }
    drop(stream);
    drop(IncomingBody::finish(body));
    Ok(bytes)
}

/// Sends `reply`. A failure on the way leaves the body unfinished, which the
/// host takes as no response (and keeps nothing of the call).
fn respond(out: ResponseOutparam, reply: Reply) {
    let mut entries = vec![("content-type".to_string(), b"application/json".to_vec())];
    entries.extend(reply.headers);
    let Ok(headers) = Fields::from_list(&entries) else {
        return;
    };
    let response = OutgoingResponse::new(headers);
    if response.set_status_code(reply.status).is_err() {
        return;
    }
    let Ok(body) = response.body() else {
        return;
    };
    ResponseOutparam::set(out, Ok(response));
    let Ok(stream) = body.write() else {
        return;
    };
    // `blocking-write-and-flush` takes at most 4096 bytes at a time.
    for chunk in reply.json.as_bytes().chunks(4096) {
        if stream.blocking_write_and_flush(chunk).is_err() {
            return;
        }
    }
    drop(stream);
    let _ = OutgoingBody::finish(body, None);
}
