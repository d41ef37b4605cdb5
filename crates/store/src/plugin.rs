//! What a plugin keeps of its own: its schema (numbered migrations it ships,
//! applied by the host and recorded), its key-value buckets, and what both
//! take up.
//!
//! # Migrations
//!
//! A plugin ships migrations `1, 2, 3, …` per dialect. [`Db::migrate_plugin`]
//! applies the ones the database has not recorded, all in one unit of work
//! under the plugin's schema lock (on SQLite the write lock, on PostgreSQL an
//! advisory lock per plugin): hosts loading the same plugin at once apply
//! each migration once, and a migration that fails leaves the version and
//! the data as they were. Each applied migration is recorded with the
//! SHA-256 of its SQL: a database whose recorded version is newer than what
//! the plugin ships is refused ([`Error::PluginSchemaTooNew`]), and so is a
//! shipped migration whose text changed after it was applied
//! ([`Error::PluginMigrationChanged`]) — a migration, once applied
//! somewhere, is never edited; a change is a new migration.
//!
//! Migrations run through the same sandbox as the plugin's own statements
//! ([`crate::sql`]): they can create and change only the plugin's objects.
//!
//! # Key-value buckets
//!
//! A bucket is `(plugin, name)`; keys and values live in a core table the
//! plugin's SQL cannot reach, so the store keeps their shape (a counter is
//! an 8-byte little-endian `i64`). Every operation runs in the caller's
//! unit of work.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use sha2::{Digest, Sha256};

use crate::sql::Namespace;
use crate::{Db, Error, Result, Unit};

/// One numbered step of a plugin's schema, in one dialect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginMigration {
    /// 1, 2, 3, … in order.
    pub version: u32,
    /// What it does (a file's name without its number), for status and errors.
    pub name: String,
    /// Its statements, separated by `;`.
    pub sql: String,
}

impl PluginMigration {
    /// The SHA-256 of its SQL, in hex: what the database records.
    pub fn checksum(&self) -> String {
        let digest = Sha256::digest(self.sql.as_bytes());
        let mut hex = String::with_capacity(64);
        for b in digest {
            let _ = write!(hex, "{b:02x}");
        }
        hex
    }
}

/// A migration the database records for a plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedMigration {
    /// Its version.
    pub version: u32,
    /// Its name.
    pub name: String,
    /// The SHA-256 of the SQL that ran.
    pub checksum: String,
    /// When it was applied (seconds since the epoch).
    pub applied_at: i64,
}

/// What [`Db::migrate_plugin`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PluginMigrated {
    /// The version recorded before.
    pub from: u32,
    /// The version recorded now.
    pub to: u32,
}

/// One table (or index, or a full-text index's shadow table) of a plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginTable {
    /// Its name as the plugin writes it.
    pub name: String,
    /// Bytes it takes in the database.
    pub bytes: u64,
}

/// What a plugin keeps, for `plinth db status` and quotas.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PluginData {
    /// The plugin.
    pub plugin: String,
    /// Its schema version (0: none recorded).
    pub version: u32,
    /// Its tables and indexes.
    pub tables: Vec<PluginTable>,
    /// Keys in its buckets.
    pub keys: u64,
    /// Bytes of its keys and values.
    pub keyvalue_bytes: u64,
}

impl PluginData {
    /// Everything it takes up: its tables' pages and its keys and values.
    pub fn bytes(&self) -> u64 {
        self.tables
            .iter()
            .map(|t| t.bytes)
            .sum::<u64>()
            .saturating_add(self.keyvalue_bytes)
    }
}

/// The most bytes a bucket name may have.
pub const MAX_BUCKET_BYTES: usize = 256;
/// The most bytes a key may have.
pub const MAX_KEY_BYTES: usize = 1024;
/// The most bytes a value may have: 1 MiB.
pub const MAX_VALUE_BYTES: usize = 1 << 20;
/// The most keys one `list-keys` page returns.
pub const KEYS_PER_PAGE: u32 = 1000;

/// Why a key-value operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KvError {
    /// A name, key or value over its limit, or the plugin's quota reached.
    #[error("too large: {0}")]
    TooLarge(String),
    /// The stored value is not what the operation needs (a counter is 8
    /// bytes).
    #[error("{0}")]
    NotACounter(String),
    /// The store's.
    #[error(transparent)]
    Store(#[from] Error),
}

/// What a plugin's migrations run under when it loads: the limits its calls
/// have. Its quota is the namespace's ([`Namespace::with_quota`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MigrationLimits {
    /// When the migrations must be done: a statement still running then is
    /// stopped (on SQLite by the progress handler, on PostgreSQL by a
    /// cancel), the wait for the write lock ends before it, and nothing of
    /// the load is kept.
    pub deadline: Option<std::time::Instant>,
    /// Most rows the migrations may insert, update or delete in all.
    pub rows: Option<u64>,
}

impl Db {
    /// Applies the migrations of `migrations` the database has not recorded
    /// for `ns`'s plugin, in one unit of work, under `limits` and `ns`'s
    /// quota; returns the versions before and after. Loading again is a
    /// no-op.
    ///
    /// # Errors
    /// [`Error::InvalidMigrations`] for a list not numbered 1, 2, 3, …;
    /// [`Error::PluginSchemaTooNew`] when the database records a newer
    /// version than `migrations` reaches (also when the plugin ships none
    /// at all now); [`Error::PluginMigrationChanged`] when an applied
    /// migration's SQL differs from what was applied;
    /// [`Error::PluginMigration`] when a statement fails, runs to the
    /// deadline ([`SqlError::TimedOut`](crate::sql::SqlError::TimedOut)),
    /// or takes the plugin past its quota or its row limit
    /// ([`SqlError::TooLarge`](crate::sql::SqlError::TooLarge)); nothing of
    /// this call is kept then. [`Error::Busy`] when the write lock is not
    /// had before the deadline.
    pub fn migrate_plugin(
        &self,
        ns: &Namespace,
        migrations: &[PluginMigration],
        limits: MigrationLimits,
    ) -> Result<PluginMigrated> {
        for (i, m) in migrations.iter().enumerate() {
            if usize::try_from(m.version).ok() != Some(i + 1) {
                return Err(Error::InvalidMigrations(format!(
                    "{}: migration {} ({}) is numbered {}, expected {}",
                    ns.plugin(),
                    i + 1,
                    m.name,
                    m.version,
                    i + 1
                )));
            }
        }
        let plugin = ns.plugin();
        let mut unit = self.unit()?;
        if let Some(deadline) = limits.deadline {
            unit.set_deadline(deadline);
        }
        let applied = unit.tx().lock_plugin_schema(plugin)?;
        let from = applied.iter().map(|a| a.version).max().unwrap_or(0);
        let shipped = u32::try_from(migrations.len()).unwrap_or(u32::MAX);
        if from > shipped {
            return Err(Error::PluginSchemaTooNew {
                plugin: plugin.to_string(),
                found: from,
                shipped,
            });
        }
        for a in &applied {
            let Some(m) = migrations.get(a.version as usize - 1) else {
                continue;
            };
            if m.checksum() != a.checksum {
                return Err(Error::PluginMigrationChanged {
                    plugin: plugin.to_string(),
                    version: a.version,
                    name: m.name.clone(),
                });
            }
        }
        let now = unit.now();
        for m in migrations.iter().filter(|m| m.version > from) {
            let failed = |error| Error::PluginMigration {
                plugin: plugin.to_string(),
                version: m.version,
                name: m.name.clone(),
                error,
            };
            let used = unit.usage.entry(plugin.to_string()).or_default();
            unit.tx.plugin_script(ns, &m.sql, used).map_err(failed)?;
            let written = unit.rows_written();
            if let Some(most) = limits.rows
                && written > most
            {
                return Err(failed(crate::sql::SqlError::TooLarge(format!(
                    "the migrations wrote {written} rows; the plugin's row limit is {most}"
                ))));
            }
            unit.tx().record_plugin_migration(plugin, m, now)?;
        }
        if from < shipped && ns.quota().is_none() {
            // Its tables changed outside any quota: counted afresh when a
            // write next needs it. (Under a quota the unit counted them.)
            unit.tx().forget_plugin_bytes(plugin)?;
        }
        unit.commit()?;
        Ok(PluginMigrated {
            from,
            to: from.max(shipped),
        })
    }

    /// The migrations recorded for `plugin`, oldest first.
    ///
    /// # Errors
    /// The store's when the database cannot be read.
    pub fn plugin_migrations(&self, plugin: &str) -> Result<Vec<AppliedMigration>> {
        self.unit()?.tx().plugin_migrations(plugin)
    }

    /// The migrations recorded for `plugin`, as
    /// [`plugin_migrations`](Self::plugin_migrations) — but none, without
    /// creating anything, for a deferred SQLite database whose file does
    /// not exist yet (nothing can be recorded there).
    ///
    /// # Errors
    /// The store's when the database cannot be read.
    pub fn recorded_plugin_migrations(&self, plugin: &str) -> Result<Vec<AppliedMigration>> {
        if !self.backend().may_hold_data() {
            return Ok(Vec::new());
        }
        self.plugin_migrations(plugin)
    }

    /// What every plugin keeps: each plugin with a recorded schema, tables
    /// or keys, by name.
    ///
    /// # Errors
    /// The store's when the database cannot be read.
    pub fn plugin_data(&self) -> Result<Vec<PluginData>> {
        self.unit()?.tx().plugin_data(None)
    }
}

impl Unit {
    /// The value of `key` in `ns`'s bucket `bucket`.
    ///
    /// # Errors
    /// [`KvError::TooLarge`] for a name or key over its limit; the store's.
    pub fn kv_get(
        &mut self,
        ns: &Namespace,
        bucket: &str,
        key: &str,
    ) -> Result<Option<Vec<u8>>, KvError> {
        check_names(bucket, key)?;
        Ok(self.tx().kv_get(ns.plugin(), bucket, key)?)
    }

    /// Sets `key` to `value`.
    ///
    /// # Errors
    /// [`KvError::TooLarge`] for a name, key or value over its limit, or
    /// when the plugin's quota would be passed (nothing is written); the
    /// store's.
    pub fn kv_set(
        &mut self,
        ns: &Namespace,
        bucket: &str,
        key: &str,
        value: &[u8],
    ) -> Result<(), KvError> {
        check_names(bucket, key)?;
        check_value(value)?;
        let after = self.kv_room(ns, bucket, key, value.len())?;
        self.tx().kv_set(ns.plugin(), bucket, key, value)?;
        self.kv_used(ns, after);
        Ok(())
    }

    /// Deletes `key` (nothing when it is absent).
    ///
    /// # Errors
    /// [`KvError::TooLarge`] for a name or key over its limit; the store's.
    pub fn kv_delete(&mut self, ns: &Namespace, bucket: &str, key: &str) -> Result<(), KvError> {
        check_names(bucket, key)?;
        self.tx().kv_delete(ns.plugin(), bucket, key)?;
        Ok(())
    }

    /// Up to [`KEYS_PER_PAGE`] keys after `after`, in order, and the cursor
    /// of the next page (the last key returned) when there may be more.
    ///
    /// # Errors
    /// [`KvError::TooLarge`] for a name over its limit; the store's.
    pub fn kv_keys(
        &mut self,
        ns: &Namespace,
        bucket: &str,
        after: Option<&str>,
    ) -> Result<(Vec<String>, Option<String>), KvError> {
        check_names(bucket, after.unwrap_or_default())?;
        let keys = self
            .tx()
            .kv_keys(ns.plugin(), bucket, after, KEYS_PER_PAGE)?;
        let cursor = (keys.len() == KEYS_PER_PAGE as usize)
            .then(|| keys.last().cloned())
            .flatten();
        Ok((keys, cursor))
    }

    /// Adds `delta` to the counter at `key` (absent: 0), atomically against
    /// every other unit; returns the new value.
    ///
    /// # Errors
    /// [`KvError::NotACounter`] when the value there is not 8 bytes;
    /// [`KvError::TooLarge`] on overflow or past the quota; the store's.
    pub fn kv_increment(
        &mut self,
        ns: &Namespace,
        bucket: &str,
        key: &str,
        delta: i64,
    ) -> Result<i64, KvError> {
        check_names(bucket, key)?;
        let after = self.kv_room(ns, bucket, key, 8)?;
        let current = self.tx().kv_get_for_update(ns.plugin(), bucket, key)?;
        let old = match current {
            None => 0,
            Some(bytes) => counter(&bytes)
                .ok_or_else(|| KvError::NotACounter(format!("{key}: not an 8-byte counter")))?,
        };
        let new = old
            .checked_add(delta)
            .ok_or_else(|| KvError::TooLarge(format!("{key}: {old} + {delta} overflows")))?;
        self.tx()
            .kv_set(ns.plugin(), bucket, key, &new.to_le_bytes())?;
        self.kv_used(ns, after);
        Ok(new)
    }

    /// Sets `key` to `value` only if it still holds `expected` (`None`:
    /// still absent), atomically against every other unit. Returns `None`
    /// when it swapped, else the value it holds now.
    ///
    /// # Errors
    /// [`KvError::TooLarge`]; the store's.
    pub fn kv_swap(
        &mut self,
        ns: &Namespace,
        bucket: &str,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
    ) -> Result<Option<Option<Vec<u8>>>, KvError> {
        check_names(bucket, key)?;
        check_value(value)?;
        let after = self.kv_room(ns, bucket, key, value.len())?;
        let current = self.tx().kv_get_for_update(ns.plugin(), bucket, key)?;
        if current.as_deref() != expected {
            return Ok(Some(current));
        }
        self.tx().kv_set(ns.plugin(), bucket, key, value)?;
        self.kv_used(ns, after);
        Ok(None)
    }

    /// Refuses a write of `value_len` bytes at `key` that would take `ns`
    /// past its quota; otherwise returns what the plugin's data will take
    /// once it is written (`None`: no quota).
    fn kv_room(
        &mut self,
        ns: &Namespace,
        bucket: &str,
        key: &str,
        value_len: usize,
    ) -> Result<Option<u64>, KvError> {
        let Some(quota) = ns.quota() else {
            return Ok(None);
        };
        let plugin = ns.plugin();
        let old = self.tx().kv_get(plugin, bucket, key)?;
        let adding =
            (key.len() + value_len) as i64 - old.map_or(0, |v| (key.len() + v.len()) as i64);
        let used = match self.usage.get(plugin) {
            Some(Some(u)) => u.now,
            _ => {
                let bytes = self.tx().plugin_bytes(plugin)?;
                self.usage.insert(
                    plugin.to_string(),
                    Some(crate::quota::Usage::recorded(bytes)),
                );
                bytes
            }
        };
        let after = used.saturating_add_signed(adding);
        crate::quota::check(after, quota).map_err(KvError::TooLarge)?;
        Ok(Some(after))
    }

    /// Records what a write under the quota left the plugin's data at.
    fn kv_used(&mut self, ns: &Namespace, after: Option<u64>) {
        if let (Some(after), Some(Some(u))) = (after, self.usage.get_mut(ns.plugin())) {
            u.now = after;
        }
    }
}

/// What each plugin keeps, from a backend's rows: `(plugin, version)`,
/// `(plugin, keys, bytes)` and `(plugin, object as stored, bytes)`; only
/// `only`'s when given.
pub(crate) fn gather(
    only: Option<&str>,
    versions: Vec<(String, u32)>,
    keys: Vec<(String, u64, u64)>,
    objects: Vec<(String, String, u64)>,
) -> Vec<PluginData> {
    let mut found: BTreeMap<String, PluginData> = BTreeMap::new();
    fn slot<'a>(found: &'a mut BTreeMap<String, PluginData>, name: &str) -> &'a mut PluginData {
        found.entry(name.to_string()).or_insert_with(|| PluginData {
            plugin: name.to_string(),
            ..PluginData::default()
        })
    }
    let wanted = |name: &str| only.is_none_or(|p| p == name);
    for (plugin, version) in versions.into_iter().filter(|v| wanted(&v.0)) {
        slot(&mut found, &plugin).version = version;
    }
    for (plugin, n, bytes) in keys.into_iter().filter(|k| wanted(&k.0)) {
        let data = slot(&mut found, &plugin);
        data.keys = n;
        data.keyvalue_bytes = bytes;
    }
    for (plugin, name, bytes) in objects.into_iter().filter(|o| wanted(&o.0)) {
        let prefix = format!("{plugin}:");
        let name = name.strip_prefix(&prefix).unwrap_or(&name).to_string();
        slot(&mut found, &plugin)
            .tables
            .push(PluginTable { name, bytes });
    }
    found.into_values().collect()
}

/// An 8-byte little-endian counter.
pub fn counter(bytes: &[u8]) -> Option<i64> {
    Some(i64::from_le_bytes(bytes.try_into().ok()?))
}

fn check_value(value: &[u8]) -> Result<(), KvError> {
    if value.len() > MAX_VALUE_BYTES {
        return Err(KvError::TooLarge(format!(
            "a value of {} bytes; at most {MAX_VALUE_BYTES}",
            value.len()
        )));
    }
    Ok(())
}

fn check_names(bucket: &str, key: &str) -> Result<(), KvError> {
    if bucket.len() > MAX_BUCKET_BYTES {
        return Err(KvError::TooLarge(format!(
            "a bucket name of {} bytes; at most {MAX_BUCKET_BYTES}",
            bucket.len()
        )));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(KvError::TooLarge(format!(
            "a key of {} bytes; at most {MAX_KEY_BYTES}",
            key.len()
        )));
    }
    Ok(())
}
