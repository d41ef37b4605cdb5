//! The `plinth` binary, end to end, against temp databases.

use std::path::Path;

use anyhow::{Result, ensure};
use assert_cmd::Command;

mod tools;

use tools::{plinth, stdout};

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
    ensure!(
        !err.chars().any(|c| c.is_control() && c != '\n'),
        "control characters on stderr: {err:?}"
    );
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
    let src = dir.path().join("src");
    template_as(&src, "greeter")?;
    // Installed: the request is shown and approved.
    let shown = stdout(
        plinth(dir.path())?
            .args(["plugin", "install", "--yes"])
            .arg(src.join("greeter.wasm")),
    )?;
    ensure!(
        shown.contains("plinth:database/users (read)") && shown.contains("installed greeter"),
        "{shown}"
    );
    ensure!(plugins.join("greeter.approved.toml").exists());
    let out = stdout(plinth(dir.path())?.args(["call", "greeter", r#"greet("x@example.com")"#]))?;
    ensure!(
        out.contains("nobody is registered as x@example.com"),
        "{out}"
    );
    // By path: with the approval of the installed plugin of that name.
    let by_path = stdout(
        plinth(dir.path())?
            .arg("call")
            .arg(src.join("greeter.wasm"))
            .arg(r#"greet("x@example.com")"#),
    )?;
    ensure!(by_path == out);
    let list = stdout(plinth(dir.path())?.args(["plugin", "list"]))?;
    ensure!(
        list.contains("greeter") && list.contains("installed") && list.contains("auth"),
        "{list}"
    );
    // Without its manifest it asks for nothing, is granted nothing, and is
    // refused at load for the interface it imports.
    std::fs::remove_file(plugins.join("greeter.toml"))?;
    fails(
        plinth(dir.path())?.args(["call", "greeter", r#"greet("x")"#]),
        1,
        "plinth:database/users",
    )?;
    Ok(())
}

/// The manifest beside a `.wasm` is a request: dropped into the plugins
/// directory without an approval, a plugin is refused; one whose request
/// grew since it was approved is refused until approved again; a file run
/// by its path needs `--approve`. The operator's approval, not the author's
/// manifest, decides.
#[test]
fn plugins_run_with_what_the_operator_approved() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let plugins = dir.path().join("plugins");
    template_as(&plugins, "dropped")?;
    fails(
        plinth(dir.path())?.args(["call", "dropped", r#"greet("x")"#]),
        1,
        "plinth:database/users read (not approved)",
    )?;
    // Approved, then updated to ask for more.
    let src = dir.path().join("src");
    template_as(&src, "greeter")?;
    stdout(
        plinth(dir.path())?
            .args(["plugin", "install", "--yes"])
            .arg(src.join("greeter.wasm")),
    )?;
    std::fs::write(
        plugins.join("greeter.toml"),
        "name = \"greeter\"\n[grants]\n\"plinth:database/users\" = \"read-write\"\n\"plinth:database/credentials\" = \"read\"\n",
    )?;
    fails(
        plinth(dir.path())?.args(["call", "greeter", r#"greet("x")"#]),
        1,
        "plinth:database/credentials read (not approved)",
    )?;
    // Not at a terminal, an install needs --yes.
    fails(
        plinth(dir.path())?
            .args(["plugin", "install"])
            .arg(src.join("greeter.wasm")),
        2,
        "--yes",
    )?;
    // By path: refused without an approval, run with --approve.
    let other = dir.path().join("other");
    template_as(&other, "visitor")?;
    fails(
        plinth(dir.path())?
            .arg("call")
            .arg(other.join("visitor.wasm"))
            .arg(r#"greet("x")"#),
        1,
        "not approved",
    )?;
    stdout(
        plinth(dir.path())?
            .args(["call", "--approve"])
            .arg(other.join("visitor.wasm"))
            .arg(r#"greet("x")"#),
    )?;
    Ok(())
}

/// A plugin is the bytes the operator approved, not the name its manifest
/// claims: a file calling itself `greeter` — by path, with `--approve`, or
/// dropped into the plugins directory — never runs as the installed
/// greeter; an installed build replaced on disk is refused until installed
/// again, and the install shows what changed. Migrations are part of the
/// build and need the plinth:sql write grant.
#[test]
fn a_plugin_is_its_approved_bytes_not_its_name() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let plugins = dir.path().join("plugins");
    let src = dir.path().join("src");
    template_as(&src, "greeter")?;
    let shown = stdout(
        plinth(dir.path())?
            .args(["plugin", "install", "--yes"])
            .arg(src.join("greeter.wasm")),
    )?;
    ensure!(shown.contains("component sha256"), "{shown}");
    let approval = std::fs::read_to_string(plugins.join("greeter.approved.toml"))?;
    ensure!(approval.contains("component-sha256 = "), "{approval}");
    // Other bytes under greeter's name: the template with a custom section
    // appended (a valid component).
    let evil = dir.path().join("evil");
    template_as(&evil, "evil")?;
    let mut bytes = std::fs::read(evil.join("evil.wasm"))?;
    bytes.extend_from_slice(&[0, 5, 4, b'e', b'v', b'i', b'l']);
    std::fs::write(evil.join("evil.wasm"), &bytes)?;
    std::fs::write(
        evil.join("evil.toml"),
        "name = \"greeter\"\n[grants]\n\"plinth:database/users\" = \"read\"\n",
    )?;
    for approve in [false, true] {
        let mut cmd = plinth(dir.path())?;
        cmd.arg("call");
        if approve {
            cmd.arg("--approve");
        }
        fails(
            cmd.arg(evil.join("evil.wasm")).arg(r#"greet("x")"#),
            1,
            "not the build that was approved",
        )?;
    }
    std::fs::copy(evil.join("evil.wasm"), plugins.join("dropped.wasm"))?;
    std::fs::copy(evil.join("evil.toml"), plugins.join("dropped.toml"))?;
    fails(
        plinth(dir.path())?.args(["call", "dropped", r#"greet("x")"#]),
        1,
        "not the build that was approved",
    )?;
    // The installed file replaced on disk.
    std::fs::copy(evil.join("evil.wasm"), plugins.join("greeter.wasm"))?;
    fails(
        plinth(dir.path())?.args(["call", "greeter", r#"greet("x")"#]),
        1,
        "install it again",
    )?;
    // Installing the new build shows what changed; then it runs.
    let update = stdout(
        plinth(dir.path())?
            .args(["plugin", "install", "--yes"])
            .arg(evil.join("evil.wasm")),
    )?;
    ensure!(
        update.contains("this build replaces it") && update.contains("(approved: "),
        "{update}"
    );
    stdout(plinth(dir.path())?.args(["call", "greeter", r#"greet("x@example.com")"#]))?;
    // Migrations without the plinth:sql write grant are refused at install.
    let tables = dir.path().join("tables");
    template_as(&tables, "tabled")?;
    std::fs::create_dir_all(tables.join("tabled.migrations/sqlite"))?;
    std::fs::write(
        tables.join("tabled.migrations/sqlite/0001-t.sql"),
        "CREATE TABLE t (a);",
    )?;
    fails(
        plinth(dir.path())?
            .args(["plugin", "install", "--yes"])
            .arg(tables.join("tabled.wasm")),
        1,
        "not granted plinth:sql/sql read-write",
    )?;
    std::fs::write(
        tables.join("tabled.toml"),
        "name = \"tabled\"\n[grants]\n\"plinth:database/users\" = \"read\"\n\"plinth:sql/sql\" = \"read-write\"\n",
    )?;
    let shown = stdout(
        plinth(dir.path())?
            .args(["plugin", "install", "--yes"])
            .arg(tables.join("tabled.wasm")),
    )?;
    ensure!(
        shown.contains("1 migrations for sqlite") && shown.contains("migrations sha256"),
        "{shown}"
    );
    stdout(plinth(dir.path())?.args(["call", "tabled", r#"greet("x@example.com")"#]))?;
    // A built-in's name is the built-in's: a file claiming it runs only as
    // the built-in's bytes, and cannot be installed.
    std::fs::write(
        evil.join("evil.toml"),
        "name = \"notes\"\n[grants]\n\"plinth:sql/sql\" = \"read\"\n[limits]\nmemory-mib = 16\ntime-ms = 1000\ndata-mib = 1\n",
    )?;
    fails(
        plinth(dir.path())?
            .args(["call", "--approve"])
            .arg(evil.join("evil.wasm"))
            .arg(r#"greet("x")"#),
        1,
        "not the build that was approved",
    )?;
    fails(
        plinth(dir.path())?
            .args(["plugin", "install", "--yes"])
            .arg(evil.join("evil.wasm")),
        2,
        "built-in",
    )?;
    // An installed migration edited afterwards is another build.
    std::fs::write(
        plugins.join("tabled.migrations/sqlite/0001-t.sql"),
        "CREATE TABLE t (a, b);",
    )?;
    fails(
        plinth(dir.path())?.args(["call", "tabled", r#"greet("x")"#]),
        1,
        "migrations sha256",
    )?;
    Ok(())
}

/// The template guest copied into `dir` as plugin `name`, with a manifest
/// that asks to read profiles.
fn template_as(dir: &Path, name: &str) -> Result<std::path::PathBuf> {
    std::fs::create_dir_all(dir)?;
    let wasm = dir.join(format!("{name}.wasm"));
    std::fs::copy(plinth_guests_path("template.wasm")?, &wasm)?;
    std::fs::write(
        dir.join(format!("{name}.toml")),
        format!("name = \"{name}\"\n[grants]\n\"plinth:database/users\" = \"read\"\n"),
    )?;
    Ok(wasm)
}

fn plinth_guests_path(file: &str) -> Result<std::path::PathBuf> {
    // The built guests sit in the workspace target dir.
    Ok(tools::target_dir()
        .join("wasm-guests/wasm32-wasip2/release")
        .join(file))
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

/// The interfaces listing is the registry the runtime links and checks
/// grants by.
#[test]
fn plugin_interfaces_lists_the_registry_with_reads_and_writes() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let out = stdout(plinth(dir.path())?.args(["plugin", "interfaces"]))?;
    for needle in [
        "plinth:database/users\n",
        "writes: create-user, update-user-email-verified, update-user-profile, delete-user",
        "reads:  get-password-hash",
        "plinth:test/clock\n",
        "granted in code only (never by a manifest)",
        "version 0.1.0 · granted by the manifest",
        "version 0.2 · open to every plugin",
        "wasi:io/*",
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
        status.contains("schema version: 6")
            && status.contains("users")
            && status.contains("outbox"),
        "{status}"
    );
    ensure!(stdout(plinth(dir.path())?.args(["db", "migrate"]))?.contains("schema version 6"));
    stdout(plinth(dir.path())?.args([
        "call",
        "auth",
        r#"sign-up("ada", "ada@example.com", "correct horse battery staple")"#,
    ]))?;
    // The call's mail was delivered (recorded into the data directory's
    // mail/, with no PLINTH_SMTP) before the command exited; the outbox
    // keeps the delivery, not the body.
    let outbox = stdout(plinth(dir.path())?.arg("outbox"))?;
    ensure!(
        outbox.contains("Verify your email address")
            && outbox.contains(": sent at ")
            && !outbox.contains("token: "),
        "{outbox}"
    );
    let delivered = std::fs::read_to_string(dir.path().join("mail/1.eml"))?;
    ensure!(
        delivered.starts_with("To: ada@example.com\n") && delivered.contains("token: "),
        "{delivered}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&stdout(plinth(dir.path())?.args(["outbox", "--json"]))?)?;
    ensure!(
        json[0]["to"] == "ada@example.com" && json[0]["status"] == "sent" && json[0]["body"] == ""
    );
    let sent = stdout(plinth(dir.path())?.arg("send-mail"))?;
    ensure!(sent.contains("0 sent") && sent.contains("/mail"), "{sent}");
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
    // Control characters in what is echoed back are escaped, not sent to
    // the terminal (this one would clear the screen).
    fails(
        plinth(dir.path())?.args(["call", "./gone\x1b[2J\r.wasm", "f()"]),
        2,
        "gone\\u{1b}[2J\\u{d}.wasm",
    )?;
    fails(
        plinth(dir.path())?.args(["frob\x1b[2Jnicate"]),
        2,
        "unrecognized subcommand",
    )?;
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
    // Another application's database: refused, not migrated, not switched
    // to WAL.
    let other = dir.path().join("other.db");
    rusqlite::Connection::open(&other)?
        .execute_batch("CREATE TABLE users (id INTEGER PRIMARY KEY, login TEXT);")?;
    let before = std::fs::read(&other)?;
    fails(
        plinth(dir.path())?
            .arg("--db")
            .arg(&other)
            .args(["db", "status"]),
        1,
        "is not a plinth database",
    )?;
    ensure!(std::fs::read(&other)? == before, "other.db was changed");
    ensure!(!dir.path().join("other.db-wal").exists());
    // A database that would keep nothing.
    fails(
        plinth(dir.path())?.args(["--db", ":memory:", "db", "status"]),
        2,
        "in-memory",
    )?;
    fails(
        plinth(dir.path())?.args(["call", "/dev/zero", "x()"]),
        1,
        "not a regular file",
    )?;
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

/// The `plinth` binary the tests run.
fn plinth_exe() -> std::path::PathBuf {
    assert_cmd::cargo::cargo_bin("plinth")
}

/// `cargo install --path crates/cli` leaves a `plinth` that works after the
/// build folder is gone: its built-in plugins and their manifests are bytes
/// inside it. A copy of the binary, run from an unrelated directory, runs
/// the demo and lists its plugins; it carries no path into the build's
/// guest folder, and (where strace exists) never opens one.
#[test]
fn a_copied_binary_runs_the_demo_from_anywhere_without_the_build_folder() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let bin = dir.path().join("bin");
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir_all(&bin)?;
    std::fs::create_dir_all(&elsewhere)?;
    let copy = bin.join("plinth");
    std::fs::copy(plinth_exe(), &copy)?;
    let guests_dir = tools::target_dir().join("wasm-guests");
    let needle = guests_dir.to_string_lossy().into_owned();
    ensure!(needle.ends_with("wasm-guests"), "{needle}");
    // No path into the guests' build folder is in the binary at all.
    let bytes = std::fs::read(&copy)?;
    ensure!(
        !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
        "the binary names {needle}"
    );
    let run = |args: &[&str]| -> Result<std::process::Output> {
        Ok(std::process::Command::new(&copy)
            .args(args)
            .current_dir(&elsewhere)
            .env("PLINTH_DATA_DIR", dir.path().join("data"))
            .env_remove("PLINTH_LOG")
            .output()?)
    };
    let demo = run(&["demo"])?;
    let out = String::from_utf8(demo.stdout)?;
    ensure!(
        demo.status.success() && out.contains("11 steps, 11 behaved, 0 misbehaved"),
        "{out}{}",
        String::from_utf8_lossy(&demo.stderr)
    );
    let list = String::from_utf8(run(&["plugin", "list"])?.stdout)?;
    for name in ["auth", "db-test", "template"] {
        ensure!(
            list.lines().any(|l| l.starts_with(name)
                && l.contains("built-in")
                && l.contains("in this binary")),
            "{list}"
        );
    }
    // The files it opens, where strace can tell.
    let traced = std::process::Command::new("strace")
        .args([
            "-f",
            "-qq",
            "-e",
            "trace=open,openat,openat2,stat,statx,newfstatat,access",
            "-o",
        ])
        .arg(dir.path().join("trace"))
        .arg(&copy)
        .arg("demo")
        .current_dir(&elsewhere)
        .env("PLINTH_DATA_DIR", dir.path().join("data2"))
        .env_remove("PLINTH_LOG")
        .output();
    match traced {
        Ok(out) if out.status.success() => {
            let trace = std::fs::read_to_string(dir.path().join("trace"))?;
            ensure!(!trace.is_empty(), "strace wrote nothing");
            ensure!(
                !trace.contains(&needle),
                "it opened the build folder:\n{trace}"
            );
        }
        Ok(out) => eprintln!(
            "strace could not trace the demo ({}); the byte check stands alone",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => {
            ensure!(
                std::env::var_os("CI").is_none(),
                "strace is needed under CI: {e}"
            );
            eprintln!("strace is not installed ({e}); the byte check stands alone");
        }
    }
    Ok(())
}

/// A manifest beside a component cannot grant the test clock, which would
/// let a plugin move time; the refusal names the file and the interface.
#[test]
fn a_manifest_file_that_grants_the_test_clock_is_refused() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let wasm = dir.path().join("clocky.wasm");
    std::fs::copy(plinth_guests_path("db_test.wasm")?, &wasm)?;
    std::fs::write(
        dir.path().join("clocky.toml"),
        "name = \"clocky\"\n[grants]\n\"plinth:test/clock\" = \"read-write\"\n",
    )?;
    fails(
        plinth(dir.path())?.arg("call").arg(&wasm).arg("run()"),
        1,
        "plinth:test/clock cannot be granted by a manifest",
    )?;
    Ok(())
}

/// `plinth wit DIR` hands an author the WIT packages from the binary: the
/// folder parses as a WIT package with its dependencies (wit-parser, as
/// wit-bindgen, componentize-py and jco read it), and a guest crate made
/// outside this workspace builds against it with wit-bindgen and runs.
#[test]
fn plinth_wit_writes_a_tree_a_fresh_guest_builds_against() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let krate = dir.path().join("fresh-plugin");
    let wit = krate.join("wit");
    std::fs::create_dir_all(&wit)?;
    let out = stdout(plinth(dir.path())?.arg("wit").arg(&wit))?;
    ensure!(
        out.contains("plinth-database") && out.contains("starter world"),
        "{out}"
    );
    let mut resolve = wit_parser::Resolve::default();
    let (pkg, _) = resolve.push_dir(&wit)?;
    let world = resolve.select_world(&[pkg], Some("plugin"))?;
    let imports: Vec<String> = resolve.worlds[world]
        .imports
        .keys()
        .map(|k| resolve.name_world_key(k))
        .collect();
    ensure!(
        imports.iter().any(|i| i == "plinth:database/users@0.1.0"),
        "{imports:?}"
    );
    // A folder with a world of its own gets no starter world, and the auth
    // package resolves too (it depends on plinth:database).
    let mail = dir.path().join("mail-wit");
    std::fs::create_dir_all(&mail)?;
    std::fs::write(
        mail.join("mail.wit"),
        "package my:mail@0.1.0;\nworld mail { import plinth:auth/mailer@0.1.0; }\n",
    )?;
    let out = stdout(plinth(dir.path())?.arg("wit").arg(&mail))?;
    ensure!(
        !out.contains("starter world") && !mail.join("world.wit").exists(),
        "{out}"
    );
    let mut resolve = wit_parser::Resolve::default();
    let (pkg, _) = resolve.push_dir(&mail)?;
    resolve.select_world(&[pkg], Some("mail"))?;

    // A guest crate of its own, pinned to the versions the shipped guests use.
    let guests = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../guests");
    std::fs::copy(guests.join("Cargo.lock"), krate.join("Cargo.lock"))?;
    std::fs::create_dir_all(krate.join("src"))?;
    std::fs::write(
        krate.join("Cargo.toml"),
        r#"[package]
name = "fresh-plugin"
version = "0.1.0"
edition = "2024"

[lib]
crate-type = ["cdylib"]

[dependencies]
wit-bindgen = { version = "0.61.1", default-features = false, features = ["macros", "realloc"] }

[workspace]
"#,
    )?;
    std::fs::write(
        krate.join("src/lib.rs"),
        r#"mod bindings {
    wit_bindgen::generate!({ path: "wit", world: "my:plugin/plugin", generate_all });
}
use bindings::plinth::database::users;
struct Plugin;
impl bindings::Guest for Plugin {
    fn greet(email: String) -> String {
        match users::get_user_by_email(&email) {
            Ok(user) => format!("hello, {}!", user.name),
            Err(e) => format!("no: {e:?}"),
        }
    }
}
bindings::export!(Plugin with_types_in bindings);
"#,
    )?;
    // Its own target dir, kept between runs inside the workspace's.
    let target = tools::target_dir().join("fresh-plugin");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let build = std::process::Command::new(cargo)
        .args(["build", "--release", "--target", "wasm32-wasip2"])
        .arg("--target-dir")
        .arg(&target)
        .current_dir(&krate)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .output()?;
    ensure!(
        build.status.success(),
        "the fresh guest did not build:\n{}",
        String::from_utf8_lossy(&build.stderr)
    );
    let wasm = dir.path().join("fresh.wasm");
    std::fs::copy(
        target.join("wasm32-wasip2/release/fresh_plugin.wasm"),
        &wasm,
    )?;
    std::fs::write(
        dir.path().join("fresh.toml"),
        "name = \"fresh\"\n[grants]\n\"plinth:database/users\" = \"read\"\n",
    )?;
    stdout(plinth(dir.path())?.args([
        "call",
        "auth",
        r#"sign-up("ada", "ada@example.com", "correct horse battery staple")"#,
    ]))?;
    let greeting = stdout(
        plinth(dir.path())?
            .args(["call", "--approve"])
            .arg(&wasm)
            .arg(r#"greet("ada@example.com")"#),
    )?;
    ensure!(greeting.trim() == r#""hello, ada!""#, "{greeting}");
    Ok(())
}

/// The runtime library is only the runtime: no CLI parser, no built guests.
#[test]
fn the_runtime_library_depends_on_neither_clap_nor_the_built_guests() -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args([
            "tree",
            "--offline",
            "-p",
            "plinth-host",
            "-e",
            "normal,build",
            "--prefix",
            "none",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()?;
    ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8(out.stdout)?;
    ensure!(tree.contains("wasmtime v"), "{tree}");
    for banned in [
        "clap v",
        "plinth-guests v",
        "plinth-cli v",
        "plinth-auth v",
        "plinth-testing v",
    ] {
        ensure!(
            !tree.lines().any(|l| l.starts_with(banned)),
            "plinth-host depends on {banned}"
        );
    }
    Ok(())
}

/// `PLINTH_LOG=trace` shows plinth's own tracing (host calls, guest output),
/// not the compiler's: with a cold cache one call once wrote most of a
/// gigabyte. And no colour codes reach a log that is not a terminal.
#[test]
fn plinth_log_trace_is_scoped_to_plinth_and_plain_when_not_a_terminal() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let out = plinth(dir.path())?
        .env("PLINTH_LOG", "trace")
        .args(["call", "template", r#"greet("x@example.com")"#])
        .output()?;
    ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = String::from_utf8(out.stderr)?;
    ensure!(
        log.len() < 1 << 20,
        "{} bytes of log for one call",
        log.len()
    );
    ensure!(
        log.contains("get-user-by-email") && log.contains("plugin_call"),
        "plinth's own tracing is missing:\n{log}"
    );
    ensure!(
        !log.contains('\x1b'),
        "ANSI escapes in a log that is not a terminal"
    );
    ensure!(
        !log.lines()
            .any(|l| l.contains(" TRACE ") && l.contains("cranelift")),
        "the compiler's tracing is in the log"
    );
    Ok(())
}

/// Without a data directory plinth keeps no files of its own in the
/// directory it was started from: no cache, no default database.
#[test]
fn without_a_data_directory_nothing_is_written_to_the_working_directory() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut cmd = Command::cargo_bin("plinth")?;
    cmd.current_dir(dir.path())
        .env_remove("PLINTH_DATA_DIR")
        .env_remove("XDG_DATA_HOME")
        .env_remove("HOME")
        .env_remove("PLINTH_LOG");
    fails(cmd.args(["call", "template", r#"greet("x")"#]), 2, "--db")?;
    let db = dir.path().join("given.db");
    let mut cmd = Command::cargo_bin("plinth")?;
    cmd.current_dir(dir.path())
        .env_remove("PLINTH_DATA_DIR")
        .env_remove("XDG_DATA_HOME")
        .env_remove("HOME")
        .env_remove("PLINTH_LOG");
    stdout(
        cmd.arg("--db")
            .arg(&db)
            .args(["call", "template", r#"greet("x")"#]),
    )?;
    let left: Vec<String> = std::fs::read_dir(dir.path())?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with("given.db"))
        .collect();
    ensure!(
        left.is_empty(),
        "written to the working directory: {left:?}"
    );
    Ok(())
}

/// A database plinth cannot write to is refused when opened (exit 1), not
/// served to plugins whose every write then fails with an `internal` error
/// the CLI printed as a successful call. As root, permissions do not make a
/// file read-only; the immutable attribute does (where the file system has
/// it).
#[test]
fn a_read_only_database_is_a_runtime_failure() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("ro.db");
    stdout(
        plinth(dir.path())?
            .arg("--db")
            .arg(&db)
            .args(["db", "status"]),
    )?;
    let locked = std::process::Command::new("chattr")
        .arg("+i")
        .arg(&db)
        .status();
    if !locked.is_ok_and(|s| s.success()) {
        eprintln!("chattr +i is not available here; the read-only case is not exercised");
        return Ok(());
    }
    let result = fails(
        plinth(dir.path())?.arg("--db").arg(&db).args([
            "call",
            "auth",
            r#"sign-up("ada", "ada@example.com", "correct horse battery staple")"#,
        ]),
        1,
        "read-only",
    );
    let _ = std::process::Command::new("chattr")
        .arg("-i")
        .arg(&db)
        .status();
    result
}

/// With PLINTH_SMTP pointing at a server that is not there, a call still
/// succeeds; its mail stays queued (body kept, one attempt recorded) for a
/// later `send-mail`, and the note on stderr names no password.
#[test]
fn mail_that_cannot_be_sent_now_stays_queued_for_send_mail() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let out = plinth(dir.path())?
        .env("PLINTH_SMTP", format!("smtp://mailer@127.0.0.1:{port}"))
        .env("PLINTH_SMTP_PASSWORD", "hunter2-secret")
        .args([
            "call",
            "auth",
            r#"sign-up("ada", "ada@example.com", "correct horse battery staple")"#,
        ])
        .output()?;
    let err = String::from_utf8(out.stderr)?;
    ensure!(out.status.success(), "{err}");
    ensure!(
        err.contains("mail not delivered") || err.is_empty(),
        "{err}"
    );
    ensure!(
        !err.contains("hunter2"),
        "the password reached stderr: {err}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&stdout(plinth(dir.path())?.args(["outbox", "--json"]))?)?;
    ensure!(
        json[0]["status"] == "queued"
            && json[0]["attempts"] == 1
            && json[0]["body"]
                .as_str()
                .is_some_and(|b| b.contains("token: ")),
        "{json}"
    );
    // The password goes in PLINTH_SMTP_PASSWORD, never in the URL.
    fails(
        plinth(dir.path())?
            .env("PLINTH_SMTP", "smtp://mailer:hunter2@127.0.0.1:25")
            .args(["send-mail"]),
        2,
        "PLINTH_SMTP_PASSWORD",
    )?;
    Ok(())
}

/// A call with the wrong function, arity or argument types is refused (exit
/// 2) before anything is written: no database is created or migrated, and
/// nothing is cached. A valid call then creates both.
#[test]
fn bad_calls_are_refused_before_anything_is_written() -> Result<()> {
    let dir = tempfile::tempdir()?;
    // Compiled code files (each with its `.meta` beside it).
    let cache_entries = |dir: &Path| -> usize {
        std::fs::read_dir(dir.join("cache")).map_or(0, |d| {
            d.flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
                .count()
        })
    };
    for (call, needle) in [
        ("no-such-function()", "no function"),
        (r#"sign-up("only one")"#, "arguments"),
        ("sign-up(1, 2, 3)", "arguments"),
        ("sign-up(", "malformed"),
    ] {
        fails(plinth(dir.path())?.args(["call", "auth", call]), 2, needle)?;
        ensure!(
            !dir.path().join("plinth.db").exists(),
            "{call}: the database was created"
        );
        ensure!(
            cache_entries(dir.path()) == 0,
            "{call}: the cache was written"
        );
    }
    stdout(plinth(dir.path())?.args(["call", "template", r#"greet("x@example.com")"#]))?;
    ensure!(dir.path().join("plinth.db").exists());
    ensure!(cache_entries(dir.path()) == 1);
    Ok(())
}

/// `plinth cache`: entries say whose they are; prune keeps what built-in and
/// installed plugins use and removes the rest (a file called once by its
/// path, stray files); clear removes everything; `--cache-dir` moves it.
#[test]
fn cache_list_prune_and_clear() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let files = dir.path().join("files");
    let wasm = template_as(&files, "greeter")?;
    let call_file = |d: &Path| -> Result<String> {
        stdout(
            plinth(d)?
                .args(["call", "--approve"])
                .arg(&wasm)
                .arg(r#"greet("x@example.com")"#),
        )
    };
    call_file(dir.path())?;
    stdout(plinth(dir.path())?.args(["call", "auth", r#"validate-session("nope")"#]))?;
    std::fs::write(dir.path().join("cache/stray.tmp42"), b"half an entry")?;
    // A stray name whose 16th byte falls inside a character, with a control
    // character: listed, escaped, no panic.
    std::fs::write(dir.path().join("cache/ééééééééé\u{1b}.tmp7"), b"x")?;
    // Not the cache's: never listed, pruned or cleared.
    std::fs::write(dir.path().join("cache/notes.txt"), b"mine")?;
    let list = stdout(plinth(dir.path())?.args(["cache", "list"]))?;
    let canonical = std::fs::canonicalize(&wasm)?;
    ensure!(
        list.contains(&format!("greeter from {}", canonical.display()))
            && list.contains(" auth\n")
            && list.contains("(not a cache entry)")
            && !list.contains('\u{1b}')
            && list.contains("4 entries"),
        "{list}"
    );
    // Installed, the template's entry is in use again.
    let installed_dir = dir.path().join("plugins");
    stdout(
        plinth(dir.path())?
            .args(["plugin", "install", "--yes"])
            .arg(&wasm),
    )?;
    stdout(plinth(dir.path())?.args(["call", "greeter", r#"greet("x@example.com")"#]))?;
    ensure!(installed_dir.join("greeter.wasm").exists());
    let pruned = stdout(plinth(dir.path())?.args(["cache", "prune"]))?;
    ensure!(pruned.contains("removed 2 entries"), "{pruned}");
    let list = stdout(plinth(dir.path())?.args(["cache", "list"]))?;
    ensure!(
        list.contains(" auth\n")
            && !list.contains("not a cache entry")
            && list.contains("2 entries"),
        "{list}"
    );
    let cleared = stdout(plinth(dir.path())?.args(["cache", "clear"]))?;
    ensure!(cleared.contains("removed 2 entries"), "{cleared}");
    let left: Vec<_> = std::fs::read_dir(dir.path().join("cache"))?
        .flatten()
        .map(|e| e.file_name())
        .collect();
    ensure!(left == [std::ffi::OsString::from("notes.txt")], "{left:?}");
    // Elsewhere with --cache-dir: nothing lands in the data directory.
    let other = dir.path().join("other-cache");
    stdout(
        plinth(dir.path())?
            .arg("--cache-dir")
            .arg(&other)
            .args(["call", "--approve"])
            .arg(&wasm)
            .arg(r#"greet("x@example.com")"#),
    )?;
    ensure!(std::fs::read_dir(dir.path().join("cache"))?.count() == 1);
    let list = stdout(
        plinth(dir.path())?
            .arg("--cache-dir")
            .arg(&other)
            .args(["cache", "list"]),
    )?;
    ensure!(list.contains("1 entries"), "{list}");
    Ok(())
}

/// `plinth new` refuses a name that is not a WIT identifier and a folder
/// that is not empty, and writes nothing then.
#[test]
fn plinth_new_refuses_bad_names_and_full_folders() -> Result<()> {
    let dir = tempfile::tempdir()?;
    fails(
        plinth(dir.path())?
            .args(["new", "My_Plugin"])
            .current_dir(dir.path()),
        2,
        "lowercase words",
    )?;
    ensure!(!dir.path().join("My_Plugin").exists());
    let full = dir.path().join("full");
    std::fs::create_dir_all(&full)?;
    std::fs::write(full.join("keep.txt"), "mine")?;
    fails(
        plinth(dir.path())?
            .args(["new", "ok-name", "--dir"])
            .arg(&full),
        2,
        "not empty",
    )?;
    ensure!(std::fs::read_dir(&full)?.count() == 1);
    Ok(())
}

/// The notes plugin's journey as the README tells it: sign up and in with
/// auth, then notes keep, search and settle a user's notes; `db status`
/// and `plugin inspect` show what it keeps; `plugin migrate` is a no-op
/// once it loaded.
#[test]
fn the_notes_journey_runs_through_the_cli() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let call = |args: &[&str]| -> Result<String> {
        let mut cmd = plinth(dir.path())?;
        cmd.arg("call").args(args);
        stdout(&mut cmd)
    };
    call(&[
        "auth",
        r#"sign-up("ada", "ada@example.com", "correct horse battery staple")"#,
    ])?;
    let signed_in = call(&[
        "auth",
        r#"sign-in("ada@example.com", "correct horse battery staple")"#,
    ])?;
    let token = signed_in
        .split("token: \"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .ok_or_else(|| anyhow::anyhow!("no token in {signed_in}"))?;
    let added = call(&[
        "notes",
        &format!(r#"add("{token}", "Plinth", "a plugin runtime")"#),
    ])?;
    ensure!(added.starts_with("ok({id: 1, title: \"Plinth\""), "{added}");
    call(&[
        "notes",
        &format!(r#"add("{token}", "Groceries", "eggs and milk")"#),
    ])?;
    let found = call(&["notes", &format!(r#"search("{token}", "runtime")"#)])?;
    ensure!(
        found.contains("Plinth") && !found.contains("Groceries"),
        "{found}"
    );
    call(&[
        "notes",
        &format!(r#"set-setting("{token}", "theme", "dark")"#),
    ])?;
    let theme = call(&["notes", &format!(r#"get-setting("{token}", "theme")"#)])?;
    ensure!(theme.trim() == r#"ok(some("dark"))"#, "{theme}");
    let stats = call(&["notes", &format!(r#"stats("{token}")"#)])?;
    ensure!(stats.trim() == "ok({notes: 2, added: 2})", "{stats}");
    let nobody = call(&["notes", r#"list("not a session")"#])?;
    ensure!(nobody.trim() == "err(unauthorized)", "{nobody}");
    let status = stdout(plinth(dir.path())?.args(["db", "status"]))?;
    ensure!(
        status.contains("plugins' own data:")
            && status.contains("notes ")
            && status.contains("schema version 2"),
        "{status}"
    );
    let inspect = stdout(plinth(dir.path())?.args(["plugin", "inspect", "notes"]))?;
    ensure!(
        inspect.contains("records version 2") && inspect.contains("2 words"),
        "{inspect}"
    );
    let migrate = stdout(plinth(dir.path())?.args(["plugin", "migrate", "notes"]))?;
    ensure!(
        migrate.trim() == "notes: schema version 2 -> 2",
        "{migrate}"
    );
    Ok(())
}
