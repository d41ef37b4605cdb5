//! Plugins in Python and JavaScript beside the Rust one, measured in one
//! run: the same `greet` (written by `plinth new` in each language) built
//! with each language's tool, then
//!
//! * a refused load (the manifest grants nothing) of the Python component,
//! * a cold compile of it against a load from the compile cache,
//! * a call on a reused Python / JavaScript instance against the Rust
//!   plugin's call on a fresh instance,
//! * the wall time of a cached `plinth call` of the Python plugin.
//!
//! `cargo bench -p plinth-cli --bench languages`. Needs the tools the tests
//! install (componentize-py, componentize-qjs); says so and stops without.

#[path = "../tests/tools/mod.rs"]
mod tools;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use plinth_host::{Manifest, Plugin, Runtime, RuntimeOptions, Val};
use plinth_store::Db;

const PLINTH: &str = env!("CARGO_BIN_EXE_plinth");

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn spread(v: &[Duration]) -> f64 {
    let mut v = v.to_vec();
    v.sort();
    let (lo, hi) = (v[v.len() / 10], v[v.len() - 1 - v.len() / 10]);
    (hi.as_secs_f64() - lo.as_secs_f64()) / median(v).as_secs_f64().max(1e-12) * 100.0
}

/// `plinth new hello-LANG --lang LANG` in `dir`, built by its README's
/// command; returns the `.wasm` and its manifest's path.
fn build(dir: &Path, lang: &str, tool: Option<&Path>) -> Result<(PathBuf, PathBuf)> {
    let built = tools::build_new_plugin(dir, lang, tool)?;
    Ok((built.wasm(), built.manifest()))
}

fn runtime(dir: &Path, cache: Option<PathBuf>) -> Result<Runtime> {
    Ok(Runtime::with_options(
        Db::open(dir.join("bench.db"))?,
        RuntimeOptions {
            cache_dir: cache,
            ..RuntimeOptions::default()
        },
    )?)
}

fn per_call(plugin: &Plugin, n: usize) -> Result<Vec<Duration>> {
    let arg = [Val::String("ada@example.com".into())];
    for _ in 0..20 {
        plugin.call_dynamic("greet", &arg)?;
    }
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let out = plugin.call_dynamic("greet", &arg)?;
        times.push(t.elapsed());
        ensure!(
            matches!(&out[..], [Val::String(s)] if s == "hello, ada!"),
            "{out:?}"
        );
    }
    Ok(times)
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

fn main() -> Result<()> {
    if std::env::args().any(|a| a == "--list") {
        return Ok(());
    }
    let (Some(py_bin), Some(qjs_bin)) = (tools::componentize_py()?, tools::componentize_qjs()?)
    else {
        eprintln!("componentize-py or componentize-qjs missing: nothing measured");
        return Ok(());
    };
    let dir = tempfile::tempdir()?;
    let (py, py_manifest) = build(dir.path(), "python", Some(&py_bin))?;
    let (js, js_manifest) = build(dir.path(), "js", Some(&qjs_bin))?;
    let (rs, rs_manifest) = build(dir.path(), "rust", None)?;
    println!(
        "components: python {} KiB, js {} KiB, rust {} KiB",
        std::fs::metadata(&py)?.len() >> 10,
        std::fs::metadata(&js)?.len() >> 10,
        std::fs::metadata(&rs)?.len() >> 10
    );

    // A user to greet.
    let rt = runtime(dir.path(), None)?;
    let auth = plinth_auth::AuthPlugin::new(rt.load_file(
        plinth_guests::AUTH.wasm.as_ref(),
        Manifest::from_file(plinth_guests::AUTH.manifest.as_ref())?,
    )?)?;
    auth.sign_up("ada", "ada@example.com", "correct horse battery staple")?
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;

    // 1. A refused load: decided from the import section, before any compile.
    let refused: Vec<Duration> = (0..5)
        .map(|_| {
            let t = Instant::now();
            let r = rt.load_file(&py, Manifest::new("hello-python"));
            let e = t.elapsed();
            matches!(r, Err(plinth_host::Error::NotGranted { .. }))
                .then_some(e)
                .context("expected NotGranted")
        })
        .collect::<Result<_>>()?;
    println!(
        "\nrefused load of the Python component: {} (median of 5)",
        ms(median(refused))
    );

    // 2. Cold compile against a cached load.
    let py_m = Manifest::from_file(&py_manifest)?;
    let t = Instant::now();
    rt.load_file(&py, py_m.clone())?;
    let cold = t.elapsed();
    let cache = dir.path().join("cache");
    let cached_rt = runtime(dir.path(), Some(cache))?;
    cached_rt.load_file(&py, py_m.clone())?;
    // Past the window in which file identities are not yet recorded.
    std::thread::sleep(Duration::from_millis(2100));
    cached_rt.load_file(&py, py_m.clone())?;
    let cached: Vec<Duration> = (0..15)
        .map(|_| {
            let t = Instant::now();
            let p = cached_rt.load_file(&py, py_m.clone())?;
            let e = t.elapsed();
            ensure!(p.loaded_from_cache());
            Ok(e)
        })
        .collect::<Result<_>>()?;
    let cached_m = median(cached.clone());
    println!(
        "python load: cold compile {}, cached {} (spread {:.0}%): {:.0}x",
        ms(cold),
        ms(cached_m),
        spread(&cached),
        cold.as_secs_f64() / cached_m.as_secs_f64()
    );

    // 3. Calls: reused Python / JS instances against fresh Rust instances.
    let py_p = cached_rt.load_file(&py, py_m)?;
    let js_p = cached_rt.load_file(&js, Manifest::from_file(&js_manifest)?)?;
    let rs_p = cached_rt.load_file(&rs, Manifest::from_file(&rs_manifest)?)?;
    ensure!(py_p.reuse().is_some() && js_p.reuse().is_some() && rs_p.reuse().is_none());
    let n = 2000;
    let (mut py_t, mut js_t, mut rs_t) = (Vec::new(), Vec::new(), Vec::new());
    // Interleaved rounds, so that drift on the machine hits all three.
    for _ in 0..5 {
        py_t.extend(per_call(&py_p, n / 5)?);
        js_t.extend(per_call(&js_p, n / 5)?);
        rs_t.extend(per_call(&rs_p, n / 5)?);
    }
    let (py_c, js_c, rs_c) = (
        median(py_t.clone()),
        median(js_t.clone()),
        median(rs_t.clone()),
    );
    println!("\ngreet(\"ada@example.com\"), median of {n} calls (spread p10–p90):");
    println!(
        "  rust, fresh instance:     {} ({:.0}%)",
        us(rs_c),
        spread(&rs_t)
    );
    println!(
        "  python, reused instance:  {} ({:.0}%)  {:.2}x rust",
        us(py_c),
        spread(&py_t),
        py_c.as_secs_f64() / rs_c.as_secs_f64()
    );
    println!(
        "  js, reused instance:      {} ({:.0}%)  {:.2}x rust",
        us(js_c),
        spread(&js_t),
        js_c.as_secs_f64() / rs_c.as_secs_f64()
    );
    println!(
        "  (instances made: python {}, js {}, rust {})",
        py_p.instantiations(),
        js_p.instantiations(),
        rs_p.instantiations()
    );

    // 4. A cached `plinth call` of the Python plugin, wall time.
    let data = dir.path().join("cli-data");
    let call = || -> Result<Duration> {
        let t = Instant::now();
        let out = std::process::Command::new(PLINTH)
            .env("PLINTH_DATA_DIR", &data)
            .args(["call", "--approve"])
            .arg(&py)
            .arg(r#"greet("ada@example.com")"#)
            .output()?;
        let e = t.elapsed();
        ensure!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(e)
    };
    call()?;
    std::thread::sleep(Duration::from_millis(2100));
    call()?;
    let walls: Vec<Duration> = (0..15).map(|_| call()).collect::<Result<_>>()?;
    println!(
        "\ncached `plinth call` of the Python plugin: {} wall (median of 15, spread {:.0}%)",
        ms(median(walls.clone())),
        spread(&walls)
    );
    Ok(())
}
