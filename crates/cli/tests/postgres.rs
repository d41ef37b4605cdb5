//! The `plinth` binary on PostgreSQL: every database command, and one
//! account's journey across two hosts (processes with data directories of
//! their own) sharing one database.

use std::path::Path;

use anyhow::{Context, Result, ensure};

mod tools;

use tools::{plinth, stdout};

const PW: &str = "correct horse battery staple";

/// A database of its own on the test cluster, or `None` (said loudly) on a
/// machine without PostgreSQL.
fn database(test: &str) -> Result<Option<String>> {
    Ok(plinth_pg_cluster::test_database(test)?.map(|(_, url)| url))
}

/// `plinth` as host `data` on the database at `url`, given in `PLINTH_DB`
/// (where a password would go, off the command line).
fn host(data: &Path, url: &str) -> Result<assert_cmd::Command> {
    let mut cmd = plinth(data)?;
    cmd.env("PLINTH_DB", url);
    Ok(cmd)
}

/// `plinth call auth CALL` on host `data`; its output, trimmed.
fn call(data: &Path, url: &str, what: &str) -> Result<String> {
    Ok(stdout(host(data, url)?.args(["call", "auth", what]))?
        .trim()
        .to_string())
}

/// The token of the newest mail either host delivered to its `mail/`.
fn newest_token(hosts: &[&Path], subject: &str) -> Result<String> {
    let mut newest: Option<(std::time::SystemTime, String)> = None;
    for dir in hosts {
        let Ok(entries) = std::fs::read_dir(dir.join("mail")) else {
            continue;
        };
        for e in entries.flatten() {
            let text = std::fs::read_to_string(e.path())?;
            if !text.contains(subject) {
                continue;
            }
            let at = e.metadata()?.modified()?;
            if newest.as_ref().is_none_or(|(t, _)| at > *t) {
                newest = Some((at, text));
            }
        }
    }
    let (_, text) = newest.with_context(|| format!("no mail about {subject:?}"))?;
    text.lines()
        .find_map(|l| l.strip_prefix("token: "))
        .map(|t| t.trim().to_string())
        .context("no token in the mail")
}

#[test]
fn every_database_command_runs_on_postgresql() -> Result<()> {
    let Some(url) = database("cli every_database_command")? else {
        return Ok(());
    };
    let dir = tempfile::tempdir()?;
    let status = stdout(host(dir.path(), &url)?.args(["db", "status"]))?;
    ensure!(
        status.contains("(postgresql)") && status.contains("schema version: 6"),
        "{status}"
    );
    ensure!(stdout(host(dir.path(), &url)?.args(["db", "migrate"]))?.contains("schema version 6"));
    let demo = stdout(host(dir.path(), &url)?.arg("demo"))?;
    ensure!(
        demo.contains("11 steps, 11 behaved, 0 misbehaved"),
        "{demo}"
    );
    let outbox = stdout(host(dir.path(), &url)?.arg("outbox"))?;
    ensure!(
        outbox.contains(": sent at ") && !outbox.contains("token: "),
        "{outbox}"
    );
    let cleanup = stdout(host(dir.path(), &url)?.args(["db", "cleanup"]))?;
    ensure!(cleanup.contains("sessions:"), "{cleanup}");
    // --db on the command line works as well as the variable.
    let by_flag = stdout(plinth(dir.path())?.args(["--db", &url, "db", "status"]))?;
    ensure!(by_flag.contains("(postgresql)"), "{by_flag}");
    // Nothing went to a file.
    ensure!(!dir.path().join("plinth.db").exists());
    Ok(())
}

#[test]
fn a_server_that_is_down_is_one_line_naming_the_url_without_the_password() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let url = format!("postgres://plinth:s3cretpass@127.0.0.1:{port}/app");
    let out = host(dir.path(), &url)?.args(["db", "status"]).output()?;
    let err = String::from_utf8(out.stderr)?;
    ensure!(!out.status.success());
    ensure!(err.trim_end().lines().count() == 1, "{err}");
    ensure!(
        err.contains(&format!("postgres://plinth@127.0.0.1:{port}/app")),
        "{err}"
    );
    ensure!(!err.contains("s3cretpass"), "{err}");
    Ok(())
}

#[test]
fn one_account_across_two_hosts() -> Result<()> {
    let Some(url) = database("cli one_account_across_two_hosts")? else {
        return Ok(());
    };
    let (one, two) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let (a, b) = (one.path(), two.path());
    // Sign up through host one; verify the mailed token through host two.
    let up = call(
        a,
        &url,
        &format!(r#"sign-up("ada", "ada@example.com", "{PW}")"#),
    )?;
    ensure!(up.starts_with("ok("), "{up}");
    let verify = newest_token(&[a, b], "Verify")?;
    let verified = call(b, &url, &format!(r#"verify-email("{verify}")"#))?;
    ensure!(verified.contains("email-verified: true"), "{verified}");
    // The same token, again, on host one: used.
    let again = call(a, &url, &format!(r#"verify-email("{verify}")"#))?;
    ensure!(again == "err(invalid-token)", "{again}");
    // Sign in on host two; the session is valid on host one.
    let signed = stdout(host(b, &url)?.args([
        "call",
        "auth",
        &format!(r#"sign-in("ada@example.com", "{PW}")"#),
        "--json",
    ]))?;
    let v: serde_json::Value = serde_json::from_str(&signed)?;
    let session = v["ok"]["token"]
        .as_str()
        .context("no session token")?
        .to_string();
    let valid = call(a, &url, &format!(r#"validate-session("{session}")"#))?;
    ensure!(valid.starts_with("ok("), "{valid}");
    // Reset the password on host one; the old session is refused on two.
    ensure!(call(a, &url, r#"request-password-reset("ada@example.com")"#)? == "ok");
    let reset = newest_token(&[a, b], "Reset")?;
    let new_pw = "an entirely new passphrase";
    ensure!(
        call(
            a,
            &url,
            &format!(r#"reset-password("{reset}", "{new_pw}")"#)
        )? == "ok"
    );
    let old = call(b, &url, &format!(r#"validate-session("{session}")"#))?;
    ensure!(old == "err(session-expired)", "{old}");
    let in_again = call(
        b,
        &url,
        &format!(r#"sign-in("ada@example.com", "{new_pw}")"#),
    )?;
    ensure!(in_again.starts_with("ok("), "{in_again}");
    Ok(())
}

/// The notes plugin on PostgreSQL across two hosts: a note added on one is
/// found by the other's search; settings and counters are shared;
/// `db status` shows its schema.
#[test]
fn the_notes_journey_across_two_hosts() -> Result<()> {
    let Some(url) = database("cli notes")? else {
        return Ok(());
    };
    let (one, two) = (tempfile::tempdir()?, tempfile::tempdir()?);
    call(
        one.path(),
        &url,
        r#"sign-up("ada", "ada@example.com", "correct horse battery staple")"#,
    )?;
    let signed_in = call(
        two.path(),
        &url,
        &format!(r#"sign-in("ada@example.com", "{PW}")"#),
    )?;
    let token = signed_in
        .split("token: \"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .context("no token")?
        .to_string();
    let notes = |data: &Path, what: &str| -> Result<String> {
        Ok(stdout(host(data, &url)?.args(["call", "notes", what]))?
            .trim()
            .to_string())
    };
    let added = notes(
        one.path(),
        &format!(r#"add("{token}", "Plinth", "a plugin runtime")"#),
    )?;
    ensure!(added.starts_with("ok({id: 1, title: \"Plinth\""), "{added}");
    notes(
        one.path(),
        &format!(r#"add("{token}", "Groceries", "eggs and milk")"#),
    )?;
    let found = notes(two.path(), &format!(r#"search("{token}", "runtime")"#))?;
    ensure!(
        found.contains("Plinth") && !found.contains("Groceries"),
        "{found}"
    );
    notes(
        two.path(),
        &format!(r#"set-setting("{token}", "theme", "dark")"#),
    )?;
    let theme = notes(one.path(), &format!(r#"get-setting("{token}", "theme")"#))?;
    ensure!(theme == r#"ok(some("dark"))"#, "{theme}");
    let stats = notes(two.path(), &format!(r#"stats("{token}")"#))?;
    ensure!(stats == "ok({notes: 2, added: 2})", "{stats}");
    let status = stdout(host(one.path(), &url)?.args(["db", "status"]))?;
    ensure!(
        status.contains("plugins' own data:") && status.contains("schema version 2"),
        "{status}"
    );
    Ok(())
}
