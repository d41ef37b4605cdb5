//! The plugins a server serves, loaded once and replaced when their files
//! change.
//!
//! What is served: the built-in plugins whose manifest offers something
//! over HTTP (never `db-test`), and every installed plugin, each with what
//! its approval allows. A refresh (at start, then every reload interval)
//! compares each installed plugin's files with those it was loaded from:
//! a plugin whose component or approval changed is loaded again and, once
//! it loads, replaces the old one for new calls (calls in flight hold the
//! old one until they finish); one whose files are gone stops being served.
//! A new build that does not load (not approved, not the approved build, a
//! migration that fails) leaves the old one serving, and is logged once.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use plinth_host::{ExportedFunc, Plugin, Runtime};

use super::metrics::Metrics;
use crate::plugins::{self, Origin, Source};

/// Paths plinth serves itself: no plugin is mounted at or under them.
const RESERVED: &[&str] = &[
    "/plugins",
    "/openapi.json",
    "/healthz",
    "/readyz",
    "/metrics",
    "/web",
];

/// Built-in plugins never served, whatever their manifests say.
const NEVER_SERVED: &[&str] = &["db-test", "http-probe"];

/// One plugin as served.
pub struct Served {
    /// The loaded plugin.
    pub plugin: Plugin,
    /// Its exports reachable over HTTP, by the name in the URL.
    pub exports: BTreeMap<String, ExportedFunc>,
    /// The path prefix of a `wasi:http` plugin.
    pub prefix: Option<String>,
    /// What its files were when it was loaded.
    fingerprint: Fingerprint,
}

/// What a plugin's files are: the component's and the approval's digests
/// (built-ins: the name alone; they change only with the binary).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fingerprint(String);

/// Every plugin served, swapped whole on a change.
pub struct Catalog {
    runtime: Runtime,
    plugins_dir: Option<PathBuf>,
    metrics: Arc<Metrics>,
    served: RwLock<Arc<HashMap<String, Arc<Served>>>>,
    /// Plugins that failed to load, with the fingerprint that failed (so
    /// that it is logged once) and the error.
    failed: Mutex<HashMap<String, (Fingerprint, String)>>,
    /// Whether the first refresh has finished.
    loaded: std::sync::atomic::AtomicBool,
}

impl Catalog {
    pub fn new(runtime: Runtime, plugins_dir: Option<PathBuf>, metrics: Arc<Metrics>) -> Self {
        Self {
            runtime,
            plugins_dir,
            metrics,
            served: RwLock::new(Arc::new(HashMap::new())),
            failed: Mutex::new(HashMap::new()),
            loaded: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// What is served now.
    pub fn snapshot(&self) -> Arc<HashMap<String, Arc<Served>>> {
        self.served
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// One plugin, as served now.
    pub fn get(&self, name: &str) -> Option<Arc<Served>> {
        self.snapshot().get(name).cloned()
    }

    /// Whether the plugins were loaded once.
    pub fn loaded(&self) -> bool {
        self.loaded.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Plugins that did not load, and why.
    pub fn failures(&self) -> Vec<(String, String)> {
        let failed = self
            .failed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut list: Vec<_> = failed
            .iter()
            .map(|(name, (_, why))| (name.clone(), why.clone()))
            .collect();
        list.sort();
        list
    }

    /// Loads what is new or changed, drops what is gone. Blocking (loads
    /// compile and migrate): run it on the blocking pool.
    pub fn refresh(&self) {
        let current = self.snapshot();
        let mut next: HashMap<String, Arc<Served>> = HashMap::new();
        let mut changed = false;
        let sources = plugins::list(self.plugins_dir.as_deref());
        for source in &sources {
            if NEVER_SERVED.contains(&source.name.as_str()) {
                continue;
            }
            let Some(fingerprint) = fingerprint(source, self.plugins_dir.as_deref()) else {
                continue;
            };
            if let Some(old) = current.get(&source.name)
                && old.fingerprint == fingerprint
            {
                next.insert(source.name.clone(), old.clone());
                continue;
            }
            let already_failed = self
                .failed
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .get(&source.name)
                .is_some_and(|(f, _)| *f == fingerprint);
            if already_failed {
                if let Some(old) = current.get(&source.name) {
                    next.insert(source.name.clone(), old.clone());
                }
                continue;
            }
            let loaded = self.load(source, fingerprint.clone()).and_then(|served| {
                // One plugin per prefix: one already serving it keeps it.
                if let Some(prefix) = served.as_ref().and_then(|s| s.prefix.as_deref()) {
                    let holder = next.iter().chain(current.iter()).find(|(other, s)| {
                        **other != source.name && s.prefix.as_deref() == Some(prefix)
                    });
                    if let Some((other, _)) = holder {
                        anyhow::bail!("its prefix {prefix} is served by {other}");
                    }
                }
                Ok(served)
            });
            match loaded {
                Ok(Some(served)) => {
                    if current.contains_key(&source.name) {
                        tracing::info!(plugin = %source.name, "reloaded: new calls get the new build");
                    }
                    self.failed
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .remove(&source.name);
                    next.insert(source.name.clone(), Arc::new(served));
                    changed = true;
                }
                Ok(None) => {}
                Err(e) => {
                    let why = format!("{e:#}");
                    tracing::error!(plugin = %source.name, error = %why, "cannot serve this build");
                    self.failed
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .insert(source.name.clone(), (fingerprint, why));
                    // The build before it (if any) keeps serving.
                    if let Some(old) = current.get(&source.name) {
                        next.insert(source.name.clone(), old.clone());
                    }
                }
            }
        }
        if current.keys().any(|k| !next.contains_key(k)) {
            changed = true;
            for gone in current.keys().filter(|k| !next.contains_key(*k)) {
                tracing::info!(plugin = %gone, "no longer installed: not served");
            }
        }
        self.failed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|name, _| sources.iter().any(|s| &s.name == name));
        if changed {
            *self
                .served
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(next);
        }
        let snapshot = self.snapshot();
        self.metrics.observe_plugins(&snapshot);
        self.loaded
            .store(true, std::sync::atomic::Ordering::Release);
    }

    /// Loads one plugin with what was approved; `None` for a built-in that
    /// offers nothing over HTTP.
    fn load(&self, source: &Source, fingerprint: Fingerprint) -> anyhow::Result<Option<Served>> {
        let http =
            plugins::approved_http(self.plugins_dir.as_deref(), source).map_err(|f| f.error)?;
        if matches!(source.origin, Origin::BuiltIn(_)) && http.is_empty() {
            return Ok(None);
        }
        let plugin = plugins::load(&self.runtime, self.plugins_dir.as_deref(), source, false)
            .map_err(|f| f.error)?;
        let mut exports = BTreeMap::new();
        for name in &http.exports {
            let func = plugin.function(name).map_err(|e| {
                anyhow::anyhow!(
                    "its approval offers {name} over HTTP, which it does not export: {e}"
                )
            })?;
            exports.insert(name.clone(), func);
        }
        if let Some(prefix) = &http.prefix {
            if !plugin.handles_http() {
                anyhow::bail!(
                    "its approval serves it at {prefix}, but it does not export wasi:http/incoming-handler"
                );
            }
            if RESERVED
                .iter()
                .any(|r| prefix == r || prefix.starts_with(&format!("{r}/")))
            {
                anyhow::bail!(
                    "its prefix {prefix} is plinth's own ({})",
                    RESERVED.join(", ")
                );
            }
        }
        Ok(Some(Served {
            plugin,
            exports,
            prefix: http.prefix,
            fingerprint,
        }))
    }
}

/// A plugin's files as they are now: the component's identity on disk
/// (device, inode, size, modification time: `plinth plugin install` writes
/// a new file and renames it into place) and the digests of its approval
/// and its request; `None` when the component cannot be read (it is being
/// removed). Built-ins: their name (they change only with the binary).
fn fingerprint(source: &Source, plugins_dir: Option<&std::path::Path>) -> Option<Fingerprint> {
    use sha2::{Digest, Sha256};
    use std::os::unix::fs::MetadataExt;
    match &source.origin {
        Origin::BuiltIn(e) => Some(Fingerprint(format!("built-in {}", e.name))),
        Origin::Installed { wasm } | Origin::File { wasm } => {
            let meta = std::fs::metadata(wasm).ok()?;
            let mut hash = Sha256::new();
            hash.update(
                format!(
                    "{}:{}:{}:{}.{}",
                    meta.dev(),
                    meta.ino(),
                    meta.len(),
                    meta.mtime(),
                    meta.mtime_nsec()
                )
                .as_bytes(),
            );
            if let Some(dir) = plugins_dir
                && let Ok(approval) = std::fs::read(plugins::approval_path(dir, &source.name))
            {
                hash.update(b"\0approval\0");
                hash.update(&approval);
            }
            if let Some(manifest) = source.manifest_path()
                && let Ok(request) = std::fs::read(manifest)
            {
                hash.update(b"\0request\0");
                hash.update(&request);
            }
            Some(Fingerprint(hex::encode(hash.finalize())))
        }
    }
}
