//! Finding plugins: built-in by name, installed in the plugins directory, or
//! a path to a `.wasm` (with the `.toml` beside it when there is one).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use plinth_host::{Manifest, Plugin, Runtime};

use crate::Failure;

/// Where a plugin's component and manifest come from.
pub struct Source {
    /// How the user named it.
    pub name: String,
    /// `built-in`, `installed` or `file`.
    pub kind: &'static str,
    /// The component.
    pub wasm: PathBuf,
    /// Its manifest, if it has one.
    pub manifest: Option<PathBuf>,
}

/// Every plugin known: built-ins first, then the installed ones.
pub fn list(plugins_dir: &Path) -> Vec<Source> {
    let mut all: Vec<Source> = plinth_guests::ALL
        .iter()
        .map(|g| Source {
            name: g.name.to_string(),
            kind: "built-in",
            wasm: PathBuf::from(g.wasm),
            manifest: Some(PathBuf::from(g.manifest)),
        })
        .collect();
    if let Ok(entries) = std::fs::read_dir(plugins_dir) {
        let mut installed: Vec<Source> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "wasm"))
            .map(|p| from_file(&p, "installed"))
            .collect();
        installed.sort_by(|a, b| a.name.cmp(&b.name));
        all.extend(installed);
    }
    all
}

fn from_file(wasm: &Path, kind: &'static str) -> Source {
    let manifest = wasm.with_extension("toml");
    Source {
        name: wasm.file_stem().map_or_else(
            || wasm.display().to_string(),
            |s| s.to_string_lossy().into_owned(),
        ),
        kind,
        wasm: wasm.to_path_buf(),
        manifest: manifest.exists().then_some(manifest),
    }
}

/// Resolves a name or a path.
pub fn find(plugins_dir: &Path, name: &str) -> Result<Source, Failure> {
    if name.ends_with(".wasm") || name.contains('/') {
        let path = Path::new(name);
        if !path.exists() {
            return Err(Failure::usage(format!("no such file: {name}")));
        }
        return Ok(from_file(path, "file"));
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

/// Loads a plugin. Without a manifest it is granted nothing.
pub fn load(runtime: &Runtime, source: &Source) -> Result<Plugin, Failure> {
    let manifest = match &source.manifest {
        Some(path) => Manifest::from_file(path).map_err(Failure::runtime)?,
        None => Manifest::new(source.name.clone()),
    };
    runtime
        .load_file(&source.wasm, manifest)
        .with_context(|| format!("cannot load {}", source.wasm.display()))
        .map_err(Failure::runtime)
}
