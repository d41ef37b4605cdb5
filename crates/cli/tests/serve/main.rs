//! `plinth serve`, end to end: real server processes on SQLite (and two on
//! the test PostgreSQL), driven over HTTP by a real client and by raw
//! sockets for the clients that misbehave.

mod server;
#[path = "../tools/mod.rs"]
mod tools;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use serde_json::{Value, json};
use server::{Start, eventually, signup};

const PW: &str = "correct horse battery staple";

fn rows(db: &Path, table: &str) -> Result<i64> {
    let conn = rusqlite::Connection::open(db)?;
    Ok(conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))?)
}

/// Installs the misbehave component as plugin `name` with `[http]` and the
/// limits given, into `data`'s plugins directory.
fn install_misbehave(data: &Path, name: &str, extra: &str) -> Result<()> {
    let guest = plinth_guests::Guest::by_name("misbehave").context("no misbehave guest")?;
    let src = data.join("src");
    std::fs::create_dir_all(&src)?;
    let wasm = src.join(format!("{name}.wasm"));
    std::fs::copy(guest.wasm, &wasm)?;
    std::fs::write(
        src.join(format!("{name}.toml")),
        format!("name = \"{name}\"\n[grants]\n\"plinth:database/users\" = \"read-write\"\n{extra}"),
    )?;
    tools::stdout(
        tools::plinth(data)?
            .args(["plugin", "install", "--yes"])
            .arg(&wasm),
    )?;
    Ok(())
}

const SLOW: &str =
    "[limits]\nmemory-mib = 32\ntime-ms = 3000\n[http]\nexports = [\"write-then\"]\n";

#[test]
fn exports_answer_typed_json_and_their_errors_as_4xx() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let s = Start::new(dir.path()).spawn()?;
    let up = s.call("auth", "sign-up", signup("ada", "ada@example.com", PW))?;
    ensure!(up.status == 200, "{up:?}");
    ensure!(up.header("x-request-id").is_some_and(|id| id.len() == 32));
    ensure!(up.header("content-type") == Some("application/json"));
    let user = up.json()?;
    ensure!(
        user["ok"]["name"] == "ada" && user["ok"]["email-verified"] == false,
        "{user}"
    );
    // The export's own error: 422 with the variant as JSON.
    let again = s.call("auth", "sign-up", signup("ada2", "ada@example.com", PW))?;
    ensure!(
        again.status == 422 && again.json()? == json!({"err": "email-taken"}),
        "{again:?}"
    );
    let weak = s.call("auth", "sign-up", signup("bob", "bob@example.com", "short"))?;
    ensure!(
        weak.status == 422 && weak.json()?["err"]["weak-password"].is_string(),
        "{weak:?}"
    );
    let wrong = s.call(
        "auth",
        "sign-in",
        json!({"email": "ada@example.com", "password": "nope nope nope"}),
    )?;
    ensure!(wrong.status == 422 && wrong.json()? == json!({"err": "invalid-credentials"}));
    let signed = s.ok(
        "auth",
        "sign-in",
        json!({"email": "ada@example.com", "password": PW}),
    )?;
    let token = signed["token"].as_str().context("no token")?.to_string();
    let who = s.ok("auth", "validate-session", json!({"token": token}))?;
    ensure!(who["user"]["name"] == "ada", "{who}");
    // Records and options in the arguments, through the export's types.
    let changed = s.ok(
        "auth",
        "update-profile",
        json!({"session-token": token, "changes": {"name": null, "avatar": "keep", "bio": {"set": "hi"}}}),
    )?;
    ensure!(changed["bio"] == "hi", "{changed}");
    ensure!(s.ok("auth", "sign-out", json!({"token": token}))? == Value::Null);
    let gone = s.call("auth", "validate-session", json!({"token": token}))?;
    ensure!(gone.status == 422 && gone.json()? == json!({"err": "session-expired"}));
    // Throttled: the fifth failure on, 429 with Retry-After.
    let mut limited = None;
    for _ in 0..12 {
        let a = s.call(
            "auth",
            "sign-in",
            json!({"email": "ada@example.com", "password": "wrong wrong wrong"}),
        )?;
        if a.status == 429 {
            limited = Some(a);
            break;
        }
        ensure!(a.status == 422, "{a:?}");
    }
    let limited = limited.context("sign-in never rate-limited")?;
    let secs: u64 = limited
        .header("retry-after")
        .context("no Retry-After")?
        .parse()?;
    ensure!(secs >= 1 && limited.json()?["err"]["rate-limited"].as_u64() == Some(secs));
    // Headers and query strings a client may put secrets in.
    let with_secrets = s
        .client()
        .post(format!(
            "{}/plugins/auth/validate-session?token=query-secret-123",
            s.base
        ))
        .header("content-type", "application/json")
        .header("authorization", "Bearer header-secret-456")
        .header("cookie", "session=cookie-secret-789")
        .body(json!({"token": "body-secret-000"}).to_string())
        .send()?;
    ensure!(with_secrets.status().as_u16() == 422);
    // The log names each request once, with its id, and holds no secret.
    let log = s.log_text();
    for secret in [
        "query-secret-123",
        "header-secret-456",
        "cookie-secret-789",
        "body-secret-000",
    ] {
        ensure!(!log.contains(secret), "the log holds {secret}: {log}");
    }
    ensure!(
        log.contains(up.header("x-request-id").unwrap_or("?")),
        "{log}"
    );
    for secret in [PW, "nope nope nope", &token, "wrong wrong wrong"] {
        ensure!(!log.contains(secret), "the log holds a secret: {secret}");
    }
    Ok(())
}

#[test]
fn bad_requests_are_refused_naming_the_field_and_write_nothing() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let s = Start::new(dir.path())
        .arg("--max-body-bytes")
        .arg("4096")
        .spawn()?;
    let db = dir.path().join("plinth.db");
    let bad = |a: &server::Answer, status: u16, needle: &str| -> Result<()> {
        ensure!(a.status == status, "expected {status}: {a:?}");
        let v = a.json()?;
        ensure!(v["request_id"].as_str() == a.header("x-request-id"), "{v}");
        let msg = v["message"].as_str().unwrap_or_default();
        ensure!(msg.contains(needle), "{msg:?} lacks {needle:?}");
        Ok(())
    };
    let path = "/plugins/auth/sign-up";
    bad(
        &s.post_raw(path, "application/json", b"{\"name\": ".to_vec())?,
        400,
        "not JSON",
    )?;
    bad(
        &s.post_raw(path, "application/json", b"[1, 2]".to_vec())?,
        400,
        "",
    )?;
    bad(
        &s.call(
            "auth",
            "sign-up",
            json!({"name": 5, "email": "a@example.com", "password": PW}),
        )?,
        400,
        "name",
    )?;
    bad(
        &s.call(
            "auth",
            "sign-up",
            json!({"name": "a", "email": "a@example.com"}),
        )?,
        400,
        "password",
    )?;
    bad(
        &s.call(
            "auth",
            "sign-up",
            json!({"name": "a", "email": "a@example.com", "password": PW, "admin": true}),
        )?,
        400,
        "admin",
    )?;
    bad(&s.call("auth", "update-profile", json!({"session-token": "x", "changes": {"name": null, "avatar": "burn", "bio": "keep"}}))?, 400, "avatar")?;
    // SQL-looking strings are strings: typed, bound, refused by the plugin's rules.
    let sqlish = s.call(
        "auth",
        "sign-up",
        signup("x'; DROP TABLE users; --", "x@example.com", PW),
    )?;
    ensure!(
        sqlish.status == 422 && sqlish.json()?["err"]["invalid-input"].is_string(),
        "{sqlish:?}"
    );
    // A form post (what a cross-site page can send without asking) is not JSON.
    bad(
        &s.post_raw(
            path,
            "application/x-www-form-urlencoded",
            b"name=a".to_vec(),
        )?,
        415,
        "JSON",
    )?;
    bad(
        &s.post_raw(path, "text/plain", b"{}".to_vec())?,
        415,
        "JSON",
    )?;
    // A body that does not say what it is (a cross-site fetch of a blob).
    let untyped = s
        .client()
        .post(format!("{}{path}", s.base))
        .body(signup("a", "a@example.com", PW).to_string())
        .send()?;
    ensure!(untyped.status().as_u16() == 415, "{untyped:?}");
    // Over the cap: by its length, and when sent in chunks with no length.
    let big =
        json!({"name": "a".repeat(5000), "email": "a@example.com", "password": PW}).to_string();
    bad(
        &s.post_raw(path, "application/json", big.clone().into_bytes())?,
        413,
        "4096",
    )?;
    let chunks = vec![Ok::<_, std::io::Error>(big.into_bytes())];
    let chunked = s
        .client()
        .post(format!("{}{path}", s.base))
        .header("content-type", "application/json")
        .body(reqwest::blocking::Body::new(ChunkedReader::new(chunks)))
        .send()?;
    ensure!(chunked.status().as_u16() == 413, "{chunked:?}");
    // Unknown plugins and exports, built-ins not exposed, other methods.
    bad(&s.call("nobody", "sign-up", json!({}))?, 404, "plugin")?;
    bad(
        &s.call("auth", "drop-everything", json!({}))?,
        404,
        "drop-everything",
    )?;
    bad(&s.call("db-test", "run-all", json!({}))?, 404, "plugin")?;
    bad(&s.get("/plugins/auth/sign-up")?, 405, "POST")?;
    bad(&s.get("/plugins")?, 404, "")?;
    ensure!(rows(&db, "users")? == 0, "a refused request wrote");
    Ok(())
}

/// A body sent in chunks of unknown total length.
struct ChunkedReader {
    chunks: std::vec::IntoIter<std::io::Result<Vec<u8>>>,
    current: std::io::Cursor<Vec<u8>>,
}

impl ChunkedReader {
    fn new(chunks: Vec<std::io::Result<Vec<u8>>>) -> Self {
        Self {
            chunks: chunks.into_iter(),
            current: std::io::Cursor::new(Vec::new()),
        }
    }
}

impl Read for ChunkedReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            let n = self.current.read(buf)?;
            if n > 0 {
                return Ok(n);
            }
            match self.chunks.next() {
                Some(c) => self.current = std::io::Cursor::new(c?),
                None => return Ok(0),
            }
        }
    }
}

#[test]
fn a_plugin_that_traps_spins_or_eats_memory_answers_without_its_internals() -> Result<()> {
    let dir = tempfile::tempdir()?;
    install_misbehave(dir.path(), "slow", SLOW)?;
    let s = Start::new(dir.path()).spawn()?;
    let db = dir.path().join("plinth.db");
    let ok = s.call(
        "slow",
        "write-then",
        json!({"name": "kept", "then": "return-normally"}),
    )?;
    ensure!(
        ok.status == 200 && ok.json()? == json!({"ok": "returned"}),
        "{ok:?}"
    );
    for (then, status, kind) in [
        (json!("trap"), 500, "trap"),
        (json!("loop-forever"), 503, "timed-out"),
        (json!({"grow": 64}), 503, "memory-limit"),
    ] {
        let a = s.call("slow", "write-then", json!({"name": "lost", "then": then}))?;
        ensure!(a.status == status, "{then}: {a:?}");
        let v = a.json()?;
        ensure!(
            v["error"] == kind && v["request_id"].as_str() == a.header("x-request-id"),
            "{v}"
        );
        // Nothing internal: no backtrace, no wasm function, no file.
        for internal in ["wasm", "backtrace", "panicked", ".rs", "misbehave"] {
            ensure!(
                !a.text.contains(internal),
                "{then}: {internal} in {}",
                a.text
            );
        }
        if status == 503 {
            ensure!(a.header("retry-after") == Some("1"), "{a:?}");
        }
        // The details are in the log, under the request id.
        let id = v["request_id"].as_str().unwrap_or("?").to_string();
        ensure!(
            s.log_text()
                .lines()
                .any(|l| l.contains(&id) && l.contains("call failed"))
        );
    }
    let conn = rusqlite::Connection::open(&db)?;
    let names: Vec<String> = conn
        .prepare("SELECT name FROM users ORDER BY name")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    ensure!(names == ["kept"], "{names:?}");
    let metrics = s.admin_get("/metrics")?.text;
    for outcome in ["ok", "trap", "timed-out", "memory-limit"] {
        ensure!(
            metrics.contains(&format!("plinth_plugin_calls_total{{plugin=\"slow\",export=\"write-then\",outcome=\"{outcome}\"}} 1")),
            "{outcome}: {metrics}"
        );
    }
    Ok(())
}

#[test]
fn calls_past_the_limit_in_flight_answer_503_with_retry_after() -> Result<()> {
    let dir = tempfile::tempdir()?;
    install_misbehave(dir.path(), "slow", SLOW)?;
    let s = Start::new(dir.path())
        .arg("--max-in-flight")
        .arg("1")
        .spawn()?;
    std::thread::scope(|scope| -> Result<()> {
        let busy = scope.spawn(|| {
            s.call(
                "slow",
                "write-then",
                json!({"name": "", "then": {"sleep": 1500}}),
            )
        });
        // Once the first is in flight, the next is refused at once.
        eventually(Duration::from_secs(5), || {
            let m = s.admin_get("/metrics")?.text;
            Ok(m.contains("plinth_plugin_calls_in_flight 1").then_some(()))
        })?;
        let refused = eventually(Duration::from_secs(5), || {
            let started = Instant::now();
            let a = s.call(
                "slow",
                "write-then",
                json!({"name": "", "then": "return-normally"}),
            )?;
            Ok((a.status == 503).then_some((a, started.elapsed())))
        })
        .with_context(|| s.log_text())?;
        let (a, took) = refused;
        ensure!(
            a.header("retry-after") == Some("1") && a.json()?["error"] == "overloaded",
            "{a:?}"
        );
        ensure!(
            took < Duration::from_millis(1000),
            "refused only after {took:?}"
        );
        let first = busy.join().map_err(|_| anyhow::anyhow!("panicked"))??;
        ensure!(first.status == 200, "{first:?}");
        Ok(())
    })?;
    let after = s.call(
        "slow",
        "write-then",
        json!({"name": "", "then": "return-normally"}),
    )?;
    ensure!(after.status == 200, "{after:?}");
    ensure!(
        s.admin_get("/metrics")?
            .text
            .contains("plinth_overload_refusals_total 1")
    );
    Ok(())
}

#[test]
fn slow_clients_are_cut_off_and_others_are_served_meanwhile() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let s = Start::new(dir.path())
        .arg("--header-timeout-ms")
        .arg("400")
        .arg("--body-timeout-ms")
        .arg("400")
        .spawn()?;
    // Headers that never end.
    let mut slow_headers = TcpStream::connect(s.addr())?;
    slow_headers.write_all(b"POST /plugins/auth/sign-in HTTP/1.1\r\nHost: x\r\n")?;
    // A body that never comes.
    let mut slow_body = TcpStream::connect(s.addr())?;
    slow_body.write_all(
        b"POST /plugins/auth/sign-in HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"email\"",
    )?;
    // Others are served meanwhile.
    ensure!(s.get("/healthz")?.status == 200);
    let started = Instant::now();
    for (stream, what) in [(&mut slow_headers, "headers"), (&mut slow_body, "body")] {
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        let text = String::from_utf8_lossy(&answer);
        if what == "body" {
            ensure!(text.starts_with("HTTP/1.1 408"), "slow body: {text:?}");
        } else {
            // Closed (hyper answers 408 or nothing), never a request handled.
            ensure!(
                text.is_empty() || text.starts_with("HTTP/1.1 408"),
                "slow headers: {text:?}"
            );
        }
    }
    ensure!(
        started.elapsed() < Duration::from_secs(5),
        "cut off only after {:?}",
        started.elapsed()
    );
    Ok(())
}

#[test]
fn admin_endpoints_answer_on_their_own_address() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let s = Start::new(dir.path()).admin().spawn()?;
    ensure!(s.admin.is_some());
    ensure!(s.admin_get("/healthz")?.status == 200);
    let ready = s.admin_get("/readyz")?;
    let v = ready.json()?;
    ensure!(
        ready.status == 200
            && v["database"]["reachable"] == true
            && v["plugins"] == json!(["auth"]),
        "{v}"
    );
    ensure!(
        v["database"]["schema_version"]
            .as_u64()
            .is_some_and(|n| n >= 1),
        "{v}"
    );
    s.ok("auth", "sign-up", signup("ada", "ada@example.com", PW))?;
    let m = s.admin_get("/metrics")?;
    ensure!(
        m.header("content-type")
            .is_some_and(|c| c.starts_with("application/openmetrics-text"))
    );
    for needle in [
        "plinth_plugin_calls_total{plugin=\"auth\",export=\"sign-up\",outcome=\"ok\"} 1",
        "plinth_plugin_call_duration_seconds_bucket{",
        "plinth_plugins_loaded{plugin=\"auth\"} 1",
        "plinth_plugin_calls_in_flight 0",
        "plinth_outbox_queued",
        "plinth_plugin_instantiations{plugin=\"auth\"}",
        "plinth_db_pool_connections{state=\"idle\"}",
        "plinth_db_pool_connections{state=\"max\"} 16",
    ] {
        ensure!(m.text.contains(needle), "{needle}: {}", m.text);
    }
    // Not on the API's address.
    for path in ["/healthz", "/readyz", "/metrics"] {
        ensure!(s.get(path)?.status == 404, "{path} on the API address");
    }
    Ok(())
}

#[test]
fn mail_is_delivered_and_expired_sessions_removed_on_their_own() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let s = Start::new(dir.path())
        .arg("--mail-interval-ms")
        .arg("100")
        .arg("--cleanup-interval-ms")
        .arg("100")
        .spawn()?;
    s.ok("auth", "sign-up", signup("ada", "ada@example.com", PW))?;
    let mail = dir.path().join("mail");
    eventually(Duration::from_secs(10), || {
        Ok(std::fs::read_dir(&mail)
            .ok()
            .and_then(|d| (d.count() == 1).then_some(())))
    })?;
    // A session that expired an hour ago is removed without anyone asking.
    let db = dir.path().join("plinth.db");
    s.ok(
        "auth",
        "sign-in",
        json!({"email": "ada@example.com", "password": PW}),
    )?;
    let expired = {
        let conn = rusqlite::Connection::open(&db)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.execute("UPDATE sessions SET expires_at = unixepoch() - 3600", [])?
    };
    ensure!(expired == 1);
    eventually(Duration::from_secs(10), || {
        Ok((rows(&db, "sessions")? == 0).then_some(()))
    })?;
    Ok(())
}

/// A Python client that reads `/openapi.json`, finds the operation
/// `auth.sign-up`, builds its body from the request schema (every required
/// member, from values it has by name), posts it to the operation's path,
/// and checks the answer against the 200 response schema (and a wrong-typed
/// body against the 400).
const DRIVEN_BY_THE_DOCUMENT: &str = r#"
import json, sys, urllib.request, urllib.error
import jsonschema
base = sys.argv[1]
doc = json.load(urllib.request.urlopen(base + "/openapi.json"))
path, op = next((p, o["post"]) for p, o in doc["paths"].items() if o["post"]["operationId"] == "auth.sign-up")
schema = op["requestBody"]["content"]["application/json"]["schema"]
known = {"name": "ada", "email": "ada@example.com", "password": "correct horse battery staple"}
body = {k: known[k] for k in schema["required"]}
jsonschema.validate(body, schema)
def post(b):
    req = urllib.request.Request(base + path, data=json.dumps(b).encode(), headers={"content-type": "application/json"})
    try:
        r = urllib.request.urlopen(req)
        return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)
status, answer = post(body)
assert status == 200, (status, answer)
jsonschema.validate(answer, op["responses"]["200"]["content"]["application/json"]["schema"])
status, answer = post(dict(body, email=5))
assert status == 400, (status, answer)
resolver = {"components": doc["components"], **op["responses"]["400"]["content"]["application/json"]["schema"]}
jsonschema.validate(answer, resolver)
print("signed up", answer and body["name"])
"#;

#[test]
fn openapi_describes_every_exposed_export_and_validates() -> Result<()> {
    let dir = tempfile::tempdir()?;
    install_misbehave(dir.path(), "slow", SLOW)?;
    let s = Start::new(dir.path()).spawn()?;
    let doc = s.get("/openapi.json")?.json()?;
    ensure!(doc["openapi"] == "3.1.0");
    let paths = doc["paths"].as_object().context("no paths")?;
    ensure!(paths.len() == 12, "{:?}", paths.keys().collect::<Vec<_>>());
    ensure!(
        paths
            .keys()
            .all(|p| p.starts_with("/plugins/auth/") || p == "/plugins/slow/write-then")
    );
    let sign_in = &doc["paths"]["/plugins/auth/sign-in"]["post"];
    ensure!(
        sign_in["requestBody"]["content"]["application/json"]["schema"]["required"]
            == json!(["email", "password"]),
        "{sign_in}"
    );
    ensure!(sign_in["responses"]["422"].is_object() && sign_in["responses"]["200"].is_object());
    // The variant behaviour of the misbehave plugin, as a oneOf.
    let then = &doc["paths"]["/plugins/slow/write-then"]["post"]["requestBody"]["content"]["application/json"]
        ["schema"]["properties"]["then"];
    ensure!(
        then["oneOf"].as_array().is_some_and(|a| a.len() >= 5),
        "{then}"
    );
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, serde_json::to_vec_pretty(&doc)?)?;
    match tools::openapi_validator()? {
        Some(python) => {
            let out = std::process::Command::new(&python)
                .args(["-m", "openapi_spec_validator"])
                .arg(&file)
                .output()?;
            ensure!(
                out.status.success(),
                "openapi-spec-validator: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            // A client that knows nothing but the document calls sign-up.
            let out = std::process::Command::new(&python)
                .arg("-c")
                .arg(DRIVEN_BY_THE_DOCUMENT)
                .arg(&s.base)
                .output()?;
            ensure!(
                out.status.success(),
                "the client driven by the document: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            ensure!(String::from_utf8_lossy(&out.stdout).contains("signed up ada"));
        }
        None => tools::say("openapi-spec-validator unavailable: the document was not validated"),
    }
    Ok(())
}

#[test]
fn a_replaced_plugin_is_reloaded_while_calls_run_on() -> Result<()> {
    let dir = tempfile::tempdir()?;
    install_misbehave(dir.path(), "hot", SLOW)?;
    let s = Start::new(dir.path())
        .arg("--reload-interval-ms")
        .arg("100")
        .spawn()?;
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| -> Result<()> {
        // Calls keep running through the reload, some of them across it.
        let callers: Vec<_> = (0..2)
            .map(|_| {
                scope.spawn(|| -> Result<u32> {
                    let mut n = 0;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let a = s.call(
                            "hot",
                            "write-then",
                            json!({"name": "", "then": {"sleep": 150}}),
                        )?;
                        match a.status {
                            200 => n += 1,
                            // Once the new build serves, this export is gone.
                            404 => break,
                            _ => anyhow::bail!("a call failed during the reload: {a:?}"),
                        }
                    }
                    Ok(n)
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(400));
        // The new build: the template plugin's component under the same name.
        let template = plinth_guests::Guest::by_name("template").context("no template")?;
        let src = dir.path().join("src");
        std::fs::copy(template.wasm, src.join("hot.wasm"))?;
        std::fs::write(
            src.join("hot.toml"),
            "name = \"hot\"\n[grants]\n\"plinth:database/users\" = \"read\"\n[http]\nexports = [\"greet\"]\n",
        )?;
        tools::stdout(
            tools::plinth(dir.path())?
                .args(["plugin", "install", "--yes"])
                .arg(src.join("hot.wasm")),
        )?;
        let greeting = eventually(Duration::from_secs(20), || {
            let a = s.call("hot", "greet", json!({"email": "ada@example.com"}))?;
            Ok((a.status == 200).then_some(a))
        })?;
        ensure!(
            greeting.json()?.as_str().is_some_and(|g| g.contains("ada")),
            "{greeting:?}"
        );
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut total = 0;
        for c in callers {
            total += c.join().map_err(|_| anyhow::anyhow!("panicked"))??;
        }
        ensure!(total >= 2, "only {total} calls ran");
        Ok(())
    })?;
    let gone = s.call(
        "hot",
        "write-then",
        json!({"name": "", "then": "return-normally"}),
    )?;
    ensure!(gone.status == 404, "{gone:?}");
    ensure!(s.log_text().contains("reloaded"), "{}", s.log_text());
    Ok(())
}

#[test]
fn sigterm_finishes_calls_in_flight_then_exits() -> Result<()> {
    let dir = tempfile::tempdir()?;
    install_misbehave(dir.path(), "slow", SLOW)?;
    let mut s = Start::new(dir.path())
        .arg("--mail-interval-ms")
        .arg("100")
        .spawn()?;
    s.ok("auth", "sign-up", signup("ada", "ada@example.com", PW))?;
    let addr = s.addr().to_string();
    let in_flight = std::thread::scope(|scope| -> Result<server::Answer> {
        let call = scope.spawn(|| {
            s.call(
                "slow",
                "write-then",
                json!({"name": "late", "then": {"sleep": 1500}}),
            )
        });
        std::thread::sleep(Duration::from_millis(400));
        s.signal("TERM")?;
        call.join().map_err(|_| anyhow::anyhow!("panicked"))?
    })?;
    ensure!(
        in_flight.status == 200,
        "the call in flight was cut: {in_flight:?}"
    );
    let code = s.wait(Duration::from_secs(15))?;
    ensure!(code == Some(0), "exit {code:?}: {}", s.log_text());
    ensure!(s.printed().iter().any(|l| l.contains("stopped")));
    ensure!(
        TcpStream::connect(&addr).is_err(),
        "still accepting after it stopped"
    );
    ensure!(rows(&dir.path().join("plinth.db"), "users")? == 2);
    // The mail was delivered once, and is not delivered again by the next host.
    let count = || {
        std::fs::read_dir(dir.path().join("mail"))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    ensure!(count() == 1, "{} mails", count());
    let next = Start::new(dir.path())
        .arg("--mail-interval-ms")
        .arg("100")
        .spawn()?;
    std::thread::sleep(Duration::from_millis(500));
    ensure!(count() == 1, "delivered again: {} mails", count());
    drop(next);
    Ok(())
}

#[test]
fn tls_from_certificate_files() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])?;
    let (cert_file, key_file) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_file, cert.cert.pem())?;
    std::fs::write(&key_file, cert.key_pair.serialize_pem())?;
    let s = Start::new(dir.path())
        .arg("--tls-cert")
        .arg(cert_file.to_string_lossy())
        .arg("--tls-key")
        .arg(key_file.to_string_lossy())
        .spawn()?;
    ensure!(s.base.starts_with("https://"), "{}", s.base);
    // Trusting exactly this certificate.
    let client = reqwest::blocking::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.cert.pem().as_bytes())?)
        .build()?;
    let url = format!(
        "https://localhost:{}/plugins/auth/sign-up",
        s.addr().rsplit(':').next().unwrap_or("0")
    );
    let r = client
        .post(url)
        .json(&signup("ada", "ada@example.com", PW))
        .send()?;
    ensure!(r.status().as_u16() == 200, "{r:?}");
    // Plain HTTP on the TLS port gets nothing served.
    let plain = reqwest::blocking::Client::new()
        .get(format!("http://{}/healthz", s.addr()))
        .send();
    ensure!(plain.map(|r| r.status().as_u16() != 200).unwrap_or(true));
    // A key that is not the certificate's is refused at start.
    let other = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])?;
    std::fs::write(&key_file, other.key_pair.serialize_pem())?;
    let out = tools::plinth(dir.path())?
        .args(["serve", "--listen", "127.0.0.1:0", "--tls-cert"])
        .arg(&cert_file)
        .arg("--tls-key")
        .arg(&key_file)
        .timeout(Duration::from_secs(60))
        .output()?;
    ensure!(out.status.code() == Some(1), "{out:?}");
    ensure!(
        String::from_utf8_lossy(&out.stderr).contains("do not go together"),
        "{out:?}"
    );
    Ok(())
}

mod browser;
mod postgres;
mod web;

#[test]
fn install_shows_what_is_offered_over_http_and_refuses_what_is_not_exported() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let guest = plinth_guests::Guest::by_name("misbehave").context("no misbehave guest")?;
    let wasm = dir.path().join("shown.wasm");
    std::fs::copy(guest.wasm, &wasm)?;
    let toml = dir.path().join("shown.toml");
    std::fs::write(
        &toml,
        format!("name = \"shown\"\n[grants]\n\"plinth:database/users\" = \"read-write\"\n{SLOW}"),
    )?;
    let out = tools::stdout(
        tools::plinth(dir.path())?
            .args(["plugin", "install", "--yes"])
            .arg(&wasm),
    )?;
    ensure!(
        out.contains("over HTTP (plinth serve): POST /plugins/shown/write-then"),
        "{out}"
    );
    let approval = std::fs::read_to_string(dir.path().join("plugins/shown.approved.toml"))?;
    ensure!(
        approval.contains("[http]") && approval.contains("\"write-then\""),
        "{approval}"
    );
    std::fs::write(
        &toml,
        "name = \"shown\"\n[grants]\n\"plinth:database/users\" = \"read-write\"\n[http]\nexports = [\"write-then\", \"no-such-export\"]\n",
    )?;
    let refused = tools::plinth(dir.path())?
        .args(["plugin", "install", "--yes"])
        .arg(&wasm)
        .output()?;
    let err = String::from_utf8_lossy(&refused.stderr);
    ensure!(
        refused.status.code() == Some(2) && err.contains("no-such-export"),
        "{err}"
    );
    Ok(())
}

/// Installs built guest `guest` (a `wasi:http` handler) as plugin `name`,
/// served at `prefix`, with its migrations.
fn install_http_guest(data: &Path, guest: &str, name: &str, prefix: &str) -> Result<()> {
    let g = plinth_guests::Guest::by_name(guest).with_context(|| format!("no {guest} guest"))?;
    let src = data.join("src");
    std::fs::create_dir_all(&src)?;
    let wasm = src.join(format!("{name}.wasm"));
    std::fs::copy(g.wasm, &wasm)?;
    let manifest = std::fs::read_to_string(g.manifest)?.replace(
        &format!("name = \"{guest}\""),
        &format!("name = \"{name}\""),
    );
    std::fs::write(
        src.join(format!("{name}.toml")),
        format!("{manifest}\n[http]\nprefix = \"{prefix}\"\n"),
    )?;
    let migrations = Path::new(g.manifest).with_extension("migrations");
    if migrations.exists() {
        for dialect in std::fs::read_dir(&migrations)? {
            let dialect = dialect?.path();
            let into = src
                .join(format!("{name}.migrations"))
                .join(dialect.file_name().context("no name")?);
            std::fs::create_dir_all(&into)?;
            for file in std::fs::read_dir(&dialect)? {
                let file = file?.path();
                std::fs::copy(&file, into.join(file.file_name().context("no name")?))?;
            }
        }
    }
    let out = tools::stdout(
        tools::plinth(data)?
            .args(["plugin", "install", "--yes"])
            .arg(&wasm),
    )?;
    ensure!(
        out.contains(&format!("its wasi:http handler at {prefix}")),
        "{out}"
    );
    Ok(())
}

#[test]
fn a_wasi_http_plugin_serves_its_json_api_and_a_trap_keeps_nothing() -> Result<()> {
    let dir = tempfile::tempdir()?;
    install_http_guest(dir.path(), "http-notes", "notes-api", "/apps/notes")?;
    install_http_guest(dir.path(), "http-probe", "probe", "/apps/probe")?;
    let s = Start::new(dir.path()).spawn()?;
    // Its own JSON API below its prefix, its writes committed.
    let added = s.post_raw(
        "/apps/notes/notes",
        "application/json",
        br#"{"title": "first", "body": "hello"}"#.to_vec(),
    )?;
    ensure!(added.status == 201, "{added:?}");
    let note = added.json()?;
    let id = note["id"].as_i64().context("no id")?;
    let one = s.get(&format!("/apps/notes/notes/{id}"))?;
    ensure!(
        one.status == 200 && one.json()?["title"] == "first",
        "{one:?}"
    );
    let list = s.get("/apps/notes/notes?full=1")?;
    ensure!(
        list.status == 200 && list.json()?.as_array().is_some_and(|a| a.len() == 1),
        "{list:?}"
    );
    ensure!(
        s.post_raw("/apps/notes/notes", "application/json", b"{".to_vec())?
            .status
            == 400
    );
    ensure!(s.get("/apps/notes/notes/999")?.status == 404);
    // Not under another prefix, nor beside it.
    ensure!(s.get("/apps/notesx/notes")?.status == 404);
    ensure!(s.get("/apps")?.status == 404);
    // A handler that writes, answers and then traps keeps nothing, and its
    // answer never reaches the client.
    ensure!(s.get("/apps/probe/write")?.status == 200);
    let trapped = s.get("/apps/probe/write-then-trap")?;
    ensure!(
        trapped.status == 500 && trapped.json()?["error"] == "trap",
        "{trapped:?}"
    );
    let spun = s.get("/apps/probe/write-then-spin")?;
    ensure!(
        spun.status == 503 && spun.json()?["error"] == "timed-out",
        "{spun:?}"
    );
    let count = s.get("/apps/probe/count")?;
    ensure!(count.text == "1", "{count:?}");
    // No network for plugins.
    let out = s.get("/apps/probe/outgoing?port=9")?;
    ensure!(out.text.contains("HttpRequestDenied"), "{out:?}");
    // The log shows the prefix's first segment, not the plugin's own paths.
    let log = s.log_text();
    ensure!(
        !log.contains("write-then-trap") && log.contains("path=/apps/…"),
        "{log}"
    );
    // And the export API describes none of it.
    ensure!(
        s.get("/openapi.json")?.json()?["paths"]
            .as_object()
            .is_some_and(|p| p.keys().all(|k| k.starts_with("/plugins/auth/")))
    );
    Ok(())
}

#[test]
fn prefixes_that_are_plinths_own_or_taken_are_refused() -> Result<()> {
    let dir = tempfile::tempdir()?;
    install_http_guest(dir.path(), "http-probe", "aaa", "/apps/x")?;
    install_http_guest(dir.path(), "http-probe", "bbb", "/apps/x")?;
    install_http_guest(dir.path(), "http-probe", "ccc", "/metrics")?;
    let s = Start::new(dir.path()).spawn()?;
    let ready = s.admin_get("/readyz")?.json()?;
    ensure!(ready["plugins"] == json!(["aaa", "auth"]), "{ready}");
    ensure!(ready["failed_to_load"] == json!(["bbb", "ccc"]), "{ready}");
    ensure!(s.get("/apps/x/count")?.status == 200);
    ensure!(s.get("/metrics")?.text.contains("plinth_plugins_loaded"));
    let log = s.log_text();
    ensure!(
        log.contains("served by aaa") && log.contains("plinth's own"),
        "{log}"
    );
    Ok(())
}

/// Sends a call on a raw connection and closes it before the answer.
fn abandon(addr: &str, body: &str) -> Result<()> {
    let mut c = TcpStream::connect(addr)?;
    write!(
        c,
        "POST /plugins/slow/write-then HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    std::thread::sleep(Duration::from_millis(100));
    drop(c);
    Ok(())
}

/// A client that goes away does not free its call's slot: the call runs on
/// to its own end, still counted, still logged.
#[test]
fn calls_whose_clients_went_away_still_hold_their_slots_and_are_logged() -> Result<()> {
    let dir = tempfile::tempdir()?;
    install_misbehave(dir.path(), "slow", SLOW)?;
    let s = Start::new(dir.path())
        .arg("--max-in-flight")
        .arg("2")
        .spawn()?;
    let spin = json!({"name": "", "then": "loop-forever"}).to_string();
    for _ in 0..4 {
        abandon(s.addr(), &spin)?;
    }
    let next = s.call(
        "slow",
        "write-then",
        json!({"name": "", "then": "return-normally"}),
    )?;
    ensure!(
        next.status == 503 && next.json()?["error"] == "overloaded",
        "{next:?}"
    );
    ensure!(
        s.admin_get("/metrics")?
            .text
            .contains("plinth_plugin_calls_in_flight 2")
    );
    // Once they reached their time limit, slots are free again.
    eventually(Duration::from_secs(15), || {
        let a = s.call(
            "slow",
            "write-then",
            json!({"name": "", "then": "return-normally"}),
        )?;
        Ok((a.status == 200).then_some(()))
    })?;
    let log = s.log_text();
    ensure!(
        log.lines()
            .filter(|l| l.contains("status=499") && l.contains("went away"))
            .count()
            >= 2,
        "{log}"
    );
    ensure!(
        log.lines()
            .filter(|l| l.contains("ran past its time limit"))
            .count()
            >= 2,
        "{log}"
    );
    Ok(())
}

#[test]
fn sigterm_waits_for_calls_whose_clients_went_away_and_cuts_at_the_bound() -> Result<()> {
    let dir = tempfile::tempdir()?;
    install_misbehave(dir.path(), "slow", SLOW)?;
    // Within the bound: the abandoned call ends, and is kept.
    let mut s = Start::new(dir.path()).spawn()?;
    abandon(
        s.addr(),
        &json!({"name": "abandoned", "then": {"sleep": 1500}}).to_string(),
    )?;
    let started = Instant::now();
    s.signal("TERM")?;
    ensure!(s.wait(Duration::from_secs(20))? == Some(0));
    ensure!(
        started.elapsed() >= Duration::from_millis(1000),
        "exited after {:?}",
        started.elapsed()
    );
    ensure!(!s.log_text().contains("panicked"), "{}", s.log_text());
    ensure!(rows(&dir.path().join("plinth.db"), "users")? == 1);
    // Past the bound: cut, nothing of it kept, no panic, exit 0.
    let mut s = Start::new(dir.path())
        .arg("--shutdown-timeout-ms")
        .arg("300")
        .spawn()?;
    let answer = std::thread::scope(|scope| -> Result<()> {
        let call = scope.spawn(|| {
            s.call(
                "slow",
                "write-then",
                json!({"name": "cut", "then": {"sleep": 2900}}),
            )
        });
        eventually(Duration::from_secs(5), || {
            let m = s.admin_get("/metrics")?.text;
            Ok(m.contains("plinth_plugin_calls_in_flight 1").then_some(()))
        })?;
        s.signal("TERM")?;
        // The client sees its connection end without an answer.
        let _ = call.join();
        Ok(())
    });
    answer?;
    ensure!(s.wait(Duration::from_secs(10))? == Some(0));
    let log = s.log_text();
    ensure!(
        log.contains("they are cut") && !log.contains("panicked"),
        "{log}"
    );
    ensure!(
        rows(&dir.path().join("plinth.db"), "users")? == 1,
        "the cut call's write was kept: {log}"
    );
    Ok(())
}

/// Bodies waiting to be read hold a share of a budget (calls in flight ×
/// body cap); past it, 503 at once rather than more memory.
#[test]
fn bodies_held_at_once_are_bounded() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let s = Start::new(dir.path())
        .arg("--max-in-flight")
        .arg("1")
        .arg("--max-body-bytes")
        .arg("2000")
        .spawn()?;
    let mut holder = TcpStream::connect(s.addr())?;
    holder.write_all(b"POST /plugins/auth/sign-in HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2000\r\n\r\n{")?;
    std::thread::sleep(Duration::from_millis(200));
    let refused = s.call(
        "auth",
        "sign-in",
        json!({"email": "a@example.com", "password": PW}),
    )?;
    ensure!(
        refused.status == 503 && refused.header("retry-after") == Some("1"),
        "{refused:?}"
    );
    drop(holder);
    eventually(Duration::from_secs(5), || {
        let a = s.call(
            "auth",
            "sign-in",
            json!({"email": "a@example.com", "password": PW}),
        )?;
        Ok((a.status == 422).then_some(()))
    })?;
    Ok(())
}

/// A client that keeps the database's write lock busy with back-to-back
/// calls (each writes, then sleeps near its limit) does not starve the
/// others: writers take the lock in turn.
#[test]
fn a_client_holding_the_write_lock_back_to_back_does_not_starve_others() -> Result<()> {
    let dir = tempfile::tempdir()?;
    install_misbehave(
        dir.path(),
        "hog",
        "[limits]\nmemory-mib = 32\ntime-ms = 300\n[http]\nexports = [\"write-then\"]\n",
    )?;
    let s = Start::new(dir.path()).spawn()?;
    s.ok("auth", "sign-up", signup("ada", "ada@example.com", PW))?;
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| -> Result<()> {
        let hog = scope.spawn(|| -> Result<u32> {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let a = s.call(
                    "hog",
                    "write-then",
                    json!({"name": format!("hog{n}"), "then": {"sleep": 250}}),
                )?;
                ensure!(a.status == 200, "{a:?}");
                n += 1;
            }
            Ok(n)
        });
        std::thread::sleep(Duration::from_millis(300));
        let signers: Vec<_> = (0..4)
            .map(|_| {
                scope.spawn(|| {
                    s.call(
                        "auth",
                        "sign-in",
                        json!({"email": "ada@example.com", "password": PW}),
                    )
                })
            })
            .collect();
        for signer in signers {
            let a = signer.join().map_err(|_| anyhow::anyhow!("panicked"))??;
            ensure!(a.status == 200, "a sign-in beside the hog: {a:?}");
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let n = hog.join().map_err(|_| anyhow::anyhow!("panicked"))??;
        ensure!(n >= 2, "the hog ran {n} calls");
        Ok(())
    })?;
    Ok(())
}
