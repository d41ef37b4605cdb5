//! The db-test guest runs every database operation through the host.

use std::collections::BTreeSet;

use anyhow::{Result, ensure};
use plinth_guests::DB_TEST;
use plinth_testing::DbTestPlugin;

use crate::util::Fixture;

/// The seed's 19 operations, by their WIT names.
const SEED_OPERATIONS: [&str; 19] = [
    "users.create-user",
    "users.get-user-by-email",
    "users.get-user-by-uuid",
    "users.get-user-by-name",
    "credentials.update-user-password",
    "users.update-user-email-verified",
    "users.update-user-profile",
    "sessions.create-session",
    "sessions.get-session",
    "sessions.delete-session",
    "sessions.delete-user-sessions",
    "sessions.cleanup-expired-sessions",
    "email-verification.create-email-verification-token",
    "email-verification.get-email-verification-token",
    "email-verification.delete-email-verification-token",
    "password-reset.create-password-reset-token",
    "password-reset.get-password-reset-token",
    "password-reset.delete-password-reset-token",
    "password-reset.delete-user-password-reset-tokens",
];

fn failures(checks: &[plinth_testing::Check]) -> String {
    checks
        .iter()
        .filter(|c| !c.passed)
        .map(|c| format!("\n  {} — {}: {}", c.operation, c.name, c.detail))
        .collect()
}

#[test]
fn every_check_passes_and_covers_the_nineteen_seed_operations() -> Result<()> {
    let f = Fixture::new()?;
    let plugin = DbTestPlugin::new(f.load(DB_TEST)?)?;
    let before = f.clock.now();
    let checks = plugin.run()?;
    ensure!(
        checks.iter().all(|c| c.passed),
        "failed checks:{}",
        failures(&checks)
    );
    // The guest moved its call's clock (through plinth:test/clock) to watch
    // sessions and tokens expire — the checks above need that — and only its
    // call's: the runtime's clock, which other calls read, stayed put.
    ensure!(f.clock.now() == before, "the runtime's clock moved");
    let covered: BTreeSet<&str> = checks.iter().map(|c| c.operation.as_str()).collect();
    let missing: Vec<_> = SEED_OPERATIONS
        .iter()
        .filter(|op| !covered.contains(*op))
        .collect();
    ensure!(
        missing.is_empty(),
        "operations without a check: {missing:?}"
    );
    ensure!(
        covered.len() >= 19,
        "only {} distinct operations",
        covered.len()
    );
    Ok(())
}

#[test]
fn what_the_guest_wrote_is_in_the_file() -> Result<()> {
    let f = Fixture::new()?;
    let plugin = DbTestPlugin::new(f.load(DB_TEST)?)?;
    let checks = plugin.run()?;
    let kept = checks
        .iter()
        .find(|c| c.operation == "report")
        .and_then(|c| c.detail.strip_prefix("kept user "))
        .ok_or_else(|| anyhow::anyhow!("no kept user in the report:{}", failures(&checks)))?
        .to_string();
    // Read back through a separate connection, as any other program would.
    let name = f.sql("SELECT name FROM users WHERE uuid = ?1", &[&kept])?;
    let hash = f.sql("SELECT password_hash FROM users WHERE uuid = ?1", &[&kept])?;
    ensure!(
        name.starts_with("dbtest-") && name.ends_with("-bob"),
        "name {name}"
    );
    ensure!(hash == "new-hash", "password hash {hash}");
    for table in [
        "sessions",
        "email_verification_tokens",
        "password_reset_tokens",
    ] {
        let n = f.sql_i64(
            &format!("SELECT COUNT(*) FROM {table} WHERE user_uuid = ?1"),
            &[&kept],
        )?;
        ensure!(n >= 1, "{table} has no row for the kept user");
    }
    // The deleted user's rows went with it.
    let eve = f.sql_i64(
        "SELECT COUNT(*) FROM users WHERE name LIKE 'dbtest-%-eve'",
        &[],
    )?;
    ensure!(eve == 0, "the deleted user is still there");
    Ok(())
}

#[test]
fn the_plugin_runs_again_on_the_same_database() -> Result<()> {
    let f = Fixture::new()?;
    let plugin = DbTestPlugin::new(f.load(DB_TEST)?)?;
    for round in 0..3 {
        let checks = plugin.run()?;
        ensure!(
            checks.iter().all(|c| c.passed),
            "round {round}:{}",
            failures(&checks)
        );
    }
    let users = f.rows("users")?;
    ensure!(
        users >= 3 * 4,
        "expected the rows of three runs, found {users} users"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_async_api_runs_the_plugin_from_tokio_tasks() -> Result<()> {
    let f = Fixture::new()?;
    let plugin = DbTestPlugin::new(f.load(DB_TEST)?)?;
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let p = plugin.clone();
            tokio::spawn(async move { p.run_async().await })
        })
        .collect();
    for t in tasks {
        let checks = t.await??;
        ensure!(
            checks.iter().all(|c| c.passed),
            "failed:{}",
            failures(&checks)
        );
    }
    Ok(())
}

#[test]
fn the_component_imports_the_database_interfaces_and_exports_its_report() -> Result<()> {
    let f = Fixture::new()?;
    let plugin = f.load(DB_TEST)?;
    let imports = plugin.imports();
    for interface in [
        "plinth:database/types@0.1.0",
        "plinth:database/users@0.1.0",
        "plinth:database/credentials@0.1.0",
        "plinth:database/sessions@0.1.0",
        "plinth:database/email-verification@0.1.0",
        "plinth:database/password-reset@0.1.0",
        "plinth:test/clock@0.1.0",
    ] {
        ensure!(
            imports.iter().any(|i| i == interface),
            "{interface} not in {imports:?}"
        );
    }
    let exports = plugin.exports();
    ensure!(exports.iter().any(|e| e == "run"), "exports: {exports:?}");
    ensure!(
        exports.iter().any(|e| e == "probe-sandbox"),
        "exports: {exports:?}"
    );
    Ok(())
}
