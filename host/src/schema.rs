//! A plugin's schema: the numbered migrations it ships, per dialect.
//!
//! They are files beside its manifest, one directory per dialect:
//!
//! ```text
//! notes.wasm
//! notes.toml
//! notes.migrations/
//!     sqlite/0001-notes.sql
//!     sqlite/0002-tags.sql
//!     postgresql/0001-notes.sql
//! ```
//!
//! Files rather than an export of the component, because the host applies
//! them before any of the plugin's code runs (no instance, no time or memory
//! budget at load), an operator reads what a plugin will do to the database
//! before installing it, and `plinth plugin inspect` lists them without
//! running anything. A file is `<number>-<name>.sql`, numbered 1, 2, 3, …
//! with no gap; its statements are separated by `;`.
//!
//! When a plugin loads, the runtime applies the migrations of its
//! database's dialect ([`plinth_store::Db::migrate_plugin`]): the missing
//! ones in one transaction, each recorded with its SHA-256. A plugin that
//! ships migrations but none for the database's dialect is refused.

use std::path::{Path, PathBuf};

use plinth_store::Dialect;
use plinth_store::plugin::PluginMigration;

use crate::{Error, Result};

/// The most bytes one migration file may have: 1 MiB.
pub const MAX_MIGRATION_BYTES: u64 = 1 << 20;
/// The most migrations a plugin may ship per dialect.
pub const MAX_MIGRATIONS: usize = 1000;

/// The dialects' directory names.
const DIALECTS: [(&str, Dialect); 2] = [
    ("sqlite", Dialect::Sqlite),
    ("postgresql", Dialect::Postgres),
];

/// A plugin's migrations, per dialect (empty: it keeps no tables of its own).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Migrations {
    /// For SQLite.
    pub sqlite: Vec<PluginMigration>,
    /// For PostgreSQL.
    pub postgresql: Vec<PluginMigration>,
}

impl Migrations {
    /// Whether the plugin ships none.
    pub fn is_empty(&self) -> bool {
        self.sqlite.is_empty() && self.postgresql.is_empty()
    }

    /// The list for `dialect`.
    pub fn for_dialect(&self, dialect: Dialect) -> &[PluginMigration] {
        match dialect {
            Dialect::Postgres => &self.postgresql,
            _ => &self.sqlite,
        }
    }

    /// The SHA-256, in hex, of every migration it ships — each dialect's
    /// name, each migration's number, name and SQL, length-prefixed — what
    /// an approval records of them ([`crate::Identity`]). A plugin that
    /// ships none has the digest of nothing.
    pub fn digest(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut hash = Sha256::new();
        for (name, dialect) in DIALECTS {
            for m in self.for_dialect(dialect) {
                for part in [name.as_bytes(), m.name.as_bytes(), m.sql.as_bytes()] {
                    hash.update((part.len() as u64).to_le_bytes());
                    hash.update(part);
                }
                hash.update(m.version.to_le_bytes());
            }
        }
        hex::encode(hash.finalize())
    }

    /// The dialects it ships migrations for.
    pub fn dialects(&self) -> Vec<&'static str> {
        DIALECTS
            .iter()
            .filter(|(_, d)| !self.for_dialect(*d).is_empty())
            .map(|(name, _)| *name)
            .collect()
    }

    /// The directory beside `manifest` that holds a plugin's migrations
    /// (`notes.toml` → `notes.migrations`).
    pub fn dir_for(manifest: &Path) -> PathBuf {
        manifest.with_extension("migrations")
    }

    /// Reads the migrations in `dir`; none when it does not exist.
    ///
    /// # Errors
    /// [`Error::Manifest`] naming the file: an entry that is not a dialect's
    /// directory or a `<number>-<name>.sql` file, numbering with a gap or a
    /// repeat, a file over [`MAX_MIGRATION_BYTES`] or not UTF-8.
    pub fn read_dir(dir: &Path) -> Result<Self> {
        let io = |path: &Path, e: std::io::Error| Error::Io {
            path: path.to_path_buf(),
            source: e,
        };
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(io(dir, e)),
        };
        let mut files = Vec::new();
        for entry in entries {
            let path = entry.map_err(|e| io(dir, e))?.path();
            let dialect = file_name(&path);
            if !path.is_dir() || !DIALECTS.iter().any(|(name, _)| *name == dialect) {
                return Err(bad(
                    &path,
                    "not a dialect's directory (expected sqlite/ or postgresql/)".into(),
                ));
            }
            for file in std::fs::read_dir(&path).map_err(|e| io(&path, e))? {
                let file = file.map_err(|e| io(&path, e))?.path();
                if files.len() >= 2 * MAX_MIGRATIONS {
                    return Err(bad(dir, format!("more than {MAX_MIGRATIONS} migrations")));
                }
                let bytes = crate::files::read_regular_file(&file, MAX_MIGRATION_BYTES)?;
                let sql =
                    String::from_utf8(bytes).map_err(|_| bad(&file, "not UTF-8 text".into()))?;
                files.push((dialect.clone(), file_name(&file), sql, Some(file)));
            }
        }
        Self::gather(files, &dir.display().to_string())
    }

    /// Migrations from `(dialect, file name, SQL)` triples (a binary's
    /// embedded copy of a `<name>.migrations` directory); `origin` names
    /// them in errors.
    ///
    /// # Errors
    /// As [`Migrations::read_dir`].
    pub fn from_files(files: &[(&str, &str, &str)], origin: &str) -> Result<Self> {
        let files = files
            .iter()
            .map(|(d, f, sql)| (d.to_string(), f.to_string(), sql.to_string(), None))
            .collect();
        Self::gather(files, origin)
    }

    fn gather(files: Vec<(String, String, String, Option<PathBuf>)>, origin: &str) -> Result<Self> {
        let mut out = Self::default();
        let mut by_dialect: Vec<(Dialect, Vec<Numbered>)> = Vec::new();
        for (dialect, file, sql, path) in files {
            let path = path.unwrap_or_else(|| Path::new(origin).join(&dialect).join(&file));
            let Some(&(_, d)) = DIALECTS.iter().find(|(name, _)| *name == dialect) else {
                return Err(bad(
                    &path,
                    format!("{dialect:?} is not a dialect (expected sqlite/ or postgresql/)"),
                ));
            };
            if file.len() > MAX_FILE_NAME || sql.len() as u64 > MAX_MIGRATION_BYTES {
                return Err(bad(&path, "too large".into()));
            }
            let (version, name) = parse_file_name(&file).ok_or_else(|| {
                bad(
                    &path,
                    "a migration is named <number>-<name>.sql (e.g. 0001-notes.sql)".into(),
                )
            })?;
            match by_dialect.iter_mut().find(|(x, _)| *x == d) {
                Some((_, list)) => list.push((version, name, sql, path)),
                None => by_dialect.push((d, vec![(version, name, sql, path)])),
            }
        }
        for (dialect, mut list) in by_dialect {
            if list.len() > MAX_MIGRATIONS {
                return Err(bad(
                    Path::new(origin),
                    format!("more than {MAX_MIGRATIONS} migrations"),
                ));
            }
            list.sort_by_key(|(v, ..)| *v);
            let mut migrations = Vec::with_capacity(list.len());
            for (i, (version, name, sql, path)) in list.into_iter().enumerate() {
                let expected = u32::try_from(i + 1).unwrap_or(u32::MAX);
                if version != expected {
                    return Err(bad(
                        &path,
                        format!(
                            "numbered {version}; expected {expected} (migrations are 1, 2, 3, … with no gap)"
                        ),
                    ));
                }
                migrations.push(PluginMigration { version, name, sql });
            }
            match dialect {
                Dialect::Postgres => out.postgresql = migrations,
                _ => out.sqlite = migrations,
            }
        }
        Ok(out)
    }
}

/// The SHA-256 of `bytes`, in hex.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(bytes))
}

/// A migration file read: its number, name, SQL and where it came from.
type Numbered = (u32, String, String, PathBuf);

/// The longest migration file name.
const MAX_FILE_NAME: usize = 255;

fn bad(path: &Path, reason: String) -> Error {
    Error::Manifest {
        path: path.display().to_string(),
        reason,
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// `0002-add-tags.sql` → `(2, "add-tags")`.
fn parse_file_name(file: &str) -> Option<(u32, String)> {
    let stem = file.strip_suffix(".sql")?;
    let digits = stem.chars().take_while(char::is_ascii_digit).count();
    let (number, rest) = stem.split_at(digits);
    let name = rest.strip_prefix('-').or_else(|| rest.strip_prefix('_'))?;
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !ok || number.is_empty() || number.len() > 6 {
        return None;
    }
    Some((number.parse().ok()?, name.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_a_number_and_a_name() {
        assert_eq!(parse_file_name("0001-notes.sql"), Some((1, "notes".into())));
        assert_eq!(
            parse_file_name("12_add_tags.sql"),
            Some((12, "add_tags".into()))
        );
        for bad in [
            "notes.sql",
            "0001.sql",
            "0001-.sql",
            "0001-notes.txt",
            "0001-no tes.sql",
            "1234567-x.sql",
            "-1-x.sql",
        ] {
            assert_eq!(parse_file_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_directory_is_read_in_order_and_gaps_are_refused() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let missing = Migrations::read_dir(&dir.path().join("none"))?;
        assert!(missing.is_empty());
        let sqlite = dir.path().join("sqlite");
        std::fs::create_dir(&sqlite)?;
        std::fs::write(sqlite.join("0002-b.sql"), "CREATE TABLE b (x);")?;
        std::fs::write(sqlite.join("0001-a.sql"), "CREATE TABLE a (x);")?;
        let m = Migrations::read_dir(dir.path())?;
        assert_eq!(m.sqlite.len(), 2);
        assert_eq!(m.sqlite[0].name, "a");
        assert_eq!(m.dialects(), ["sqlite"]);
        std::fs::write(sqlite.join("0004-d.sql"), "")?;
        assert!(matches!(
            Migrations::read_dir(dir.path()),
            Err(Error::Manifest { reason, .. }) if reason.contains("expected 3")
        ));
        std::fs::remove_file(sqlite.join("0004-d.sql"))?;
        std::fs::create_dir(dir.path().join("postgres"))?;
        assert!(matches!(
            Migrations::read_dir(dir.path()),
            Err(Error::Manifest { reason, .. }) if reason.contains("dialect")
        ));
        Ok(())
    }
}
