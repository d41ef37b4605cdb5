//! Files and bytes that are not a plugin: devices, FIFOs, oversized files,
//! non-components, unknown functions and wrong arity, each a typed error.

use anyhow::{Result, ensure};
use plinth_guests::{DB_TEST, MISBEHAVE};
use plinth_host::{Error, Manifest};

use crate::util::Fixture;

/// Only regular files are read, and only up to a size: a device never
/// ends, a FIFO never opens, a huge file is refused before it is read.
#[cfg(unix)]
#[test]
fn devices_fifos_and_oversized_files_are_refused_before_reading() -> Result<()> {
    let f = Fixture::new()?;
    let dir = f.dir.path();
    let fifo = dir.join("pipe.wasm");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status()?;
    ensure!(made.success(), "mkfifo failed");
    let zero_link = dir.join("zero.toml");
    std::os::unix::fs::symlink("/dev/zero", &zero_link)?;
    for path in [std::path::Path::new("/dev/zero"), fifo.as_path(), dir] {
        match f.runtime.load_file(path, Manifest::new("x")) {
            Err(e @ Error::Io { .. }) => {
                ensure!(e.to_string().contains("not a regular file"), "{e}")
            }
            other => anyhow::bail!("{}: expected Io, got {other:?}", path.display()),
        }
    }
    for path in [zero_link.as_path(), fifo.as_path()] {
        match Manifest::from_file(path) {
            Err(e @ Error::Io { .. }) => {
                ensure!(e.to_string().contains("not a regular file"), "{e}")
            }
            other => anyhow::bail!("{}: expected Io, got {other:?}", path.display()),
        }
    }
    let big = dir.join("big.toml");
    std::fs::write(&big, format!("name = \"x\"\n#{}\n", "x".repeat(70 << 10)))?;
    match Manifest::from_file(&big) {
        Err(e @ Error::Io { .. }) => ensure!(e.to_string().contains("limit"), "{e}"),
        other => anyhow::bail!("expected Io, got {other:?}"),
    }
    // A large sparse component file is refused by its size, unread.
    let huge = dir.join("huge.wasm");
    std::fs::File::create(&huge)?.set_len(plinth_host::MAX_COMPONENT_BYTES + 1)?;
    match f.runtime.load_file(&huge, Manifest::new("x")) {
        Err(e @ Error::Io { .. }) => ensure!(e.to_string().contains("limit"), "{e}"),
        other => anyhow::bail!("expected Io, got {other:?}"),
    }
    Ok(())
}

#[test]
fn bytes_that_are_not_a_component_are_refused_with_a_typed_error() -> Result<()> {
    let f = Fixture::new()?;
    let real = std::fs::read(DB_TEST.wasm)?;
    let cases: [(&str, Vec<u8>); 4] = [
        ("empty", Vec::new()),
        ("text", b"hello, I am not wasm".to_vec()),
        ("core module", b"\0asm\x01\0\0\0".to_vec()),
        ("truncated", real[..real.len() / 2].to_vec()),
    ];
    for (what, bytes) in cases {
        match f.runtime.load_bytes(&bytes, Manifest::new(what)) {
            Err(Error::InvalidComponent { plugin, .. }) => ensure!(plugin == what),
            other => anyhow::bail!("{what}: expected InvalidComponent, got {other:?}"),
        }
    }
    Ok(())
}

#[test]
fn unknown_functions_and_wrong_arity_are_typed_errors() -> Result<()> {
    let f = Fixture::new()?;
    let p = f.load(MISBEHAVE)?;
    match p.call_dynamic("no-such-function", &[]) {
        Err(Error::NoSuchExport { available, .. }) => {
            ensure!(available.contains(&"write-then".to_string()))
        }
        other => anyhow::bail!("{other:?}"),
    }
    ensure!(matches!(
        p.call_dynamic("write-then", &[]),
        Err(Error::BadArguments { .. })
    ));
    Ok(())
}
