//! The on-disk cache of compiled components.
//!
//! An entry is keyed by the SHA-256 of the component's bytes together with
//! the engine's compatibility hash (wasmtime version, target, settings), so a
//! changed component or a changed engine never finds a stale entry. Each
//! entry starts with the SHA-256 of the compiled code that follows; an entry
//! that does not match its checksum, or that wasmtime refuses, is deleted and
//! the component is compiled again. Entries are written to a temporary file
//! and renamed into place, so a crash never leaves half an entry.
//!
//! Trust: wasmtime runs cached code as native code. The checksum catches
//! corruption, not an attacker: the cache directory must be writable only by
//! the user the host runs as.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Feeds `Hash` output into SHA-256.
struct ShaHasher(Sha256);

impl Hasher for ShaHasher {
    fn finish(&self) -> u64 {
        0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

/// Where a component's compiled form lives in `dir`.
pub(crate) fn entry_path(dir: &Path, engine: &Engine, wasm: &[u8]) -> PathBuf {
    let mut h = ShaHasher(Sha256::new());
    h.0.update(Sha256::digest(wasm));
    engine.precompile_compatibility_hash().hash(&mut h);
    dir.join(format!("{}.cwasm", hex::encode(h.0.finalize())))
}

/// The cached component at `path`, if there is a sound one. A corrupt or
/// refused entry is deleted.
pub(crate) fn load(engine: &Engine, path: &Path) -> Option<Component> {
    let data = std::fs::read(path).ok()?;
    let sound = data.len() > 32 && Sha256::digest(&data[32..]).as_slice() == &data[..32];
    if sound {
        // SAFETY: the bytes are what `Component::serialize` wrote for an engine
        // with the same compatibility hash (the key), unchanged since (the
        // checksum); wasmtime also checks its own header. The cache directory
        // is the host's own (see the module docs).
        #[allow(unsafe_code)]
        let component = unsafe { Component::deserialize(engine, &data[32..]) };
        match component {
            Ok(c) => return Some(c),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cache entry refused; recompiling")
            }
        }
    } else {
        tracing::warn!(path = %path.display(), "corrupt cache entry; recompiling");
    }
    let _ = std::fs::remove_file(path);
    None
}

/// Writes `component` to `path` (best effort: a cache that cannot be
/// written only costs a compile next time).
pub(crate) fn store(component: &Component, path: &Path) {
    let result = (|| -> Result<(), String> {
        let code = component.serialize().map_err(|e| e.to_string())?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        }
        let mut data = Vec::with_capacity(32 + code.len());
        data.extend_from_slice(&Sha256::digest(&code));
        data.extend_from_slice(&code);
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, &data).map_err(|e| e.to_string())?;
        std::fs::rename(&tmp, path).map_err(|e| e.to_string())
    })();
    if let Err(e) = result {
        tracing::warn!(path = %path.display(), error = %e, "cannot write the compile cache");
    }
}
