//! The guests' SIMD128 Argon2id computes exactly what the `argon2` crate
//! computes natively (the crate is checked against RFC 9106's vectors), over
//! a grid of memory, time, lane and tag sizes, and refuses what it refuses.

use anyhow::{Result, ensure};
use plinth_testing::BenchPlugin;

use crate::util::Fixture;

/// Memory (KiB), passes, lanes.
type Costs = (u32, u32, u32);
/// Password, salt, costs, tag bytes.
type Case<'a> = (&'a [u8], &'a [u8], Costs, u32);

fn native(password: &[u8], salt: &[u8], (m, t, p): Costs, len: u32) -> Result<Vec<u8>> {
    let params = argon2::Params::new(m, t, p, Some(len as usize)).map_err(anyhow::Error::msg)?;
    let mut out = vec![0u8; len as usize];
    argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
        .hash_password_into(password, salt, &mut out)
        .map_err(anyhow::Error::msg)?;
    Ok(out)
}

#[test]
fn the_guests_argon2id_matches_the_argon2_crate_over_a_grid_of_parameters() -> Result<()> {
    let f = Fixture::new()?;
    let bench = BenchPlugin::new(f.load(plinth_guests::BENCH)?)?;
    let long_password = "ünïcödé pass phrase ".repeat(12);
    let cases: &[Case] = &[
        (b"password", b"somesalt", (8, 1, 1), 32),
        (b"", b"12345678", (8, 1, 1), 4),
        (b"password", b"somesalt", (64, 3, 1), 32),
        (b"password", b"somesalt", (65, 2, 1), 64),
        (b"password", b"somesalt", (256, 1, 1), 65),
        (b"password", b"somesalt", (1000, 2, 1), 100),
        (b"password", b"somesalt", (32, 3, 4), 32),
        (b"password", b"somesalt", (33, 2, 2), 32),
        (b"password", b"somesalt", (300, 2, 3), 1024),
        (long_password.as_bytes(), &[0xA5; 64], (520, 4, 2), 48),
        // Crosses an address block (128 addresses) inside a segment.
        (b"pass phrase", b"plinth-salt-0001", (2048, 1, 1), 32),
        (b"pass phrase", b"plinth-salt-0001", (4096, 2, 2), 32),
        // The parameters plinth hashes passwords with.
        (
            b"correct horse battery staple",
            b"plinth-salt-0002",
            (19_456, 2, 1),
            32,
        ),
    ];
    for &(password, salt, params, len) in cases {
        let guest = bench.argon2id(password, salt, params, len)?;
        let expected = native(password, salt, params, len)?;
        ensure!(
            guest.as_deref() == Ok(expected.as_slice()),
            "m,t,p = {params:?}, {len} bytes: guest {guest:02x?}, native {expected:02x?}"
        );
    }
    // The check-value exports agree with each other and with the crate.
    let simd = bench.argon2_hash("pass phrase")?;
    let scalar = bench.argon2_crate_hash("pass phrase")?;
    let expected = native(b"pass phrase", b"plinth-bench-salt", (19_456, 2, 1), 32)?;
    ensure!(simd == scalar && simd == u64::from_le_bytes(expected[..8].try_into()?));
    Ok(())
}

#[test]
fn the_guests_argon2id_refuses_what_argon2_refuses() -> Result<()> {
    let f = Fixture::new()?;
    let bench = BenchPlugin::new(f.load(plinth_guests::BENCH)?)?;
    let refused: &[(&[u8], Costs, u32, &str)] = &[
        (b"short", (64, 1, 1), 32, "salt"),
        (b"somesalt", (7, 1, 1), 32, "parameters"),
        (b"somesalt", (15, 1, 2), 32, "parameters"),
        (b"somesalt", (64, 0, 1), 32, "parameters"),
        (b"somesalt", (64, 1, 0), 32, "parameters"),
        (b"somesalt", (64, 1, 1), 3, "output"),
    ];
    for &(salt, params, len, why) in refused {
        let answer = bench.argon2id(b"password", salt, params, len)?;
        ensure!(
            matches!(&answer, Err(reason) if reason.contains(why)),
            "{params:?} {len}: {answer:?}"
        );
        ensure!(native(b"password", salt, params, len).is_err());
    }
    Ok(())
}
