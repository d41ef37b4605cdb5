//! Finding plugins: built-in by name (carried in this binary as bytes, with
//! their manifests), installed in the plugins directory, or a path to a
//! `.wasm` (with the `.toml` beside it when there is one).
//!
//! A plugin's manifest is its request; what it runs with is what the
//! operator approved. Built-in plugins are approved by the build. An
//! installed plugin is approved by `plinth plugin install`, which writes
//! `NAME.approved.toml` beside it: the grants and limits approved, and the
//! build they are for (the SHA-256 of the component and of its migrations).
//! A request that grows afterwards (an update) is refused until it is
//! approved again, and so are bytes that are not the approved build.
//!
//! A name is not an identity. Whatever claims the name of an installed
//! plugin — a file named by its path, with or without `--approve`, or
//! another file dropped in the plugins directory — runs with that plugin's
//! approval only if it is the approved build, and is refused otherwise; so
//! it never reaches the installed plugin's tables and buckets. A file whose
//! name no installed plugin has runs with nothing granted, or with what it
//! requests when the command says `--approve`. A built-in plugin's name is
//! the built-in's: a file claiming it runs only if it is the built-in's
//! own bytes, and no plugin of that name can be installed.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use plinth_guests::Embedded;
use plinth_host::{Access, Manifest, Plugin, Runtime};

use crate::context::Failure;

/// Where a plugin's component and manifest come from.
pub enum Origin {
    /// Carried in this binary.
    BuiltIn(&'static Embedded),
    /// In the plugins directory.
    Installed { wasm: PathBuf },
    /// Named by its path.
    File { wasm: PathBuf },
}

/// A plugin the user can name.
pub struct Source {
    /// How the user names it.
    pub name: String,
    /// Where it comes from.
    pub origin: Origin,
}

impl Source {
    /// `built-in`, `installed` or `file`.
    pub fn kind(&self) -> &'static str {
        match self.origin {
            Origin::BuiltIn(_) => "built-in",
            Origin::Installed { .. } => "installed",
            Origin::File { .. } => "file",
        }
    }

    /// The component's file, for plugins that have one.
    pub fn wasm_path(&self) -> Option<&Path> {
        match &self.origin {
            Origin::BuiltIn(_) => None,
            Origin::Installed { wasm } | Origin::File { wasm } => Some(wasm),
        }
    }

    /// The manifest's file beside the component, if there is one.
    pub fn manifest_path(&self) -> Option<PathBuf> {
        let manifest = self.wasm_path()?.with_extension("toml");
        manifest.exists().then_some(manifest)
    }

    /// The component's size in bytes.
    pub fn size(&self) -> u64 {
        match &self.origin {
            Origin::BuiltIn(e) => e.wasm.len() as u64,
            Origin::Installed { wasm } | Origin::File { wasm } => {
                std::fs::metadata(wasm).map_or(0, |m| m.len())
            }
        }
    }
}

impl fmt::Display for Source {
    /// Where it is: the file, or `built in` for one carried in the binary.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.wasm_path() {
            Some(p) => write!(f, "{}", p.display()),
            None => f.write_str("(in this binary)"),
        }
    }
}

/// Every plugin known: built-ins first, then the installed ones.
pub fn list(plugins_dir: Option<&Path>) -> Vec<Source> {
    let mut all: Vec<Source> = plinth_guests::EMBEDDED
        .iter()
        .map(|e| Source {
            name: e.name.to_string(),
            origin: Origin::BuiltIn(e),
        })
        .collect();
    if let Some(Ok(entries)) = plugins_dir.map(std::fs::read_dir) {
        let mut installed: Vec<Source> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "wasm"))
            .map(|wasm| Source {
                name: stem(&wasm),
                origin: Origin::Installed { wasm },
            })
            .collect();
        installed.sort_by(|a, b| a.name.cmp(&b.name));
        all.extend(installed);
    }
    all
}

fn stem(wasm: &Path) -> String {
    wasm.file_stem().map_or_else(
        || wasm.display().to_string(),
        |s| s.to_string_lossy().into_owned(),
    )
}

/// Resolves a name or a path.
pub fn find(plugins_dir: Option<&Path>, name: &str) -> Result<Source, Failure> {
    if name.ends_with(".wasm") || name.contains('/') {
        let path = Path::new(name);
        if !path.exists() {
            return Err(Failure::usage(format!("no such file: {name}")));
        }
        return Ok(Source {
            name: stem(path),
            origin: Origin::File {
                wasm: path.to_path_buf(),
            },
        });
    }
    let mut all = list(plugins_dir);
    match all.iter().position(|s| s.name == name) {
        Some(i) => Ok(all.swap_remove(i)),
        None => Err(Failure::usage(format!(
            "unknown plugin {name:?}; known: {}",
            all.iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// The approval file of the installed plugin `name`.
pub fn approval_path(plugins_dir: &Path, name: &str) -> PathBuf {
    plugins_dir.join(format!("{name}.approved.toml"))
}

/// What a plugin from a file asks for: its manifest, or nothing.
pub fn request(source: &Source) -> Result<Manifest, Failure> {
    match source.manifest_path() {
        Some(path) => Manifest::from_file(&path).map_err(Failure::runtime),
        None => Ok(Manifest::new(source.name.clone())),
    }
}

/// The migrations a plugin ships (built in: carried in this binary).
pub fn request_migrations(source: &Source) -> Result<plinth_host::Migrations, Failure> {
    match &source.origin {
        Origin::BuiltIn(e) => {
            plinth_host::Migrations::from_files(e.migrations, e.name).map_err(Failure::runtime)
        }
        _ => Ok(request(source)?.migrations),
    }
}

/// What a plugin from a file may have: its request, held against the
/// operator's approval and bound to the approved build (or, when no
/// plugin of its name is installed, taken as it is with `approve_request`).
fn approved(
    plugins_dir: Option<&Path>,
    source: &Source,
    approve_request: bool,
) -> Result<Manifest, Failure> {
    let request = request(source)?;
    // A built-in's name is the built-in's: only its own bytes run as it.
    if let Some(e) = plinth_guests::EMBEDDED
        .iter()
        .find(|e| e.name == request.name)
    {
        let mut approval = built_in_manifest(e)?;
        approval.identity = Some(plinth_host::Identity::of(e.wasm, &approval.migrations));
        return request.within(&approval).map_err(Failure::runtime);
    }
    let approval = plugins_dir
        .map(|dir| approval_path(dir, &request.name))
        .filter(|p| p.exists());
    let approval = match approval {
        Some(path) => {
            let approval = Manifest::from_file(&path).map_err(Failure::runtime)?;
            if approval.identity.is_none() {
                return Err(Failure::runtime(anyhow::anyhow!(
                    "{}: this approval names no build (it was written before approvals did); install the plugin again with `plinth plugin install`",
                    path.display()
                )));
            }
            approval
        }
        None if approve_request => return Ok(request),
        // Nothing approved: the request must ask for no interface and no
        // more than the default limits.
        None => Manifest::new(request.name.clone()),
    };
    request.within(&approval).map_err(Failure::runtime)
}

/// What a plugin may offer over HTTP: what its approval allows of its
/// request (a built-in: what the build says).
pub fn approved_http(
    plugins_dir: Option<&Path>,
    source: &Source,
) -> Result<plinth_host::Http, Failure> {
    match &source.origin {
        Origin::BuiltIn(e) => Ok(built_in_manifest(e)?.http),
        Origin::Installed { .. } | Origin::File { .. } => {
            Ok(approved(plugins_dir, source, false)?.http)
        }
    }
}

/// A built-in plugin's manifest and migrations, as this build carries them:
/// what the build approves.
fn built_in_manifest(e: &Embedded) -> Result<Manifest, Failure> {
    let origin = format!("built-in {}", e.name);
    let manifest = match e.manifest {
        Some(text) => Manifest::from_toml(text, &origin).map_err(Failure::runtime)?,
        None => Manifest::new(e.name),
    };
    let migrations =
        plinth_host::Migrations::from_files(e.migrations, &origin).map_err(Failure::runtime)?;
    Ok(manifest.migrations(migrations))
}

/// Whether `name` is a built-in plugin's.
pub fn is_built_in(name: &str) -> bool {
    plinth_guests::EMBEDDED.iter().any(|e| e.name == name)
}

/// Loads a plugin with what it may have (see the module docs), the plugins
/// directory holding the approvals; `approve_request`: the command approves
/// a file's request for itself (`--approve`).
///
/// The built-in `db-test` imports `plinth:test/clock`, which no manifest can
/// grant: this binary grants it in code to that one built-in plugin (its
/// checks move the clock of this process only, never the database's data).
pub fn load(
    runtime: &Runtime,
    plugins_dir: Option<&Path>,
    source: &Source,
    approve_request: bool,
) -> Result<Plugin, Failure> {
    let loaded = match &source.origin {
        Origin::BuiltIn(e) => {
            let mut manifest = built_in_manifest(e)?;
            if e.name == "db-test" {
                manifest = manifest.grant(plinth_testing::TEST_CLOCK, Access::Write);
            }
            runtime
                .load_bytes(e.wasm, manifest)
                .with_context(|| format!("cannot load the built-in {}", e.name))
        }
        Origin::Installed { wasm } | Origin::File { wasm } => {
            let approve_request = approve_request && matches!(source.origin, Origin::File { .. });
            let manifest = approved(plugins_dir, source, approve_request)?;
            runtime
                .load_file(wasm, manifest)
                .with_context(|| format!("cannot load {}", wasm.display()))
        }
    };
    loaded.map_err(Failure::runtime)
}
