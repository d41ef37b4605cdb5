//! Two `plinth serve` processes on one PostgreSQL database: one service.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use serde_json::json;

use super::server::{Server, Start, eventually, signup};
use super::{PW, SLOW, install_misbehave};

fn host(data: &Path, url: &str) -> Result<Server> {
    Start::new(data)
        .db(url)
        .arg("--mail-interval-ms")
        .arg("100")
        .spawn()
}

/// Every mail either host delivered about `subject`, as (file, token).
fn tokens(hosts: &[&Path], subject: &str) -> Result<Vec<String>> {
    let mut found = Vec::new();
    for dir in hosts {
        let Ok(entries) = std::fs::read_dir(dir.join("mail")) else {
            continue;
        };
        for e in entries.flatten() {
            let text = std::fs::read_to_string(e.path())?;
            if text.contains(subject)
                && let Some(t) = text.lines().find_map(|l| l.strip_prefix("token: "))
            {
                found.push(t.trim().to_string());
            }
        }
    }
    Ok(found)
}

#[test]
fn two_hosts_on_postgresql_behave_as_one() -> Result<()> {
    let Some((_, url)) = plinth_pg_cluster::test_database("serve two_hosts")? else {
        return Ok(());
    };
    let (da, db) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let (a, b) = (host(da.path(), &url)?, host(db.path(), &url)?);
    a.ok("auth", "sign-up", signup("ada", "ada@example.com", PW))?;
    // One host delivers the mail, once.
    let token = eventually(Duration::from_secs(15), || {
        let t = tokens(&[da.path(), db.path()], "Verify")?;
        Ok((!t.is_empty()).then_some(t))
    })?;
    std::thread::sleep(Duration::from_millis(500));
    let all = tokens(&[da.path(), db.path()], "Verify")?;
    ensure!(
        all.len() == 1,
        "the verification mail was delivered {} times",
        all.len()
    );
    let token = token[0].clone();
    // The token is consumed once, however the two hosts race for it.
    let (ra, rb) = std::thread::scope(|s| {
        let x = s.spawn(|| a.call("auth", "verify-email", json!({"token": token})));
        let y = s.spawn(|| b.call("auth", "verify-email", json!({"token": token})));
        (x.join(), y.join())
    });
    let (ra, rb) = (
        ra.map_err(|_| anyhow::anyhow!("panicked"))??,
        rb.map_err(|_| anyhow::anyhow!("panicked"))??,
    );
    let mut statuses = [ra.status, rb.status];
    statuses.sort();
    ensure!(statuses == [200, 422], "{ra:?} {rb:?}");
    // A session made through one host is valid through the other.
    let signed = a.ok(
        "auth",
        "sign-in",
        json!({"email": "ada@example.com", "password": PW}),
    )?;
    let session = signed["token"].as_str().context("no token")?;
    let who = b.ok("auth", "validate-session", json!({"token": session}))?;
    ensure!(who["user"]["email-verified"] == true, "{who}");
    b.ok("auth", "sign-out", json!({"token": session}))?;
    ensure!(
        a.call("auth", "validate-session", json!({"token": session}))?
            .status
            == 422
    );
    // Throttling counts both hosts' failures.
    let mut failures = 0;
    let mut limited = false;
    for i in 0..12 {
        let host = if i % 2 == 0 { &a } else { &b };
        let r = host.call(
            "auth",
            "sign-in",
            json!({"email": "ada@example.com", "password": "wrong wrong wrong"}),
        )?;
        match r.status {
            422 => failures += 1,
            429 => {
                limited = true;
                break;
            }
            _ => anyhow::bail!("{r:?}"),
        }
    }
    ensure!(
        limited && failures == 5,
        "limited: {limited} after {failures} failures"
    );
    Ok(())
}

#[test]
fn a_host_killed_under_load_loses_no_write_it_acknowledged() -> Result<()> {
    let Some((cluster, url)) = plinth_pg_cluster::test_database("serve kill_9")? else {
        return Ok(());
    };
    let (da, db) = (tempfile::tempdir()?, tempfile::tempdir()?);
    install_misbehave(da.path(), "writer", SLOW)?;
    install_misbehave(db.path(), "writer", SLOW)?;
    let a = host(da.path(), &url)?;
    let b = host(db.path(), &url)?;
    let stop = AtomicBool::new(false);
    let acknowledged: BTreeSet<String> = std::thread::scope(|s| -> Result<BTreeSet<String>> {
        let workers: Vec<_> = (0..4)
            .map(|w| {
                let (a, stop) = (&a, &stop);
                s.spawn(move || {
                    let mut acked = Vec::new();
                    let mut i = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let name = format!("w{w}x{i}");
                        i += 1;
                        match a.call(
                            "writer",
                            "write-then",
                            json!({"name": name, "then": "return-normally"}),
                        ) {
                            Ok(r) if r.status == 200 => acked.push(name),
                            // Refused or cut by the kill: not acknowledged.
                            _ => {
                                if stop.load(Ordering::Relaxed) {
                                    break;
                                }
                            }
                        }
                    }
                    acked
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(1500));
        a.signal("KILL")?;
        std::thread::sleep(Duration::from_millis(200));
        stop.store(true, Ordering::Relaxed);
        let mut all = BTreeSet::new();
        for w in workers {
            all.extend(w.join().map_err(|_| anyhow::anyhow!("panicked"))?);
        }
        Ok(all)
    })?;
    ensure!(
        acknowledged.len() >= 20,
        "only {} writes under load",
        acknowledged.len()
    );
    let name = plinth_pg_cluster::database_name(&url);
    let stored: BTreeSet<String> = cluster
        .psql(name, "SELECT name FROM users WHERE name LIKE 'w%x%'")?
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    let lost: Vec<_> = acknowledged.difference(&stored).collect();
    ensure!(
        lost.is_empty(),
        "{} acknowledged writes lost: {lost:?}",
        lost.len()
    );
    // The other host serves on.
    let r = b.call(
        "writer",
        "write-then",
        json!({"name": "after", "then": "return-normally"}),
    )?;
    ensure!(r.status == 200, "{r:?}");
    Ok(())
}

/// The pages' per-client limits count every host's posts.
#[test]
fn web_rate_limits_hold_across_two_hosts() -> Result<()> {
    let Some((_, url)) = plinth_pg_cluster::test_database("serve web_limits")? else {
        return Ok(());
    };
    let (da, db) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let start = |d: &Path| {
        Start::new(d)
            .db(&url)
            .arg("--web")
            .arg("--rate-limit")
            .arg("3")
            .spawn()
    };
    let (a, b) = (start(da.path())?, start(db.path())?);
    let statuses = super::web::sign_in_statuses(&[&a.base, &b.base], 5)?;
    ensure!(statuses == [422, 422, 422, 429, 429], "{statuses:?}");
    Ok(())
}
