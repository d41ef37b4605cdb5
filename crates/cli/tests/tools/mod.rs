//! The plugin toolchains of other languages, installed once into the build's
//! target folder (`target/plugin-tools/`) and kept between runs:
//! componentize-py from PyPI in a virtual environment, componentize-qjs from
//! npm. Where one cannot be installed the tests that need it say so loudly
//! and skip; under `CI=true` they fail instead.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use anyhow::{Context, Result, bail};

/// The versions the tests build with: the ones `plinth new` writes.
pub const COMPONENTIZE_PY: &str = "0.25.0";
/// See [`COMPONENTIZE_PY`].
pub const COMPONENTIZE_QJS: &str = "0.4.5";
/// ComponentizeJS (SpiderMonkey), for the test that its default build's
/// `wasi:http` import is refused with the fix.
pub const COMPONENTIZE_JS: &str = "0.23.0";

/// `target/`, found from the `plinth` binary the tests run.
pub fn target_dir() -> PathBuf {
    let exe = assert_cmd::cargo::cargo_bin("plinth");
    exe.parent()
        .and_then(Path::parent)
        .map_or_else(|| PathBuf::from("target"), Path::to_path_buf)
}

fn tools_dir() -> PathBuf {
    target_dir().join("plugin-tools")
}

/// A tool that could not be had: an error under CI, otherwise a loud note
/// and `None` (the caller skips).
fn unavailable<T>(what: &str, why: &anyhow::Error) -> Result<Option<T>> {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        bail!("{what} is needed under CI and could not be installed: {why:#}");
    }
    say(&format!(
        "\n!!! SKIPPED: {what} could not be installed ({why:#}); \
         the tests that build plugins with it did not run !!!\n"
    ));
    Ok(None)
}

/// A line on the test run's own stderr, past the harness's capture (which
/// keeps a passing test's output to itself): the CI log shows it.
pub fn say(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

fn run(cmd: &mut Command) -> Result<()> {
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// Installs into `dir` with `install` unless `dir/.installed` says it was;
/// a half-finished install is removed first.
fn install_once(dir: &Path, install: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let marker = dir.join(".installed");
    if marker.exists() {
        return Ok(());
    }
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    std::fs::create_dir_all(dir)?;
    install(dir)?;
    std::fs::write(marker, "")?;
    Ok(())
}

/// The folder holding the `componentize-py` executable, or `None` (skip).
pub fn componentize_py() -> Result<Option<PathBuf>> {
    static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let got = DIR.get_or_init(|| {
        let venv = tools_dir().join(format!("componentize-py-{COMPONENTIZE_PY}"));
        install_once(&venv, |venv| {
            run(Command::new("python3").args(["-m", "venv"]).arg(venv))?;
            run(Command::new(venv.join("bin/pip")).args([
                "install",
                "--quiet",
                "--disable-pip-version-check",
                &format!("componentize-py=={COMPONENTIZE_PY}"),
            ]))
        })
        .map(|()| venv.join("bin"))
        .map_err(|e| format!("{e:#}"))
    });
    match got {
        Ok(dir) => Ok(Some(dir.clone())),
        Err(e) => unavailable(
            &format!("componentize-py {COMPONENTIZE_PY} (PyPI)"),
            &anyhow::anyhow!("{e}"),
        ),
    }
}

/// An npm package installed once into its own folder under the tools
/// folder: the folder holding its executables, or `None` (skip).
fn npm_tool(
    cell: &'static OnceLock<Result<PathBuf, String>>,
    package: &str,
    version: &str,
) -> Result<Option<PathBuf>> {
    let got = cell.get_or_init(|| {
        let folder = package.trim_start_matches('@').replace('/', "-");
        let dir = tools_dir().join(format!("{folder}-{version}"));
        install_once(&dir, |dir| {
            run(Command::new("npm")
                .args([
                    "install",
                    "--no-audit",
                    "--no-fund",
                    "--loglevel=error",
                    "--prefix",
                ])
                .arg(dir)
                .arg(format!("{package}@{version}")))
        })
        .map(|()| dir.join("node_modules/.bin"))
        .map_err(|e| format!("{e:#}"))
    });
    match got {
        Ok(dir) => Ok(Some(dir.clone())),
        Err(e) => unavailable(
            &format!("{package} {version} (npm)"),
            &anyhow::anyhow!("{e}"),
        ),
    }
}

/// The folder holding the `componentize-qjs` executable, or `None` (skip).
pub fn componentize_qjs() -> Result<Option<PathBuf>> {
    static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    npm_tool(&DIR, "componentize-qjs", COMPONENTIZE_QJS)
}

/// The folder holding the `componentize-js` executable, or `None` (skip).
pub fn componentize_js() -> Result<Option<PathBuf>> {
    static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    npm_tool(&DIR, "@bytecodealliance/componentize-js", COMPONENTIZE_JS)
}

/// `PATH` with `dir` first.
pub fn path_with(dir: &Path) -> std::ffi::OsString {
    let mut paths = vec![dir.to_path_buf()];
    paths.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    std::env::join_paths(paths).unwrap_or_default()
}

/// Builds the Python plugin whose `app.py` and `wit/` are in `src` into
/// `out` with componentize-py; `None` when the tool is missing (skip).
pub fn build_python(src: &Path, world: &str, out: &Path) -> Result<Option<()>> {
    let Some(bin) = componentize_py()? else {
        return Ok(None);
    };
    run(Command::new(bin.join("componentize-py"))
        .args(["-d", "wit", "-w", world, "componentize", "app", "-o"])
        .arg(out)
        .current_dir(src))?;
    Ok(Some(()))
}

/// Builds the JavaScript plugin `plugin.js` with `wit/` in `src` into `out`
/// with componentize-qjs (its synchronous runtime); `None` when the tool is
/// missing (skip).
pub fn build_js(src: &Path, out: &Path) -> Result<Option<()>> {
    let Some(bin) = componentize_qjs()? else {
        return Ok(None);
    };
    run(Command::new(bin.join("componentize-qjs"))
        .args(["--sync", "--wit", "wit", "--js", "plugin.js", "-o"])
        .arg(out)
        .current_dir(src))?;
    Ok(Some(()))
}

/// Runs `cmd` with `sh -c` in `cwd` (with `path_dir` first on PATH), as an
/// author would type it: cargo's own variables of the surrounding build are
/// removed, so a build runs as it would from a shell.
pub fn sh(cmd: &str, cwd: &Path, path_dir: Option<&Path>) -> Result<()> {
    let mut c = Command::new("sh");
    c.arg("-c").arg(cmd).current_dir(cwd);
    for var in ["RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS", "CARGO_TARGET_DIR"] {
        c.env_remove(var);
    }
    if let Some(p) = path_dir {
        c.env("PATH", path_with(p));
    }
    run(&mut c).with_context(|| format!("`{cmd}` in {}", cwd.display()))
}
