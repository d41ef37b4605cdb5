//! The on-disk cache of compiled components.
//!
//! An entry is keyed by the SHA-256 of the component's bytes together with
//! the engine's compatibility hash (wasmtime version, target, settings), so a
//! changed component or a changed engine never finds a stale entry. An entry
//! is
//!
//! ```text
//! "plinthc2" | its key (32 bytes) | SHA-256(key | code) (32 bytes) | code
//! ```
//!
//! so it is bound to its key: an entry copied over another's file name (one
//! plugin's code put where another's is looked for) names the wrong key and
//! is refused, as is one that does not match its checksum, or that wasmtime
//! refuses; a refused entry is deleted and the component compiled again.
//! Entries are written to a temporary file and renamed into place, so a
//! crash never leaves half an entry.
//!
//! Trust: wasmtime runs cached code as native code. The checksum and the key
//! catch corruption and mix-ups, not an attacker who can write the
//! directory: the runtime refuses a cache directory that other users can
//! write to ([`check_dir`]), and creates a missing one readable by its user
//! only.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// The first bytes of an entry, and its format's version.
const MAGIC: &[u8; 8] = b"plinthc2";
/// Magic, key, checksum.
const HEADER: usize = 8 + 32 + 32;

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

/// Where a component's compiled form lives, and the key it must carry.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    path: PathBuf,
    key: [u8; 32],
}

/// The entry for `wasm` in `dir`.
pub(crate) fn entry(dir: &Path, engine: &Engine, wasm: &[u8]) -> Entry {
    let mut h = ShaHasher(Sha256::new());
    h.0.update(Sha256::digest(wasm));
    engine.precompile_compatibility_hash().hash(&mut h);
    let key: [u8; 32] = h.0.finalize().into();
    Entry {
        path: dir.join(format!("{}.cwasm", hex::encode(key))),
        key,
    }
}

fn checksum(key: &[u8], code: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(key);
    h.update(code);
    h.finalize().into()
}

/// Why a cache directory is not used. A missing one is fine: it is created
/// (for this user only) when the first entry is written.
pub(crate) fn check_dir(dir: &Path) -> Result<(), String> {
    match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e.to_string()),
        Ok(meta) if !meta.is_dir() => Err("not a directory".into()),
        Ok(meta) => check_owner(&meta),
    }
}

#[cfg(unix)]
fn create_private(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(not(unix))]
fn create_private(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

/// Cached code runs as native code: a directory another user can write to
/// (or that another user owns) could hand the host anyone's code.
#[cfg(unix)]
fn check_owner(meta: &std::fs::Metadata) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    if meta.mode() & 0o022 != 0 {
        return Err(format!(
            "other users can write to it (mode {:o}); it must be writable by its owner only",
            meta.mode() & 0o777
        ));
    }
    let mine = rustix::process::geteuid().as_raw();
    if mine != meta.uid() {
        return Err(format!(
            "it belongs to another user (uid {}, not {mine}); it must be this user's",
            meta.uid()
        ));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_owner(_meta: &std::fs::Metadata) -> Result<(), String> {
    Ok(())
}

/// The cached component of `entry`, if there is a sound one. A corrupt,
/// misplaced or refused entry is deleted.
pub(crate) fn load(engine: &Engine, entry: &Entry) -> Option<Component> {
    let path = &entry.path;
    let data = std::fs::read(path).ok()?;
    let why = if data.len() <= HEADER || &data[..8] != MAGIC {
        "not a plinth cache entry"
    } else if data[8..40] != entry.key {
        "it belongs to another component (its key differs)"
    } else if data[40..72] != checksum(&entry.key, &data[HEADER..]) {
        "corrupt (its checksum differs)"
    } else {
        // SAFETY: the bytes are what `Component::serialize` wrote for this
        // component on an engine with the same compatibility hash (the key,
        // which the entry carries), unchanged since (the checksum); wasmtime
        // also checks its own header. The directory is writable by this
        // user only (`check_dir`).
        #[allow(unsafe_code)]
        let component = unsafe { Component::deserialize(engine, &data[HEADER..]) };
        match component {
            Ok(c) => return Some(c),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cache entry refused by wasmtime; recompiling");
                let _ = std::fs::remove_file(path);
                return None;
            }
        }
    };
    tracing::warn!(path = %path.display(), why, "cache entry refused; recompiling");
    let _ = std::fs::remove_file(path);
    None
}

/// Writes `component` as `entry` (best effort: a cache that cannot be
/// written only costs a compile next time).
pub(crate) fn store(component: &Component, entry: &Entry) {
    let path = &entry.path;
    let result = (|| -> Result<(), String> {
        let code = component.serialize().map_err(|e| e.to_string())?;
        let mut data = Vec::with_capacity(HEADER + code.len());
        data.extend_from_slice(MAGIC);
        data.extend_from_slice(&entry.key);
        data.extend_from_slice(&checksum(&entry.key, &code));
        data.extend_from_slice(&code);
        if let Some(dir) = path.parent().filter(|d| !d.exists()) {
            create_private(dir).map_err(|e| e.to_string())?;
        }
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, &data).map_err(|e| e.to_string())?;
        std::fs::rename(&tmp, path).map_err(|e| e.to_string())
    })();
    if let Err(e) = result {
        tracing::warn!(path = %path.display(), error = %e, "cannot write the compile cache");
    }
}
