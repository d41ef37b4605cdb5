//! The `plinth` binary, end to end, against temp databases.

use std::path::Path;

use anyhow::{Result, ensure};
use assert_cmd::Command;

/// `plinth` with its data directory and database in `dir`.
fn plinth(dir: &Path) -> Result<Command> {
    let mut cmd = Command::cargo_bin("plinth")?;
    cmd.env("PLINTH_DATA_DIR", dir).env_remove("PLINTH_LOG");
    Ok(cmd)
}

fn stdout(cmd: &mut Command) -> Result<String> {
    let out = cmd.output()?;
    ensure!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?)
}

/// Runs and expects `code`, with one line on stderr that contains `needle`.
fn fails(cmd: &mut Command, code: i32, needle: &str) -> Result<()> {
    let out = cmd.output()?;
    let err = String::from_utf8(out.stderr)?;
    ensure!(
        out.status.code() == Some(code),
        "exit {:?}, stderr {err}",
        out.status.code()
    );
    ensure!(err.trim_end().lines().count() == 1, "not one line: {err}");
    ensure!(err.contains(needle), "{err:?} lacks {needle:?}");
    ensure!(!err.contains("panicked"), "{err}");
    Ok(())
}

fn rows(db: &Path, table: &str) -> Result<i64> {
    let conn = rusqlite::Connection::open(db)?;
    Ok(conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))?)
}

#[test]
fn the_demo_walks_the_auth_journey_on_the_default_database() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let out = stdout(plinth(dir.path())?.arg("demo"))?;
    ensure!(out.contains("11 steps, 11 behaved, 0 misbehaved"), "{out}");
    ensure!(dir.path().join("plinth.db").exists());
    // Twice on the same database works too.
    let again = stdout(plinth(dir.path())?.arg("demo"))?;
    ensure!(again.contains("0 misbehaved"), "{again}");
    Ok(())
}

#[test]
fn call_invokes_any_export_with_wave_arguments() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("x.db");
    let up = stdout(plinth(dir.path())?.args(["--db"]).arg(&db).args([
        "call",
        "auth",
        r#"sign-up("ada", "ada@example.com", "correct horse battery staple")"#,
    ]))?;
    ensure!(
        up.starts_with("ok({uuid: \"") && up.contains("email-verified: false"),
        "{up}"
    );
    let json = stdout(plinth(dir.path())?.arg("--db").arg(&db).args([
        "call",
        "auth",
        r#"sign-in("ada@example.com", "correct horse battery staple")"#,
        "--json",
    ]))?;
    let v: serde_json::Value = serde_json::from_str(&json)?;
    ensure!(
        v["ok"]["user"]["name"] == "ada"
            && v["ok"]["token"].as_str().is_some_and(|t| t.len() == 32),
        "{json}"
    );
    let wrong = stdout(plinth(dir.path())?.arg("--db").arg(&db).args([
        "call",
        "auth",
        r#"sign-in("ada@example.com", "nope nope nope")"#,
    ]))?;
    ensure!(wrong.trim() == "err(invalid-credentials)", "{wrong}");
    // A records-and-options export of another plugin, through its own types.
    let profile = stdout(plinth(dir.path())?.arg("--db").arg(&db).args([
        "call",
        "template",
        r#"profile("ada@example.com")"#,
    ]))?;
    ensure!(profile.contains("name: \"ada\""), "{profile}");
    let report = stdout(
        plinth(dir.path())?
            .arg("--db")
            .arg(&db)
            .args(["call", "db-test", "run()", "--json"]),
    )?;
    let checks: serde_json::Value = serde_json::from_str(&report)?;
    ensure!(
        checks
            .as_array()
            .is_some_and(|a| a.len() >= 19 && a.iter().all(|c| c["passed"] == true))
    );
    Ok(())
}

#[test]
fn a_plugin_file_is_called_by_path_with_its_manifest() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins)?;
    std::fs::copy(
        plinth_guests_path("template.wasm")?,
        plugins.join("greeter.wasm"),
    )?;
    std::fs::write(
        plugins.join("greeter.toml"),
        "name = \"greeter\"\n[grants]\n\"plinth:database/users\" = \"read\"\n",
    )?;
    let out = stdout(plinth(dir.path())?.args(["call", "greeter", r#"greet("x@example.com")"#]))?;
    ensure!(
        out.contains("nobody is registered as x@example.com"),
        "{out}"
    );
    let by_path = stdout(
        plinth(dir.path())?
            .arg("call")
            .arg(plugins.join("greeter.wasm"))
            .arg(r#"greet("x@example.com")"#),
    )?;
    ensure!(by_path == out);
    let list = stdout(plinth(dir.path())?.args(["plugin", "list"]))?;
    ensure!(
        list.contains("greeter") && list.contains("installed") && list.contains("auth"),
        "{list}"
    );
    // Without its manifest it is granted nothing, and refused at load.
    std::fs::remove_file(plugins.join("greeter.toml"))?;
    fails(
        plinth(dir.path())?.args(["call", "greeter", r#"greet("x")"#]),
        1,
        "plinth:database/users",
    )?;
    Ok(())
}

fn plinth_guests_path(file: &str) -> Result<std::path::PathBuf> {
    // The built guests sit in the workspace target dir.
    let exe = assert_cmd::cargo::cargo_bin("plinth");
    let target = exe
        .parent()
        .and_then(|p| p.parent())
        .ok_or_else(|| anyhow::anyhow!("no target dir"))?;
    Ok(target.join("wasm-guests/wasm32-wasip2/release").join(file))
}

#[test]
fn inspect_shows_imports_exports_grants_and_limits() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let out = stdout(plinth(dir.path())?.args(["plugin", "inspect", "auth"]))?;
    for needle in [
        "plinth:database/credentials (read-write)",
        "plinth:auth/mailer",
        "memory 48 MiB",
        "reuse:    up to 1000 calls per instance",
        "plinth:auth/auth@0.1.0#sign-in: func(email: string, password: string) -> result<record { token: string",
        "wasi:random/random",
    ] {
        ensure!(out.contains(needle), "{needle:?} not in\n{out}");
    }
    Ok(())
}

#[test]
fn db_status_migrate_cleanup_and_outbox() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let status = stdout(plinth(dir.path())?.args(["db", "status"]))?;
    ensure!(
        status.contains("schema version: 2")
            && status.contains("users")
            && status.contains("outbox"),
        "{status}"
    );
    ensure!(stdout(plinth(dir.path())?.args(["db", "migrate"]))?.contains("schema version 2"));
    stdout(plinth(dir.path())?.args([
        "call",
        "auth",
        r#"sign-up("ada", "ada@example.com", "correct horse battery staple")"#,
    ]))?;
    let outbox = stdout(plinth(dir.path())?.arg("outbox"))?;
    ensure!(
        outbox.contains("Verify your email address") && outbox.contains("token: "),
        "{outbox}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&stdout(plinth(dir.path())?.args(["outbox", "--json"]))?)?;
    ensure!(json[0]["to"] == "ada@example.com");
    let cleanup = stdout(plinth(dir.path())?.args(["db", "cleanup"]))?;
    ensure!(
        cleanup.contains("sessions: 0 expired rows removed"),
        "{cleanup}"
    );
    Ok(())
}

#[test]
fn bad_input_is_one_line_with_the_right_exit_code_and_writes_nothing() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("plinth.db");
    stdout(plinth(dir.path())?.args(["db", "status"]))?;
    let before = rows(&db, "users")? + rows(&db, "outbox")?;
    fails(
        plinth(dir.path())?.args(["call", "nosuch", "f()"]),
        2,
        "unknown plugin",
    )?;
    fails(
        plinth(dir.path())?.args(["call", "auth", "no-such-function()"]),
        2,
        "no function",
    )?;
    fails(
        plinth(dir.path())?.args(["call", "auth", "sign-up(\"unterminated"]),
        2,
        "malformed",
    )?;
    fails(
        plinth(dir.path())?.args(["call", "auth", r#"sign-up("only one")"#]),
        2,
        "arguments",
    )?;
    fails(
        plinth(dir.path())?.args(["call", "auth", "sign-up(1, 2, 3)"]),
        2,
        "arguments",
    )?;
    fails(plinth(dir.path())?.args(["frobnicate"]), 2, "frobnicate")?;
    ensure!(rows(&db, "users")? + rows(&db, "outbox")? == before);
    // Not a database, not a component.
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "just some notes, not SQLite; ".repeat(50))?;
    fails(
        plinth(dir.path())?
            .arg("--db")
            .arg(&text)
            .args(["db", "status"]),
        1,
        "notes.txt",
    )?;
    ensure!(
        std::fs::read_to_string(&text)?.starts_with("just some notes"),
        "the file was changed"
    );
    let fake = dir.path().join("fake.wasm");
    std::fs::write(&fake, b"not wasm")?;
    fails(
        plinth(dir.path())?.arg("call").arg(&fake).arg("f()"),
        1,
        "not a valid WebAssembly component",
    )?;
    fails(
        plinth(dir.path())?.args(["call", "misbehave", r#"write-then("x", trap)"#]),
        1,
        "trapped",
    )?;
    ensure!(rows(&db, "users")? == 0);
    Ok(())
}
