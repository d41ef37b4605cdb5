//! The compile cache: an unchanged plugin is not compiled twice, an entry
//! that is corrupt, moved or changed is not trusted, a rebuilt component
//! replaces its entry, and the cache directory must be this user's.

use anyhow::{Result, ensure};
use plinth_guests::{BENCH, DB_TEST, TEMPLATE};
use plinth_host::{Access, Error, Manifest, Runtime, RuntimeOptions, Val};
use plinth_store::Db;

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
