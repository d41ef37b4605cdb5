//! The HTTP notes plugin: a JSON API served by a `wasi:http` incoming
//! handler, its notes in tables of its own — what a plugin that serves HTTP
//! looks like from the host.

use anyhow::{Result, ensure};
use bytes::Bytes;
use plinth_guests::{HTTP_NOTES, NOTES};
use plinth_host::{DEFAULT_HTTP_RESPONSE_BYTES, Error, Plugin};
use plinth_store::sql::{Namespace, SqlValue};
use serde_json::{Value, json};

use crate::util::Fixture;

/// A request as a server hands it on: the path below the plugin's mount
/// point.
pub fn request(method: &str, path: &str, body: &str) -> Result<http::Request<Bytes>> {
    Ok(http::Request::builder()
        .method(method)
        .uri(path)
        .body(Bytes::from(body.to_string()))?)
}

/// One request; the status and the JSON body.
fn call(p: &Plugin, method: &str, path: &str, body: &str) -> Result<(u16, Value)> {
    let response = p.handle_http(request(method, path, body)?, DEFAULT_HTTP_RESPONSE_BYTES)?;
    ensure!(
        response.headers().get("content-type").map(|v| v.as_bytes()) == Some(b"application/json"),
        "{response:?}"
    );
    Ok((
        response.status().as_u16(),
        serde_json::from_slice(response.body())?,
    ))
}

/// The notes in the plugin's table, read straight from the store.
fn stored_titles(f: &Fixture) -> Result<Vec<String>> {
    let ns = Namespace::new("http-notes", true)?;
    let rows =
        f.runtime
            .db()
            .unit()?
            .plugin_query(&ns, "SELECT title FROM notes ORDER BY id", &[])?;
    Ok(rows
        .rows
        .iter()
        .filter_map(|r| match r.first() {
            Some(SqlValue::Text(t)) => Some(t.clone()),
            _ => None,
        })
        .collect())
}

#[test]
fn notes_posted_over_http_are_listed_found_by_id_and_kept_in_the_database() -> Result<()> {
    let f = Fixture::new()?;
    let p = f.load(HTTP_NOTES)?;
    ensure!(p.handles_http());
    ensure!(call(&p, "GET", "/notes", "")? == (200, json!([])));

    let (status, first) = call(
        &p,
        "POST",
        "/notes",
        r#"{"title": "first", "body": "hello, world"}"#,
    )?;
    ensure!(status == 201, "{status} {first}");
    ensure!(
        first["title"] == "first" && first["body"] == "hello, world",
        "{first}"
    );
    ensure!(
        first["created_at"].as_i64().is_some_and(|t| t > 0),
        "{first}"
    );
    let (status, second) = call(&p, "POST", "/notes", r#"{"title": "second"}"#)?;
    ensure!(status == 201 && second["body"] == "", "{second}");

    let (status, list) = call(&p, "GET", "/notes", "")?;
    ensure!(status == 200 && list == json!([second, first]), "{list}");
    let id = first["id"].as_i64().unwrap_or_default();
    ensure!(call(&p, "GET", &format!("/notes/{id}"), "")? == (200, first.clone()));
    // A query string is the plugin's to read; this one ignores it.
    ensure!(call(&p, "GET", &format!("/notes/{id}?full=1"), "")? == (200, first.clone()));
    for missing in ["/notes/999", "/notes/abc", "/elsewhere", "/"] {
        let (status, body) = call(&p, "GET", missing, "")?;
        ensure!(
            status == 404 && body["error"].is_string(),
            "{missing}: {body}"
        );
    }

    // Read by the store itself, outside any call: the calls committed.
    ensure!(stored_titles(&f)? == ["first", "second"]);
    Ok(())
}

#[test]
fn a_bad_note_is_answered_400_and_keeps_nothing() -> Result<()> {
    let f = Fixture::new()?;
    let p = f.load(HTTP_NOTES)?;
    for body in [
        "not json",
        "",
        "[]",
        r#"{"title": ""}"#,
        r#"{"title": "   "}"#,
        r#"{"title": 1}"#,
        r#"{"body": "no title"}"#,
        r#"{"title": "t", "extra": true}"#,
        &format!(r#"{{"title": "{}"}}"#, "t".repeat(201)),
    ] {
        let (status, answer) = call(&p, "POST", "/notes", body)?;
        ensure!(
            status == 400 && answer["error"].is_string(),
            "{body}: {status} {answer}"
        );
    }
    let (status, answer) = call(&p, "POST", "/notes", &"x".repeat(65 * 1024))?;
    ensure!(status == 413, "{status} {answer}");
    ensure!(stored_titles(&f)?.is_empty());
    Ok(())
}

#[test]
fn another_method_on_a_known_path_is_405_with_what_is_allowed() -> Result<()> {
    let f = Fixture::new()?;
    let p = f.load(HTTP_NOTES)?;
    for (method, path, allow) in [
        ("DELETE", "/notes", "GET, POST"),
        ("PUT", "/notes/1", "GET"),
    ] {
        let response = p.handle_http(request(method, path, "")?, DEFAULT_HTTP_RESPONSE_BYTES)?;
        ensure!(response.status() == 405, "{method} {path}: {response:?}");
        ensure!(
            response.headers().get("allow").map(|v| v.as_bytes()) == Some(allow.as_bytes()),
            "{response:?}"
        );
    }
    Ok(())
}

/// From async code, on a current-thread runtime: the call runs on the
/// blocking pool while the runtime's one thread reads the response body.
#[test]
fn requests_are_handled_from_async_code_too() -> Result<()> {
    let f = Fixture::new()?;
    let p = f.load(HTTP_NOTES)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let body = format!(
        r#"{{"title": "async", "body": "{}"}}"#,
        "b".repeat(16 * 1024)
    );
    let response = runtime.block_on(p.handle_http_async(
        request("POST", "/notes", &body)?,
        DEFAULT_HTTP_RESPONSE_BYTES,
    ))?;
    ensure!(response.status() == 201, "{response:?}");
    let note: Value = serde_json::from_slice(response.body())?;
    ensure!(note["body"].as_str().map(str::len) == Some(16 * 1024));
    ensure!(stored_titles(&f)? == ["async"]);
    Ok(())
}

#[test]
fn a_plugin_without_the_export_does_not_handle_http() -> Result<()> {
    let f = Fixture::new()?;
    let p = f.load(NOTES)?;
    ensure!(!p.handles_http());
    match p.handle_http(request("GET", "/notes", "")?, DEFAULT_HTTP_RESPONSE_BYTES) {
        Err(e @ Error::WrongExports { .. }) => {
            let msg = format!("{e}: {:?}", std::error::Error::source(&e));
            ensure!(msg.contains("wasi:http"), "{msg}");
        }
        other => anyhow::bail!("expected WrongExports, got {other:?}"),
    }
    Ok(())
}
