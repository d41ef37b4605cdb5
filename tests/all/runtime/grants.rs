//! Grants: a manifest asks, an approval bounds it, the runtime refuses an
//! import nobody granted; test interfaces only in code, on a runtime that
//! registers them.

use anyhow::{Result, ensure};
use plinth_guests::{BENCH, DB_TEST, MISBEHAVE};
use plinth_host::capabilities::users::USERS;
use plinth_host::{Access, Error, Manifest, Reuse, Runtime, RuntimeOptions, Val};
use plinth_store::Db;

use crate::util::Fixture;

#[test]
fn an_import_without_a_grant_is_refused_at_load_naming_the_interface() -> Result<()> {
    let f = Fixture::new()?;
    let mut manifest = Manifest::from_file(DB_TEST.manifest.as_ref())?;
    manifest.grants = plinth_host::Grants::all_database();
    match f.runtime.load_file(DB_TEST.wasm.as_ref(), manifest) {
        Err(Error::NotGranted {
            plugin, interface, ..
        }) => {
            ensure!(
                plugin == "db-test" && interface == "plinth:test/clock@0.1.0",
                "{plugin} {interface}"
            );
        }
        other => anyhow::bail!("expected NotGranted, got {other:?}"),
    }
    let only_users = Manifest::new("db-test").grant(USERS, Access::Write);
    match f.runtime.load_file(DB_TEST.wasm.as_ref(), only_users) {
        Err(e @ Error::NotGranted { .. }) => {
            let msg = e.to_string();
            ensure!(
                msg.contains("db-test") && msg.contains("imports plinth:"),
                "{msg}"
            );
        }
        other => anyhow::bail!("expected NotGranted, got {other:?}"),
    }
    Ok(())
}

#[test]
fn a_read_grant_turns_writes_into_access_denied() -> Result<()> {
    let f = Fixture::new()?;
    let read_only = Manifest::new("reader").grant(USERS, Access::Read);
    let p = f.load_with(MISBEHAVE, read_only)?;
    let out = p.call_dynamic(
        "write-then",
        &[
            Val::String("ro".into()),
            Val::Variant("return-normally".into(), None),
        ],
    )?;
    match &out[..] {
        [Val::Result(Err(Some(msg)))] => {
            ensure!(
                matches!(&**msg, Val::String(s) if s.contains("AccessDenied") && s.contains("plinth:database/users")),
                "{msg:?}"
            );
        }
        other => anyhow::bail!("expected access-denied, got {other:?}"),
    }
    ensure!(f.rows("users")? == 0);
    // Reads still work under the same grant.
    let bench = plinth_testing::BenchPlugin::new(
        f.load_with(BENCH, Manifest::new("reader").grant(USERS, Access::Read))?,
    )?;
    ensure!(bench.lookup_by_email("nobody@example.com", 3)? == Ok(0));
    Ok(())
}

#[test]
fn malformed_manifests_are_refused_with_the_reason() {
    for (text, needle) in [
        (
            "name = \"x\"\n[grants]\n\"plinth:database/secrets\" = \"read\"",
            "unknown interface",
        ),
        (
            "name = \"x\"\n[grants]\n\"plinth:database/users\" = \"all\"",
            "expected \"read\"",
        ),
        ("name = \"x\"\n[limits]\nmemory-mib = 0", "memory-mib"),
        ("name = \"x\"\n[limits]\ntime-ms = 99999999", "time-ms"),
        ("name = \"x\"\n[reuse]\ncalls = 0", "reuse.calls"),
        ("name = \"x\"\n[reuse]\nmemory-kib = 0", "reuse.memory-kib"),
        ("name = \"x\"\n[reuse]\nidle = 65", "reuse.idle"),
        ("name = \"x\"\n[reuse]\nforever = true", "forever"),
        ("name = \"\"", "name"),
        ("name = \"evil\\u001b[2J\"", "control characters"),
        ("name = \"line\\rbreak\"", "control characters"),
        ("name = \"x\"\nsurprise = 1", "surprise"),
        ("not toml at all [", ""),
    ] {
        match Manifest::from_toml(text, "test.toml") {
            Err(Error::Manifest { reason, .. }) => {
                assert!(reason.contains(needle), "{text}: {reason}")
            }
            other => panic!("{text}: expected a manifest error, got {other:?}"),
        }
    }
}

/// A request is held against an approval: within it, it is what the
/// plugin gets; beyond it in any way (an interface, more access, a
/// higher limit, reuse), it is refused naming each excess.
#[test]
fn a_request_beyond_its_approval_is_refused_naming_the_excess() -> Result<()> {
    use plinth_host::capabilities::credentials::CREDENTIALS;
    let approved = Manifest::new("p").grant(USERS, Access::Write);
    let request = Manifest::new("p").grant(USERS, Access::Read);
    ensure!(request.within(&approved)? == request);
    let grown = Manifest::new("p")
        .grant(USERS, Access::Write)
        .grant(CREDENTIALS, Access::Read)
        .limits(plinth_host::Limits {
            time: std::time::Duration::from_secs(60),
            ..plinth_host::Limits::default()
        })
        .reuse(Some(Reuse::default()));
    match grown.within(&approved) {
        Err(Error::NotApproved { beyond, .. }) => {
            let all = beyond.join("; ");
            ensure!(beyond.len() == 3, "{all}");
            ensure!(
                all.contains("plinth:database/credentials read (not approved)"),
                "{all}"
            );
            ensure!(all.contains("time") && all.contains("reuse"), "{all}");
        }
        other => anyhow::bail!("expected NotApproved, got {other:?}"),
    }
    let more_access = Manifest::new("p").grant(USERS, Access::Write);
    ensure!(more_access.within(&request).is_err());
    // An approval written out and read back is the same manifest.
    let text = grown.to_toml();
    ensure!(Manifest::from_toml(&text, "x")? == grown, "{text}");
    Ok(())
}

/// What a plugin offers over HTTP is approved like an interface: an
/// export or a path prefix the approval does not name is refused, and
/// the `[http]` section survives being written out and read back.
#[test]
fn http_exports_and_prefixes_beyond_the_approval_are_refused() -> Result<()> {
    let approved = Manifest::from_toml(
        "name = \"p\"\n[http]\nexports = [\"add\", \"list\"]\nprefix = \"/apps/p\"\n",
        "p.toml",
    )?;
    ensure!(approved.http.exports.len() == 2);
    ensure!(Manifest::from_toml(&approved.to_toml(), "x")? == approved);
    let fewer = Manifest::from_toml("name = \"p\"\n[http]\nexports = [\"list\"]\n", "p.toml")?;
    ensure!(fewer.within(&approved)? == fewer);
    let grown = Manifest::from_toml(
        "name = \"p\"\n[http]\nexports = [\"add\", \"drop-all\"]\nprefix = \"/apps/q\"\n",
        "p.toml",
    )?;
    match grown.within(&approved) {
        Err(Error::NotApproved { beyond, .. }) => {
            let all = beyond.join("; ");
            ensure!(beyond.len() == 2, "{all}");
            ensure!(
                all.contains("export drop-all over HTTP (not approved)"),
                "{all}"
            );
            ensure!(all.contains("/apps/q (approved: /apps/p)"), "{all}");
        }
        other => anyhow::bail!("expected NotApproved, got {other:?}"),
    }
    // Nothing approved: no export over HTTP.
    ensure!(fewer.within(&Manifest::new("p")).is_err());
    for (text, needle) in [
        ("[http]\nprefix = \"apps\"", "http.prefix"),
        ("[http]\nprefix = \"/\"", "http.prefix"),
        ("[http]\nprefix = \"/apps/../plugins\"", "http.prefix"),
        ("[http]\nprefix = \"/Apps\"", "http.prefix"),
        ("[http]\nexports = [\"\"]", "http.exports"),
        ("[http]\nexports = [\"a/b\"]", "http.exports"),
        ("[http]\nexports = [\"a\\u0000\"]", "http.exports"),
        ("[http]\nroutes = 1", "routes"),
    ] {
        let text = format!("name = \"p\"\n{text}");
        match Manifest::from_toml(&text, "p.toml") {
            Err(Error::Manifest { reason, .. }) => {
                ensure!(reason.contains(needle), "{text}: {reason}")
            }
            other => anyhow::bail!("{text}: expected a manifest error, got {other:?}"),
        }
    }
    Ok(())
}

/// `plinth:test/clock` lets a plugin move time: a manifest
/// file beside a component must not be able to hand it out, however it
/// spells it.
#[test]
fn a_manifest_that_grants_a_test_interface_is_refused() {
    for name in [
        "plinth:test/clock",
        "plinth:test/clock@0.1.0",
        "plinth:test/report",
        "plinth:test/anything-else",
    ] {
        let text = format!("name = \"sneaky\"\n[grants]\n\"{name}\" = \"read-write\"");
        match Manifest::from_toml(&text, "sneaky.toml") {
            Err(e @ Error::Manifest { .. }) => {
                let msg = e.to_string();
                assert!(
                    msg.contains("sneaky.toml")
                        && msg.contains(name)
                        && msg.contains("cannot be granted by a manifest"),
                    "{msg}"
                );
            }
            other => panic!("{name}: expected a manifest error, got {other:?}"),
        }
    }
    // Interfaces every plugin has anyway are not grants either.
    for (name, needle) in [
        ("plinth:database/types", "needs no grant"),
        ("plinth:database/clock", "needs no grant"),
        ("wasi:filesystem/preopens", "needs no grant"),
    ] {
        let text = format!("name = \"x\"\n[grants]\n\"{name}\" = \"read\"");
        match Manifest::from_toml(&text, "x.toml") {
            Err(Error::Manifest { reason, .. }) => assert!(reason.contains(needle), "{reason}"),
            other => panic!("{name}: expected a manifest error, got {other:?}"),
        }
    }
}

/// A grant in code is not enough: the runtime must also have been given
/// the test capability, or the import is unknown to it.
#[test]
fn a_test_interface_is_reachable_only_on_a_runtime_that_registers_it() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let plain = Runtime::new(Db::open(dir.path().join("db"))?)?;
    let manifest = Manifest::from_file(DB_TEST.manifest.as_ref())?
        .grant(plinth_testing::TEST_CLOCK, Access::Write);
    match plain.load_file(DB_TEST.wasm.as_ref(), manifest.clone()) {
        Err(Error::UnknownImport { import, .. }) => {
            ensure!(import.starts_with("plinth:test/"), "{import}")
        }
        other => anyhow::bail!("expected UnknownImport, got {other:?}"),
    }
    ensure!(plain.registry().find("plinth:test/clock").is_none());
    // Registered and granted: it runs, and its expiry checks pass, which
    // they do only when the call's clock moves.
    let with_test = Runtime::with_options(
        Db::open(dir.path().join("db"))?,
        RuntimeOptions::default().capability(plinth_testing::TEST_CAPABILITY),
    )?;
    let checks =
        plinth_testing::DbTestPlugin::new(with_test.load_file(DB_TEST.wasm.as_ref(), manifest)?)?
            .run()?;
    ensure!(checks.iter().all(|c| c.passed));
    ensure!(
        checks
            .iter()
            .any(|c| c.name == "hides a session once it has expired")
    );
    Ok(())
}

/// Two capabilities cannot both claim one interface: the second would
/// silently shadow (or be shadowed by) the first.
#[test]
fn a_capability_that_claims_a_registered_interface_is_refused() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let again = plinth_host::capabilities::users::CAPABILITY;
    match Runtime::with_options(
        Db::open(dir.path().join("db"))?,
        RuntimeOptions::default().capability(again),
    ) {
        Err(e @ Error::Capability(_)) => {
            ensure!(e.to_string().contains("plinth:database/users"), "{e}")
        }
        other => anyhow::bail!("expected a capability error, got {other:?}"),
    }
    Ok(())
}
