//! A guest sees no filesystem, no environment, no arguments, no network.

use anyhow::{Result, ensure};
use plinth_guests::DB_TEST;
use plinth_testing::DbTestPlugin;

use crate::util::Fixture;

#[test]
fn a_guest_sees_no_files_no_environment_and_no_network() -> Result<()> {
    // SAFETY-free way to make sure the host has something to leak: the test
    // process's own environment always has PATH and HOME-like variables.
    ensure!(
        std::env::vars().count() > 0,
        "the host environment is empty"
    );
    let f = Fixture::new()?;
    std::fs::write(f.dir.path().join("secret.txt"), "host file")?;
    let plugin = DbTestPlugin::new(f.load(DB_TEST)?)?;
    let seen = plugin.probe_sandbox()?;
    let leaked: Vec<&String> = seen
        .iter()
        .filter(|line| !line.starts_with("denied: "))
        .collect();
    ensure!(leaked.is_empty(), "the guest saw: {leaked:#?}");
    // It did try: each probe reports a denial.
    for probe in [
        "read_dir /",
        "open /etc/passwd",
        "write plinth-probe.txt",
        "connect 127.0.0.1:80",
    ] {
        ensure!(
            seen.iter()
                .any(|l| l.starts_with(&format!("denied: {probe}"))),
            "no result for {probe}: {seen:#?}"
        );
    }
    ensure!(!f.dir.path().join("plinth-probe.txt").exists());
    Ok(())
}
