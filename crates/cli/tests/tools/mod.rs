//! What the CLI's tests and the languages benchmark share: the `plinth`
//! command and its output, and the plugin toolchains of other languages,
//! installed once into the build's target folder (`target/plugin-tools/`)
//! and kept between runs: componentize-py from PyPI in a virtual
//! environment, componentize-qjs and ComponentizeJS from npm. Where one
//! cannot be installed the tests that need it say so loudly and skip; under
//! `CI=true` they fail instead. `build_new_plugin` makes a plugin with
//! `plinth new` and builds it with the command its README gives.

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

/// A tool installed once into `tools_dir()/folder` by `install`: the folder
/// holding its executables (`bin` inside it), or `None` (skip) when it
/// cannot be had. `cell` keeps the answer for the rest of the run. A
/// `.installed` marker says an install finished; a half-finished one is
/// removed and done again.
fn installed(
    cell: &'static OnceLock<Result<PathBuf, String>>,
    what: &str,
    folder: &str,
    bin: &str,
    install: impl FnOnce(&Path) -> Result<()>,
) -> Result<Option<PathBuf>> {
    let got = cell.get_or_init(|| {
        let dir = tools_dir().join(folder);
        let marker = dir.join(".installed");
        (|| -> Result<()> {
            if marker.exists() {
                return Ok(());
            }
            if dir.exists() {
                std::fs::remove_dir_all(&dir)?;
            }
            std::fs::create_dir_all(&dir)?;
            install(&dir)?;
            std::fs::write(&marker, "")?;
            Ok(())
        })()
        .map(|()| dir.join(bin))
        .map_err(|e| format!("{e:#}"))
    });
    match got {
        Ok(dir) => Ok(Some(dir.clone())),
        Err(e) => unavailable(what, &anyhow::anyhow!("{e}")),
    }
}

/// The folder holding the `componentize-py` executable, or `None` (skip).
pub fn componentize_py() -> Result<Option<PathBuf>> {
    static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    installed(
        &DIR,
        &format!("componentize-py {COMPONENTIZE_PY} (PyPI)"),
        &format!("componentize-py-{COMPONENTIZE_PY}"),
        "bin",
        |venv| {
            run(Command::new("python3").args(["-m", "venv"]).arg(venv))?;
            run(Command::new(venv.join("bin/pip")).args([
                "install",
                "--quiet",
                "--disable-pip-version-check",
                &format!("componentize-py=={COMPONENTIZE_PY}"),
            ]))
        },
    )
}

/// An npm package installed into its own folder: the folder holding its
/// executables, or `None` (skip).
fn npm_tool(
    cell: &'static OnceLock<Result<PathBuf, String>>,
    package: &str,
    version: &str,
) -> Result<Option<PathBuf>> {
    let folder = package.trim_start_matches('@').replace('/', "-");
    installed(
        cell,
        &format!("{package} {version} (npm)"),
        &format!("{folder}-{version}"),
        "node_modules/.bin",
        |dir| {
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
        },
    )
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

/// The OpenAPI validator the `plinth serve` tests check `/openapi.json`
/// with (openapi-spec-validator, PyPI, in a virtual environment of its own).
pub const OPENAPI_SPEC_VALIDATOR: &str = "0.7.2";

/// The `python3` of a virtual environment with openapi-spec-validator, or
/// `None` (skip).
pub fn openapi_validator() -> Result<Option<PathBuf>> {
    static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let bin = installed(
        &DIR,
        &format!("openapi-spec-validator {OPENAPI_SPEC_VALIDATOR} (PyPI)"),
        &format!("openapi-spec-validator-{OPENAPI_SPEC_VALIDATOR}"),
        "bin",
        |venv| {
            run(Command::new("python3").args(["-m", "venv"]).arg(venv))?;
            run(Command::new(venv.join("bin/pip")).args([
                "install",
                "--quiet",
                "--disable-pip-version-check",
                &format!("openapi-spec-validator=={OPENAPI_SPEC_VALIDATOR}"),
            ]))
        },
    )?;
    Ok(bin.map(|b| b.join("python3")))
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

/// `plinth` with its data directory in `data` and no `PLINTH_LOG`.
pub fn plinth(data: &Path) -> Result<assert_cmd::Command> {
    let mut cmd = assert_cmd::Command::cargo_bin("plinth")?;
    cmd.env("PLINTH_DATA_DIR", data).env_remove("PLINTH_LOG");
    Ok(cmd)
}

/// Runs `cmd`, expects success, and returns its standard output.
pub fn stdout(cmd: &mut assert_cmd::Command) -> Result<String> {
    let out = cmd.output()?;
    anyhow::ensure!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?)
}

/// A plugin written by `plinth new` and built.
pub struct NewPlugin {
    /// Its name, `hello-LANG`.
    pub name: String,
    /// Its folder.
    pub project: PathBuf,
    /// What `plinth new` printed.
    pub printed: String,
}

impl NewPlugin {
    /// The built component, `NAME.wasm` in its folder.
    pub fn wasm(&self) -> PathBuf {
        self.project.join(format!("{}.wasm", self.name))
    }

    /// Its manifest, `NAME.toml` beside the component.
    pub fn manifest(&self) -> PathBuf {
        self.project.join(format!("{}.toml", self.name))
    }
}

/// The last line of the README's build block: the build command.
fn readme_build_command(dir: &Path) -> Result<String> {
    let readme = std::fs::read_to_string(dir.join("README.md"))?;
    let block = readme
        .split("## Build\n\n```sh\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .context("no build block in the README")?;
    block
        .lines()
        .last()
        .map(str::to_string)
        .context("an empty build block")
}

/// `plinth new hello-LANG --lang LANG` in `parent`, built by the command its
/// README gives (with `tool` first on PATH). A Rust plugin builds into one
/// target folder shared by every run, with the guests' lock file, so its
/// dependencies build once.
pub fn build_new_plugin(parent: &Path, lang: &str, tool: Option<&Path>) -> Result<NewPlugin> {
    let name = format!("hello-{lang}");
    let project = parent.join(&name);
    let printed = stdout(
        plinth(parent)?
            .args(["new", &name, "--lang", lang, "--dir"])
            .arg(&project),
    )?;
    if lang == "rust" {
        let shared = target_dir().join("new-plugin-rust");
        std::fs::create_dir_all(&shared)?;
        std::os::unix::fs::symlink(&shared, project.join("target"))?;
        let guests = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../guests");
        std::fs::copy(guests.join("Cargo.lock"), project.join("Cargo.lock"))?;
    }
    sh(&readme_build_command(&project)?, &project, tool)?;
    Ok(NewPlugin {
        name,
        project,
        printed,
    })
}
