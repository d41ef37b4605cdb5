//! `plinth new NAME --lang rust|python|js`: a plugin directory that builds
//! with its language's own tool and runs through `plinth call` unedited.
//!
//! Every language gets the same world (`wit/world.wit`, world `plugin`: it
//! imports `plinth:database/users` and exports `greet` and `profile`), the plinth
//! WIT packages in `wit/deps/` from the copy in this binary, a manifest
//! requesting exactly what the world imports, and a README with the build
//! and call commands. The build writes `NAME.wasm` beside `NAME.toml`, so
//! `plinth call ./NAME.wasm …` finds the manifest.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};

use crate::context::{self, Failure};

/// `plinth new`'s arguments.
#[derive(clap::Args)]
pub struct NewArgs {
    /// The plugin's name: lowercase words joined by hyphens.
    name: String,
    /// The language it is written in.
    #[arg(long, value_enum, default_value_t = Lang::Rust)]
    lang: Lang,
    /// Where to write it.
    #[arg(long)]
    dir: Option<PathBuf>,
}

/// Writes the plugin and says how to build and call it.
pub fn run(args: NewArgs) -> context::Result<ExitCode> {
    let NewArgs { name, lang, dir } = args;
    check_name(&name).map_err(Failure::usage)?;
    let dir = dir.unwrap_or_else(|| PathBuf::from(&name));
    let written = create(&dir, &name, lang).map_err(Failure::usage)?;
    for path in &written {
        println!("wrote {}", path.display());
    }
    println!(
        "\nnext, in {}:\n  the tool:  {}\n  build it:  {}\n  call it:   plinth call ./{name}.wasm 'greet(\"ada@example.com\")' --approve",
        dir.display(),
        setup(lang),
        build_command(&name, lang)
    );
    Ok(ExitCode::SUCCESS)
}

/// A language `plinth new` writes a plugin in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    /// Rust with wit-bindgen, built by cargo.
    Rust,
    /// Python, built by componentize-py.
    Python,
    /// JavaScript, built by componentize-qjs (QuickJS).
    Js,
}

/// The tool versions the generated files name; the tests build with these.
pub const COMPONENTIZE_PY: &str = "0.25.0";
/// See [`COMPONENTIZE_PY`].
pub const COMPONENTIZE_QJS: &str = "0.4.5";

// The Rust source and the world are the repository's template guest, built
// and tested with the other guests.
const WORLD: &str = include_str!("../../../../guests/template/wit/world.wit");
const MANIFEST: &str = include_str!("../../templates/manifest.toml");
const RUST_CARGO: &str = include_str!("../../templates/rust/Cargo.toml");
const RUST_LIB: &str = include_str!("../../../../guests/template/src/lib.rs");
const PYTHON_APP: &str = include_str!("../../templates/python/app.py");
const JS_PLUGIN: &str = include_str!("../../templates/js/plugin.js");
const JS_PACKAGE: &str = include_str!("../../templates/js/package.json");

/// Whether `name` can name a plugin, a WIT world and package, and a file:
/// lowercase ASCII words joined by single hyphens (`user-card`), at most 64
/// bytes, no WIT keyword.
pub fn check_name(name: &str) -> Result<(), String> {
    let words_ok = !name.is_empty()
        && name.len() <= 64
        && name.split('-').all(|w| {
            w.chars().next().is_some_and(|c| c.is_ascii_lowercase())
                && w.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        });
    if !words_ok {
        return Err(format!(
            "plugin name {:?}: lowercase words of letters and digits joined by hyphens, \
             each starting with a letter (user-card)",
            plinth_host::escape_controls(name)
        ));
    }
    const KEYWORDS: &[&str] = &[
        "as",
        "async",
        "bool",
        "borrow",
        "char",
        "constructor",
        "enum",
        "export",
        "f32",
        "f64",
        "flags",
        "from",
        "func",
        "future",
        "import",
        "include",
        "interface",
        "list",
        "own",
        "package",
        "record",
        "resource",
        "result",
        "s16",
        "s32",
        "s64",
        "s8",
        "static",
        "stream",
        "string",
        "tuple",
        "type",
        "u16",
        "u32",
        "u64",
        "u8",
        "use",
        "variant",
        "with",
        "world",
        "option",
    ];
    if KEYWORDS.contains(&name) {
        return Err(format!("plugin name {name:?} is a WIT keyword"));
    }
    Ok(())
}

fn fill(template: &str, name: &str, lang: Lang) -> String {
    let (memory_mib, reuse) = match lang {
        Lang::Rust => ("16", ""),
        // An interpreter's instance starts with tens of MiB of memory
        // already initialised; reusing a live one saves its set-up on every
        // call (see the README's "Write a plugin").
        Lang::Python | Lang::Js => (
            "128",
            "\n# Serve calls from live instances: an interpreter's instance costs more\n\
             # to make than a call. Each call is still its own transaction.\n\
             [reuse]\ncalls = 1000\nmemory-kib = 131072\nidle = 4\n",
        ),
    };
    template
        .replace("{{name}}", name)
        .replace("{{memory_mib}}", memory_mib)
        .replace("{{reuse}}", reuse)
        .replace("{{qjs}}", COMPONENTIZE_QJS)
}

/// Writes the plugin `name` in `lang` into `dir` (which must not exist, or
/// be empty). Returns the files written.
pub fn create(dir: &Path, name: &str, lang: Lang) -> Result<Vec<PathBuf>> {
    if dir.exists()
        && std::fs::read_dir(dir)
            .with_context(|| format!("cannot read {}", dir.display()))?
            .next()
            .is_some()
    {
        anyhow::bail!(
            "{} exists and is not empty: choose a new directory",
            dir.display()
        );
    }
    let mut files: Vec<(PathBuf, String)> = vec![
        ("wit/world.wit".into(), fill(WORLD, name, lang)),
        (format!("{name}.toml").into(), fill(MANIFEST, name, lang)),
        ("README.md".into(), readme(name, lang)),
        (".gitignore".into(), gitignore(name, lang)),
    ];
    match lang {
        Lang::Rust => {
            files.push(("Cargo.toml".into(), fill(RUST_CARGO, name, lang)));
            files.push(("src/lib.rs".into(), fill(RUST_LIB, name, lang)));
        }
        Lang::Python => files.push(("app.py".into(), fill(PYTHON_APP, name, lang))),
        Lang::Js => {
            files.push(("plugin.js".into(), fill(JS_PLUGIN, name, lang)));
            files.push(("package.json".into(), fill(JS_PACKAGE, name, lang)));
        }
    }
    let mut written = Vec::new();
    for (rel, text) in files {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        written.push(path);
    }
    // The plinth packages the world imports from.
    for line in super::wit::write_packages(&dir.join("wit"))? {
        written.push(line);
    }
    Ok(written)
}

/// The command that builds the plugin, run in its directory.
pub fn build_command(name: &str, lang: Lang) -> String {
    let snake = name.replace('-', "_");
    match lang {
        Lang::Rust => format!(
            "cargo build --target wasm32-wasip2 --release && cp target/wasm32-wasip2/release/{snake}.wasm {name}.wasm"
        ),
        Lang::Python => format!("componentize-py -d wit -w plugin componentize app -o {name}.wasm"),
        Lang::Js => "npm install && npm run build".to_string(),
    }
}

/// What to install once before the first build.
pub fn setup(lang: Lang) -> String {
    match lang {
        Lang::Rust => "rustup target add wasm32-wasip2".into(),
        Lang::Python => format!(
            "python3 -m venv .venv && . .venv/bin/activate && pip install componentize-py=={COMPONENTIZE_PY}"
        ),
        Lang::Js => "(Node.js 20 or later; `npm install` fetches componentize-qjs)".into(),
    }
}

fn readme(name: &str, lang: Lang) -> String {
    let (tool, source) = match lang {
        Lang::Rust => ("cargo and wit-bindgen", "src/lib.rs"),
        Lang::Python => ("componentize-py", "app.py"),
        Lang::Js => ("componentize-qjs (QuickJS)", "plugin.js"),
    };
    format!(
        "# {name}\n\n\
         A plinth plugin in {lang}, built with {tool}. The code is in `{source}`, its world\n\
         (what it imports from plinth and what it exports) in `wit/world.wit`, and what it\n\
         asks the runtime for in `{name}.toml`.\n\n\
         ## Build\n\n\
         ```sh\n{setup}\n{build}\n```\n\n\
         ## Call\n\n\
         ```sh\n\
         plinth call ./{name}.wasm 'greet(\"ada@example.com\")' --approve\n\
         plinth call ./{name}.wasm 'profile(\"ada@example.com\")' --approve\n\
         ```\n\n\
         `--approve` grants what `{name}.toml` requests for that one call; `plinth plugin\n\
         install {name}.wasm` shows the request, takes your approval once and installs it,\n\
         after which `plinth call {name} …` works from anywhere.\n\n\
         ## Changing it\n\n\
         Import another interface in `wit/world.wit` only when the code calls it, and grant it\n\
         in `{name}.toml` (`plinth plugin interfaces` lists them and what each needs).\n\
         `plinth wit wit` rewrites `wit/deps/` from your plinth binary's copy.\n",
        lang = match lang {
            Lang::Rust => "Rust",
            Lang::Python => "Python",
            Lang::Js => "JavaScript",
        },
        setup = setup(lang),
        build = build_command(name, lang),
    )
}

fn gitignore(name: &str, lang: Lang) -> String {
    let extra = match lang {
        Lang::Rust => "target/\n",
        Lang::Python => ".venv/\n__pycache__/\n",
        Lang::Js => "node_modules/\n",
    };
    format!("{name}.wasm\n{extra}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_wit_identifiers() {
        for good in ["notes", "user-card", "a1-b2"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "Notes",
            "user_card",
            "-x",
            "x-",
            "a--b",
            "1abc",
            "a-1b",
            "../x",
            "world",
            "a b",
        ] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_placeholder_is_filled() {
        for lang in [Lang::Rust, Lang::Python, Lang::Js] {
            for t in [
                WORLD, MANIFEST, RUST_CARGO, RUST_LIB, PYTHON_APP, JS_PLUGIN, JS_PACKAGE,
            ] {
                let out = fill(t, "user-card", lang);
                assert!(!out.contains("{{"), "{out}");
            }
        }
    }
}
