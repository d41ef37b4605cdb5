//! Profiling: guest functions named for `perf`.

use anyhow::{Result, ensure};
use plinth_guests::BENCH;
use plinth_host::{Manifest, Runtime, RuntimeOptions};
use plinth_store::Db;

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
