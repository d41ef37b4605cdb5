//! The import check reads a component's import section before compiling
//! it, and says what to do in one line.

use anyhow::{Result, ensure};
use plinth_guests::TEMPLATE;
use plinth_host::capabilities::users::USERS;
use plinth_host::{Access, Error, Manifest};

use crate::util::Fixture;

fn replace_all(bytes: &[u8], from: &str, to: &str) -> Vec<u8> {
    assert_eq!(
        from.len(),
        to.len(),
        "a same-length rename keeps the binary's layout"
    );
    let (from, to) = (from.as_bytes(), to.as_bytes());
    let mut out = bytes.to_vec();
    let mut i = 0;
    while i + from.len() <= out.len() {
        if &out[i..i + from.len()] == from {
            out[i..i + from.len()].copy_from_slice(to);
            i += from.len();
        } else {
            i += 1;
        }
    }
    out
}

/// The template with every `from` in its bytes renamed `to`, loaded with
/// users granted.
fn load_renamed(
    f: &Fixture,
    from: &str,
    to: &str,
) -> Result<plinth_host::Result<plinth_host::Plugin>> {
    let renamed = replace_all(&std::fs::read(TEMPLATE.wasm)?, from, to);
    let granted = Manifest::new("template").grant(USERS, Access::Read);
    Ok(f.runtime.load_bytes(&renamed, granted))
}

/// The template with the middle of its largest core module overwritten:
/// its top-level sections are intact, its code does not compile.
fn template_with_broken_code() -> Result<Vec<u8>> {
    let mut bytes = std::fs::read(TEMPLATE.wasm)?;
    let mut largest = 0..0;
    for payload in wasmparser::Parser::new(0).parse_all(&bytes) {
        if let wasmparser::Payload::ModuleSection {
            unchecked_range, ..
        } = payload?
            && unchecked_range.len() > largest.len()
        {
            largest = unchecked_range;
        }
    }
    let mid = largest.start + largest.len() / 2;
    bytes[mid..mid + 64].fill(0xff);
    Ok(bytes)
}

#[test]
fn an_ungranted_import_is_refused_before_the_code_is_compiled() -> Result<()> {
    let f = Fixture::new()?;
    let broken = template_with_broken_code()?;
    // Granted nothing: refused by the import check, which never looks
    // at the code.
    match f.runtime.load_bytes(&broken, Manifest::new("template")) {
        Err(e @ Error::NotGranted { .. }) => {
            let msg = e.to_string();
            ensure!(
                msg.contains("plinth:database/users@0.1.0")
                    && msg.contains(r#"add `"plinth:database/users" = "read"`"#),
                "{msg}"
            );
        }
        other => anyhow::bail!("expected NotGranted, got {other:?}"),
    }
    // Granted: the import check passes and the compile fails.
    let granted = Manifest::new("template").grant(USERS, Access::Read);
    ensure!(matches!(
        f.runtime.load_bytes(&broken, granted),
        Err(Error::InvalidComponent { .. })
    ));
    Ok(())
}

#[test]
fn a_component_built_against_another_database_version_is_told_to_rebuild() -> Result<()> {
    let f = Fixture::new()?;
    match load_renamed(
        &f,
        "plinth:database/users@0.1.0",
        "plinth:database/users@0.0.9",
    )? {
        Err(e @ Error::IncompatibleImport { .. }) => {
            let msg = e.to_string();
            ensure!(
                msg.contains("plinth:database/users@0.0.9")
                    && msg.contains("version 0.1.0")
                    && msg.contains("plinth wit"),
                "{msg}"
            );
        }
        other => anyhow::bail!("expected IncompatibleImport, got {other:?}"),
    }
    Ok(())
}

/// `wasi:http`'s types and outgoing handler are linked (the handler
/// refuses); any other import of the package is refused by name, saying
/// that a plugin serves HTTP by exporting the incoming handler.
#[test]
fn other_wasi_http_imports_are_refused_with_what_is_linked() -> Result<()> {
    let f = Fixture::new()?;
    match load_renamed(&f, "wasi:cli/stderr@", "wasi:http/proxy@")? {
        Err(e @ Error::UnknownImport { .. }) => {
            let msg = e.to_string();
            ensure!(
                msg.contains("wasi:http/proxy@")
                    && msg.contains("refuses every request")
                    && msg.contains("exporting wasi:http/incoming-handler"),
                "{msg}"
            );
        }
        other => anyhow::bail!("expected UnknownImport, got {other:?}"),
    }
    Ok(())
}

#[test]
fn a_core_module_or_garbage_is_not_a_component() -> Result<()> {
    let f = Fixture::new()?;
    for bytes in [
        &b"\0asm\x01\0\0\0"[..],
        b"\0asm\x0d\0\x01\0\x07\xff\xff",
        b"not wasm",
    ] {
        ensure!(
            matches!(
                f.runtime.load_bytes(bytes, Manifest::new("x")),
                Err(Error::InvalidComponent { .. })
            ),
            "{bytes:?}"
        );
    }
    Ok(())
}
