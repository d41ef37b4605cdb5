//! The bench guest's exports do what the benchmarks assume.

use anyhow::{Result, ensure};
use plinth_host::BenchPlugin;

use crate::util::{Fixture, ok};

#[test]
fn the_bench_exports_compute_and_look_up_for_real() -> Result<()> {
    let f = Fixture::new()?;
    let bench = BenchPlugin::new(f.load(plinth_guests::BENCH)?)?;
    bench.noop()?;
    // The guest's Argon2 agrees with native Argon2 on the same input.
    let guest = bench.argon2_hash("pass phrase")?;
    let params = argon2::Params::new(19_456, 2, 1, Some(32)).map_err(anyhow::Error::msg)?;
    let mut out = [0u8; 32];
    argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
        .hash_password_into(b"pass phrase", b"plinth-bench-salt", &mut out)
        .map_err(anyhow::Error::msg)?;
    ensure!(
        guest == u64::from_le_bytes(out[..8].try_into()?),
        "argon2 differs"
    );
    ok(f.auth()?
        .sign_up("ada", "ada@example.com", "correct horse battery staple"))?;
    ensure!(bench.lookup_by_email("ada@example.com", 50)? == Ok(50));
    ensure!(bench.lookup_by_email("nobody@example.com", 5)? == Ok(0));
    ensure!(bench.time_live_calls(100)? > std::time::Duration::ZERO);
    Ok(())
}

#[test]
fn a_read_grant_lets_the_bench_plugin_read_but_not_write() -> Result<()> {
    let f = Fixture::new()?;
    let plugin = f.load(plinth_guests::BENCH)?;
    ensure!(plugin.grants().get(plinth_host::Interface::Users) == Some(plinth_host::Access::Read));
    ensure!(
        plugin
            .grants()
            .get(plinth_host::Interface::Credentials)
            .is_none()
    );
    Ok(())
}
