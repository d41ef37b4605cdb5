//! Plugins in Rust, Python and JavaScript, as an author makes them: `plinth
//! new` writes one, the language's own tool builds it with the command its
//! README gives, and `plinth call` runs it unedited. The shipped Python and
//! JavaScript examples (`guests/python`, `guests/js`) are built and called
//! the same way, so the WIT cannot drift from what those languages consume.

mod tools;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, ensure};
use assert_cmd::Command;

use tools::stdout;

/// `plinth` with its data directory in `data`, run in `cwd`.
fn plinth(data: &Path, cwd: &Path) -> Result<Command> {
    let mut cmd = tools::plinth(data)?;
    cmd.current_dir(cwd);
    Ok(cmd)
}

/// Runs and expects failure with `needle` on stderr.
fn fails(cmd: &mut Command, needle: &str) -> Result<()> {
    let out = cmd.output()?;
    let err = String::from_utf8(out.stderr)?;
    ensure!(!out.status.success(), "succeeded; stderr {err}");
    ensure!(err.contains(needle), "{err:?} lacks {needle:?}");
    Ok(())
}

/// Signs `ada` up through the built-in auth plugin.
fn sign_up(data: &Path, name: &str, email: &str) -> Result<String> {
    let out = stdout(plinth(data, data)?.args([
        "call",
        "auth",
        &format!(r#"sign-up("{name}", "{email}", "correct horse battery staple")"#),
        "--json",
    ]))?;
    let v: serde_json::Value = serde_json::from_str(&out)?;
    v["ok"]["uuid"]
        .as_str()
        .map(str::to_string)
        .with_context(|| format!("no uuid in {out}"))
}

/// `plinth new NAME --lang LANG`, built by its README's command (with
/// `tool` first on PATH), then greet / profile through `plinth call` from
/// its folder, as the README says.
fn new_plugin_builds_and_runs(lang: &str, tool: Option<PathBuf>) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data)?;
    let built = tools::build_new_plugin(dir.path(), lang, tool.as_deref())?;
    let (name, project) = (&built.name, &built.project);
    let out = &built.printed;
    ensure!(
        out.contains("the tool:") && out.contains("build it:"),
        "{out}"
    );
    // The manifest requests exactly what the world imports.
    let manifest = std::fs::read_to_string(built.manifest())?;
    ensure!(
        manifest.contains(r#""plinth:database/users" = "read""#),
        "{manifest}"
    );
    ensure!(built.wasm().exists(), "no {name}.wasm");

    sign_up(&data, "ada", "ada@example.com")?;
    let wasm = format!("./{name}.wasm");
    let call = |expr: &str| -> Result<String> {
        stdout(plinth(&data, project)?.args(["call", &wasm, expr, "--approve"]))
    };
    let greeting = call(r#"greet("ada@example.com")"#)?;
    ensure!(greeting.trim() == r#""hello, ada!""#, "{lang}: {greeting}");
    let profile = call(r#"profile("ada@example.com")"#)?;
    ensure!(
        profile.starts_with("ok({uuid: ") && profile.contains(r#"name: "ada""#),
        "{lang}: {profile}"
    );
    let missing = call(r#"profile("nobody@example.com")"#)?;
    ensure!(missing.trim() == "err(not-found)", "{lang}: {missing}");
    // Language toolchains' own exports are neither listed nor callable.
    let inspect = stdout(plinth(&data, project)?.args(["plugin", "inspect", &wasm]))?;
    let exports = inspect
        .split("\nexports:\n")
        .nth(1)
        .context("no exports section")?;
    ensure!(
        exports.lines().filter(|l| !l.trim().is_empty()).count() == 2,
        "{lang}: {exports}"
    );
    fails(
        plinth(&data, project)?.args([
            "call",
            &wasm,
            r#"init("a", "b", none, false)"#,
            "--approve",
        ]),
        "has no function init",
    )?;
    tools::say(&format!(
        "{lang}: plinth new {name}: built and called, greet answered {}",
        greeting.trim()
    ));
    Ok(())
}

#[test]
fn plinth_new_rust_builds_with_cargo_and_runs() -> Result<()> {
    new_plugin_builds_and_runs("rust", None)
}

#[test]
fn plinth_new_python_builds_with_componentize_py_and_runs() -> Result<()> {
    match tools::componentize_py()? {
        Some(bin) => new_plugin_builds_and_runs("python", Some(bin)),
        None => Ok(()),
    }
}

#[test]
fn plinth_new_js_builds_with_componentize_qjs_and_runs() -> Result<()> {
    // The generated package.json names componentize-qjs; `npm install`
    // fetches it (from npm's cache once the tools are installed).
    match tools::componentize_qjs()? {
        Some(_) => new_plugin_builds_and_runs("js", None),
        None => Ok(()),
    }
}

fn example(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../guests")
        .join(path)
}

/// A shipped example, built into a temp folder as `NAME.wasm` with its
/// manifest beside it, and a data directory of its own.
struct Built {
    dir: tempfile::TempDir,
    wasm: PathBuf,
    data: PathBuf,
}

impl Built {
    /// `build(src, out)` builds the example at `guests/PATH` into `out`;
    /// `None` when its tool is missing (the test skips).
    fn example(
        path: &str,
        name: &str,
        build: impl FnOnce(&Path, &Path) -> Result<Option<()>>,
    ) -> Result<Option<Self>> {
        let dir = tempfile::tempdir()?;
        let wasm = dir.path().join(format!("{name}.wasm"));
        let src = example(path);
        if build(&src, &wasm)?.is_none() {
            return Ok(None);
        }
        let manifest = format!("{name}.toml");
        std::fs::copy(src.join(&manifest), dir.path().join(&manifest))?;
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data)?;
        Ok(Some(Self { dir, wasm, data }))
    }

    /// `plinth ARGS… PLUGIN`-style commands: `plinth` in the folder.
    fn plinth(&self) -> Result<Command> {
        plinth(&self.data, self.dir.path())
    }

    /// `plinth call PLUGIN EXPR --approve`, its output.
    fn call(&self, expr: &str) -> Result<String> {
        stdout(
            self.plinth()?
                .arg("call")
                .arg(&self.wasm)
                .arg(expr)
                .arg("--approve"),
        )
    }
}

/// The Python example: a profile card, and a bio changed through a WIT
/// variant built in Python.
#[test]
fn the_python_profile_card_example_runs_through_the_host() -> Result<()> {
    let Some(ex) = Built::example("python/profile-card", "profile-card", |src, out| {
        tools::build_python(src, "profile-card", out)
    })?
    else {
        return Ok(());
    };
    sign_up(&ex.data, "ada", "ada@example.com")?;
    let call = |expr: &str| ex.call(expr);
    let card = call(r#"card("ada@example.com")"#)?;
    ensure!(
        card.starts_with("ok(\"+---") && card.contains("| ada ") && card.contains("(no bio yet)"),
        "{card}"
    );
    let set = call(r#"set-bio("ada@example.com", set("Countess of Lovelace"))"#)?;
    ensure!(set.contains("Countess of Lovelace"), "{set}");
    // Written through the host: a fresh call reads it back.
    ensure!(call(r#"card("ada@example.com")"#)?.contains("Countess of Lovelace"));
    let cleared = call(r#"set-bio("ada@example.com", clear)"#)?;
    ensure!(cleared.contains("(no bio yet)"), "{cleared}");
    let long = format!(r#"set-bio("ada@example.com", set("{}"))"#, "x".repeat(300));
    let refused = call(&long)?;
    ensure!(refused.starts_with("err(invalid-input("), "{refused}");
    ensure!(call(r#"card("nobody@example.com")"#)?.trim() == "err(not-found)");
    // The manifest opts into reuse; its request grants users read-write.
    let inspect = stdout(ex.plinth()?.args(["plugin", "inspect"]).arg(&ex.wasm))?;
    ensure!(
        inspect.contains("reuse:    up to 1000 calls") && !inspect.contains("exports#init"),
        "{inspect}"
    );
    tools::say("python: the profile-card example built and called through the host");
    Ok(())
}

/// The JavaScript example: a directory lookup returning a list of records,
/// and a rename whose typed errors (`conflict(name)`, `invalid-input`) cross
/// from JavaScript.
#[test]
fn the_js_directory_example_runs_through_the_host() -> Result<()> {
    let Some(ex) = Built::example("js/directory", "directory", tools::build_js)? else {
        return Ok(());
    };
    let ada = sign_up(&ex.data, "ada", "ada@example.com")?;
    sign_up(&ex.data, "grace", "grace@example.com")?;
    let call = |expr: &str| ex.call(expr);
    let by_name = call(r#"lookup("ada")"#)?;
    ensure!(
        by_name.trim()
            == r#"[{name: "ada", email: "ada@example.com", verified: false, matched-by: "name"}]"#,
        "{by_name}"
    );
    ensure!(call(r#"lookup("grace@example.com")"#)?.contains(r#"matched-by: "email""#));
    ensure!(call(&format!(r#"lookup("{ada}")"#))?.contains(r#"matched-by: "uuid""#));
    ensure!(call(r#"lookup("nobody")"#)?.trim() == "[]");
    let taken = call(&format!(r#"rename("{ada}", "grace")"#))?;
    ensure!(taken.trim() == "err(conflict(name))", "{taken}");
    let blank = call(&format!(r#"rename("{ada}", "  ")"#))?;
    ensure!(
        blank.trim() == r#"err(invalid-input("a name cannot be blank"))"#,
        "{blank}"
    );
    let renamed = call(&format!(r#"rename("{ada}", "ada-lovelace")"#))?;
    ensure!(renamed.contains(r#"name: "ada-lovelace""#), "{renamed}");
    ensure!(call(r#"lookup("ada-lovelace")"#)?.contains("ada@example.com"));
    tools::say("js: the directory example built and called through the host");
    Ok(())
}

/// ComponentizeJS (SpiderMonkey) imports `wasi:http` unless told not to.
/// plinth links `wasi:http` (its types, and an outgoing handler that
/// refuses every request: a plugin has no network), so the build as it
/// comes runs as the one built without it does.
#[test]
fn componentize_js_builds_with_and_without_wasi_http_both_run() -> Result<()> {
    let Some(bin) = tools::componentize_js()? else {
        return Ok(());
    };
    let dir = tempfile::tempdir()?;
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("wit"))?;
    std::fs::write(
        src.join("wit/world.wit"),
        "package local:plugin@0.1.0;\n\
         world plugin {\n    import plinth:database/users@0.1.0;\n    \
         export greet: func(email: string) -> string;\n}\n",
    )?;
    let data = dir.path().join("data");
    stdout(plinth(&data, dir.path())?.arg("wit").arg(src.join("wit")))?;
    // ComponentizeJS takes named imports.
    std::fs::write(
        src.join("plugin.js"),
        r#"import { getUserByEmail } from "plinth:database/users@0.1.0";
export function greet(email) {
    try { return `hello, ${getUserByEmail(email).name}!`; }
    catch (e) { return `nobody is registered as ${email}`; }
}
"#,
    )?;
    let manifest = "name = \"js-plugin\"\n[grants]\n\"plinth:database/users\" = \"read\"\n";
    for (out, flags) in [
        ("with-http", ""),
        ("no-http", " --disable http fetch-event"),
    ] {
        tools::sh(
            &format!("componentize-js plugin.js --wit wit -n plugin{flags} -o ../{out}.wasm"),
            &src,
            Some(&bin),
        )?;
        std::fs::write(dir.path().join(format!("{out}.toml")), manifest)?;
    }
    let with_http = stdout(plinth(&data, dir.path())?.args([
        "call",
        "./with-http.wasm",
        r#"greet("a@example.com")"#,
        "--approve",
    ]))?;
    ensure!(
        with_http.trim() == r#""nobody is registered as a@example.com""#,
        "{with_http}"
    );
    let ok = stdout(plinth(&data, dir.path())?.args([
        "call",
        "./no-http.wasm",
        r#"greet("a@example.com")"#,
        "--approve",
    ]))?;
    ensure!(
        ok.trim() == r#""nobody is registered as a@example.com""#,
        "{ok}"
    );
    tools::say("js: ComponentizeJS builds with and without wasi:http, both called");
    Ok(())
}
