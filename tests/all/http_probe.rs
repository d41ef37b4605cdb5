//! Attacks on what the host promises a plugin that serves HTTP, through the
//! http-probe guest: a request is one unit of work (a trap, a time-out or a
//! response that is not whole keeps nothing), its deadline bounds the host's
//! waits as well as the guest's code, a response body is read no further
//! than the caller's limit, and the network stays out of reach.

use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use bytes::Bytes;
use plinth_guests::HTTP_PROBE;
use plinth_host::{DEFAULT_HTTP_RESPONSE_BYTES, Error, Manifest, Plugin, Reuse};

use crate::http_notes::request;
use crate::util::Fixture;

/// Longer than the probe's time limit (300 ms) plus a loaded machine's
/// slack: a call stopped at its deadline ends well within it.
const STOPPED_WITHIN: Duration = Duration::from_secs(10);

fn call(p: &Plugin, method: &str, path: &str) -> plinth_host::Result<http::Response<Bytes>> {
    let Ok(request) = request(method, path, "") else {
        unreachable!("the tests' paths are valid URIs");
    };
    p.handle_http(request, DEFAULT_HTTP_RESPONSE_BYTES)
}

/// The rows of the probe's table, as a call of its own sees them.
fn count(p: &Plugin) -> Result<i64> {
    let response = call(p, "GET", "/count")?;
    Ok(std::str::from_utf8(response.body())?.parse()?)
}

#[test]
fn a_handler_that_traps_after_answering_keeps_nothing() -> Result<()> {
    let f = Fixture::new()?;
    let p = f.load(HTTP_PROBE)?;
    ensure!(call(&p, "POST", "/write")?.status() == 200);
    ensure!(count(&p)? == 1);
    match call(&p, "POST", "/write-then-trap") {
        Err(Error::Trap { .. }) => {}
        other => anyhow::bail!("expected a trap, got {other:?}"),
    }
    ensure!(count(&p)? == 1);
    Ok(())
}

#[test]
fn a_handler_past_its_time_limit_is_stopped_and_keeps_nothing() -> Result<()> {
    let f = Fixture::new()?;
    let p = f.load(HTTP_PROBE)?;
    let started = Instant::now();
    match call(&p, "POST", "/write-then-spin") {
        Err(Error::TimedOut { limit, .. }) => ensure!(limit == Duration::from_millis(300)),
        other => anyhow::bail!("expected a time-out, got {other:?}"),
    }
    ensure!(
        started.elapsed() < STOPPED_WITHIN,
        "{:?}",
        started.elapsed()
    );
    ensure!(count(&p)? == 0);
    Ok(())
}

/// A body written before its response is set has no reader: the writes
/// wait in the host, and the deadline ends the wait (the epoch stops only
/// running wasm).
#[test]
fn a_handler_waiting_on_its_unread_response_body_is_stopped_at_its_deadline() -> Result<()> {
    let f = Fixture::new()?;
    let p = f.load(HTTP_PROBE)?;
    let started = Instant::now();
    match call(&p, "GET", "/body-before-response") {
        Err(Error::TimedOut { .. }) => {}
        other => anyhow::bail!("expected a time-out, got {other:?}"),
    }
    ensure!(
        started.elapsed() < STOPPED_WITHIN,
        "{:?}",
        started.elapsed()
    );
    Ok(())
}

#[test]
fn outgoing_http_is_refused_and_nothing_is_sent() -> Result<()> {
    let f = Fixture::new()?;
    let p = f.load(HTTP_PROBE)?;
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let port = listener.local_addr()?.port();
    let response = call(&p, "GET", &format!("/outgoing?port={port}"))?;
    let answer = String::from_utf8_lossy(response.body()).into_owned();
    ensure!(
        answer == "refused: ErrorCode::HttpRequestDenied",
        "{answer}"
    );
    // Nothing connected, then or a moment later.
    std::thread::sleep(Duration::from_millis(200));
    match listener.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => anyhow::bail!("something reached the listener: {other:?}"),
    }
    Ok(())
}

#[test]
fn a_response_body_over_the_limit_is_refused_and_one_at_it_is_not() -> Result<()> {
    let f = Fixture::new()?;
    let p = f.load(HTTP_PROBE)?;
    let at = p.handle_http(request("GET", "/big?bytes=10000", "")?, 10_000)?;
    ensure!(at.body().len() == 10_000 && at.body().iter().all(|&b| b == b'x'));
    match p.handle_http(request("GET", "/big?bytes=10000", "")?, 9_999) {
        Err(Error::HttpResponseTooLarge { limit, .. }) => ensure!(limit == 9_999),
        other => anyhow::bail!("expected HttpResponseTooLarge, got {other:?}"),
    }
    // Far over: the host stops reading at the limit, the handler's next
    // write fails (it traps on it), and the call ends at once as too large.
    let started = Instant::now();
    match p.handle_http(request("GET", "/big?bytes=100000000", "")?, 64 << 10) {
        Err(Error::HttpResponseTooLarge { limit, .. }) => ensure!(limit == 64 << 10),
        other => anyhow::bail!("expected HttpResponseTooLarge, got {other:?}"),
    }
    ensure!(
        started.elapsed() < STOPPED_WITHIN,
        "{:?}",
        started.elapsed()
    );
    Ok(())
}

#[test]
fn a_handler_without_a_whole_response_fails_the_call() -> Result<()> {
    let f = Fixture::new()?;
    let p = f.load(HTTP_PROBE)?;
    for (path, needle) in [
        ("/no-response", "without setting a response"),
        ("/unfinished", "without finishing the response body"),
        ("/error", "the probe fails"),
    ] {
        match call(&p, "GET", path) {
            Err(e @ Error::HttpResponse { .. }) => {
                let msg = e.to_string();
                ensure!(msg.contains(needle), "{path}: {msg}");
            }
            other => anyhow::bail!("{path}: expected HttpResponse, got {other:?}"),
        }
    }
    Ok(())
}

#[test]
fn the_handler_sees_the_request_as_given_below_its_mount_point() -> Result<()> {
    let f = Fixture::new()?;
    let p = f.load(HTTP_PROBE)?;
    let request = http::Request::post("/some/where?x=1&y=%20")
        .header("x-probe", "yes")
        .body(Bytes::from_static(b"hello"))?;
    let echo = p.handle_http(request, DEFAULT_HTTP_RESPONSE_BYTES)?;
    let echo = String::from_utf8_lossy(echo.body()).into_owned();
    ensure!(
        echo == "method=Method::Post\npath=/some/where?x=1&y=%20\nscheme=Some(Scheme::Http)\n\
                 authority=localhost\n\
                 x-probe=yes\nhost-visible=false\nbody=hello\n",
        "{echo}"
    );
    // A URI's own scheme and authority, or the Host header's.
    let request = http::Request::get("https://example.com:8443/p").body(Bytes::new())?;
    let echo = p.handle_http(request, DEFAULT_HTTP_RESPONSE_BYTES)?;
    let echo = String::from_utf8_lossy(echo.body()).into_owned();
    ensure!(
        echo.contains("scheme=Some(Scheme::Https)\nauthority=example.com:8443\n"),
        "{echo}"
    );
    let request = http::Request::get("/p")
        .header("host", "notes.example")
        .body(Bytes::new())?;
    let echo = p.handle_http(request, DEFAULT_HTTP_RESPONSE_BYTES)?;
    let echo = String::from_utf8_lossy(echo.body()).into_owned();
    ensure!(echo.contains("authority=notes.example\n"), "{echo}");
    // Not a path.
    let request = http::Request::options("*").body(Bytes::new())?;
    match p.handle_http(request, DEFAULT_HTTP_RESPONSE_BYTES) {
        Err(Error::BadArguments { message, .. }) => ensure!(message.contains("start with /")),
        other => anyhow::bail!("expected BadArguments, got {other:?}"),
    }
    Ok(())
}

/// With instances reused, each request is still its own unit of work, and
/// an instance that trapped is not reused.
#[test]
fn reused_instances_serve_requests_each_its_own_unit() -> Result<()> {
    let f = Fixture::new()?;
    let reuse = Reuse {
        max_memory_bytes: 64 << 20,
        ..Reuse::default()
    };
    let manifest = Manifest::from_file(HTTP_PROBE.manifest.as_ref())?.reuse(Some(reuse));
    let p = f.load_with(HTTP_PROBE, manifest)?;
    ensure!(call(&p, "POST", "/write")?.status() == 200);
    ensure!(call(&p, "POST", "/write")?.status() == 200);
    ensure!(p.instantiations() == 1 && p.idle_instances() == 1);
    ensure!(call(&p, "POST", "/write-then-trap").is_err());
    ensure!(p.idle_instances() == 0);
    ensure!(count(&p)? == 2);
    ensure!(p.instantiations() == 2);
    Ok(())
}
