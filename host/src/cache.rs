//! The on-disk cache of compiled components.
//!
//! An entry is keyed by a BLAKE3 hash of the component's bytes together with
//! the engine's compatibility hash (wasmtime version, target, settings), so a
//! changed component or a changed engine never finds a stale entry. An entry
//! is two files:
//!
//! * `KEY.cwasm`: the compiled code exactly as wasmtime serialised it, so
//!   that it is mapped into memory as it is (`Component::deserialize_file`):
//!   no copy of the code, and an interpreter's initial memory (tens of MiB
//!   for a Python component) is mapped copy-on-write from the file;
//! * `KEY.meta`: `"plinthm1"`, the key, BLAKE3(key | code), the identity
//!   of the `.cwasm` file when last verified (device, inode, size,
//!   modification and change times), and a label: whose entry it is (the
//!   plugin's name and, for a component loaded from a file, the file).
//!
//! An entry is bound to its key: one plugin's entry copied over another's
//! names the wrong key and is refused, as is code that does not match its
//! checksum, or that wasmtime refuses; a refused entry is deleted and the
//! component compiled again. Both files are written to temporary files,
//! synced and renamed into place, the code first, so a crash never leaves
//! half an entry (code without its `.meta` is not an entry).
//!
//! A cached load of an 18 MB Python component would hash 52 MB (the
//! component for its key, the 34 MB code for its checksum). Two measures make
//! it cheap (numbers in docs/BENCHMARKS.md):
//!
//! * BLAKE3 rather than SHA-256: several GB/s with the CPU's vector units
//!   instead of ~0.4 GB/s, and still a cryptographic hash;
//! * the hash of a file is not recomputed while the file is provably the one
//!   hashed: a `KEY.src` record keeps, for a component loaded from a path,
//!   the file's identity and its key, and the `.meta` keeps the `.cwasm`'s
//!   identity. An identity is device, inode, size, modification time and
//!   change time; the kernel sets the change time on every write to the
//!   file, rename onto it or change of its metadata, and no user can set it
//!   back, so an unchanged identity means unchanged bytes (the rule git's
//!   index relies on). A file whose change time is less than two seconds
//!   older than the moment it was hashed could still be written within the
//!   same timestamp tick, so its identity is not recorded ("racy", as git
//!   says) and the next load hashes it again.
//!
//! What this trusts beyond the hashes: that the file system reports change
//! times honestly. It does not protect against bit rot under the file
//! system (no cache of native code does; a read of the code itself would
//! not either).
//!
//! Trust: wasmtime runs cached code as native code. The checksum and the key
//! catch corruption and mix-ups, not an attacker who can write the
//! directory: the runtime refuses a cache directory that other users can
//! write to ([`check_dir`]), and creates a missing one readable by its user
//! only.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use wasmtime::Engine;
use wasmtime::component::Component;

/// The first bytes of a `.meta`, and its format's version.
const META_MAGIC: &[u8; 8] = b"plinthm1";
/// The first bytes of a `.src`.
const SRC_MAGIC: &[u8; 8] = b"plinths1";
/// Magic, key, checksum, identity, label length.
const META_HEADER: usize = 8 + 32 + 32 + IDENTITY + 4;
/// The longest label kept (a path longer than this is cut).
const MAX_LABEL: usize = 4096;
/// A file identity's size: five u64s.
const IDENTITY: usize = 40;
/// A file whose change time is this recent when hashed is hashed again
/// next time (its identity is not recorded).
const RACY: std::time::Duration = std::time::Duration::from_secs(2);

/// Where a component's compiled form lives, the key it must carry and the
/// label it is written with.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    dir: PathBuf,
    key: [u8; 32],
    label: String,
    /// The source file's key record still to write (`KEY.src`): written
    /// with the entry, or when a load finds the entry sound.
    record: Option<(PathBuf, Vec<u8>)>,
}

impl Entry {
    fn save_record(&self) {
        if let Some((path, data)) = &self.record
            && let Err(e) = write_atomically(path, data)
        {
            tracing::debug!(error = %e, "cannot record a component's key");
        }
    }

    fn code_path(&self) -> PathBuf {
        code_path(&self.dir, &self.key)
    }

    fn meta_path(&self) -> PathBuf {
        self.dir.join(format!("{}.meta", hex::encode(self.key)))
    }
}

fn code_path(dir: &Path, key: &[u8; 32]) -> PathBuf {
    dir.join(format!("{}.cwasm", hex::encode(key)))
}

/// Who an entry belongs to: a plugin's name and, when it was loaded from a
/// file, that file.
fn label(plugin: &str, source: Option<&Path>) -> String {
    let mut label = match source {
        Some(path) => format!("{plugin}\t{}", path.display()),
        None => plugin.to_string(),
    };
    if label.len() > MAX_LABEL {
        let mut cut = MAX_LABEL;
        while !label.is_char_boundary(cut) {
            cut -= 1;
        }
        label.truncate(cut);
    }
    label
}

/// Feeds `Hash` output into BLAKE3.
struct Blake3Hasher(blake3::Hasher);

impl std::hash::Hasher for Blake3Hasher {
    fn finish(&self) -> u64 {
        0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

/// The key of `wasm` on `engine`.
fn key(engine: &Engine, wasm: &[u8]) -> [u8; 32] {
    use std::hash::Hash;
    let mut h = Blake3Hasher(blake3::Hasher::new());
    h.0.update(blake3::hash(wasm).as_bytes());
    engine.precompile_compatibility_hash().hash(&mut h);
    *h.0.finalize().as_bytes()
}

/// A file's identity: device, inode, size, modification and change times
/// (nanoseconds). Unchanged identity, unchanged content (see the module
/// docs); `None` where it cannot be had (then nothing is skipped).
#[cfg(unix)]
fn identity(meta: &std::fs::Metadata) -> Option<[u64; 5]> {
    use std::os::unix::fs::MetadataExt;
    let nanos = |s: i64, ns: i64| {
        u64::try_from(s)
            .ok()?
            .checked_mul(1_000_000_000)?
            .checked_add(u64::try_from(ns).ok()?)
    };
    Some([
        meta.dev(),
        meta.ino(),
        meta.size(),
        nanos(meta.mtime(), meta.mtime_nsec())?,
        nanos(meta.ctime(), meta.ctime_nsec())?,
    ])
}

#[cfg(not(unix))]
fn identity(_meta: &std::fs::Metadata) -> Option<[u64; 5]> {
    None
}

/// The identity to record for a file just hashed: none while its change
/// time is too recent to rule out a write within the same tick.
fn settled_identity(meta: &std::fs::Metadata) -> Option<[u64; 5]> {
    let id = identity(meta)?;
    let changed = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(id[4]);
    let age = SystemTime::now().duration_since(changed).ok()?;
    (age >= RACY).then_some(id)
}

fn encode_identity(id: Option<[u64; 5]>) -> [u8; IDENTITY] {
    let mut out = [0u8; IDENTITY];
    if let Some(id) = id {
        for (chunk, v) in out.chunks_exact_mut(8).zip(id) {
            chunk.copy_from_slice(&v.to_le_bytes());
        }
    }
    out
}

fn decode_identity(bytes: &[u8]) -> Option<[u64; 5]> {
    let mut id = [0u64; 5];
    for (v, chunk) in id.iter_mut().zip(bytes.chunks_exact(8)) {
        *v = u64::from_le_bytes(chunk.try_into().ok()?);
    }
    // All zeros: nothing recorded.
    (id != [0; 5]).then_some(id)
}

/// Where the key of the component at `source` is recorded for `engine`
/// (another engine's key for the same file is another record).
fn src_path(dir: &Path, engine: &Engine, source: &Path) -> PathBuf {
    use std::hash::Hash;
    let mut h = Blake3Hasher(blake3::Hasher::new());
    h.0.update(source.as_os_str().as_encoded_bytes());
    engine.precompile_compatibility_hash().hash(&mut h);
    dir.join(format!("{}.src", &h.0.finalize().to_hex()[..32]))
}

/// The key recorded for `source` if the file is still the one it was
/// computed from.
fn recorded_key(
    dir: &Path,
    engine: &Engine,
    source: &Path,
    meta: &std::fs::Metadata,
) -> Option<[u8; 32]> {
    let now = identity(meta)?;
    let data = std::fs::read(src_path(dir, engine, source)).ok()?;
    if data.len() < 8 + IDENTITY + 32 || &data[..8] != SRC_MAGIC {
        return None;
    }
    if decode_identity(&data[8..8 + IDENTITY])? != now {
        return None;
    }
    data[8 + IDENTITY..8 + IDENTITY + 32].try_into().ok()
}

/// The record of `key` for the file `source`, to write once the entry is
/// known good: none while the file's identity has not settled.
fn key_record(
    dir: &Path,
    engine: &Engine,
    source: &Path,
    meta: &std::fs::Metadata,
    key: &[u8; 32],
) -> Option<(PathBuf, Vec<u8>)> {
    let id = settled_identity(meta)?;
    let mut data = Vec::with_capacity(8 + IDENTITY + 32 + 256);
    data.extend_from_slice(SRC_MAGIC);
    data.extend_from_slice(&encode_identity(Some(id)));
    data.extend_from_slice(key);
    data.extend_from_slice(source.as_os_str().as_encoded_bytes());
    Some((src_path(dir, engine, source), data))
}

/// The entry for `wasm` in `dir`, for plugin `plugin` loaded from `source`
/// (whose metadata, read before its bytes, is `source_meta`).
pub(crate) fn entry(
    dir: &Path,
    engine: &Engine,
    wasm: &[u8],
    plugin: &str,
    source: Option<(&Path, &std::fs::Metadata)>,
) -> Entry {
    let mut record = None;
    let key = match source {
        Some((path, meta)) => recorded_key(dir, engine, path, meta).unwrap_or_else(|| {
            let key = key(engine, wasm);
            record = key_record(dir, engine, path, meta, &key);
            key
        }),
        None => key(engine, wasm),
    };
    Entry {
        dir: dir.to_path_buf(),
        key,
        label: label(plugin, source.map(|(p, _)| p)),
        record,
    }
}

/// The file the compiled code of `wasm` is cached in under `dir` (whether
/// or not it exists yet).
pub fn entry_path(dir: &Path, engine: &Engine, wasm: &[u8]) -> PathBuf {
    code_path(dir, &key(engine, wasm))
}

fn checksum(key: &[u8], code: &[u8]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(key);
    h.update(code);
    *h.finalize().as_bytes()
}

/// Writes `data` to `path` through a synced temporary file and a rename.
fn write_atomically(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(data)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
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

/// A `.meta` file's parts.
struct Meta {
    key: [u8; 32],
    checksum: [u8; 32],
    identity: Option<[u64; 5]>,
    label: String,
}

fn read_meta(path: &Path) -> Result<Meta, &'static str> {
    let data = std::fs::read(path).map_err(|_| "no readable .meta")?;
    if data.len() < META_HEADER || &data[..8] != META_MAGIC {
        return Err("not a plinth cache entry");
    }
    let at = 8 + 32 + 32 + IDENTITY;
    let len = u32::from_le_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]]) as usize;
    let label = data
        .get(META_HEADER..META_HEADER + len)
        .filter(|_| len <= MAX_LABEL)
        .and_then(|l| std::str::from_utf8(l).ok())
        .ok_or("not a plinth cache entry (bad label)")?;
    let mut key = [0u8; 32];
    let mut checksum = [0u8; 32];
    key.copy_from_slice(&data[8..40]);
    checksum.copy_from_slice(&data[40..72]);
    Ok(Meta {
        key,
        checksum,
        identity: decode_identity(&data[72..72 + IDENTITY]),
        label: label.to_string(),
    })
}

fn write_meta(path: &Path, meta: &Meta) -> std::io::Result<()> {
    let label = meta.label.as_bytes();
    let mut data = Vec::with_capacity(META_HEADER + label.len());
    data.extend_from_slice(META_MAGIC);
    data.extend_from_slice(&meta.key);
    data.extend_from_slice(&meta.checksum);
    data.extend_from_slice(&encode_identity(meta.identity));
    data.extend_from_slice(&u32::try_from(label.len()).unwrap_or(0).to_le_bytes());
    data.extend_from_slice(label);
    write_atomically(path, &data)
}

/// Whether the code file matches `meta`: by its recorded identity when it
/// is unchanged, otherwise by hashing it (and recording its identity when
/// it has settled).
fn verify_code(code_path: &Path, meta_path: &Path, meta: &Meta) -> Result<(), &'static str> {
    let file_meta = std::fs::metadata(code_path).map_err(|_| "its code is missing")?;
    if meta.identity.is_some() && identity(&file_meta) == meta.identity {
        return Ok(());
    }
    let code = std::fs::read(code_path).map_err(|_| "its code is unreadable")?;
    if checksum(&meta.key, &code) != meta.checksum {
        return Err("corrupt (its checksum differs)");
    }
    if let Some(id) = settled_identity(&file_meta) {
        let updated = Meta {
            identity: Some(id),
            label: meta.label.clone(),
            ..*meta
        };
        let _ = write_meta(meta_path, &updated);
    }
    Ok(())
}

fn remove_entry(entry: &Entry) {
    let _ = std::fs::remove_file(entry.meta_path());
    let _ = std::fs::remove_file(entry.code_path());
}

/// The cached component of `entry`, if there is a sound one. A corrupt,
/// misplaced or refused entry is deleted.
pub(crate) fn load(engine: &Engine, entry: &Entry) -> Option<Component> {
    let (code_path, meta_path) = (entry.code_path(), entry.meta_path());
    if !meta_path.exists() {
        return None;
    }
    let checked = read_meta(&meta_path).and_then(|meta| {
        if meta.key != entry.key {
            return Err("it belongs to another component (its key differs)");
        }
        verify_code(&code_path, &meta_path, &meta)
    });
    if let Err(why) = checked {
        tracing::warn!(path = %code_path.display(), why, "cache entry refused; recompiling");
        remove_entry(entry);
        return None;
    }
    // SAFETY: the file holds what `Component::serialize` wrote for this
    // component on an engine with the same compatibility hash (the key,
    // which the entry carries), unchanged since (the checksum, or the
    // identity it was verified with); wasmtime also checks its own header.
    // The directory is writable by this user only (`check_dir`), and entries
    // are replaced by rename, never rewritten in place, so the mapped file
    // does not change under the map.
    #[allow(unsafe_code)]
    let component = unsafe { Component::deserialize_file(engine, &code_path) };
    match component {
        Ok(c) => {
            entry.save_record();
            Some(c)
        }
        Err(e) => {
            tracing::warn!(path = %code_path.display(), error = %e, "cache entry refused by wasmtime; recompiling");
            remove_entry(entry);
            None
        }
    }
}

/// Writes `component` as `entry` (best effort: a cache that cannot be
/// written only costs a compile next time), and deletes the entries of
/// earlier builds of the same file.
pub(crate) fn store(component: &Component, entry: &Entry) {
    let code_path = entry.code_path();
    let result = (|| -> Result<(), String> {
        let code = component.serialize().map_err(|e| e.to_string())?;
        if !entry.dir.exists() {
            create_private(&entry.dir).map_err(|e| e.to_string())?;
        }
        write_atomically(&code_path, &code).map_err(|e| e.to_string())?;
        let meta = Meta {
            key: entry.key,
            checksum: checksum(&entry.key, &code),
            // Just written: too recent to record (the first cached load
            // verifies the checksum and records it).
            identity: None,
            label: entry.label.clone(),
        };
        write_meta(&entry.meta_path(), &meta).map_err(|e| e.to_string())
    })();
    match result {
        Ok(()) => {
            entry.save_record();
            remove_superseded(entry);
        }
        Err(e) => {
            tracing::warn!(path = %code_path.display(), error = %e, "cannot write the compile cache");
        }
    }
}

/// Deletes the other entries carrying `entry`'s label when it names a file:
/// they are earlier builds of that file, which no load will ask for again.
fn remove_superseded(entry: &Entry) {
    if !entry.label.contains('\t') {
        return;
    }
    for other in list(&entry.dir).unwrap_or_default() {
        if other.path != entry.code_path() && other.label() == entry.label {
            tracing::info!(path = %other.path.display(), "removing the cache entry of an earlier build");
            for file in other.files() {
                let _ = std::fs::remove_file(file);
            }
        }
    }
}

/// One entry (or stray file) of a cache directory, as `plinth cache list`
/// shows it.
#[derive(Debug, Clone)]
pub struct CachedEntry {
    /// The compiled code's file (for a stray file, that file).
    pub path: PathBuf,
    /// The size of its files in bytes.
    pub bytes: u64,
    /// When its code was written.
    pub modified: Option<SystemTime>,
    /// The plugin it was compiled for (empty for a stray file).
    pub plugin: String,
    /// The component's file, when it was loaded from one.
    pub source: Option<PathBuf>,
    /// Whether it is a whole entry (code and `.meta`): a temporary file
    /// left by a crash, code without its `.meta`, or anything else, is not.
    pub well_formed: bool,
}

impl CachedEntry {
    fn label(&self) -> String {
        match &self.source {
            Some(s) => format!("{}\t{}", self.plugin, s.display()),
            None => self.plugin.clone(),
        }
    }

    /// Every file that makes up this entry: its code and its `.meta`.
    pub fn files(&self) -> Vec<PathBuf> {
        let mut files = vec![self.path.clone()];
        if self.well_formed {
            files.push(self.path.with_extension("meta"));
        }
        files
    }
}

/// Every entry in the cache directory `dir`, with what its `.meta` says,
/// and every stray file the cache left (code without its `.meta`, a
/// temporary file); files the cache does not write are not listed. The `.src` records (which file had which key) are
/// not listed: they are kept while their entry is. A missing directory lists
/// nothing.
///
/// # Errors
/// When `dir` exists but cannot be read.
pub fn list(dir: &Path) -> std::io::Result<Vec<CachedEntry>> {
    let read = match std::fs::read_dir(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        other => other?,
    };
    let mut all = Vec::new();
    for item in read.flatten() {
        let path = item.path();
        let Ok(file_meta) = item.metadata() else {
            continue;
        };
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        // Only what the cache writes: code, and temporary files a crash
        // left. Anything else in the directory is not the cache's to list
        // or delete (`plinth --cache-dir ~/somewhere cache clear` must not
        // empty a folder of someone's files).
        if !file_meta.is_file() || !(ext == "cwasm" || ext.starts_with("tmp")) {
            continue;
        }
        let meta = (ext == "cwasm")
            .then(|| read_meta(&path.with_extension("meta")).ok())
            .flatten();
        let meta_bytes = std::fs::metadata(path.with_extension("meta")).map_or(0, |m| m.len());
        let (plugin, source, well_formed, bytes) = match meta {
            Some(m) => {
                let (plugin, source) = match m.label.split_once('\t') {
                    Some((p, s)) => (p.to_string(), Some(PathBuf::from(s))),
                    None => (m.label.clone(), None),
                };
                (plugin, source, true, file_meta.len() + meta_bytes)
            }
            None => (String::new(), None, false, file_meta.len()),
        };
        all.push(CachedEntry {
            path,
            bytes,
            modified: file_meta.modified().ok(),
            plugin,
            source,
            well_formed,
        });
    }
    all.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(all)
}

/// Deletes the `.src` records of `dir` whose key has no entry left, and
/// `.meta` files whose code is gone. Returns how many files it deleted.
pub fn remove_orphans(dir: &Path) -> usize {
    let Ok(read) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for item in read.flatten() {
        let path = item.path();
        let orphan = match path.extension().and_then(|e| e.to_str()) {
            Some("meta") => !path.with_extension("cwasm").exists(),
            Some("src") => std::fs::read(&path).ok().is_none_or(|data| {
                data.get(8 + IDENTITY..8 + IDENTITY + 32)
                    .and_then(|k| <[u8; 32]>::try_from(k).ok())
                    .is_none_or(|key| !code_path(dir, &key).exists())
            }),
            _ => false,
        };
        if orphan && std::fs::remove_file(&path).is_ok() {
            removed += 1;
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_label_is_cut_at_a_character_boundary() {
        let long = "é".repeat(MAX_LABEL);
        let l = label("p", Some(Path::new(&long)));
        assert!(l.len() <= MAX_LABEL);
        assert!(l.starts_with("p\t"));
    }

    #[test]
    fn identities_round_trip_and_zero_is_none() {
        let id = [1, 2, 3, u64::MAX, 5];
        assert_eq!(decode_identity(&encode_identity(Some(id))), Some(id));
        assert_eq!(decode_identity(&encode_identity(None)), None);
    }

    #[test]
    fn a_file_changed_just_now_is_not_recorded() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("f");
        std::fs::write(&path, b"x")?;
        assert_eq!(settled_identity(&std::fs::metadata(&path)?), None);
        Ok(())
    }
}
