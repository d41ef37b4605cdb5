//! The bench guest's exports do what the benchmarks assume.

use anyhow::{Result, ensure};
use plinth_testing::BenchPlugin;

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
    ensure!(
        plugin
            .grants()
            .get(&plinth_host::capabilities::users::USERS)
            == Some(plinth_host::Access::Read)
    );
    ensure!(
        plugin
            .grants()
            .get(&plinth_host::capabilities::credentials::CREDENTIALS)
            .is_none()
    );
    Ok(())
}

#[test]
fn the_guest_heap_keeps_bytes_zeroes_and_reuses_large_blocks() -> Result<()> {
    let f = Fixture::new()?;
    let bench = BenchPlugin::new(f.load(plinth_guests::BENCH)?)?;
    let pages = bench.heap_check()?.map_err(anyhow::Error::msg)?;
    // 1 MiB, then 512 KiB and 256 KiB carved from it, then a vector growing
    // to 1 MiB through 512 KiB: with freed large blocks reused, well under
    // the 3.5 MiB that allocating each afresh would take.
    ensure!(
        pages < 64,
        "the heap checks grew the memory to {pages} pages"
    );
    Ok(())
}

#[test]
fn a_no_std_guests_panic_is_a_trap_naming_the_plugin_and_function() -> Result<()> {
    let f = Fixture::new()?;
    let bench = BenchPlugin::new(f.load(plinth_guests::BENCH)?)?;
    match bench.panic_with("on purpose") {
        Err(plinth_host::Error::Trap {
            plugin, function, ..
        }) => ensure!(
            plugin == "bench" && function == "panic-with",
            "{plugin}.{function}"
        ),
        other => anyhow::bail!("expected a trap, got {other:?}"),
    }
    // The same runtime serves the next call.
    bench.noop()?;
    ensure!(bench.lookup_by_email("nobody@example.com", 3)? == Ok(0));
    Ok(())
}

#[test]
fn no_std_guests_import_only_the_interfaces_their_code_calls() -> Result<()> {
    let f = Fixture::new()?;
    // Built on `plinth-guest-rt`, without `std`: no stdio, terminal,
    // environment or exit imports, which a `std` guest links for its panic
    // message alone.
    for (guest, expected) in [
        (
            plinth_guests::BENCH,
            &["plinth:database/types", "plinth:database/users"][..],
        ),
        (
            plinth_guests::AUTH,
            &[
                "plinth:auth/attempts",
                "plinth:auth/mailer",
                "plinth:database/clock",
                "plinth:database/credentials",
                "plinth:database/email-verification",
                "plinth:database/password-reset",
                "plinth:database/sessions",
                "plinth:database/types",
                "plinth:database/users",
                "wasi:random/random",
            ][..],
        ),
    ] {
        let mut imports: Vec<String> = f
            .load(guest)?
            .imports()
            .into_iter()
            .map(|i| i.split('@').next().unwrap_or_default().to_string())
            .collect();
        imports.sort();
        ensure!(imports == expected, "{imports:?}");
    }
    Ok(())
}
