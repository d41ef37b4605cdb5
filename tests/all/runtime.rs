//! The runtime: grants, malformed components, the compile cache,
//! concurrency, reused instances, and guest output in `tracing`.

use std::sync::{Arc, Mutex};

use anyhow::{Result, ensure};
use plinth_guests::{BENCH, DB_TEST, MISBEHAVE, TEMPLATE};
use plinth_host::capabilities::users::USERS;
use plinth_host::{Access, Error, Manifest, Reuse, Runtime, RuntimeOptions, Val};
use plinth_store::Db;

use crate::util::Fixture;

mod grants {
    use super::*;

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

    /// `plinth:test/clock` moves the clock of the whole runtime: a manifest
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
        let checks = plinth_testing::DbTestPlugin::new(
            with_test.load_file(DB_TEST.wasm.as_ref(), manifest)?,
        )?
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
}

mod components {
    use super::*;

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
}

mod cache {
    use super::*;

    fn runtime(dir: &std::path::Path) -> Result<Runtime> {
        let db = Db::open(dir.join("db"))?;
        Ok(Runtime::with_options(
            db,
            RuntimeOptions {
                cache_dir: Some(dir.join("cache")),
                ..RuntimeOptions::default()
            }
            .capability(plinth_testing::TEST_CAPABILITY),
        )?)
    }

    /// The compiled code files (each entry's `.cwasm`; its `.meta` is
    /// beside it).
    fn entries(dir: &std::path::Path) -> Result<Vec<std::path::PathBuf>> {
        let mut v: Vec<_> = std::fs::read_dir(dir.join("cache"))?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
            .collect();
        v.sort();
        Ok(v)
    }

    /// Past the window in which a file's change time could still move
    /// within one timestamp tick: identities are recorded after it.
    fn settle() {
        std::thread::sleep(std::time::Duration::from_millis(2100));
    }

    #[test]
    fn a_second_load_of_an_unchanged_plugin_skips_compilation() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let rt = runtime(dir.path())?;
        let manifest = Manifest::from_file(DB_TEST.manifest.as_ref())?
            .grant(plinth_testing::TEST_CLOCK, Access::Write);
        let first = rt.load_file(DB_TEST.wasm.as_ref(), manifest.clone())?;
        ensure!(!first.loaded_from_cache());
        // A new runtime (a new process, in effect) finds the entry.
        let rt2 = runtime(dir.path())?;
        let second = rt2.load_file(DB_TEST.wasm.as_ref(), manifest)?;
        ensure!(second.loaded_from_cache());
        let checks = plinth_testing::DbTestPlugin::new(second)?.run()?;
        ensure!(checks.iter().all(|c| c.passed));
        // A different component gets its own entry.
        rt2.load_file(
            BENCH.wasm.as_ref(),
            Manifest::from_file(BENCH.manifest.as_ref())?,
        )?;
        ensure!(entries(dir.path())?.len() == 2);
        Ok(())
    }

    #[test]
    fn a_corrupt_cache_entry_is_recompiled_not_trusted() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let rt = runtime(dir.path())?;
        let manifest = Manifest::from_file(BENCH.manifest.as_ref())?;
        rt.load_file(BENCH.wasm.as_ref(), manifest.clone())?;
        let entry = entries(dir.path())?
            .pop()
            .ok_or_else(|| anyhow::anyhow!("no entry"))?;
        let mut bytes = std::fs::read(&entry)?;
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xff;
        std::fs::write(&entry, &bytes)?;
        let again = rt.load_file(BENCH.wasm.as_ref(), manifest.clone())?;
        ensure!(!again.loaded_from_cache(), "a corrupt entry was used");
        plinth_testing::BenchPlugin::new(again)?.noop()?;
        // It was rewritten, sound, and is used next time.
        ensure!(
            rt.load_file(BENCH.wasm.as_ref(), manifest.clone())?
                .loaded_from_cache()
        );
        // A truncated entry too.
        std::fs::write(&entry, b"short")?;
        ensure!(
            !rt.load_file(BENCH.wasm.as_ref(), manifest)?
                .loaded_from_cache()
        );
        Ok(())
    }

    /// One plugin's entry copied over another's file name is sound by its
    /// own checksum, but it names the other component's key: it is refused,
    /// and the second plugin runs its own code under its own grants.
    #[test]
    fn a_cache_entry_moved_to_another_components_name_is_refused() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let rt = runtime(dir.path())?;
        let bench = Manifest::from_file(BENCH.manifest.as_ref())?;
        let template = Manifest::from_file(TEMPLATE.manifest.as_ref())?;
        rt.load_file(BENCH.wasm.as_ref(), bench)?;
        let bench_entry = entries(dir.path())?
            .pop()
            .ok_or_else(|| anyhow::anyhow!("no entry"))?;
        rt.load_file(TEMPLATE.wasm.as_ref(), template.clone())?;
        let template_entry = entries(dir.path())?
            .into_iter()
            .find(|e| *e != bench_entry)
            .ok_or_else(|| anyhow::anyhow!("no second entry"))?;
        std::fs::copy(&bench_entry, &template_entry)?;
        std::fs::copy(
            bench_entry.with_extension("meta"),
            template_entry.with_extension("meta"),
        )?;
        let again = rt.load_file(TEMPLATE.wasm.as_ref(), template)?;
        ensure!(!again.loaded_from_cache(), "the swapped entry was used");
        ensure!(
            again.functions().iter().any(|f| f.name == "greet"),
            "it is not the template's code: {:?}",
            again.functions()
        );
        let out = again.call_dynamic("greet", &[Val::String("x@example.com".into())])?;
        ensure!(
            matches!(&out[..], [Val::String(s)] if s.contains("nobody is registered")),
            "{out:?}"
        );
        Ok(())
    }

    /// Once an entry's identity is recorded its checksum is not recomputed;
    /// a byte changed after that (which changes the file's change time) is
    /// still caught.
    #[test]
    fn an_entry_changed_after_it_was_verified_is_not_trusted() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let rt = runtime(dir.path())?;
        let manifest = Manifest::from_file(BENCH.manifest.as_ref())?;
        rt.load_file(BENCH.wasm.as_ref(), manifest.clone())?;
        settle();
        // Verified by its checksum, and its identity recorded.
        ensure!(
            rt.load_file(BENCH.wasm.as_ref(), manifest.clone())?
                .loaded_from_cache()
        );
        ensure!(
            rt.load_file(BENCH.wasm.as_ref(), manifest.clone())?
                .loaded_from_cache()
        );
        let entry = entries(dir.path())?
            .pop()
            .ok_or_else(|| anyhow::anyhow!("no entry"))?;
        let mut bytes = std::fs::read(&entry)?;
        let at = bytes.len() / 3;
        bytes[at] ^= 0x40;
        // In place: same inode, same size.
        std::fs::OpenOptions::new()
            .write(true)
            .open(&entry)
            .and_then(|mut f| std::io::Write::write_all(&mut f, &bytes))?;
        let again = rt.load_file(BENCH.wasm.as_ref(), manifest)?;
        ensure!(!again.loaded_from_cache(), "a changed entry was used");
        plinth_testing::BenchPlugin::new(again)?.noop()?;
        Ok(())
    }

    /// The key of a component file is remembered by the file's identity;
    /// the file rewritten in place (a rebuild) is hashed again and runs its
    /// new code, and the old build's entry is deleted.
    #[test]
    fn a_component_rebuilt_in_place_runs_its_new_code_and_replaces_its_entry() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let rt = runtime(dir.path())?;
        let path = dir.path().join("plugin.wasm");
        std::fs::copy(TEMPLATE.wasm, &path)?;
        let manifest = Manifest::from_file(BENCH.manifest.as_ref())?;
        settle();
        ensure!(!rt.load_file(&path, manifest.clone())?.loaded_from_cache());
        let srcs = || -> Result<usize> {
            Ok(std::fs::read_dir(dir.path().join("cache"))?
                .flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "src"))
                .count())
        };
        ensure!(srcs()? == 1, "the file's key was not recorded");
        let cached = rt.load_file(&path, manifest.clone())?;
        ensure!(cached.loaded_from_cache());
        ensure!(cached.functions().iter().any(|f| f.name == "greet"));
        // The same file, other bytes.
        std::fs::write(&path, std::fs::read(BENCH.wasm)?)?;
        let rebuilt = rt.load_file(&path, manifest.clone())?;
        ensure!(!rebuilt.loaded_from_cache(), "served the old build's code");
        ensure!(
            rebuilt.functions().iter().any(|f| f.name == "noop"),
            "{:?}",
            rebuilt.functions()
        );
        ensure!(
            entries(dir.path())?.len() == 1,
            "the old build's entry is left"
        );
        let listed = plinth_host::cache::list(&dir.path().join("cache"))?;
        ensure!(
            matches!(&listed[..], [e] if e.well_formed && e.source.as_deref() == Some(&*std::fs::canonicalize(&path)?)),
            "{listed:?}"
        );
        Ok(())
    }

    /// Cached code runs as native code: a cache directory other users can
    /// write to is refused; a missing one is created for this user only.
    #[cfg(unix)]
    #[test]
    fn a_cache_directory_others_can_write_is_refused() -> Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir()?;
        let shared = dir.path().join("shared");
        std::fs::create_dir(&shared)?;
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777))?;
        let options = RuntimeOptions {
            cache_dir: Some(shared.clone()),
            ..RuntimeOptions::default()
        };
        match Runtime::with_options(Db::open(dir.path().join("db"))?, options) {
            Err(e @ Error::CacheDir { .. }) => {
                ensure!(e.to_string().contains("other users can write"), "{e}")
            }
            other => anyhow::bail!("expected CacheDir, got {other:?}"),
        }
        let fresh = dir.path().join("fresh/cache");
        let options = RuntimeOptions {
            cache_dir: Some(fresh.clone()),
            ..RuntimeOptions::default()
        };
        let rt = Runtime::with_options(Db::open(dir.path().join("db"))?, options)?;
        ensure!(!fresh.exists(), "created before anything was cached");
        rt.load_file(
            BENCH.wasm.as_ref(),
            Manifest::from_file(BENCH.manifest.as_ref())?,
        )?;
        let mode = std::fs::metadata(&fresh)?.permissions().mode() & 0o777;
        ensure!(mode == 0o700, "created with mode {mode:o}");
        Ok(())
    }
}

mod concurrency {
    use super::*;

    #[test]
    fn eight_threads_of_mixed_calls_account_for_every_row() -> Result<()> {
        eight_threads_of_mixed_calls(None)
    }

    /// The same with the writer's instances reused: every tenth call traps,
    /// so instances are dropped and made again under load.
    #[test]
    fn eight_threads_of_mixed_calls_on_reused_instances_account_for_every_row() -> Result<()> {
        eight_threads_of_mixed_calls(Some(Reuse {
            idle: 4,
            ..Reuse::default()
        }))
    }

    fn eight_threads_of_mixed_calls(reuse: Option<Reuse>) -> Result<()> {
        let f = Fixture::new()?;
        // The time limit is wall-clock time, including waits for the write
        // lock; under this load the shipped 300 ms is too tight.
        let mut manifest = Manifest::from_file(MISBEHAVE.manifest.as_ref())?.reuse(reuse);
        manifest.limits.time = std::time::Duration::from_secs(20);
        let writer = f.load_with(MISBEHAVE, manifest)?;
        let reader = plinth_testing::BenchPlugin::new(f.load(BENCH)?)?;
        let db_test = plinth_testing::DbTestPlugin::new(f.load(DB_TEST)?)?;
        let handles: Vec<_> = (0..8)
            .map(|t| {
                let (writer, reader, db_test) = (writer.clone(), reader.clone(), db_test.clone());
                std::thread::spawn(move || -> Result<(u32, u32)> {
                    let (mut kept, mut trapped) = (0, 0);
                    for i in 0..200 {
                        let name = format!("t{t}-{i}");
                        match i % 10 {
                            0 => {
                                ensure!(write_then(&writer, &name, "trap").is_err());
                                trapped += 1;
                            }
                            1..=3 => {
                                let out = write_then(&writer, &name, "return-normally")?;
                                ensure!(matches!(&out[..], [Val::Result(Ok(_))]), "{out:?}");
                                kept += 1;
                            }
                            4 if i % 50 == 4 => {
                                let checks = db_test.run()?;
                                let failed: Vec<_> = checks.iter().filter(|c| !c.passed).collect();
                                ensure!(failed.is_empty(), "db-test failed under load: {failed:?}");
                            }
                            _ => {
                                let found = reader.lookup_by_email(
                                    &format!("t{t}-{}@example.com", i / 10 * 10 + 1),
                                    5,
                                )?;
                                ensure!(found == Ok(5), "{found:?}");
                            }
                        }
                    }
                    Ok((kept, trapped))
                })
            })
            .collect();
        let mut kept = 0;
        for h in handles {
            let (k, _) = h
                .join()
                .map_err(|_| anyhow::anyhow!("a worker panicked"))??;
            kept += k;
        }
        let ours = f.sql_i64("SELECT COUNT(*) FROM users WHERE name LIKE 't_-%'", &[])?;
        ensure!(
            ours == i64::from(kept),
            "{ours} rows for {kept} kept writes"
        );
        let trapped = f.sql_i64("SELECT COUNT(*) FROM users WHERE name LIKE 't_-%0'", &[])?;
        ensure!(trapped == 0, "trapped writes were kept");
        if f.pg.is_none() {
            let check = f.sql("PRAGMA integrity_check", &[])?;
            ensure!(check == "ok", "{check}");
        }
        if let Some(reuse) = reuse {
            ensure!(writer.idle_instances() <= reuse.idle);
            // 1600 calls, 160 of them traps: far fewer instances than calls.
            ensure!(
                writer.instantiations() < 800,
                "{} instances for 1600 calls",
                writer.instantiations()
            );
        }
        Ok(())
    }

    fn write_then(
        p: &plinth_host::Plugin,
        name: &str,
        what: &str,
    ) -> plinth_host::Result<Vec<Val>> {
        p.call_dynamic(
            "write-then",
            &[Val::String(name.into()), Val::Variant(what.into(), None)],
        )
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tokio_tasks_share_one_runtime() -> Result<()> {
        let f = Fixture::new()?;
        // Sixteen writers queue for the one write lock, each commit synced
        // to disk: misbehave's 300 ms would have some answer `busy` on a
        // loaded machine, which is right but not what this test is about.
        let manifest =
            Manifest::from_file(MISBEHAVE.manifest.as_ref())?.limits(plinth_host::Limits {
                time: std::time::Duration::from_secs(20),
                ..plinth_host::Limits::default()
            });
        let writer = f.load_with(MISBEHAVE, manifest)?;
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let w = writer.clone();
                tokio::spawn(async move {
                    w.call_dynamic_async(
                        "write-then",
                        vec![
                            Val::String(format!("task{i}")),
                            Val::Variant("return-normally".into(), None),
                        ],
                    )
                    .await
                })
            })
            .collect();
        for t in tasks {
            let out = t.await??;
            ensure!(
                matches!(&out[..], [Val::Result(Ok(_))]),
                "a task's write was refused: {out:?}"
            );
        }
        ensure!(f.rows("users")? == 16);
        Ok(())
    }
}

mod reuse {
    //! A manifest that opts into reuse: calls in turn share a live instance,
    //! each still its own unit of work; an instance that failed, grew past
    //! its bound or served its share is dropped, never reused.
    use super::*;
    use crate::misbehave::{case, write_then};
    use crate::util::{ok, refused};
    use plinth_auth::AuthError;

    const PW: &str = "correct horse battery staple";

    fn misbehave(f: &Fixture, reuse: Reuse) -> Result<plinth_host::Plugin> {
        let manifest = Manifest::from_file(MISBEHAVE.manifest.as_ref())?.reuse(Some(reuse));
        f.load_with(MISBEHAVE, manifest)
    }

    #[test]
    fn auths_manifest_reuses_instances_and_bounds_them() -> Result<()> {
        let shipped = Manifest::from_file(plinth_guests::AUTH.manifest.as_ref())?;
        ensure!(
            shipped.reuse
                == Some(Reuse {
                    max_calls: 1000,
                    max_memory_bytes: 1 << 20,
                    idle: 8,
                }),
            "{:?}",
            shipped.reuse
        );
        // The other shipped plugins take a fresh instance for every call.
        for guest in [DB_TEST, BENCH, MISBEHAVE] {
            ensure!(
                Manifest::from_file(guest.manifest.as_ref())?
                    .reuse
                    .is_none()
            );
        }
        let defaults = Manifest::from_toml("name = \"x\"\n[reuse]\n", "x.toml")?;
        ensure!(defaults.reuse == Some(Reuse::default()));
        Ok(())
    }

    #[test]
    fn calls_in_turn_share_one_instance_each_its_own_unit_of_work() -> Result<()> {
        let f = Fixture::new()?;
        let auth = f.auth()?;
        ok(auth.sign_up("ada", "ada@example.com", PW))?;
        let token = ok(auth.sign_in("ada@example.com", PW))?.token;
        let plugin = auth.plugin();
        let made = plugin.instantiations();
        for _ in 0..5 {
            ensure!(ok(auth.validate_session(&token))?.user.name == "ada");
        }
        ensure!(
            plugin.instantiations() == made + 1,
            "one instance for five calls"
        );
        ensure!(plugin.idle_instances() == 1);
        // A write in one call is committed when it returns, and the next call
        // on the same instance reads it.
        let second = ok(auth.sign_in("ada@example.com", PW))?.token;
        ok(auth.sign_out(&token))?;
        ensure!(refused(auth.validate_session(&token))? == AuthError::SessionExpired);
        ensure!(ok(auth.validate_session(&second))?.user.name == "ada");
        ensure!(f.rows("sessions")? == 1);
        Ok(())
    }

    #[test]
    fn an_instance_that_ran_argon2_is_dropped_after_its_call() -> Result<()> {
        let f = Fixture::new()?;
        let auth = f.auth()?;
        let plugin = auth.plugin();
        ok(auth.sign_up("ada", "ada@example.com", PW))?;
        // Argon2 grew the instance's memory by 19 MiB, past auth's 1 MiB.
        ensure!(plugin.idle_instances() == 0);
        let token = ok(auth.sign_in("ada@example.com", PW))?.token;
        ensure!(plugin.idle_instances() == 0);
        ok(auth.validate_session(&token))?;
        ensure!(plugin.idle_instances() == 1);
        let made = plugin.instantiations();
        // The sign-in takes the idle instance, runs Argon2 in it, and drops it.
        ok(auth.sign_in("ada@example.com", PW))?;
        ensure!(plugin.instantiations() == made);
        ensure!(plugin.idle_instances() == 0);
        ok(auth.validate_session(&token))?;
        ensure!(plugin.instantiations() == made + 1);
        Ok(())
    }

    #[test]
    fn a_call_that_fails_drops_its_instance_and_keeps_nothing_it_wrote() -> Result<()> {
        let f = Fixture::new()?;
        let p = misbehave(&f, Reuse::default())?;
        let exists = |name: &str| -> Result<bool> {
            Ok(f.sql_i64("SELECT COUNT(*) FROM users WHERE name = ?1", &[name])? == 1)
        };
        write_then(&p, "kept", case("return-normally"))?;
        ensure!(p.instantiations() == 1 && p.idle_instances() == 1);
        let failures = [
            ("trapped", case("trap")),
            ("looped", case("loop-forever")),
            (
                "grown",
                Val::Variant("grow".into(), Some(Box::new(Val::U32(64)))),
            ),
        ];
        for (i, (name, behaviour)) in failures.into_iter().enumerate() {
            match write_then(&p, name, behaviour) {
                Err(Error::Trap { .. } | Error::TimedOut { .. } | Error::MemoryLimit { .. }) => {}
                other => anyhow::bail!("{name}: expected a typed failure, got {other:?}"),
            }
            ensure!(!exists(name)?, "{name}: the failed call's write was kept");
            ensure!(
                p.idle_instances() == 0,
                "{name}: the failed instance was kept"
            );
            // The first failure ran on the idle instance; each later one on a
            // fresh one, because the instance before it was dropped.
            ensure!(p.instantiations() == 1 + i as u64, "{name}");
        }
        write_then(&p, "after", case("return-normally"))?;
        ensure!(exists("kept")? && exists("after")?);
        ensure!(p.instantiations() == 4 && p.idle_instances() == 1);
        Ok(())
    }

    #[test]
    fn an_instance_serves_at_most_its_share_of_calls() -> Result<()> {
        let f = Fixture::new()?;
        let p = misbehave(
            &f,
            Reuse {
                max_calls: 3,
                ..Reuse::default()
            },
        )?;
        for i in 0..7 {
            write_then(&p, &format!("u{i}"), case("return-normally"))?;
        }
        // Calls 1-3, 4-6 and 7 each on their own instance.
        ensure!(p.instantiations() == 3, "{}", p.instantiations());
        ensure!(f.rows("users")? == 7);
        Ok(())
    }

    #[test]
    fn no_more_than_idle_instances_wait_between_calls() -> Result<()> {
        let f = Fixture::new()?;
        let manifest =
            Manifest::from_file(plinth_guests::AUTH.manifest.as_ref())?.reuse(Some(Reuse {
                idle: 2,
                ..Reuse::default()
            }));
        let auth = plinth_auth::AuthPlugin::new(f.load_with(plinth_guests::AUTH, manifest)?)?;
        ok(auth.sign_up("ada", "ada@example.com", PW))?;
        let token = ok(auth.sign_in("ada@example.com", PW))?.token;
        let handles: Vec<_> = (0..6)
            .map(|_| {
                let (auth, token) = (auth.clone(), token.clone());
                std::thread::spawn(move || -> Result<()> {
                    for _ in 0..100 {
                        ensure!(ok(auth.validate_session(&token))?.user.name == "ada");
                    }
                    Ok(())
                })
            })
            .collect();
        for h in handles {
            h.join()
                .map_err(|_| anyhow::anyhow!("a worker panicked"))??;
        }
        let plugin = auth.plugin();
        ensure!(plugin.idle_instances() <= 2, "{}", plugin.idle_instances());
        ensure!(plugin.instantiations() < 600, "{}", plugin.instantiations());
        Ok(())
    }
}

mod observability {
    use super::*;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| std::io::Error::other("poisoned"))?
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Runs `f` with a subscriber at `level` that writes into a buffer;
    /// returns what `f` returned and what was logged.
    fn capture<R>(level: tracing::Level, f: impl FnOnce() -> R) -> Result<(R, String)> {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(level)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let out = tracing::subscriber::with_default(subscriber, f);
        let log = captured
            .0
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?
            .clone();
        Ok((out, String::from_utf8(log)?))
    }

    /// The log of one call in which misbehave prints `text`.
    fn printed(p: &plinth_host::Plugin, text: &str) -> Result<String> {
        let (result, log) = capture(tracing::Level::DEBUG, || {
            let print = Val::Variant("print".into(), Some(Box::new(Val::String(text.into()))));
            p.call_dynamic("write-then", &[Val::String(String::new()), print])
        })?;
        result?;
        Ok(log)
    }

    #[test]
    fn guest_output_and_calls_show_up_in_tracing_under_the_plugin_name() -> Result<()> {
        let f = Fixture::new()?;
        let p = f.load(MISBEHAVE)?;
        let log = printed(&p, "hello from the guest")?;
        let lines: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("hello from the guest"))
            .collect();
        ensure!(lines.len() == 2, "{log}");
        ensure!(
            lines.iter().all(|l| l.contains("plugin_call")
                && l.contains("plugin=misbehave")
                && l.contains("function=\"write-then\"")),
            "{log}"
        );
        ensure!(
            lines.iter().any(|l| l.contains("stream=\"stdout\""))
                && lines.iter().any(|l| l.contains("stream=\"stderr\"")),
            "{log}"
        );
        ensure!(log.contains("micros="), "no call duration: {log}");
        // What a guest prints cannot rewrite the log or the terminal it is
        // read on: control characters arrive escaped.
        let log = printed(&p, "\x1b[2Jcleared\rover\x07")?;
        ensure!(
            !log.chars().any(|c| c.is_control() && c != '\n'),
            "raw control characters in the log: {log:?}"
        );
        ensure!(log.contains("\\u{1b}[2Jcleared\\u{d}over\\u{7}"), "{log}");
        Ok(())
    }

    #[test]
    fn host_calls_are_traced_but_secrets_never_reach_the_log() -> Result<()> {
        let f = Fixture::new()?;
        let auth = f.auth()?;
        let password = "correct horse battery staple";
        let (session, log) = capture(tracing::Level::TRACE, || -> Result<_> {
            crate::util::ok(auth.sign_up("ada", "ada@example.com", password))?;
            crate::util::ok(auth.request_password_reset("ada@example.com"))?;
            crate::util::ok(auth.sign_in("ada@example.com", password))
        })?;
        let session = session?;
        // Each database call has its own span, named after the interface and function.
        ensure!(
            log.contains("get-user-by-email") && log.contains("create-session"),
            "{log}"
        );
        let hash = f.sql("SELECT password_hash FROM users", &[])?;
        let reset_token = f.mailed_token("ada@example.com")?;
        for secret in [
            password,
            hash.as_str(),
            reset_token.as_str(),
            session.token.as_str(),
        ] {
            ensure!(!log.contains(secret), "a secret reached the log: {secret}");
        }
        // Nor may what a token is made of: the plugin draws each token's
        // 20 bytes from wasi:random (as 64-bit numbers). Rebuild every token
        // the logged numbers and byte lists could have made, and look for
        // ours among them.
        let tokens = [reset_token.as_str(), session.token.as_str()];
        for candidate in token_candidates(&log) {
            ensure!(
                !tokens.contains(&candidate.as_str()),
                "a token can be rebuilt from the log: {candidate}"
            );
        }
        if let Some(line) = log.lines().find(|l| l.contains("get-random")) {
            anyhow::bail!("randomness is traced: {line}");
        }
        Ok(())
    }

    /// Every token (base32 of 20 bytes) that the numbers in `log` could have
    /// made: each run of three consecutive 64-bit values, and each logged
    /// byte list, taken as the random bytes of a token.
    fn token_candidates(log: &str) -> Vec<String> {
        // Traced results read `result=Ok(14856407602807488810)`.
        let numbers: Vec<u64> = log
            .split("result=Ok(")
            .skip(1)
            .filter_map(|rest| {
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                digits.parse().ok()
            })
            .collect();
        let mut out = Vec::new();
        for run in numbers.windows(3) {
            let bytes: Vec<u8> = run.iter().flat_map(|n| n.to_le_bytes()).collect();
            out.push(base32(&bytes[..20]));
            let bytes: Vec<u8> = run.iter().flat_map(|n| n.to_be_bytes()).collect();
            out.push(base32(&bytes[..20]));
        }
        for list in log.split('[').skip(1).filter_map(|l| l.split_once(']')) {
            let bytes: Vec<u8> = list
                .0
                .split(',')
                .filter_map(|b| b.trim().parse().ok())
                .collect();
            if bytes.len() >= 20 {
                out.push(base32(&bytes[..20]));
            }
        }
        out
    }

    /// RFC 4648 base32, lowercase, as the auth plugin writes tokens.
    fn base32(bytes: &[u8]) -> String {
        const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
        let mut out = String::new();
        for chunk in bytes.chunks(5) {
            let n = chunk.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
            for i in (0..8).rev() {
                out.push(char::from(ALPHABET[((n >> (i * 5)) & 31) as usize]));
            }
        }
        out
    }
}

#[cfg(target_os = "linux")]
mod profiling {
    use super::*;

    /// With `perf_map`, wasmtime names every compiled guest function in
    /// `/tmp/perf-<pid>.map` (where `perf report` looks), by the names in the
    /// guest's name section, which the guests' build keeps.
    #[test]
    fn perf_map_names_the_guests_functions_for_perf() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let rt = Runtime::with_options(
            Db::open(dir.path().join("db"))?,
            RuntimeOptions {
                perf_map: true,
                ..RuntimeOptions::default()
            },
        )?;
        let manifest = Manifest::from_file(BENCH.manifest.as_ref())?;
        let bench = plinth_testing::BenchPlugin::new(rt.load_file(BENCH.wasm.as_ref(), manifest)?)?;
        bench.noop()?;
        let path = format!("/tmp/perf-{}.map", std::process::id());
        let map = std::fs::read_to_string(&path)?;
        let _ = std::fs::remove_file(&path);
        // An export, and a function inside the guest known only by the name
        // section (the guest runtime's large-block allocator).
        for name in ["lookup-by-email", "alloc_large"] {
            ensure!(
                map.lines().any(|l| l.contains(name)),
                "`{name}` is not named in {path}:\n{map}"
            );
        }
        Ok(())
    }
}

/// The import check reads a component's import section before compiling
/// it, and says what to do in one line.
mod imports {
    use super::*;

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
}
